//! The administrators' incident response and overview routes:
//! `POST /admin/sessions/revoke` (sign everyone out) and `GET /admin/stats`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::http::doc::{AdminErrors, BodyErrors, ErrorBody};
use crate::http::extract::{Admin, Body};
use crate::http::AppState;
use crate::services::session_policy;
use crate::services::stats::{self, HourStats, Overview, MAX_HOURS};

type State = web::Data<AppState>;

#[derive(Deserialize, ToSchema)]
pub(crate) struct RevokeAllRequest {
    /// RFC 3339; sessions created before it (rounded up to a whole second)
    /// are revoked. Absent or null: now. A future time is refused.
    #[schema(format = DateTime)]
    before: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct RevokeAllResponse {
    /// How many live sessions were revoked.
    revoked: i64,
}

/// Signs everyone out who signed in before `before`, the caller included.
#[utoipa::path(post, path = "/admin/sessions/revoke", tag = "admin", security(("bearer" = [])),
    operation_id = "admin_revoke_all_sessions",
    request_body(content(
        (Option<RevokeAllRequest> = "application/json"),
        (Option<RevokeAllRequest> = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, body = RevokeAllResponse, description = "Every live session created before \
            `before` is revoked; their access tokens are refused on every instance"),
        (status = 400, body = ErrorBody, description = "invalid_request: before is malformed or in the future"),
        AdminErrors,
        BodyErrors,
    ))]
pub(crate) async fn revoke_all_sessions(
    state: State,
    caller: Admin,
    body: Body<RevokeAllRequest>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let before = session_policy::parse_before(body.0.before.as_deref(), now)
        .map_err(ApiError::invalid_request)?;
    let actor = caller.0.sub;
    let outcome = state
        .db(move |conn| session_policy::revoke_all(conn, Some(actor), before, now))
        .await?;
    state.remember_signed_out_before(outcome.auth_before, outcome.revoked, now);
    Ok(HttpResponse::Ok().json(RevokeAllResponse {
        revoked: outcome.revoked,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsQuery {
    /// How many hours, the current one last: 1 to 168 (a week); 24 when absent.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 168)]
    hours: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct HourBody {
    /// The hour's start (UTC).
    hour: DateTime<Utc>,
    logins: i64,
    failed_logins: i64,
    refreshes: i64,
    reuse_detected: i64,
    /// Sessions revoked in that hour, by any means.
    revocations: i64,
}

#[derive(Serialize, ToSchema)]
struct StatsBody {
    /// Sessions neither revoked nor expired.
    live_sessions: i64,
    users: i64,
    /// Users banned now.
    banned_users: i64,
    /// One entry per hour, oldest first, the current hour last.
    hours: Vec<HourBody>,
}

impl From<Overview> for StatsBody {
    fn from(o: Overview) -> Self {
        let hour = |h: HourStats| HourBody {
            hour: h.hour,
            logins: h.logins,
            failed_logins: h.failed_logins,
            refreshes: h.refreshes,
            reuse_detected: h.reuse_detected,
            revocations: h.revocations,
        };
        Self {
            live_sessions: o.live_sessions,
            users: o.users,
            banned_users: o.banned_users,
            hours: o.hours.into_iter().map(hour).collect(),
        }
    }
}

/// `hours`: a whole number from 1 to [`MAX_HOURS`]; 24 when absent.
fn stats_hours(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw else {
        return Ok(24);
    };
    raw.parse::<i64>()
        .ok()
        .filter(|h| (1..=MAX_HOURS).contains(h) && raw.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::invalid_request(format!(
                "hours must be a whole number from 1 to {MAX_HOURS}"
            ))
        })
}

/// Live sessions, users, banned users, and what happened hour by hour.
#[utoipa::path(get, path = "/admin/stats", tag = "admin", security(("bearer" = [])),
    params(StatsQuery),
    responses(
        (status = 200, body = StatsBody, description = "The overview"),
        (status = 400, body = ErrorBody, description = "invalid_request: hours is not from 1 to 168"),
        AdminErrors,
    ))]
pub(crate) async fn stats(
    state: State,
    _admin: Admin,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let hours = stats_hours(query.hours.as_deref())?;
    let now = state.clock.now();
    let overview = state
        .db(move |conn| stats::overview(conn, hours, now))
        .await?;
    Ok(HttpResponse::Ok().json(StatsBody::from(overview)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_from_one_to_a_week() {
        assert_eq!(stats_hours(None).unwrap(), 24);
        assert_eq!(stats_hours(Some("1")).unwrap(), 1);
        assert_eq!(stats_hours(Some("168")).unwrap(), 168);
        for bad in ["0", "169", "", "-1", "+3", "3.0", "x"] {
            assert!(stats_hours(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
