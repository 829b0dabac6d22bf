//! Session policy: the per-user session cap, signing everyone out after an
//! incident, and the names users give their sessions.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::events::{self, EventKind, NewEvent};
use crate::db::revocations;
use crate::db::session_policy::{self, BatchCursor};
use crate::db::sessions::{self, SessionRow, Which};

use super::Unexpected;

/// The revocation reason of a session the cap ended.
pub(crate) const SESSION_LIMIT: &str = "session_limit";

/// The revocation reason of signing everyone out.
pub(crate) const REVOKED_ALL: &str = "revoked_all";

/// Sessions revoked per statement when signing everyone out. Each batch is
/// its own short transaction, so a refresh waits at most one batch for a row
/// lock, never the whole run (see the README's figures).
pub const REVOKE_ALL_BATCH: i64 = 2_000;

/// Makes room for one more session of `user_id` under a cap of `cap` live
/// sessions (0: no cap): revokes the least recently used ones beyond
/// `cap - 1`, each with a `session_revoked` event (reason `session_limit`),
/// through `sessions::revoke` like every revocation. Returns their ids.
///
/// Runs inside the login's transaction, after the user's row was locked: two
/// logins of one user at the same moment take turns here, and the second
/// counts the first one's new session, so no more than `cap` stay live.
pub(crate) fn make_room(
    conn: &mut PgConnection,
    user_id: Uuid,
    cap: i64,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    if cap < 1 {
        return Ok(Vec::new());
    }
    let mut revoked = Vec::new();
    for id in session_policy::least_recently_used(conn, user_id, cap - 1, now)? {
        for id in sessions::revoke(conn, user_id, Which::One(id), SESSION_LIMIT, now)? {
            events::record(
                conn,
                NewEvent::new(EventKind::SessionRevoked, now)
                    .user(user_id)
                    .session(id)
                    .ip(ip)
                    .detail(serde_json::json!({"reason": SESSION_LIMIT})),
            )?;
            revoked.push(id);
        }
    }
    Ok(revoked)
}

/// The sign-in time a session opened at `now_s` records (its `created_at`,
/// its tokens' `auth_time`): `now_s`, unless everyone was signed out just
/// now with a cut-off later than that. The cut-off is `before` rounded up
/// to a whole second, so a sign-in in the same second as signing everyone
/// out would otherwise fall under it and be refused at once; such a session
/// records the cut-off instead (less than a second ahead, or two when a
/// second sign-everyone-out in one second moved it on: see `revoke_all`).
/// Only cut-offs at most two seconds ahead count, so a stray clock elsewhere
/// cannot push sign-in times far into the future.
pub(crate) fn sign_in_time(
    conn: &mut PgConnection,
    now_s: DateTime<Utc>,
) -> QueryResult<DateTime<Utc>> {
    let latest = session_policy::latest_auth_before(conn, now_s - TimeDelta::seconds(2))?;
    Ok(latest
        .filter(|cut| *cut > now_s && *cut <= now_s + TimeDelta::seconds(2))
        .unwrap_or(now_s))
}

/// `before` as given, or now; never in the future.
pub(crate) fn parse_before(raw: Option<&str>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(now);
    };
    let before = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.to_utc())
        .map_err(|_| {
            format!("before must be a time in RFC 3339, e.g. 2026-12-01T10:00:00Z, not {raw:?}")
        })?;
    if before > now {
        return Err("before must not be in the future".into());
    }
    Ok(before)
}

/// `before` rounded up to a whole second: `auth_time` is in whole seconds,
/// so "signed in before `before`" is `auth_time < auth_before`.
pub(crate) fn auth_before(before: DateTime<Utc>) -> DateTime<Utc> {
    let whole = super::whole_seconds(before);
    if whole < before {
        whole + TimeDelta::seconds(1)
    } else {
        whole
    }
}

/// What signing everyone out did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedAll {
    pub auth_before: DateTime<Utc>,
    /// Sessions revoked now (live ones created before `auth_before`).
    pub revoked: i64,
}

/// Signs everyone out who signed in before `before` (rounded up to a whole
/// second), the caller included.
///
/// First, in one transaction, the one revocation-log entry "every access
/// token with `auth_time` before T" (reason `revoked_all`): every instance
/// refuses those tokens from then on, however many sessions there are. Then
/// the sessions themselves, in batches of [`REVOKE_ALL_BATCH`], each
/// committed on its own, so that no lock on the table is held for long and
/// refreshes go on meanwhile; none of them adds a revocation-log row or a
/// notification. Last, one `sessions_revoked_all` event with the count.
///
/// `conn` must not be inside a transaction. Interrupted halfway, the entry
/// still refuses every access token; running it again finishes the sessions.
pub fn revoke_all(
    conn: &mut PgConnection,
    actor: Option<Uuid>,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<RevokedAll, Unexpected> {
    let mut auth_before = auth_before(before);
    // A sign-in in the same second after an earlier sign-everyone-out took
    // that cut-off as its sign-in time (see `sign_in_time`). A second one
    // within that second must still end it, so its cut-off moves past the
    // earlier one: at most a second or two ahead of now, and only sessions
    // that exist already are revoked by it.
    if auth_before >= now {
        let recent = now - TimeDelta::seconds(2);
        if let Some(latest) = session_policy::latest_auth_before(conn, recent)? {
            if latest >= auth_before {
                auth_before = latest + TimeDelta::seconds(1);
            }
        }
    }
    conn.transaction(|conn| revocations::append_auth_before(conn, auth_before, now))?;
    let mut revoked = 0;
    let mut cursor = BatchCursor::start();
    while let Some((count, next)) = session_policy::revoke_batch_created_before(
        conn,
        auth_before,
        cursor,
        REVOKE_ALL_BATCH,
        REVOKED_ALL,
        now,
    )? {
        revoked += count;
        cursor = next;
    }
    events::record(
        conn,
        NewEvent::new(EventKind::SessionsRevokedAll, now)
            .actor(actor)
            .detail(serde_json::json!({
                "revoked": revoked,
                "before": before,
                "auth_before": auth_before,
            })),
    )?;
    Ok(RevokedAll {
        auth_before,
        revoked,
    })
}

/// Names one of the user's own live sessions (`None`: back to the device
/// name); another user's session, or none, is `None` (a `404`).
pub(crate) fn rename_own_session(
    conn: &mut PgConnection,
    user_id: Uuid,
    session_id: Uuid,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<SessionRow>, Unexpected> {
    Ok(session_policy::rename(
        conn, user_id, session_id, name, now,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_is_a_past_rfc3339_time_or_now() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T10:00:00.5Z")
            .unwrap()
            .to_utc();
        assert_eq!(parse_before(None, now).unwrap(), now);
        assert_eq!(
            parse_before(Some("2026-12-01T09:00:00+01:00"), now)
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T08:00:00+00:00"
        );
        for bad in ["yesterday", "2026-12-01", "2026-12-01T10:00:01Z"] {
            let e = parse_before(Some(bad), now).unwrap_err();
            assert!(e.contains("before"), "{bad}: {e}");
        }
    }

    #[test]
    fn auth_before_rounds_up_to_a_whole_second() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert_eq!(
            auth_before(at("2026-12-01T10:00:00.001Z")),
            at("2026-12-01T10:00:01Z")
        );
        assert_eq!(
            auth_before(at("2026-12-01T10:00:00.999Z")),
            at("2026-12-01T10:00:01Z")
        );
        assert_eq!(
            auth_before(at("2026-12-01T10:00:00Z")),
            at("2026-12-01T10:00:00Z")
        );
    }
}
