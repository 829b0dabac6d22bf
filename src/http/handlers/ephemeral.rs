//! The routes only `serve --ephemeral` serves (API.md section 8): move this
//! instance's clock, and create users directly, for other projects' tests.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::register::{create_user, RegisterRequest, UserCreated};
use crate::error::ApiError;
use crate::http::doc::{BodyErrors, ErrorBody};
use crate::http::extract::Body;
use crate::http::AppState;

/// The furthest one call may move the clock: ten years.
const MAX_ADVANCE_SECONDS: i64 = 315_360_000;

#[derive(Deserialize, ToSchema)]
pub(crate) struct ClockRequest {
    /// Whole seconds, 0 to 315360000; the clock never goes back.
    #[schema(required = true, nullable = false, minimum = 0, maximum = 315_360_000)]
    advance_seconds: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct ClockNow {
    /// This instance's time after the move.
    now: DateTime<Utc>,
}

/// Moves this instance's clock forward: tokens expire, grace windows end and
/// bans run out without waiting.
#[utoipa::path(post, path = "/ephemeral/clock", tag = "ephemeral",
    request_body(content(
        (ClockRequest = "application/json"),
        (ClockRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, body = ClockNow, description = "The clock moved"),
        (status = 400, body = ErrorBody, description = "invalid_request: advance_seconds missing or out of range"),
        BodyErrors,
    ))]
pub(crate) async fn advance_clock(
    state: web::Data<AppState>,
    body: Body<ClockRequest>,
) -> Result<HttpResponse, ApiError> {
    let seconds = body
        .0
        .advance_seconds
        .ok_or_else(|| ApiError::invalid_request("advance_seconds is required"))?;
    if !(0..=MAX_ADVANCE_SECONDS).contains(&seconds) {
        return Err(ApiError::invalid_request(format!(
            "advance_seconds must be between 0 and {MAX_ADVANCE_SECONDS}"
        )));
    }
    state.clock.advance(TimeDelta::seconds(seconds));
    Ok(HttpResponse::Ok().json(ClockNow {
        now: state.clock.now(),
    }))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct EphemeralUserRequest {
    #[schema(required = true, nullable = false, pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    username: Option<String>,
    #[schema(required = true, nullable = false, min_length = 8, max_length = 128)]
    password: Option<String>,
    #[schema(max_length = 100)]
    name: Option<String>,
    /// An administrator (default false).
    admin: Option<bool>,
}

/// Creates a user directly, an administrator if asked (registration and its
/// limits play no part).
#[utoipa::path(post, path = "/ephemeral/users", tag = "ephemeral",
    request_body(content(
        (EphemeralUserRequest = "application/json"),
        (EphemeralUserRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, body = UserCreated, description = "Created"),
        (status = 400, body = ErrorBody, description = "invalid_request: a field is missing or malformed"),
        (status = 409, body = ErrorBody, description = "conflict: the username is taken"),
        BodyErrors,
    ))]
pub(crate) async fn create_ephemeral_user(
    state: web::Data<AppState>,
    body: Body<EphemeralUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    let admin = req.admin.unwrap_or(false);
    let fields = RegisterRequest {
        username: req.username,
        password: req.password,
        name: req.name,
    };
    create_user(&state, fields, admin).await
}
