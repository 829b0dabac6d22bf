//! `/admin/users/{id}/sessions` and `/admin/sessions/{id}`: a user's
//! sessions, and revoking them.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::act_on;
use crate::db::sessions::SessionRow;
use crate::error::ApiError;
use crate::http::doc::{AdminErrors, ErrorBody};
use crate::http::extract::{Admin, IdInPath};
use crate::http::handlers::account::SessionBody;
use crate::http::AppState;
use crate::services::admin;

type State = web::Data<AppState>;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SessionsQuery {
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
pub(crate) async fn user_sessions(
    state: State,
    _admin: Admin,
    user: IdInPath,
    query: web::Query<SessionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let user_id = user.0;
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
    let rows = state
        .db(move |conn| admin::user_sessions(conn, user_id, include_revoked, now))
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
pub(crate) async fn revoke_user_sessions(
    state: State,
    caller: Admin,
    user: IdInPath,
) -> Result<HttpResponse, ApiError> {
    let revoke = admin::revoke_sessions_of_user;
    act_on(&state, &caller, user.0, "admin_revoked", revoke).await
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
pub(crate) async fn revoke_any_session(
    state: State,
    caller: Admin,
    session: IdInPath,
) -> Result<HttpResponse, ApiError> {
    let revoke = admin::revoke_session;
    act_on(&state, &caller, session.0, "admin_revoked", revoke).await
}
