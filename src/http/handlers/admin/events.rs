//! `/admin/events`: the audit log.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{page_limit, query_param};
use crate::db::events::EventRow;
use crate::error::ApiError;
use crate::http::doc::{AdminErrors, ErrorBody};
use crate::http::extract::Admin;
use crate::http::AppState;
use crate::services::admin;

type State = web::Data<AppState>;

/// Parsed by hand, like [`UsersQuery`].
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
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
pub(crate) async fn list_events(
    state: State,
    _admin: Admin,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = page_limit(query.limit.as_deref())?;
    let user_id = query_param::<Uuid>(query.user_id.as_deref(), "user_id", "a user id")?;
    let before = query_param::<i64>(query.before.as_deref(), "before", "an event id")?;
    let rows = state
        .db(move |conn| admin::list_events(conn, user_id, before, limit))
        .await?;
    let events = rows.into_iter().map(EventBody::from).collect();
    Ok(HttpResponse::Ok().json(EventsPage { events }))
}
