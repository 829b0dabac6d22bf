//! The databases of `keyward serve --ephemeral` (API.md section 8): each
//! instance clones a migrated template (`CREATE DATABASE … TEMPLATE …`,
//! about 0.2 s, where migrating an empty database takes longer) and drops
//! its clone when it exits.
//!
//! The template is named after a digest of the migrations this binary
//! embeds (computed by `build.rs`), so a binary with other migrations never
//! clones a template that does not match them: it builds its own. The
//! template is built under a name of its own and renamed when complete, so
//! no one ever clones a half-built one, and a build cut short leaves nothing
//! that looks finished; it is marked `ALLOW_CONNECTIONS false`, because a
//! clone fails while anyone is connected to its source. Instances starting
//! at the same moment take an advisory lock so that the template is built
//! once (advisory locks are per database: instances whose `database.url`
//! names different databases may both build one; the rename lets one win
//! and the other drops its copy).

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::Connection;

use super::migrate::{database_exists, prepare_database, url_for_database, with_advisory_lock};

/// The prefix of every instance's database; a random suffix follows.
pub(crate) const DATABASE_PREFIX: &str = "keyward_ephemeral_";

/// The prefix of the templates (not `keyward_ephemeral_`: a clean-up of
/// leftover instances by that prefix must not take the template along).
const TEMPLATE_PREFIX: &str = "keyward_eph_template_";

/// Serialises template building and cloning ("kw", then 2).
const TEMPLATE_LOCK: i64 = 0x6b77_0002;

/// The digest of `migrations/` this binary was built with.
const MIGRATIONS_DIGEST: &str = env!("KEYWARD_MIGRATIONS_DIGEST");

fn template_name() -> String {
    format!("{TEMPLATE_PREFIX}{MIGRATIONS_DIGEST}")
}

/// A connection for `CREATE DATABASE`: to the database `url` names, or,
/// when that one does not exist, to `postgres` on the same server.
fn admin_connection(url: &str) -> Result<PgConnection, String> {
    PgConnection::establish(url).or_else(|first| {
        let fallback = url_for_database(url, "postgres").ok_or(format!("database: {first}"))?;
        PgConnection::establish(&fallback).map_err(|e| format!("database: {e}"))
    })
}

fn execute(conn: &mut PgConnection, sql: &str) -> Result<(), String> {
    conn.batch_execute(sql)
        .map_err(|e| format!("database: {e}"))
}

/// Creates a fresh, migrated database on the server `url` names; returns
/// its name and URL.
pub(crate) fn create(url: &str) -> Result<(String, String), String> {
    let name = format!("{DATABASE_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let database_url = url_for_database(url, &name)
        .ok_or("database.url must be a postgres:// URL naming a database")?;
    let template = template_name();
    let mut admin = admin_connection(url)?;
    with_advisory_lock(&mut admin, TEMPLATE_LOCK, |admin| {
        if !database_exists(admin, &template)? {
            build_template(admin, url, &template)?;
        }
        execute(
            admin,
            &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\" STRATEGY FILE_COPY"),
        )
    })?;
    Ok((name, database_url))
}

/// Builds the template under a name of its own, migrates it, then renames
/// it; templates of other migrations are dropped.
fn build_template(admin: &mut PgConnection, url: &str, template: &str) -> Result<(), String> {
    for stale in stale_templates(admin, template)? {
        // Another binary may be cloning it right now: then this waits or
        // fails, and that binary builds it again when it next starts.
        let _ = execute(
            admin,
            &format!(
                "ALTER DATABASE \"{stale}\" WITH IS_TEMPLATE false ALLOW_CONNECTIONS true; \
                 DROP DATABASE IF EXISTS \"{stale}\" WITH (FORCE)"
            ),
        );
    }
    let building = format!(
        "{template}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    execute(admin, &format!("CREATE DATABASE \"{building}\""))?;
    let built = url_for_database(url, &building)
        .ok_or_else(|| "database.url is not a URL".to_string())
        .and_then(|building_url| prepare_database(&building_url))
        .and_then(|()| {
            execute(
                admin,
                &format!("ALTER DATABASE \"{building}\" RENAME TO \"{template}\""),
            )
        });
    if let Err(e) = built {
        let _ = execute(
            admin,
            &format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"),
        );
        // Another instance finished first: use its template.
        return if database_exists(admin, template)? {
            Ok(())
        } else {
            Err(e)
        };
    }
    execute(
        admin,
        &format!("ALTER DATABASE \"{template}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"),
    )?;
    log::info!("built the template database {template}");
    Ok(())
}

fn stale_templates(admin: &mut PgConnection, current: &str) -> Result<Vec<String>, String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "SELECT datname FROM pg_database \
         WHERE starts_with(datname, $1) AND NOT starts_with(datname, $2)",
    )
    .bind::<diesel::sql_types::Text, _>(TEMPLATE_PREFIX)
    .bind::<diesel::sql_types::Text, _>(current)
    .load::<Name>(admin)
    .map(|names| names.into_iter().map(|n| n.datname).collect())
    .map_err(|e| format!("database: {e}"))
}

/// Drops an instance's database, ending any connection still open to it.
pub(crate) fn drop_database(url: &str, name: &str) -> Result<(), String> {
    if !name.starts_with(DATABASE_PREFIX) {
        return Err(format!(
            "refusing to drop {name}: not an ephemeral database"
        ));
    }
    let mut admin = admin_connection(url)?;
    execute(
        &mut admin,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
}
