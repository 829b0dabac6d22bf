//! The routes of API.md section 3 and the handlers behind them.

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, HttpRequest, HttpResponse, Resource, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{self, bearer_token, token_error, Authenticated};
use super::body::{optional_text, required, Body};
use super::openapi::{BodyErrors, ErrorBody};
use super::{
    blocking, browser, client_ip, hash_slot, rate_limit, remember_revoked, user_agent, web_app,
    AppState,
};
use crate::domain::{Password, Username};
use crate::error::{ApiError, ErrorCode};
use crate::services::accounts::{self, LoginAttempt};
use crate::services::logout::{self, LogoutScope, LogoutToken};
use crate::services::{refresh, TokenPair, UserSummary};

/// The longest display name, in characters.
const MAX_NAME_CHARS: usize = 100;

type State = web::Data<AppState>;

/// Registers every route; unknown routes and methods get JSON errors too.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health").route(web::get().to(health)))
        .service(resource("/ready").route(web::get().to(ready)))
        .service(resource("/auth/register").route(web::post().to(register)))
        .service(resource("/auth/login").route(web::post().to(login)))
        .service(resource("/login").route(web::post().to(login)))
        .service(resource("/auth/refresh").route(web::post().to(refresh_pair)))
        .service(resource("/token").route(web::post().to(refresh_pair)))
        .service(resource("/auth/logout").route(web::post().to(logout)))
        .service(resource("/api/me").route(web::get().to(me)))
        .service(resource("/restricted").route(web::get().to(restricted)))
        .service(resource("/.well-known/jwks.json").route(web::get().to(super::jwks::jwks)))
        .service(resource("/metrics").route(web::get().to(super::metrics::scrape)))
        .service(resource("/openapi.json").route(web::get().to(super::openapi::openapi_json)));
    super::account::configure(cfg);
    super::admin_policy::configure(cfg);
    super::admin::configure(cfg);
    super::service_routes::configure(cfg);
    super::feed::configure(cfg);
    web_app::configure(cfg);
}

/// A resource whose other methods answer `405` in the contract's shape.
/// Actix's own `405` carries the `Allow` header RFC 9110 requires, listing
/// the methods the routes registered; the body is replaced, the header kept.
pub fn resource(
    path: &str,
) -> Resource<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<EitherBody<BoxBody>>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource(path)
        .wrap(ErrorHandlers::new().handler(StatusCode::METHOD_NOT_ALLOWED, method_not_allowed))
}

fn method_not_allowed<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let allow = res.headers().get(header::ALLOW).cloned();
    let (req, _) = res.into_parts();
    let mut response = ApiError::method_not_allowed().error_response();
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Serialize, ToSchema)]
struct Status {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Answers while the process runs.
#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, body = Status, description = "The process runs")))]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// Ready when the database answers and the revocation listener has caught up.
#[utoipa::path(get, path = "/ready", tag = "service", responses(
    (status = 200, body = Status, description = "Ready"),
    (status = 503, body = ErrorBody, description = "unavailable: the database or the listener is not ready"),
))]
async fn ready(state: State) -> Result<HttpResponse, ApiError> {
    let pool = state.pool.clone();
    blocking(move || {
        use diesel::connection::SimpleConnection;
        let mut conn = pool.get().map_err(crate::db::StoreError::from)?;
        // Whatever the failure, /ready says "unavailable"; the conversion
        // still lets the pool drop a connection that was lost.
        conn.batch_execute("SELECT 1").map_err(|e| {
            drop(crate::db::StoreError::from(e));
            ApiError::unavailable()
        })
    })
    .await?;
    if !state.listener.is_healthy() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "The revocation listener is catching up with the database.",
        )
        .with_retry_after(1));
    }
    Ok(HttpResponse::Ok().json(Status { status: "ready" }))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct RegisterRequest {
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

#[derive(Serialize, ToSchema)]
pub(super) struct UserCreated {
    id: Uuid,
    username: String,
    name: Option<String>,
    admin: bool,
    created_at: chrono::DateTime<chrono::Utc>,
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
async fn register(
    state: State,
    req: HttpRequest,
    body: Body<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    rate_limit::check_client(&state, &req)?;
    if !state.settings.auth.allow_registration {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "Registration is closed.",
        ));
    }
    create_user(&state, body.0, false).await
}

/// Creates an account from a registration's fields: `201` with the user.
pub(super) async fn create_user(
    state: &State,
    req: RegisterRequest,
    admin: bool,
) -> Result<HttpResponse, ApiError> {
    let username =
        Username::parse(&required(req.username, "username")?).map_err(ApiError::invalid_request)?;
    let password = Password::parse(&required(req.password, "password")?, "password")
        .map_err(ApiError::invalid_request)?;
    let name = optional_text(req.name, "name", MAX_NAME_CHARS)?;
    let slot = hash_slot(state)?;
    let (pool, cost, now) = (
        state.pool.clone(),
        state.settings.auth.bcrypt_cost,
        state.clock.now(),
    );
    let user = blocking(move || {
        let _slot = slot;
        accounts::register(
            &pool,
            &username,
            &password,
            name.as_deref(),
            admin,
            cost,
            now,
        )
    })
    .await?;
    Ok(HttpResponse::Created().json(UserCreated {
        id: user.id,
        username: user.username,
        name: user.name,
        admin: user.admin,
        created_at: user.created_at,
    }))
}

#[derive(Deserialize, ToSchema)]
struct LoginRequest {
    #[schema(required = true, nullable = false, min_length = 1)]
    username: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1)]
    password: Option<String>,
}

/// Signs in: a new session and its token pair. With `X-Keyward-Client: spa`
/// the refresh token goes into the `keyward_refresh` cookie instead.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, body = TokenPairBody, description = "A token pair (Cache-Control: no-store)"),
        (status = 400, body = ErrorBody, description = "invalid_request: a field is missing"),
        (status = 401, body = ErrorBody, description = "invalid_credentials"),
        (status = 403, body = ErrorBody, description = "user_banned"),
        (status = 429, body = ErrorBody, description = "rate_limited (Retry-After)"),
        BodyErrors,
    ))]
async fn login(
    state: State,
    req: HttpRequest,
    body: Body<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    rate_limit::check_client(&state, &req)?;
    let username = required(body.0.username, "username")?;
    let password = required(body.0.password, "password")?;
    let ip = client_ip(&req, &state);
    let agent = user_agent(&req);
    let slot = hash_slot(&state)?;
    let shared = state.clone();
    let pair = blocking(move || {
        let _slot = slot;
        let attempt = LoginAttempt {
            username: &username,
            password: &password,
            user_agent: agent.as_deref(),
            ip: ip.as_deref(),
        };
        accounts::login(
            &shared.pool,
            &shared.tokens,
            &shared.settings,
            &shared.dummy_hash,
            &attempt,
            shared.clock.now(),
        )
    })
    .await;
    state.metrics.login(&pair);
    let mut pair = pair?;
    let superseded = std::mem::take(&mut pair.superseded);
    remember_revoked(&state, "session_limit", superseded, state.clock.now());
    Ok(token_response(&req, &state, pair))
}

#[derive(Deserialize, ToSchema)]
struct RefreshRequest {
    /// The refresh token; in browser mode the `keyward_refresh` cookie
    /// stands in for it.
    refresh_token: Option<String>,
}

/// Rotates a refresh token: a new pair. A replayed token revokes its session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    request_body(content(
        (Option<RefreshRequest> = "application/json"),
        (Option<RefreshRequest> = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, body = TokenPairBody, description = "A token pair (Cache-Control: no-store)"),
        (status = 400, body = ErrorBody, description = "invalid_request: malformed body"),
        (status = 401, body = ErrorBody,
         description = "invalid_token, token_expired, token_reused or session_revoked"),
        (status = 403, body = ErrorBody, description = "user_banned, or forbidden (browser origin)"),
        (status = 429, body = ErrorBody, description = "rate_limited: this session refreshes too often (Retry-After)"),
        BodyErrors,
    ))]
async fn refresh_pair(
    state: State,
    req: HttpRequest,
    body: Body<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    if browser::is_browser(&req) {
        browser::check_origin(&req, &state.settings)?;
    }
    let token = body
        .0
        .refresh_token
        .filter(|t| !t.is_empty())
        .or_else(|| browser::refresh_cookie(&req))
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "refresh_token is required"))?;
    let claims = auth::verify_refresh(&state, &token)
        .await
        .map_err(token_error)?;
    rate_limit::check_session(&state, claims.sid)?;
    let now = state.clock.now();
    let ip = client_ip(&req, &state);
    let shared = state.clone();
    let session = claims.sid;
    let outcome = blocking(move || {
        let mut conn = shared.pool.get().map_err(crate::db::StoreError::from)?;
        refresh::refresh(
            &mut conn,
            &shared.tokens,
            &shared.settings,
            &claims,
            ip.as_deref(),
            now,
        )
        .map_err(ApiError::from)
    })
    .await;
    state.metrics.refresh(&outcome);
    match outcome {
        Ok(pair) => Ok(token_response(&req, &state, pair)),
        Err(e) => {
            if e.code == ErrorCode::TokenReused {
                // Refuse the session's access tokens here at once; the other
                // instances hear of it through the database.
                remember_revoked(&state, "reuse_detected", vec![session], now);
            }
            Err(e)
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogoutQuery {
    /// `this` (the default), `all` or `others`.
    #[param(pattern = "^(|this|current|all|others)$")]
    scope: Option<String>,
}

/// Ends this session (or all, or all others) with a refresh token in the body
/// or cookie, or a Bearer access token.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    params(LogoutQuery),
    request_body(content(
        (Option<RefreshRequest> = "application/json"),
        (Option<RefreshRequest> = "application/x-www-form-urlencoded"))),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, body = ErrorBody, description = "invalid_request: unknown scope"),
        (status = 401, body = ErrorBody, description = "invalid_token or token_expired"),
        (status = 403, body = ErrorBody, description = "forbidden (browser origin)"),
        BodyErrors,
    ))]
async fn logout(
    state: State,
    req: HttpRequest,
    query: web::Query<LogoutQuery>,
    body: Body<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut scope =
        LogoutScope::parse(query.scope.as_deref()).map_err(ApiError::invalid_request)?;
    let browser_mode = browser::is_browser(&req);
    if browser_mode {
        browser::check_origin(&req, &state.settings)?;
    }
    let now = state.clock.now();
    // Any validly signed, unexpired token of the session will do, even when
    // the session is already revoked: logging out twice is not an error.
    let refresh = body
        .0
        .refresh_token
        .filter(|t| !t.is_empty())
        .or_else(|| browser::refresh_cookie(&req));
    let token = match (refresh, bearer_token(&req)) {
        (Some(token), _) => {
            let c = auth::verify_refresh(&state, &token)
                .await
                .map_err(token_error)?;
            LogoutToken {
                user_id: c.sub,
                session_id: c.sid,
                refresh_jti: Some(c.jti),
            }
        }
        (None, Some(token)) => {
            let (c, kid) = auth::verify_access_and_kid(&state, token)
                .await
                .map_err(token_error)?;
            // An access token revoked here may only end its own session.
            if state.revoked.refuses(&c.sid, c.auth_time, kid.as_deref()) {
                scope = LogoutScope::This;
            }
            LogoutToken {
                user_id: c.sub,
                session_id: c.sid,
                refresh_jti: None,
            }
        }
        (None, None) => {
            return Err(ApiError::new(
                ErrorCode::InvalidToken,
                "A refresh token or a Bearer access token is required.",
            ))
        }
    };
    let ip = client_ip(&req, &state);
    let pool = state.pool.clone();
    let grace = state.settings.auth.reuse_grace_seconds;
    let revoked = blocking(move || {
        let mut conn = pool.get().map_err(crate::db::StoreError::from)?;
        logout::logout(&mut conn, token, scope, grace, ip.as_deref(), now)
            .map_err(|e| ApiError::from(crate::db::StoreError::from(e)))
    })
    .await?;
    remember_revoked(&state, "logout", revoked, now);
    let mut response = HttpResponse::NoContent();
    if browser_mode {
        response.cookie(browser::cleared_cookie(&state.settings));
    }
    Ok(response.finish())
}

#[derive(Serialize, ToSchema)]
struct Me {
    id: Uuid,
    username: String,
    name: Option<String>,
    admin: bool,
    session_id: Uuid,
}

/// Who the access token says the caller is.
#[utoipa::path(get, path = "/api/me", tag = "account", security(("bearer" = [])),
    responses(
        (status = 200, body = Me, description = "From the token alone"),
        (status = 401, body = ErrorBody,
         description = "invalid_token, token_expired or session_revoked (WWW-Authenticate)"),
    ))]
async fn me(auth: Authenticated) -> HttpResponse {
    let c = auth.0;
    HttpResponse::Ok().json(Me {
        id: c.sub,
        username: c.username,
        name: c.name,
        admin: c.admin,
        session_id: c.sid,
    })
}

/// The tutorial's greeting.
#[utoipa::path(get, path = "/restricted", tag = "account", security(("bearer" = [])),
    responses(
        (status = 200, body = String, content_type = "text/plain", description = "Welcome <name>!"),
        (status = 401, body = ErrorBody,
         description = "invalid_token, token_expired or session_revoked (WWW-Authenticate)"),
    ))]
async fn restricted(auth: Authenticated) -> HttpResponse {
    let c = auth.0;
    let name = c.name.unwrap_or(c.username);
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(format!("Welcome {name}!"))
}

#[derive(Serialize, ToSchema)]
struct TokenPairBody<'a> {
    access_token: &'a str,
    /// Absent in browser mode (`X-Keyward-Client: spa`): then it is the
    /// `keyward_refresh` cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    refresh_token: Option<&'a str>,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    expires_in: i64,
    refresh_expires_in: i64,
    session_id: Uuid,
    user: &'a UserSummaryBody,
}

#[derive(Serialize, ToSchema)]
struct UserSummaryBody {
    id: Uuid,
    username: String,
    name: Option<String>,
    admin: bool,
}

impl From<UserSummary> for UserSummaryBody {
    fn from(u: UserSummary) -> Self {
        Self {
            id: u.id,
            username: u.username,
            name: u.name,
            admin: u.admin,
        }
    }
}

/// The token pair answer; in browser mode the refresh token goes into the
/// `HttpOnly` cookie instead of the body.
fn token_response(req: &HttpRequest, state: &AppState, pair: TokenPair) -> HttpResponse {
    let browser_mode = browser::is_browser(req);
    let user = UserSummaryBody::from(pair.user);
    let body = TokenPairBody {
        access_token: &pair.access_token,
        refresh_token: (!browser_mode).then_some(pair.refresh_token.as_str()),
        token_type: "Bearer",
        expires_in: pair.expires_in,
        refresh_expires_in: pair.refresh_expires_in,
        session_id: pair.session_id,
        user: &user,
    };
    let mut response = HttpResponse::Ok();
    response
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header((header::PRAGMA, "no-cache"));
    if browser_mode {
        response.cookie(browser::refresh_cookie_for(
            &pair.refresh_token,
            pair.refresh_expires_in,
            &state.settings,
        ));
    }
    response.json(body)
}
