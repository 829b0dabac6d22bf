//! `/admin/users`: listing, reading, banning, unbanning and deleting users.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{act_on, page_limit, query_param};
use crate::error::ApiError;
use crate::http::doc::{AdminErrors, BodyErrors, ErrorBody};
use crate::http::extract::body::optional_text;
use crate::http::extract::{Admin, Body, IdInPath};
use crate::http::AppState;
use crate::services::admin::{self, Actor, UserOverview};

type State = web::Data<AppState>;

/// The longest ban: 100 years (of 365.25 days), in seconds.
const MAX_BAN_SECONDS: i64 = 3_155_760_000;

/// The longest ban reason kept, in characters.
const MAX_REASON_CHARS: usize = 500;

/// A user as the admin routes show them. `banned`, `banned_until` and
/// `ban_reason` describe a ban in force; a ban that has run out shows as none.
#[derive(Serialize, ToSchema)]
struct UserBody {
    id: Uuid,
    username: String,
    name: Option<String>,
    admin: bool,
    banned: bool,
    banned_until: Option<DateTime<Utc>>,
    ban_reason: Option<String>,
    created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
    /// Sessions neither revoked nor expired.
    active_sessions: i64,
}

impl UserBody {
    fn new(overview: UserOverview, now: DateTime<Utc>) -> Self {
        let u = overview.user;
        let banned = u.is_banned(now);
        Self {
            id: u.id,
            username: u.username,
            name: u.name,
            admin: u.admin,
            banned,
            banned_until: u.banned_until.filter(|_| banned),
            ban_reason: u.ban_reason.filter(|_| banned),
            created_at: u.created_at,
            last_login_at: u.last_login_at,
            active_sessions: overview.active_sessions,
        }
    }
}

/// Parsed by hand (see [`page_limit`], [`query_param`]) so that a bad value
/// is the contract's `400`, not actix's text; documented with its real types.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UsersQuery {
    /// Usernames starting with this, without regard to case.
    q: Option<String>,
    /// Page size: 50 when absent; above 200 means 200.
    #[param(value_type = Option<i64>, minimum = 1)]
    limit: Option<String>,
    /// The `next` of the previous page: the id of an existing user.
    #[param(value_type = Option<Uuid>)]
    after: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct UsersPage {
    users: Vec<UserBody>,
    /// The `after` of the next page; null on the last one.
    next: Option<Uuid>,
}

/// Lists users by username, a page at a time.
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("bearer" = [])),
    params(UsersQuery),
    responses(
        (status = 200, body = UsersPage, description = "A page of users"),
        (status = 400, body = ErrorBody,
         description = "invalid_request: a malformed limit, or an after that names no user"),
        AdminErrors,
    ))]
pub(crate) async fn list_users(
    state: State,
    _admin: Admin,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = page_limit(query.limit.as_deref())?;
    let after = query_param::<Uuid>(query.after.as_deref(), "after", "a user id")?;
    let prefix = query.q.filter(|q| !q.is_empty());
    let now = state.clock.now();
    let page = state
        .db(move |conn| admin::list_users(conn, prefix.as_deref(), after, limit, now))
        .await?;
    let next = page
        .last()
        .filter(|_| page.len() as i64 == limit)
        .map(|last| last.user.id);
    let users = page.into_iter().map(|u| UserBody::new(u, now)).collect();
    Ok(HttpResponse::Ok().json(UsersPage { users, next }))
}

/// One user.
#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A user id")),
    responses(
        (status = 200, body = UserBody, description = "The user"),
        (status = 404, body = ErrorBody, description = "not_found: no such user"),
        AdminErrors,
    ))]
pub(crate) async fn get_user(
    state: State,
    _admin: Admin,
    user: IdInPath,
) -> Result<HttpResponse, ApiError> {
    let (user_id, now) = (user.0, state.clock.now());
    let user = state
        .db(move |conn| admin::user_overview(conn, user_id, now))
        .await?;
    Ok(HttpResponse::Ok().json(UserBody::new(user, now)))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct BanRequest {
    /// At most 500 characters, without control characters, kept with the
    /// ban and shown to administrators; blank means none.
    #[schema(max_length = 500, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    reason: Option<String>,
    /// Whole seconds from 1 to 100 years; absent or null means until
    /// unbanned. A JSON number, or text in a form.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 3_155_760_000_i64)]
    duration_seconds: Option<serde_json::Value>,
}

/// [`BanRequest`] as a form, which has no `null`: leave a field out instead.
#[derive(ToSchema)]
#[allow(dead_code)] // Only described: `Body` reads a form into `BanRequest`.
struct BanForm {
    /// At most 500 characters, without control characters; blank means none.
    #[schema(
        nullable = false,
        max_length = 500,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    reason: Option<String>,
    /// Whole seconds from 1 to 100 years; absent means until unbanned.
    #[schema(nullable = false, minimum = 1, maximum = 3_155_760_000_i64)]
    duration_seconds: Option<i64>,
}

/// How long a ban lasts: a whole number of seconds from 1 to 100 years;
/// none means until lifted.
fn ban_duration(raw: Option<serde_json::Value>) -> Result<Option<TimeDelta>, ApiError> {
    let seconds = match raw {
        None | Some(serde_json::Value::Null) => return Ok(None),
        // JSON Schema counts `1.0` as an integer, so keyward does too.
        Some(serde_json::Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (1.0..=MAX_BAN_SECONDS as f64).contains(f))
                .map(|f| f as i64)
        }),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    seconds
        .filter(|s| (1..=MAX_BAN_SECONDS).contains(s))
        .map(|s| Some(TimeDelta::seconds(s)))
        .ok_or_else(|| {
            ApiError::invalid_request(format!(
                "duration_seconds must be a whole number of seconds from 1 to {MAX_BAN_SECONDS} (100 years)"
            ))
        })
}

/// Bans a user, for a while or until unbanned, and revokes their sessions.
#[utoipa::path(post, path = "/admin/users/{id}/ban", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A user id")),
    request_body(content(
        (Option<BanRequest> = "application/json"),
        (Option<BanForm> = "application/x-www-form-urlencoded"))),
    responses(
        (status = 204, description = "Banned; every session of the user is revoked"),
        (status = 400, body = ErrorBody, description = "invalid_request: a malformed reason or duration"),
        (status = 404, body = ErrorBody, description = "not_found: no such user"),
        (status = 409, body = ErrorBody, description = "conflict: administrators cannot ban themselves"),
        AdminErrors,
        BodyErrors,
    ))]
pub(crate) async fn ban_user(
    state: State,
    caller: Admin,
    user: IdInPath,
    body: Body<BanRequest>,
) -> Result<HttpResponse, ApiError> {
    let reason = optional_text(body.0.reason, "reason", MAX_REASON_CHARS)?;
    let duration = ban_duration(body.0.duration_seconds)?;
    let (actor, user_id, now) = (Actor::Admin(caller.0.sub), user.0, state.clock.now());
    let until = duration.map(|d| crate::clock::later(now, d));
    let revoked = state
        .db(move |conn| admin::ban(conn, actor, user_id, reason.as_deref(), until, now))
        .await?;
    state.remember_revoked("user_banned", revoked, now);
    Ok(HttpResponse::NoContent().finish())
}

/// Lifts a user's ban.
#[utoipa::path(post, path = "/admin/users/{id}/unban", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A user id")),
    responses(
        (status = 204, description = "Not banned (any more)"),
        (status = 404, body = ErrorBody, description = "not_found: no such user"),
        AdminErrors,
    ))]
pub(crate) async fn unban_user(
    state: State,
    caller: Admin,
    user: IdInPath,
) -> Result<HttpResponse, ApiError> {
    // An unban revokes nothing: the reason is never counted.
    act_on(
        &state,
        &caller,
        user.0,
        "none",
        |conn, actor, user_id, now| admin::unban(conn, actor, user_id, now).map(|()| Vec::new()),
    )
    .await
}

/// Deletes a user and their sessions.
#[utoipa::path(delete, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A user id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ErrorBody, description = "not_found: no such user"),
        (status = 409, body = ErrorBody, description = "conflict: administrators cannot delete themselves"),
        AdminErrors,
    ))]
pub(crate) async fn delete_user(
    state: State,
    caller: Admin,
    user: IdInPath,
) -> Result<HttpResponse, ApiError> {
    act_on(&state, &caller, user.0, "user_deleted", admin::delete_user).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_durations_are_whole_seconds_however_written() {
        use serde_json::json;
        let seconds = |v| ban_duration(Some(v)).map(|d| d.map(|d| d.num_seconds()));
        assert_eq!(seconds(json!(60)).unwrap(), Some(60));
        assert_eq!(seconds(json!(60.0)).unwrap(), Some(60));
        assert_eq!(seconds(json!("60")).unwrap(), Some(60));
        assert_eq!(seconds(json!(null)).unwrap(), None);
        for bad in [
            json!(0),
            json!(1.5),
            json!(1e30),
            json!(-1.0),
            json!("x"),
            json!([]),
        ] {
            assert!(seconds(bad.clone()).is_err(), "{bad}");
        }
    }
}
