//! The append-only `events` table: written in the same transaction as the
//! change it records.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::events;

/// What happened (API.md, `GET /admin/events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    LoginSucceeded,
    LoginFailed,
    /// Written by the text of [`ROTATE_SQL`](super::rotation::ROTATE_SQL),
    /// which must not format at run time; its test keeps the two the same.
    #[allow(dead_code, reason = "written by ROTATE_SQL's own text")]
    Refreshed,
    ReuseDetected,
    Logout,
    SessionRevoked,
    UserBanned,
    UserUnbanned,
    UserDeleted,
    PasswordChanged,
    ServiceCreated,
    ServiceDeleted,
    PasswordChangeFailed,
    SessionsRevokedAll,
    KeyRotated,
    KeyRevoked,
}

impl EventKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::Refreshed => "refreshed",
            Self::ReuseDetected => "reuse_detected",
            Self::Logout => "logout",
            Self::SessionRevoked => "session_revoked",
            Self::UserBanned => "user_banned",
            Self::UserUnbanned => "user_unbanned",
            Self::UserDeleted => "user_deleted",
            Self::PasswordChanged => "password_changed",
            Self::ServiceCreated => "service_created",
            Self::ServiceDeleted => "service_deleted",
            Self::PasswordChangeFailed => "password_change_failed",
            Self::SessionsRevokedAll => "sessions_revoked_all",
            Self::KeyRotated => "key_rotated",
            Self::KeyRevoked => "key_revoked",
        }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = events)]
pub(crate) struct NewEvent<'a> {
    pub(crate) at: DateTime<Utc>,
    pub(crate) kind: &'static str,
    pub(crate) user_id: Option<Uuid>,
    pub(crate) session_id: Option<Uuid>,
    pub(crate) actor_id: Option<Uuid>,
    pub(crate) ip: Option<&'a str>,
    pub(crate) detail: serde_json::Value,
}

impl<'a> NewEvent<'a> {
    pub(crate) fn new(kind: EventKind, at: DateTime<Utc>) -> Self {
        Self {
            at,
            kind: kind.as_str(),
            user_id: None,
            session_id: None,
            actor_id: None,
            ip: None,
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    pub(crate) fn user(mut self, id: Uuid) -> Self {
        self.user_id = Some(id);
        self
    }

    pub(crate) fn session(mut self, id: Uuid) -> Self {
        self.session_id = Some(id);
        self
    }

    pub(crate) fn actor(mut self, id: Option<Uuid>) -> Self {
        self.actor_id = id;
        self
    }

    pub(crate) fn ip(mut self, ip: Option<&'a str>) -> Self {
        self.ip = ip;
        self
    }

    pub(crate) fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub(crate) id: i64,
    pub(crate) at: DateTime<Utc>,
    pub(crate) kind: String,
    pub(crate) user_id: Option<Uuid>,
    pub(crate) session_id: Option<Uuid>,
    pub(crate) actor_id: Option<Uuid>,
    pub(crate) ip: Option<String>,
    pub(crate) detail: serde_json::Value,
}

pub(crate) fn record(conn: &mut PgConnection, event: NewEvent<'_>) -> QueryResult<()> {
    diesel::insert_into(events::table)
        .values(&event)
        .execute(conn)
        .map(drop)
}

/// Newest first, optionally for one user and before an event id.
pub(crate) fn list(
    conn: &mut PgConnection,
    user_id: Option<Uuid>,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<EventRow>> {
    let mut query = events::table
        .select(EventRow::as_select())
        .order(events::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(user) = user_id {
        query = query.filter(events::user_id.eq(user));
    }
    if let Some(before) = before {
        query = query.filter(events::id.lt(before));
    }
    query.load(conn)
}
