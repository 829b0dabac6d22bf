//! The `signing_keys` table: keys keyward generated itself, shared by every
//! instance on the database.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::signing_keys;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct KeyRow {
    pub kid: String,
    pub algorithm: String,
    pub private_key: Vec<u8>,
    pub public_key: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// Keys of one algorithm, oldest first: the last one signs.
pub fn list(conn: &mut PgConnection, algorithm: &str) -> QueryResult<Vec<KeyRow>> {
    signing_keys::table
        .filter(signing_keys::algorithm.eq(algorithm))
        .select(KeyRow::as_select())
        .order(signing_keys::created_at.asc())
        .load(conn)
}

/// Adds a key and retires the ones that signed before it, in one transaction.
pub fn insert_and_retire_others(conn: &mut PgConnection, key: &KeyRow) -> QueryResult<()> {
    conn.transaction(|conn| {
        diesel::update(
            signing_keys::table
                .filter(signing_keys::algorithm.eq(&key.algorithm))
                .filter(signing_keys::retired_at.is_null()),
        )
        .set(signing_keys::retired_at.eq(key.created_at))
        .execute(conn)?;
        diesel::insert_into(signing_keys::table)
            .values(key)
            .execute(conn)?;
        diesel::sql_query(format!("NOTIFY {}", super::KEYS_CHANNEL)).execute(conn)?;
        Ok(())
    })
}

/// Deletes keys retired before `cutoff`: no token they signed is still valid.
pub fn delete_retired_before(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(signing_keys::table.filter(signing_keys::retired_at.lt(cutoff))).execute(conn)
}
