//! Logging out: revoking this session, all of the user's, or all but this.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::events::{self, EventKind, NewEvent};
use crate::db::sessions::{self, Scope};
use crate::db::DbConn;

/// Which sessions a logout ends (`?scope=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    This,
    All,
    Others,
}

impl LogoutScope {
    pub fn parse(raw: Option<&str>) -> Result<Self, &'static str> {
        match raw {
            None | Some("") | Some("this") | Some("current") => Ok(Self::This),
            Some("all") => Ok(Self::All),
            Some("others") => Ok(Self::Others),
            Some(_) => Err("scope must be one of: all, others"),
        }
    }
}

/// Revokes the sessions `scope` names and records one `logout` event; returns
/// the ids revoked now. Already revoked sessions are left alone, so logging
/// out twice is not an error.
pub fn logout(
    conn: &mut DbConn,
    user_id: Uuid,
    session_id: Uuid,
    scope: LogoutScope,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    let which = match scope {
        LogoutScope::This => Scope::One(session_id),
        LogoutScope::All => Scope::AllOfUser,
        LogoutScope::Others => Scope::AllOfUserExcept(session_id),
    };
    conn.transaction(|conn| {
        let revoked = sessions::revoke(conn, user_id, which, "logout", now)?;
        if !revoked.is_empty() {
            let scope = match scope {
                LogoutScope::This => "this",
                LogoutScope::All => "all",
                LogoutScope::Others => "others",
            };
            events::record(
                conn,
                NewEvent::new(EventKind::Logout, now)
                    .user(user_id)
                    .session(session_id)
                    .ip(ip)
                    .detail(serde_json::json!({"scope": scope, "revoked": revoked.len()})),
            )?;
        }
        Ok(revoked)
    })
}
