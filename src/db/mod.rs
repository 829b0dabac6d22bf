//! The database: the connection pool, embedded migrations, and one module of
//! small query functions per table. Nothing here knows about HTTP.

pub mod events;
pub mod keys;
pub mod schema;
pub mod sessions;
pub mod throttle;
pub mod users;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::Settings;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serialises database creation and migration between instances starting
/// at the same moment (`pg_advisory_lock` key; "kw" in ASCII, then 1).
const MIGRATION_LOCK: i64 = 0x6b77_0001;

/// The channel every revocation is announced on, in the transaction that
/// revokes (payload: the session id).
pub const REVOCATION_CHANNEL: &str = "keyward_revoked";

/// The channel a new signing key is announced on.
pub const KEYS_CHANNEL: &str = "keyward_keys";

pub type DbPool = Pool<ConnectionManager<PgConnection>>;
pub type DbConn = PooledConnection<ConnectionManager<PgConnection>>;

/// A failure of the store, as the services see it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached in time (pool timeout, lost
    /// connection): the client may retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(DieselError),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | DieselError::BrokenTransactionManager => Self::Unavailable(e.to_string()),
            DieselError::DatabaseError(_, info)
                if info.message().contains("terminating connection")
                    || info.message().contains("server closed the connection")
                    || info.message().contains("no connection to the server") =>
            {
                Self::Unavailable(e.to_string())
            }
            _ => Self::Query(e),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Splits `postgres://…/name?query` into the URL of the maintenance
/// database `postgres` and the database name.
fn maintenance_url(url: &str) -> Option<(String, String)> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://")? + 3;
    let slash = scheme_end + base[scheme_end..].find('/')?;
    let name = &base[slash + 1..];
    if name.is_empty() {
        return None;
    }
    let mut maintenance = format!("{}/postgres", &base[..slash]);
    if let Some(q) = query {
        maintenance.push('?');
        maintenance.push_str(q);
    }
    Some((maintenance, name.to_string()))
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
        #[derive(diesel::QueryableByName)]
        struct Found {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            found: bool,
        }
        let exists = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS found",
        )
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Found>(admin)
        .map_err(|e| format!("database: {e}"))?
        .found;
        if !exists {
            let quoted = name.replace('"', "\"\"");
            admin
                .batch_execute(&format!("CREATE DATABASE \"{quoted}\""))
                .map_err(|e| format!("database: cannot create {name}: {e}"))?;
            log::info!("created database {name}");
        }
        Ok(())
    })
}

fn lock_and<T>(
    conn: &mut PgConnection,
    f: impl FnOnce(&mut PgConnection) -> Result<T, String>,
) -> Result<T, String> {
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .map_err(|e| format!("database: {e}"))?;
    let result = f(conn);
    let _ = conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
    result
}

/// The request pool. A checkout waits at most `database.connect_timeout_ms`,
/// so a database outage becomes a quick `503`, never a hang.
pub fn build_pool(settings: &Settings) -> Result<DbPool, String> {
    let manager = ConnectionManager::<PgConnection>::new(settings.database.url.expose());
    Pool::builder()
        .max_size(settings.pool_size())
        .min_idle(Some(2.min(settings.pool_size())))
        .connection_timeout(Duration::from_millis(settings.database.connect_timeout_ms))
        .test_on_check_out(false)
        .build(manager)
        .map_err(|e| format!("database pool: {e}"))
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
