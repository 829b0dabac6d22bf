//! Ending sessions, for everyone who may: a logout (this session, all of
//! the user's, or all but this), the user revoking one of their own, and
//! administrators. Each revocation, its event and its notice commit
//! together.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::Unexpected;
use crate::db::events::{self, EventKind, NewEvent};
use crate::db::retry;
use crate::db::sessions::{self, SessionRow, Which};

/// Which sessions a logout ends (`?scope=`): the one vocabulary of the
/// query string, the service and the `logout` event's detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    This,
    All,
    Others,
}

impl Scope {
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, &'static str> {
        match raw {
            None | Some("") | Some("this") | Some("current") => Ok(Self::This),
            Some("all") => Ok(Self::All),
            Some("others") => Ok(Self::Others),
            Some(_) => Err("scope must be one of: all, others"),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::This => "this",
            Self::All => "all",
            Self::Others => "others",
        }
    }

    /// The rows this scope names, for the session `session_id`.
    fn rows(self, session_id: Uuid) -> Which {
        match self {
            Self::This => Which::One(session_id),
            Self::All => Which::AllOfUser,
            Self::Others => Which::AllOfUserExcept(session_id),
        }
    }
}

/// The token a logout was made with: any validly signed, unexpired token
/// of the session will do, even when the session is already revoked, so
/// that logging out twice is not an error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogoutToken {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// The refresh token's `jti`, when the logout came with one.
    pub refresh_jti: Option<Uuid>,
    /// An access token this instance already refuses (its session, sign-in
    /// time or key is in the revocation set).
    pub refused: bool,
}

/// Revokes the sessions `scope` names and records one `logout` event; returns
/// the ids revoked now. Already revoked sessions are left alone.
///
/// Ending *other* sessions takes a session that is still live and a token
/// it honours: the current refresh token (or the previous one inside the
/// grace window), or an access token not refused here. Otherwise a leaked
/// old token could sign the user out of every new session for as long as it
/// stays unexpired. Such a token still ends its own session.
pub(crate) fn logout(
    conn: &mut PgConnection,
    token: LogoutToken,
    scope: Scope,
    grace_seconds: i64,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, Unexpected> {
    // Retried on a lost lock conflict: two `scope=all` logouts, or one and an
    // administrator's revocation, may meet.
    Ok(retry::transaction(
        conn,
        |conn| -> QueryResult<Vec<Uuid>> {
            let scope = if scope == Scope::This || may_end_others(conn, &token, grace_seconds, now)?
            {
                scope
            } else {
                Scope::This
            };
            let revoked = sessions::revoke(
                conn,
                token.user_id,
                scope.rows(token.session_id),
                "logout",
                now,
            )?;
            if !revoked.is_empty() {
                events::record(
                    conn,
                    NewEvent::new(EventKind::Logout, now)
                        .user(token.user_id)
                        .session(token.session_id)
                        .ip(ip)
                        .detail(
                            serde_json::json!({"scope": scope.as_str(), "revoked": revoked.len()}),
                        ),
                )?;
            }
            Ok(revoked)
        },
    )?)
}

fn may_end_others(
    conn: &mut PgConnection,
    token: &LogoutToken,
    grace_seconds: i64,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    if token.refused {
        return Ok(false);
    }
    let session = sessions::find(conn, token.session_id)?.filter(|s| s.user_id == token.user_id);
    Ok(session.is_some_and(|s| {
        s.is_live(now)
            && token
                .refresh_jti
                .is_none_or(|jti| s.honours(jti, now, grace_seconds))
    }))
}

/// Revokes one session for `actor` (an administrator, its own user, or the
/// command line), with a `session_revoked` event, in one transaction;
/// returns its id if it was live until now.
pub(crate) fn revoke_one(
    conn: &mut PgConnection,
    session: &SessionRow,
    actor: Option<Uuid>,
    reason: &str,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    conn.transaction(|conn| {
        let revoked = sessions::revoke(conn, session.user_id, Which::One(session.id), reason, now)?;
        if !revoked.is_empty() {
            events::record(
                conn,
                NewEvent::new(EventKind::SessionRevoked, now)
                    .user(session.user_id)
                    .session(session.id)
                    .actor(actor)
                    .ip(ip),
            )?;
        }
        Ok(revoked)
    })
}

/// Revokes every live session of a user, with a `session_revoked` event
/// each; returns their ids.
pub(crate) fn revoke_all_of_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    retry::transaction(conn, |conn| {
        let revoked = sessions::revoke(conn, user_id, Which::AllOfUser, "admin_revoked", now)?;
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
