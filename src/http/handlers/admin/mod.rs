//! The administrators' routes (`/admin/*`): users, their sessions and the
//! event log; and the query parsing their listings share.

pub(crate) mod events;
pub(crate) mod sessions;
pub(crate) mod users;

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::extract::Admin;
use crate::http::AppState;
use crate::services::admin::{self, Actor};

/// Page sizes of the listings: the default and the most one page holds.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// `limit`: absent means the default; above the maximum (up to the
/// document's int64) means the maximum. Present but empty is as malformed as
/// any other non-number.
pub(super) fn page_limit(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(v) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match v.parse::<i64>() {
        Ok(n) if n >= 1 && v.bytes().all(|b| b.is_ascii_digit()) => Ok(n.min(MAX_LIMIT)),
        _ => Err(ApiError::invalid_request(format!(
            "limit must be a whole number from 1 to {MAX_LIMIT}"
        ))),
    }
}

/// An optional query parameter parsed as `T`; `what` completes "must be …".
/// Present but empty is malformed, as the document's types say.
pub(super) fn query_param<T: std::str::FromStr>(
    raw: Option<&str>,
    field: &str,
    what: &str,
) -> Result<Option<T>, ApiError> {
    raw.map(|v| {
        v.parse()
            .map_err(|_| ApiError::invalid_request(format!("{field} must be {what}")))
    })
    .transpose()
}

/// A change an administrator makes to the user or session the path names:
/// the service gets the connection, the administrator, the path's id and
/// `now`, and returns the sessions it revoked.
type AdminAction = fn(
    &mut diesel::PgConnection,
    Actor,
    Uuid,
    DateTime<Utc>,
) -> Result<Vec<Uuid>, admin::AdminError>;

/// Runs `action` and refuses the sessions it revoked (for `reason`) here at
/// once; `204` on success.
async fn act_on(
    state: &AppState,
    caller: &Admin,
    target: Uuid,
    reason: &'static str,
    action: AdminAction,
) -> Result<HttpResponse, ApiError> {
    let (actor, now) = (Actor::Admin(caller.0.sub), state.clock.now());
    let revoked = state
        .db(move |conn| action(conn, actor, target, now))
        .await?;
    state.remember_revoked(reason, revoked, now);
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limits_cap_large_numbers_and_refuse_the_rest() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(page_limit(Some("7")).unwrap(), 7);
        assert_eq!(page_limit(Some("1000")).unwrap(), MAX_LIMIT);
        assert_eq!(page_limit(Some(&i64::MAX.to_string())).unwrap(), MAX_LIMIT);
        for bad in [
            "",
            " 5",
            "0",
            "-1",
            "+5",
            "1.5",
            "1e3",
            "abc",
            "9223372036854775808",
        ] {
            assert!(page_limit(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn empty_query_parameters_are_malformed_not_absent() {
        assert_eq!(query_param::<i64>(None, "before", "x").unwrap(), None);
        assert_eq!(
            query_param::<i64>(Some("12"), "before", "x").unwrap(),
            Some(12)
        );
        assert!(query_param::<i64>(Some(""), "before", "x").is_err());
        assert!(query_param::<Uuid>(Some(" "), "user_id", "x").is_err());
    }
}
