//! Creating keyward's database if it is missing and migrating it, one
//! instance at a time.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serialises database creation and migration between instances starting
/// at the same moment (`pg_advisory_lock` key; "kw" in ASCII, then 1).
const MIGRATION_LOCK: i64 = 0x6b77_0001;

/// Splits `postgres://…/name?query` into the URL before the name, the name,
/// and the query (with its `?`).
fn split_database_url(url: &str) -> Option<(&str, &str, &str)> {
    let (base, query) = match url.find('?') {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    let scheme_end = base.find("://")? + 3;
    let slash = scheme_end + base[scheme_end..].find('/')?;
    Some((&base[..slash], &base[slash + 1..], query)).filter(|(_, name, _)| !name.is_empty())
}

/// The same server and options as `url`, another database (`name`, which
/// must need no percent-encoding).
pub(crate) fn url_for_database(url: &str, name: &str) -> Option<String> {
    split_database_url(url).map(|(server, _, query)| format!("{server}/{name}{query}"))
}

/// Splits `postgres://…/name?query` into the URL of the maintenance
/// database `postgres` and the database name.
fn maintenance_url(url: &str) -> Option<(String, String)> {
    let (_, name, _) = split_database_url(url)?;
    Some((url_for_database(url, "postgres")?, name.to_string()))
}

/// Creates the database if it is missing, then applies pending migrations,
/// holding an advisory lock so that several instances starting at once do
/// not race.
pub fn prepare_database(url: &str) -> Result<(), String> {
    let connect = |u: &str| PgConnection::establish(u).map_err(|e| format!("database: {e}"));
    let mut conn = match connect(url) {
        Ok(conn) => conn,
        Err(first) => {
            let (maintenance, name) = maintenance_url(url).ok_or(first)?;
            let mut admin = connect(&maintenance)?;
            create_database(&mut admin, &name)?;
            connect(url)?
        }
    };
    lock_and(&mut conn, |conn| {
        conn.run_pending_migrations(MIGRATIONS)
            .map(|applied| {
                for version in applied {
                    log::info!("applied migration {version}");
                }
            })
            .map_err(|e| format!("migrations: {e}"))
    })
}

fn create_database(admin: &mut PgConnection, name: &str) -> Result<(), String> {
    lock_and(admin, |admin| {
        if !database_exists(admin, name)? {
            let quoted = name.replace('"', "\"\"");
            admin
                .batch_execute(&format!("CREATE DATABASE \"{quoted}\""))
                .map_err(|e| format!("database: cannot create {name}: {e}"))?;
            log::info!("created database {name}");
        }
        Ok(())
    })
}

/// Whether the server has a database of this name.
pub fn database_exists(conn: &mut PgConnection, name: &str) -> Result<bool, String> {
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS found")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Found>(conn)
        .map(|f| f.found)
        .map_err(|e| format!("database: {e}"))
}

fn lock_and<T>(
    conn: &mut PgConnection,
    f: impl FnOnce(&mut PgConnection) -> Result<T, String>,
) -> Result<T, String> {
    with_advisory_lock(conn, MIGRATION_LOCK, f)
}

/// Runs `f` holding the session-level advisory lock `key`.
pub(super) fn with_advisory_lock<T>(
    conn: &mut PgConnection,
    key: i64,
    f: impl FnOnce(&mut PgConnection) -> Result<T, String>,
) -> Result<T, String> {
    conn.batch_execute(&format!("SELECT pg_advisory_lock({key})"))
        .map_err(|e| format!("database: {e}"))?;
    let result = f(conn);
    let _ = conn.batch_execute(&format!("SELECT pg_advisory_unlock({key})"));
    result
}

#[cfg(test)]
mod tests {
    use super::maintenance_url;

    #[test]
    fn maintenance_url_swaps_the_database_name() {
        assert_eq!(
            maintenance_url("postgres://postgres@localhost:5432/keyward?sslmode=disable"),
            Some((
                "postgres://postgres@localhost:5432/postgres?sslmode=disable".into(),
                "keyward".into()
            ))
        );
        assert_eq!(maintenance_url("postgres://localhost"), None);
    }
}
