//! The `users` table.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::users;

diesel::define_sql_function! {
    /// PostgreSQL's `lower(text)`, as the unique index on usernames uses it.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub(crate) id: Uuid,
    pub(crate) username: String,
    pub(crate) name: Option<String>,
    pub(crate) password_hash: String,
    pub(crate) admin: bool,
    pub(crate) banned: bool,
    pub(crate) banned_until: Option<DateTime<Utc>>,
    pub(crate) ban_reason: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) last_login_at: Option<DateTime<Utc>>,
}

impl UserRow {
    /// Banned now: a ban without an end, or one whose end has not come.
    pub(crate) fn is_banned(&self, now: DateTime<Utc>) -> bool {
        self.banned && self.banned_until.is_none_or(|until| until > now)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub(crate) struct NewUser<'a> {
    pub(crate) id: Uuid,
    pub(crate) username: &'a str,
    pub(crate) name: Option<&'a str>,
    pub(crate) password_hash: &'a str,
    pub(crate) admin: bool,
    pub(crate) created_at: DateTime<Utc>,
}

/// Inserts a user; `None` when the username (in any case) is taken.
pub(crate) fn insert(conn: &mut PgConnection, user: &NewUser<'_>) -> QueryResult<Option<UserRow>> {
    diesel::insert_into(users::table)
        .values(user)
        .on_conflict_do_nothing()
        .returning(UserRow::as_returning())
        .get_result(conn)
        .optional()
}

/// Looks a user up by name, without regard to case.
pub(crate) fn find_by_username(
    conn: &mut PgConnection,
    username: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(lower(users::username).eq(lower(username)))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub(crate) fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub(crate) fn record_login(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set(users::last_login_at.eq(at))
        .execute(conn)
}

/// Sets or lifts a ban.
pub(crate) fn set_ban(
    conn: &mut PgConnection,
    id: Uuid,
    banned: bool,
    until: Option<DateTime<Utc>>,
    reason: Option<&str>,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::banned.eq(banned),
            users::banned_until.eq(until),
            users::ban_reason.eq(reason),
        ))
        .execute(conn)
}

/// One page of users in `(lower(username), id)` order: those whose
/// lowercased name starts with `prefix` (already lowercased, matched
/// literally), after the position `after` (a lowercased name and an id).
pub(crate) fn list_page(
    conn: &mut PgConnection,
    prefix: Option<&str>,
    after: Option<(&str, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<UserRow>> {
    let mut query = users::table
        .select(UserRow::as_select())
        .order((lower(users::username), users::id))
        .limit(limit)
        .into_boxed();
    if let Some(prefix) = prefix {
        query = query.filter(
            lower(users::username)
                .like(format!("{}%", escape_like(prefix)))
                .escape('\\'),
        );
    }
    if let Some((name, id)) = after {
        // The first condition alone is what lets the index start the scan at
        // the position; the second is the exact keyset comparison.
        query = query
            .filter(lower(users::username).ge(name.to_string()))
            .filter(
                lower(users::username)
                    .gt(name.to_string())
                    .or(users::id.gt(id)),
            );
    }
    query.load(conn)
}

/// `text` as a literal `LIKE` pattern: `\`, `%` and `_` escaped with `\`.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Sets a new password hash, but only while the stored one is still
/// `expected` (the one just verified): of two concurrent changes, one wins.
pub(crate) fn replace_password_hash(
    conn: &mut PgConnection,
    id: Uuid,
    expected: &str,
    hash: &str,
) -> QueryResult<bool> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::password_hash.eq(expected)),
    )
    .set(users::password_hash.eq(hash))
    .execute(conn)
    .map(|updated| updated == 1)
}

/// Deletes a user (their sessions go with them); whether it existed.
pub(crate) fn delete(conn: &mut PgConnection, id: Uuid) -> QueryResult<bool> {
    diesel::delete(users::table.find(id))
        .execute(conn)
        .map(|deleted| deleted == 1)
}

/// Reads a user and locks the row until the transaction ends, so that a
/// concurrent ban, unban or delete of the same user waits.
pub(crate) fn find_for_update(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// How many users there are, and how many of them are banned at `now` (a
/// ban whose time has run out no longer counts), in one scan.
pub(crate) fn count_all_and_banned(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> QueryResult<(i64, i64)> {
    #[derive(QueryableByName)]
    struct Counts {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        users: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        banned: i64,
    }
    let counts: Counts = diesel::sql_query(
        "SELECT count(*) AS users, \
           count(*) FILTER (WHERE banned AND (banned_until IS NULL OR banned_until > $1)) AS banned \
         FROM users",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .get_result(conn)?;
    Ok((counts.users, counts.banned))
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like("a_b%c\\d"), "a\\_b\\%c\\\\d");
        assert_eq!(escape_like("plain"), "plain");
    }
}
