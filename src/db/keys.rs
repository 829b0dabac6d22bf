//! The `signing_keys` table: keys keyward generated itself, shared by every
//! instance on the database. A key is published (verifies) from its creation,
//! signs from `signs_from`, is retired when a newer key takes over, and may be
//! revoked (see the key-states migration).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamptz};

use super::schema::signing_keys;

/// The channel a new signing key is announced on.
pub(crate) const KEYS_CHANNEL: &str = "keyward_keys";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct KeyRow {
    pub kid: String,
    pub(crate) algorithm: String,
    pub(crate) private_key: Vec<u8>,
    pub(crate) public_key: Option<Vec<u8>>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) retired_at: Option<DateTime<Utc>>,
    pub(crate) signs_from: DateTime<Utc>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
}

/// Serialises every change to the key table between instances and the
/// command line (`pg_advisory_xact_lock` key).
const KEYS_LOCK: i64 = 1_802_961_154;

/// Takes the key table's lock until the transaction ends.
pub(crate) fn lock(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query(format!("SELECT pg_advisory_xact_lock({KEYS_LOCK})"))
        .execute(conn)
        .map(drop)
}

/// Every key, revoked ones included, in the order they sign: by
/// `signs_from`, then creation.
pub(crate) fn list(conn: &mut PgConnection) -> QueryResult<Vec<KeyRow>> {
    signing_keys::table
        .select(KeyRow::as_select())
        .order((
            signing_keys::signs_from.asc(),
            signing_keys::created_at.asc(),
        ))
        .load(conn)
}

/// Adds a key; every key not yet retired retires when it starts signing.
/// Announced on the keys channel at commit.
pub(crate) fn insert_and_retire_others(conn: &mut PgConnection, key: &KeyRow) -> QueryResult<()> {
    conn.transaction(|conn| {
        diesel::update(signing_keys::table.filter(signing_keys::retired_at.is_null()))
            .set(signing_keys::retired_at.eq(key.signs_from))
            .execute(conn)?;
        diesel::insert_into(signing_keys::table)
            .values(key)
            .execute(conn)?;
        notify(conn)
    })
}

/// Makes a waiting key sign from `at`, and moves the retirement of the keys
/// it takes over from to `at` as well.
pub(crate) fn sign_from(conn: &mut PgConnection, kid: &str, at: DateTime<Utc>) -> QueryResult<()> {
    conn.transaction(|conn| {
        diesel::update(
            signing_keys::table
                .filter(signing_keys::kid.ne(kid))
                .filter(signing_keys::retired_at.gt(at)),
        )
        .set(signing_keys::retired_at.eq(at))
        .execute(conn)?;
        diesel::update(signing_keys::table.find(kid))
            .set(signing_keys::signs_from.eq(at))
            .execute(conn)?;
        notify(conn)
    })
}

/// Revokes a key and appends `(kid, 'key_revoked')` to the revocation log, in
/// one transaction with the announcement; `false` if it was revoked already.
pub(crate) fn revoke(conn: &mut PgConnection, kid: &str, at: DateTime<Utc>) -> QueryResult<bool> {
    conn.transaction(|conn| {
        let changed = diesel::sql_query(
            "UPDATE signing_keys SET revoked_at = $2, retired_at = LEAST(COALESCE(retired_at, $2), $2) \
             WHERE kid = $1 AND revoked_at IS NULL",
        )
        .bind::<Text, _>(kid)
        .bind::<Timestamptz, _>(at)
        .execute(conn)?;
        if changed == 0 {
            return Ok(false);
        }
        // The log row also reaches every instance's revocation feed.
        super::revocations::append_kid(conn, kid, at)?;
        notify(conn)?;
        Ok(true)
    })
}

/// Cancels the retirement a key waiting to sign from `at` had scheduled for
/// the keys it was to take over from (that key was revoked before it signed).
pub(crate) fn cancel_retirement_at(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        signing_keys::table
            .filter(signing_keys::retired_at.eq(at))
            .filter(signing_keys::revoked_at.is_null()),
    )
    .set(signing_keys::retired_at.eq(None::<DateTime<Utc>>))
    .execute(conn)
}

fn notify(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query(format!("NOTIFY {}", KEYS_CHANNEL))
        .execute(conn)
        .map(drop)
}

/// Deletes keys retired before `cutoff`: no token they signed is still valid.
pub(crate) fn delete_retired_before(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(signing_keys::table.filter(signing_keys::retired_at.lt(cutoff))).execute(conn)
}
