//! What administrators (and the command line) do to users and sessions. Each
//! change, its event and its revocation notices commit together.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::events::{self, EventKind, NewEvent};
use crate::db::sessions::{self, Scope};
use crate::db::users;

/// Bans a user (until `until`, or until unbanned) and revokes every session
/// of theirs; returns the revoked session ids.
pub fn ban(
    conn: &mut PgConnection,
    user_id: Uuid,
    actor: Option<Uuid>,
    reason: Option<&str>,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    conn.transaction(|conn| {
        users::set_ban(conn, user_id, true, until, reason)?;
        let revoked = sessions::revoke(conn, user_id, Scope::AllOfUser, "user_banned", now)?;
        events::record(
            conn,
            NewEvent::new(EventKind::UserBanned, now)
                .user(user_id)
                .actor(actor)
                .detail(serde_json::json!({
                    "reason": reason,
                    "until": until,
                    "revoked": revoked.len(),
                })),
        )?;
        Ok(revoked)
    })
}

pub fn unban(
    conn: &mut PgConnection,
    user_id: Uuid,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        users::set_ban(conn, user_id, false, None, None)?;
        events::record(
            conn,
            NewEvent::new(EventKind::UserUnbanned, now)
                .user(user_id)
                .actor(actor),
        )
    })
}

/// Revokes every live session of a user; returns their ids.
pub fn revoke_user_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    conn.transaction(|conn| {
        let revoked = sessions::revoke(conn, user_id, Scope::AllOfUser, "admin_revoked", now)?;
        for session in &revoked {
            events::record(
                conn,
                NewEvent::new(EventKind::SessionRevoked, now)
                    .user(user_id)
                    .session(*session)
                    .actor(actor),
            )?;
        }
        Ok(revoked)
    })
}
