//! `POST /auth/register`, and the account creation `serve --ephemeral`'s
//! `/ephemeral/users` shares.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::users::UserRow;
use crate::domain::{Password, Username};
use crate::error::{ApiError, ErrorCode};
use crate::http::doc::{BodyErrors, ErrorBody};
use crate::http::extract::body::{optional_text, required};
use crate::http::extract::{Body, Client};
use crate::http::AppState;
use crate::services::accounts;

/// The longest display name, in characters.
const MAX_NAME_CHARS: usize = 100;

type State = web::Data<AppState>;

#[derive(Deserialize, ToSchema)]
pub(crate) struct RegisterRequest {
    /// 3 to 32 of `A-Z a-z 0-9 _ . -`, unique without regard to case.
    #[schema(
        required = true,
        nullable = false,
        min_length = 3,
        max_length = 32,
        pattern = "^[A-Za-z0-9_.-]{3,32}$"
    )]
    pub(super) username: Option<String>,
    /// 8 to 128 characters.
    #[schema(required = true, nullable = false, min_length = 8, max_length = 128)]
    pub(super) password: Option<String>,
    /// A display name of at most 100 characters, without control
    /// characters; blank means none.
    #[schema(max_length = 100, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub(super) name: Option<String>,
}

impl RegisterRequest {
    /// The fields, each checked: `400 invalid_request` for the first that
    /// is missing or malformed.
    fn parse(self) -> Result<(Username, Password, Option<String>), ApiError> {
        let username = required(self.username, "username")?;
        let username = Username::parse(&username).map_err(ApiError::invalid_request)?;
        let password = required(self.password, "password")?;
        let password = Password::parse(&password, "password").map_err(ApiError::invalid_request)?;
        Ok((
            username,
            password,
            optional_text(self.name, "name", MAX_NAME_CHARS)?,
        ))
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct UserCreated {
    id: Uuid,
    username: String,
    name: Option<String>,
    admin: bool,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<UserRow> for UserCreated {
    fn from(user: UserRow) -> Self {
        Self {
            id: user.id,
            username: user.username,
            name: user.name,
            admin: user.admin,
            created_at: user.created_at,
        }
    }
}

/// Creates an account.
#[utoipa::path(post, path = "/auth/register", tag = "auth",
    request_body(content(
        (RegisterRequest = "application/json"),
        (RegisterRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, body = UserCreated, description = "Created"),
        (status = 400, body = ErrorBody, description = "invalid_request: a field is missing or malformed"),
        (status = 403, body = ErrorBody, description = "forbidden: registration is closed"),
        (status = 409, body = ErrorBody, description = "conflict: the username is taken"),
        (status = 429, body = ErrorBody, description = "rate_limited (Retry-After)"),
        BodyErrors,
    ))]
pub(crate) async fn register(
    state: State,
    client: Client,
    body: Body<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    state.limit_client(client.ip.as_deref())?;
    if !state.settings.auth.allow_registration {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "Registration is closed.",
        ));
    }
    create_user(&state, body.0, false).await
}

/// Creates an account from a registration's fields: `201` with the user.
pub(crate) async fn create_user(
    state: &AppState,
    req: RegisterRequest,
    admin: bool,
) -> Result<HttpResponse, ApiError> {
    let (username, password, name) = req.parse()?;
    let (cost, now) = (state.settings.auth.bcrypt_cost, state.clock.now());
    let user = state
        .check_password(move |pool| {
            accounts::register(
                pool,
                &username,
                &password,
                name.as_deref(),
                admin,
                cost,
                now,
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(UserCreated::from(user)))
}
