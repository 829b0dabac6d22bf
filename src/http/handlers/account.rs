//! The caller's own account: `GET /auth/sessions`,
//! `DELETE` and `PATCH /auth/sessions/{id}` and `POST /auth/password`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::sessions::SessionRow;
use crate::domain::device::device_name;
use crate::domain::Password;
use crate::error::ApiError;
use crate::http::doc::{AccessErrors, BodyErrors, ErrorBody};
use crate::http::extract::body::{optional_text, required};
use crate::http::extract::{Authenticated, Body, Client, IdInPath};
use crate::http::AppState;
use crate::services::self_service::{self, PasswordChange};
use crate::services::session_policy;

type State = web::Data<AppState>;

/// A session as its owner and administrators see it.
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionBody {
    id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user_agent: Option<String>,
    /// The address the session signed in from.
    ip: Option<String>,
    /// The address the session was last used from (sign-in or refresh).
    last_ip: Option<String>,
    /// The name its user gave it (`PATCH /auth/sessions/{id}`), or null.
    name: Option<String>,
    /// A readable name derived from the user agent, e.g. "Chrome on Linux".
    device: String,
}

impl From<SessionRow> for SessionBody {
    fn from(s: SessionRow) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            device: device_name(s.user_agent.as_deref()),
            user_agent: s.user_agent,
            last_ip: s.last_ip.or_else(|| s.ip.clone()),
            ip: s.ip,
            name: s.name,
        }
    }
}

/// One of the caller's sessions.
#[derive(Serialize, ToSchema)]
struct OwnSession {
    #[serde(flatten)]
    session: SessionBody,
    /// True on the session the access token belongs to.
    current: bool,
}

#[derive(Serialize, ToSchema)]
struct OwnSessions {
    /// Newest first.
    sessions: Vec<OwnSession>,
}

/// The caller's live sessions.
#[utoipa::path(get, path = "/auth/sessions", tag = "account", security(("bearer" = [])),
    responses(
        (status = 200, body = OwnSessions, description = "Live sessions, `current` on the caller's"),
        AccessErrors,
        (status = 503, body = ErrorBody, description = "unavailable (Retry-After)"),
    ))]
pub(crate) async fn list_sessions(
    state: State,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let (user_id, current) = (auth.claims().sub, auth.claims().sid);
    let now = state.clock.now();
    let rows = state
        .db(move |conn| self_service::live_sessions(conn, user_id, now))
        .await?;
    let sessions = rows
        .into_iter()
        .map(|row| OwnSession {
            current: row.id == current,
            session: row.into(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(OwnSessions { sessions }))
}

/// Revokes one of the caller's own sessions.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "account", security(("bearer" = [])),
    operation_id = "revoke_own_session",
    params(("id" = Uuid, Path, description = "A session id")),
    responses(
        (status = 204, description = "Revoked"),
        AccessErrors,
        (status = 404, body = ErrorBody,
         description = "not_found: no such session among the caller's (another user's included)"),
        (status = 503, body = ErrorBody, description = "unavailable (Retry-After)"),
    ))]
pub(crate) async fn revoke_own_session(
    state: State,
    client: Client,
    auth: Authenticated,
    session: IdInPath,
) -> Result<HttpResponse, ApiError> {
    let (user_id, session_id, now) = (auth.claims().sub, session.0, state.clock.now());
    let ip = client.ip;
    let revoked = state
        .db(move |conn| {
            self_service::revoke_own_session(conn, user_id, session_id, ip.as_deref(), now)
        })
        .await?;
    state.remember_revoked("revoked_by_user", revoked, now);
    Ok(HttpResponse::NoContent().finish())
}

/// The longest session name, in characters.
const MAX_SESSION_NAME_CHARS: usize = 64;

#[derive(Deserialize, ToSchema)]
pub(crate) struct RenameRequest {
    /// At most 64 characters, without control characters; null or blank
    /// removes the name (the device name shows again).
    #[schema(max_length = 64)]
    name: Option<String>,
}

/// Names one of the caller's own live sessions.
#[utoipa::path(patch, path = "/auth/sessions/{id}", tag = "account", security(("bearer" = [])),
    operation_id = "rename_own_session",
    params(("id" = Uuid, Path, description = "A session id")),
    request_body(content(
        (RenameRequest = "application/json"),
        (RenameRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, body = OwnSession, description = "The session, renamed"),
        (status = 400, body = ErrorBody, description = "invalid_request: a malformed name"),
        AccessErrors,
        (status = 404, body = ErrorBody,
         description = "not_found: no such live session among the caller's (another user's included)"),
        BodyErrors,
    ))]
pub(crate) async fn rename_session(
    state: State,
    auth: Authenticated,
    session: IdInPath,
    body: Body<RenameRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = optional_text(body.0.name, "name", MAX_SESSION_NAME_CHARS)?;
    let (user_id, current, session_id) = (auth.claims().sub, auth.claims().sid, session.0);
    let now = state.clock.now();
    let row = state
        .db(move |conn| {
            session_policy::rename_own_session(conn, user_id, session_id, name.as_deref(), now)
        })
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok().json(OwnSession {
        current: row.id == current,
        session: row.into(),
    }))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct PasswordRequest {
    #[schema(required = true, nullable = false, min_length = 1)]
    current_password: Option<String>,
    /// 8 to 128 characters.
    #[schema(required = true, nullable = false, min_length = 8, max_length = 128)]
    new_password: Option<String>,
}

impl PasswordRequest {
    /// The change the caller asks for, its fields checked.
    fn into_change(
        self,
        auth: &Authenticated,
        ip: Option<String>,
    ) -> Result<PasswordChange, ApiError> {
        let current = required(self.current_password, "current_password")?;
        let new = required(self.new_password, "new_password")?;
        Ok(PasswordChange {
            user_id: auth.claims().sub,
            session_id: auth.claims().sid,
            current,
            new: Password::parse(&new, "new_password").map_err(ApiError::invalid_request)?,
            ip,
        })
    }
}

/// Changes the caller's password and revokes every other session.
#[utoipa::path(post, path = "/auth/password", tag = "account", security(("bearer" = [])),
    request_body(content(
        (PasswordRequest = "application/json"),
        (PasswordRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 204, description = "Changed; every other session is revoked"),
        (status = 400, body = ErrorBody, description = "invalid_request: a field is missing or malformed"),
        (status = 401, body = ErrorBody, description = "invalid_credentials: the current password is wrong; \
            or invalid_token, token_expired or session_revoked (WWW-Authenticate)"),
        (status = 403, body = ErrorBody, description = "user_banned"),
        (status = 429, body = ErrorBody, description = "rate_limited (Retry-After)"),
        BodyErrors,
    ))]
pub(crate) async fn change_password(
    state: State,
    client: Client,
    auth: Authenticated,
    body: Body<PasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    // A stolen access token must not buy unlimited guesses at the current
    // password: the same per-client budget as login.
    state.limit_client(client.ip.as_deref())?;
    let change = body.0.into_change(&auth, client.ip)?;
    let (shared, now) = (state.clone().into_inner(), state.clock.now());
    let revoked = state
        .check_password(move |pool| {
            let settings = &shared.settings;
            let (cost, limits) = (settings.auth.bcrypt_cost, &settings.rate_limit);
            self_service::change_password(pool, cost, limits, &change, now)
        })
        .await?;
    state.remember_revoked("password_changed", revoked, now);
    Ok(HttpResponse::NoContent().finish())
}
