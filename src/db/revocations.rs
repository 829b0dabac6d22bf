//! The `revocations` log (migration `2026-12-01-000001_revocations`): one
//! append-only row per revoked session, per "signed in before" cut-off and
//! per revoked signing key. Every instance's revocation set and feed are
//! read from it.
//!
//! To append: insert the row and `pg_notify` the
//! `REVOCATION_CHANNEL` in the same
//! transaction (any payload: a notification makes every listener re-read the
//! table at once; without one they still find the row within
//! `revocation.poll_seconds`). The functions below do both.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// The channel every revocation is announced on, in the transaction that
/// revokes (payload: the session id).
pub(crate) const REVOCATION_CHANNEL: &str = "keyward_revoked";

/// One row of the log.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub(crate) struct RevocationRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    /// The writing transaction's id (see the migration).
    #[diesel(sql_type = BigInt)]
    pub(crate) tx: i64,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub(crate) reason: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub(crate) session_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub(crate) user_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub(crate) auth_before: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) kid: Option<String>,
}

/// What one read of the log saw: the rows, and the reading snapshot's xmin.
/// Every row with `tx < xmin` was visible to that read: a reader that has
/// every such row may resume from `tx >= xmin` without skipping one.
#[derive(Debug, Default)]
pub(crate) struct Read {
    pub(crate) rows: Vec<RevocationRow>,
    pub(crate) xmin: i64,
}

#[derive(QueryableByName)]
struct Xmin {
    #[diesel(sql_type = BigInt)]
    xmin: i64,
}

#[derive(QueryableByName)]
struct DbTag {
    #[diesel(sql_type = BigInt)]
    tag: i64,
}

const COLUMNS: &str = "id, tx, at, reason, session_id, user_id, auth_before, kid";

/// Rows with `tx >= from_tx` and `at >= since`, in `(tx, id)` order, with
/// the snapshot's xmin, read in one repeatable-read snapshot so the two
/// agree. `from_tx = 0` with `since` = now - horizon is the full load; the
/// periodic re-read passes the last xmin, which the `revocations_tx` index
/// answers with nothing most of the time.
pub(crate) fn read_since(
    conn: &mut PgConnection,
    from_tx: i64,
    since: DateTime<Utc>,
) -> QueryResult<Read> {
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(|conn| {
            let xmin: Xmin = diesel::sql_query(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin",
            )
            .get_result(conn)?;
            let rows = diesel::sql_query(format!(
                "SELECT {COLUMNS} FROM revocations WHERE tx >= $1 AND at >= $2 ORDER BY tx, id"
            ))
            .bind::<BigInt, _>(from_tx)
            .bind::<Timestamptz, _>(since)
            .load(conn)?;
            Ok(Read {
                rows,
                xmin: xmin.xmin,
            })
        })
}

/// The largest `tx` among rows older than `before` (0 if none): the entries
/// an instance starting now never holds, so a cursor at or below it may have
/// missed one and must be reset.
pub(crate) fn max_tx_before(conn: &mut PgConnection, before: DateTime<Utc>) -> QueryResult<i64> {
    let row: Xmin =
        diesel::sql_query("SELECT coalesce(max(tx), 0) AS xmin FROM revocations WHERE at < $1")
            .bind::<Timestamptz, _>(before)
            .get_result(conn)?;
    Ok(row.xmin)
}

/// A number naming this database (its oid), written into feed cursors so
/// that a cursor of another keyward database is unknown here.
pub(crate) fn database_tag(conn: &mut PgConnection) -> QueryResult<i64> {
    let row: DbTag = diesel::sql_query(
        "SELECT oid::bigint AS tag FROM pg_database WHERE datname = current_database()",
    )
    .get_result(conn)?;
    Ok(row.tag)
}

/// Appends "every access token with `auth_time` before `auth_before` is
/// revoked" (reason `revoked_all`) and notifies the listeners.
pub fn append_auth_before(
    conn: &mut PgConnection,
    auth_before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::sql_query(format!(
        "WITH logged AS (INSERT INTO revocations (at, reason, auth_before) \
           VALUES ($1, 'revoked_all', $2) RETURNING id) \
         SELECT pg_notify('{channel}', 'auth_before') FROM logged",
        channel = REVOCATION_CHANNEL
    ))
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(auth_before)
    .execute(conn)
    .map(drop)
}

/// Appends "every token signed by `kid` is revoked" (reason `key_revoked`)
/// and notifies the listeners.
pub fn append_kid(conn: &mut PgConnection, kid: &str, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::sql_query(format!(
        "WITH logged AS (INSERT INTO revocations (at, reason, kid) \
           VALUES ($1, 'key_revoked', $2) RETURNING id) \
         SELECT pg_notify('{channel}', 'kid') FROM logged",
        channel = REVOCATION_CHANNEL
    ))
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(kid)
    .execute(conn)
    .map(drop)
}
