//! The routes of API.md section 3 and the handlers behind them.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{web, HttpRequest, HttpResponse, Resource};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::{bearer_token, token_error, Authenticated};
use super::body::{required, Body};
use super::{blocking, browser, client_ip, user_agent, web_app, AppState};
use crate::domain::{Password, Username};
use crate::error::{ApiError, ErrorCode};
use crate::services::accounts::{self, LoginAttempt};
use crate::services::logout::{self, LogoutScope};
use crate::services::{refresh, revocation_horizon, TokenPair, UserSummary};

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
        .service(resource("/restricted").route(web::get().to(restricted)));
    web_app::configure(cfg);
}

/// A resource whose other methods answer `405` in the contract's shape.
pub fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::method_not_allowed())
    }))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn ready(state: State) -> Result<HttpResponse, ApiError> {
    let pool = state.pool.clone();
    blocking(move || {
        use diesel::connection::SimpleConnection;
        let mut conn = pool.get().map_err(|_| ApiError::unavailable())?;
        conn.batch_execute("SELECT 1")
            .map_err(|_| ApiError::unavailable())
    })
    .await?;
    if !state.listener.is_healthy() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "The revocation listener is catching up with the database.",
        )
        .with_retry_after(1));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
}

#[derive(Deserialize)]
struct RegisterRequest {
    username: Option<String>,
    password: Option<String>,
    name: Option<String>,
}

#[derive(Serialize)]
struct UserCreated {
    id: Uuid,
    username: String,
    name: Option<String>,
    admin: bool,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// A display name: at most 100 characters; blank means none.
fn display_name(name: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(name) = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_request(
            "name must be at most 100 characters, without control characters",
        ));
    }
    Ok(Some(name))
}

async fn register(state: State, body: Body<RegisterRequest>) -> Result<HttpResponse, ApiError> {
    if !state.settings.auth.allow_registration {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "Registration is closed.",
        ));
    }
    let req = body.0;
    let username =
        Username::parse(&required(req.username, "username")?).map_err(ApiError::invalid_request)?;
    let password = Password::parse(&required(req.password, "password")?, "password")
        .map_err(ApiError::invalid_request)?;
    let name = display_name(req.name)?;
    let (pool, cost, now) = (
        state.pool.clone(),
        state.settings.auth.bcrypt_cost,
        state.clock.now(),
    );
    let user = blocking(move || {
        accounts::register(
            &pool,
            &username,
            &password,
            name.as_deref(),
            false,
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

#[derive(Deserialize)]
struct LoginRequest {
    username: Option<String>,
    password: Option<String>,
}

async fn login(
    state: State,
    req: HttpRequest,
    body: Body<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let username = required(body.0.username, "username")?;
    let password = required(body.0.password, "password")?;
    let ip = client_ip(&req, &state.settings);
    let agent = user_agent(&req);
    let shared = state.clone();
    let pair = blocking(move || {
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
    .await?;
    Ok(token_response(&req, &state, pair))
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: Option<String>,
}

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
    let now = state.clock.now();
    let claims = state
        .tokens
        .verify_refresh(&token, now.timestamp())
        .map_err(token_error)?;
    let ip = client_ip(&req, &state.settings);
    let shared = state.clone();
    let session = claims.sid;
    let outcome = blocking(move || {
        let mut conn = shared.pool.get().map_err(|_| ApiError::unavailable())?;
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
    match outcome {
        Ok(pair) => Ok(token_response(&req, &state, pair)),
        Err(e) => {
            if e.code == ErrorCode::TokenReused {
                // Refuse the session's access tokens here at once; the other
                // instances hear of it through the database.
                state.revoked.insert(
                    session,
                    now.timestamp() + revocation_horizon(&state.settings),
                );
            }
            Err(e)
        }
    }
}

#[derive(Deserialize)]
struct LogoutQuery {
    scope: Option<String>,
}

async fn logout(
    state: State,
    req: HttpRequest,
    query: web::Query<LogoutQuery>,
    body: Body<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let scope = LogoutScope::parse(query.scope.as_deref()).map_err(ApiError::invalid_request)?;
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
    let (user_id, session_id) = match (refresh, bearer_token(&req)) {
        (Some(token), _) => {
            let c = state
                .tokens
                .verify_refresh(&token, now.timestamp())
                .map_err(token_error)?;
            (c.sub, c.sid)
        }
        (None, Some(token)) => {
            let c = state
                .tokens
                .verify_access(token, now.timestamp())
                .map_err(token_error)?;
            (c.sub, c.sid)
        }
        (None, None) => {
            return Err(ApiError::new(
                ErrorCode::InvalidToken,
                "A refresh token or a Bearer access token is required.",
            ))
        }
    };
    let ip = client_ip(&req, &state.settings);
    let pool = state.pool.clone();
    let revoked = blocking(move || {
        let mut conn = pool.get().map_err(|_| ApiError::unavailable())?;
        logout::logout(&mut conn, user_id, session_id, scope, ip.as_deref(), now)
            .map_err(|e| ApiError::from(crate::db::StoreError::from(e)))
    })
    .await?;
    let keep_until = now.timestamp() + revocation_horizon(&state.settings);
    state
        .revoked
        .extend(revoked.into_iter().map(|id| (id, keep_until)));
    let mut response = HttpResponse::NoContent();
    if browser_mode {
        response.cookie(browser::cleared_cookie(&state.settings));
    }
    Ok(response.finish())
}

#[derive(Serialize)]
struct Me {
    id: Uuid,
    username: String,
    name: Option<String>,
    admin: bool,
    session_id: Uuid,
}

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
async fn restricted(auth: Authenticated) -> HttpResponse {
    let c = auth.0;
    let name = c.name.unwrap_or(c.username);
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(format!("Welcome {name}!"))
}

#[derive(Serialize)]
struct TokenPairBody<'a> {
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    token_type: &'static str,
    expires_in: i64,
    refresh_expires_in: i64,
    session_id: Uuid,
    user: &'a UserSummaryBody,
}

#[derive(Serialize)]
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
