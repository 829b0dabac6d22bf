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

/// The token a logout was made with.
#[derive(Debug, Clone, Copy)]
pub struct LogoutToken {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// The refresh token's `jti`, when the logout came with one.
    pub refresh_jti: Option<Uuid>,
}

/// Revokes the sessions `scope` names and records one `logout` event; returns
/// the ids revoked now. Already revoked sessions are left alone, so logging
/// out twice is not an error.
///
/// Ending *other* sessions takes a session that is still live and, for a
/// refresh token, its current token (or the previous one inside the grace
/// window): otherwise a leaked old token could sign the user out of every
/// new session for as long as it stays unexpired. Such a token still ends
/// its own session.
pub fn logout(
    conn: &mut DbConn,
    token: LogoutToken,
    scope: LogoutScope,
    grace_seconds: i64,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    let LogoutToken {
        user_id,
        session_id,
        refresh_jti,
    } = token;
    // Retried on a lost lock conflict: two `scope=all` logouts, or one and an
    // administrator's revocation, may meet.
    crate::db::retry::transaction(conn, |conn| {
        let scope = if scope == LogoutScope::This {
            scope
        } else {
            let session = sessions::find(conn, session_id)?.filter(|s| s.user_id == user_id);
            let entitled = session.is_some_and(|s| {
                let live = s.revoked_at.is_none() && s.expires_at > now;
                let token_current = refresh_jti.is_none_or(|jti| {
                    jti == s.current_jti
                        || (s.previous_jti == Some(jti)
                            && now.timestamp() - s.rotated_at.timestamp() <= grace_seconds)
                });
                live && token_current
            });
            if entitled {
                scope
            } else {
                LogoutScope::This
            }
        };
        let which = match scope {
            LogoutScope::This => Scope::One(session_id),
            LogoutScope::All => Scope::AllOfUser,
            LogoutScope::Others => Scope::AllOfUserExcept(session_id),
        };
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
