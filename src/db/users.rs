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
    pub id: Uuid,
    pub username: String,
    pub name: Option<String>,
    pub password_hash: String,
    pub admin: bool,
    pub banned: bool,
    pub banned_until: Option<DateTime<Utc>>,
    pub ban_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl UserRow {
    /// Banned now: a ban without an end, or one whose end has not come.
    pub fn is_banned(&self, now: DateTime<Utc>) -> bool {
        self.banned && self.banned_until.is_none_or(|until| until > now)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub username: &'a str,
    pub name: Option<&'a str>,
    pub password_hash: &'a str,
    pub admin: bool,
    pub created_at: DateTime<Utc>,
}

/// Inserts a user; `None` when the username (in any case) is taken.
pub fn insert(conn: &mut PgConnection, user: &NewUser<'_>) -> QueryResult<Option<UserRow>> {
    diesel::insert_into(users::table)
        .values(user)
        .on_conflict_do_nothing()
        .returning(UserRow::as_returning())
        .get_result(conn)
        .optional()
}

/// Looks a user up by name, without regard to case.
pub fn find_by_username(conn: &mut PgConnection, username: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(lower(users::username).eq(lower(username)))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn record_login(conn: &mut PgConnection, id: Uuid, at: DateTime<Utc>) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set(users::last_login_at.eq(at))
        .execute(conn)
}

pub fn set_password_hash(conn: &mut PgConnection, id: Uuid, hash: &str) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set(users::password_hash.eq(hash))
        .execute(conn)
}

/// Sets or lifts a ban.
pub fn set_ban(
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
