//! The administrators' routes (`/admin/*`) and the [`Admin`] extractor.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};
use diesel::PgConnection;
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::account::{path_id, with_conn, SessionBody};
use super::auth::Authenticated;
use super::body::{optional_text, Body};
use super::openapi::{AdminErrors, BodyErrors, ErrorBody};
use super::remember_revoked;
use super::routes::resource;
use super::{no_content, AppState};
use crate::db::events::EventRow;
use crate::db::sessions::SessionRow;
use crate::domain::tokens::AccessClaims;
use crate::error::{ApiError, ErrorCode};
use crate::services::admin::{self, UserOverview};

type State = web::Data<AppState>;

/// Page sizes of the listings: the default and the most one page holds.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// The longest ban: 100 years (of 365.25 days), in seconds.
const MAX_BAN_SECONDS: i64 = 3_155_760_000;

/// The longest ban reason kept, in characters.
const MAX_REASON_CHARS: usize = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/admin/users").route(web::get().to(list_users)))
        .service(
            resource("/admin/users/{id}")
                .route(web::get().to(get_user))
                .route(web::delete().to(delete_user)),
        )
        .service(resource("/admin/users/{id}/ban").route(web::post().to(ban_user)))
        .service(resource("/admin/users/{id}/unban").route(web::post().to(unban_user)))
        .service(
            resource("/admin/users/{id}/sessions")
                .route(web::get().to(user_sessions))
                .route(web::delete().to(revoke_user_sessions)),
        )
        .service(resource("/admin/sessions/{id}").route(web::delete().to(revoke_session)))
        .service(resource("/admin/events").route(web::get().to(list_events)));
}

/// A valid access token of a user who is an administrator and not banned
/// *now*: unlike the token's `admin` claim, this is read from the database
/// at every call, so a demoted or banned administrator loses access at once.
pub struct Admin(pub AccessClaims);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let authenticated = Authenticated::from_request(req, payload);
        let state = req.app_data::<State>().cloned();
        Box::pin(async move {
            let Authenticated(claims) = authenticated.await?;
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let (user_id, now) = (claims.sub, state.clock.now());
            let allowed = with_conn(&state, move |conn| {
                admin::is_active_admin(conn, user_id, now)
                    .map_err(|e| ApiError::from(crate::db::StoreError::from(e)))
            })
            .await?;
            if !allowed {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "This needs an administrator.",
                ));
            }
            Ok(Self(claims))
        })
    }
}

/// `limit`: absent means the default; above the maximum (up to the
/// document's int64) means the maximum. Present but empty is as malformed as
/// any other non-number.
fn page_limit(raw: Option<&str>) -> Result<i64, ApiError> {
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
fn query_param<T: std::str::FromStr>(
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
struct UsersQuery {
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
async fn list_users(
    state: State,
    _admin: Admin,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = page_limit(query.limit.as_deref())?;
    let after = query_param::<Uuid>(query.after.as_deref(), "after", "a user id")?;
    let prefix = query.q.filter(|q| !q.is_empty());
    let now = state.clock.now();
    if prefix.as_deref().is_some_and(|q| q.contains('\0')) {
        // No username has a NUL byte, and PostgreSQL text cannot even hold
        // one (the query would fail): nobody's name starts with it.
        return Ok(HttpResponse::Ok().json(UsersPage {
            users: Vec::new(),
            next: None,
        }));
    }
    let page = with_conn(&state, move |conn| {
        admin::list_users(conn, prefix.as_deref(), after, limit, now)
    })
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
async fn get_user(
    state: State,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user_id = path_id(&path)?;
    let now = state.clock.now();
    let user = with_conn(&state, move |conn| admin::user_overview(conn, user_id, now)).await?;
    Ok(HttpResponse::Ok().json(UserBody::new(user, now)))
}

#[derive(Deserialize, ToSchema)]
struct BanRequest {
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
async fn ban_user(
    state: State,
    caller: Admin,
    path: web::Path<String>,
    body: Body<BanRequest>,
) -> Result<HttpResponse, ApiError> {
    let user_id = path_id(&path)?;
    let body = body.0;
    let reason = optional_text(body.reason, "reason", MAX_REASON_CHARS)?;
    let duration = ban_duration(body.duration_seconds)?;
    let now = state.clock.now();
    let until = duration.map(|d| crate::clock::later(now, d));
    let actor = caller.0.sub;
    let revoked = with_conn(&state, move |conn| {
        admin::ban_user(conn, actor, user_id, reason.as_deref(), until, now)
    })
    .await?;
    remember_revoked(&state, "user_banned", revoked, now);
    Ok(no_content())
}

/// A change an administrator makes to the user or session the path names:
/// the service gets the connection, the administrator's id, the path's id and
/// `now`, and returns the sessions it revoked.
type AdminAction =
    fn(&mut PgConnection, Uuid, Uuid, DateTime<Utc>) -> Result<Vec<Uuid>, admin::AdminError>;

/// Runs `action` and refuses the sessions it revoked (for `reason`) here at
/// once; `204` on success.
async fn act_on(
    state: &AppState,
    caller: &Admin,
    path: &str,
    reason: &'static str,
    action: AdminAction,
) -> Result<HttpResponse, ApiError> {
    let target = path_id(path)?;
    let (actor, now) = (caller.0.sub, state.clock.now());
    let revoked = with_conn(state, move |conn| action(conn, actor, target, now)).await?;
    remember_revoked(state, reason, revoked, now);
    Ok(no_content())
}

/// Lifts a user's ban.
#[utoipa::path(post, path = "/admin/users/{id}/unban", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A user id")),
    responses(
        (status = 204, description = "Not banned (any more)"),
        (status = 404, body = ErrorBody, description = "not_found: no such user"),
        AdminErrors,
    ))]
async fn unban_user(
    state: State,
    caller: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // An unban revokes nothing: the reason is never counted.
    act_on(
        &state,
        &caller,
        &path,
        "none",
        |conn, actor, user_id, now| {
            admin::unban_user(conn, actor, user_id, now).map(|()| Vec::new())
        },
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
async fn delete_user(
    state: State,
    caller: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    act_on(&state, &caller, &path, "user_deleted", admin::delete_user).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SessionsQuery {
    /// Adds the revoked sessions, with `revoked_at` and `revoked_reason`.
    #[param(value_type = Option<bool>)]
    include_revoked: Option<String>,
}

/// A session with its revocation, for administrators.
#[derive(Serialize, ToSchema)]
struct AdminSession {
    #[serde(flatten)]
    session: SessionBody,
    revoked_at: Option<DateTime<Utc>>,
    revoked_reason: Option<String>,
}

impl From<SessionRow> for AdminSession {
    fn from(row: SessionRow) -> Self {
        Self {
            revoked_at: row.revoked_at,
            revoked_reason: row.revoked_reason.clone(),
            session: row.into(),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct AdminSessions {
    sessions: Vec<AdminSession>,
}

/// A user's sessions: the live ones, or with `include_revoked` all of them.
#[utoipa::path(get, path = "/admin/users/{id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A user id"), SessionsQuery),
    responses(
        (status = 200, body = AdminSessions, description = "The user's sessions"),
        (status = 400, body = ErrorBody, description = "invalid_request: include_revoked is not a boolean"),
        (status = 404, body = ErrorBody, description = "not_found: no such user"),
        AdminErrors,
    ))]
async fn user_sessions(
    state: State,
    _admin: Admin,
    path: web::Path<String>,
    query: web::Query<SessionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let user_id = path_id(&path)?;
    let include_revoked = match query.include_revoked.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::invalid_request(
                "include_revoked must be true or false",
            ))
        }
    };
    let now = state.clock.now();
    let rows = with_conn(&state, move |conn| {
        admin::user_sessions(conn, user_id, include_revoked, now)
    })
    .await?;
    let sessions = rows.into_iter().map(AdminSession::from).collect();
    Ok(HttpResponse::Ok().json(AdminSessions { sessions }))
}

/// Revokes every session of a user.
#[utoipa::path(delete, path = "/admin/users/{id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A user id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, body = ErrorBody, description = "not_found: no such user"),
        AdminErrors,
    ))]
async fn revoke_user_sessions(
    state: State,
    caller: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    act_on(
        &state,
        &caller,
        &path,
        "admin_revoked",
        admin::revoke_sessions_of,
    )
    .await
}

/// Revokes one session, whoever's it is.
#[utoipa::path(delete, path = "/admin/sessions/{id}", tag = "admin", security(("bearer" = [])),
    operation_id = "admin_revoke_session",
    params(("id" = Uuid, Path, description = "A session id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, body = ErrorBody, description = "not_found: no such session"),
        AdminErrors,
    ))]
async fn revoke_session(
    state: State,
    caller: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    act_on(
        &state,
        &caller,
        &path,
        "admin_revoked",
        admin::revoke_session,
    )
    .await
}

/// Parsed by hand, like [`UsersQuery`].
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only the events about this user.
    #[param(value_type = Option<Uuid>)]
    user_id: Option<String>,
    /// Page size: 50 when absent; above 200 means 200.
    #[param(value_type = Option<i64>, minimum = 1)]
    limit: Option<String>,
    /// Only events older than this event id (the last `id` of a page).
    #[param(value_type = Option<i64>)]
    before: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct EventBody {
    id: i64,
    at: DateTime<Utc>,
    /// login_succeeded, login_failed, refreshed, reuse_detected, logout,
    /// session_revoked, user_banned, user_unbanned, user_deleted,
    /// password_changed, password_change_failed, key_rotated or key_revoked
    /// (`detail.kid`).
    kind: String,
    /// The user the event is about.
    user_id: Option<Uuid>,
    session_id: Option<Uuid>,
    /// The administrator who acted, if one did.
    actor_id: Option<Uuid>,
    ip: Option<String>,
    /// The kind's particulars, e.g. `{"reason": "banned"}`.
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

impl From<EventRow> for EventBody {
    fn from(e: EventRow) -> Self {
        Self {
            id: e.id,
            at: e.at,
            kind: e.kind,
            user_id: e.user_id,
            session_id: e.session_id,
            actor_id: e.actor_id,
            ip: e.ip,
            detail: e.detail,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct EventsPage {
    events: Vec<EventBody>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/admin/events", tag = "admin", security(("bearer" = [])),
    params(EventsQuery),
    responses(
        (status = 200, body = EventsPage, description = "A page of events, newest first"),
        (status = 400, body = ErrorBody, description = "invalid_request: a malformed query parameter"),
        AdminErrors,
    ))]
async fn list_events(
    state: State,
    _admin: Admin,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = page_limit(query.limit.as_deref())?;
    let user_id = query_param::<Uuid>(query.user_id.as_deref(), "user_id", "a user id")?;
    let before = query_param::<i64>(query.before.as_deref(), "before", "an event id")?;
    let rows = with_conn(&state, move |conn| {
        admin::list_events(conn, user_id, before, limit)
    })
    .await?;
    let events = rows.into_iter().map(EventBody::from).collect();
    Ok(HttpResponse::Ok().json(EventsPage { events }))
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
