//! Signing in and out (API.md section 3): login, refresh, logout, and the
//! token's own view of the caller (`/api/me`, `/restricted`).

use std::io::Write;

use actix_web::body::BoxBody;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::http::browser;
use crate::http::doc::{BodyErrors, ErrorBody};
use crate::http::extract::access::{bearer_token, verify_access_and_kid, verify_refresh};
use crate::http::extract::body::required;
use crate::http::extract::presented_refresh::RefreshRequest;
use crate::http::extract::{Authenticated, Body, Client, PresentedRefresh};
use crate::http::AppState;
use crate::services::accounts::{self, LoginAttempt};
use crate::services::refresh::RefreshError;
use crate::services::sessions::{self, LogoutToken, Scope};
use crate::services::{TokenPair, UserSummary};

type State = web::Data<AppState>;

#[derive(Deserialize, ToSchema)]
pub(crate) struct LoginRequest {
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
pub(crate) async fn login(
    state: State,
    client: Client,
    body: Body<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    state.limit_client(client.ip.as_deref())?;
    let attempt = LoginAttempt {
        username: required(body.0.username, "username")?,
        password: required(body.0.password, "password")?,
        user_agent: client.user_agent.clone(),
        ip: client.ip.clone(),
    };
    let shared = state.clone().into_inner();
    let pair = state
        .check_password(move |pool| {
            let (tokens, settings, now) = (&shared.tokens, &shared.settings, shared.clock.now());
            accounts::login(pool, tokens, settings, &shared.dummy_hash, &attempt, now)
        })
        .await;
    state.metrics.login(&pair);
    let mut pair = pair?;
    let superseded = std::mem::take(&mut pair.superseded);
    state.remember_revoked("session_limit", superseded, state.clock.now());
    Ok(token_response(&state, &client, pair))
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
pub(crate) async fn refresh_pair(
    state: State,
    client: Client,
    presented: PresentedRefresh,
) -> Result<HttpResponse, ApiError> {
    let claims = verify_refresh(&state, &presented.required()?).await?;
    state.limit_refresh(claims.sid)?;
    let (now, session) = (state.clock.now(), claims.sid);
    let outcome = state
        .refresher
        .refresh(claims, client.ip.clone(), now)
        .await;
    if let Err(RefreshError::Reused) = outcome {
        // Refuse the session's access tokens here at once; the other
        // instances hear of it through the database.
        state.metrics.reuse_detected();
        state.remember_revoked("reuse_detected", vec![session], now);
    }
    let outcome = outcome.map_err(ApiError::from);
    state.metrics.refresh(&outcome);
    Ok(token_response(&state, &client, outcome?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogoutQuery {
    /// `this` (the default), `all` or `others`.
    #[param(pattern = "^(|this|current|all|others)$")]
    scope: Option<String>,
}

/// `?scope=` of a logout, parsed before the body is read.
pub(crate) struct LogoutScope(Scope);

impl FromRequest for LogoutScope {
    // A malformed query string is already the contract's error (see the
    // `QueryConfig` in `startup`).
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let query = web::Query::<LogoutQuery>::from_request(req, payload);
        Box::pin(async move {
            let query = query.await?;
            let scope = Scope::parse(query.scope.as_deref()).map_err(ApiError::invalid_request)?;
            Ok(Self(scope))
        })
    }
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
pub(crate) async fn logout(
    state: State,
    req: HttpRequest,
    client: Client,
    scope: LogoutScope,
    presented: PresentedRefresh,
) -> Result<HttpResponse, ApiError> {
    let token = logout_token(&state, &req, presented).await?;
    let (now, grace) = (state.clock.now(), state.settings.auth.reuse_grace_seconds);
    let ip = client.ip;
    let revoked = state
        .db(move |conn| sessions::logout(conn, token, scope.0, grace, ip.as_deref(), now))
        .await?;
    state.remember_revoked("logout", revoked, now);
    let mut response = HttpResponse::NoContent();
    if client.browser {
        response.cookie(browser::cleared_cookie(&state.settings));
    }
    Ok(response.finish())
}

/// The token a logout came with: the presented refresh token, else the
/// Bearer access token.
async fn logout_token(
    state: &State,
    req: &HttpRequest,
    presented: PresentedRefresh,
) -> Result<LogoutToken, ApiError> {
    if let Some(token) = presented.0 {
        let c = verify_refresh(state, &token).await?;
        return Ok(LogoutToken {
            user_id: c.sub,
            session_id: c.sid,
            refresh_jti: Some(c.jti),
            refused: false,
        });
    }
    let token = bearer_token(req).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidToken,
            "A refresh token or a Bearer access token is required.",
        )
    })?;
    let verified = verify_access_and_kid(state, token).await?;
    let c = &verified.claims;
    Ok(LogoutToken {
        user_id: c.sub,
        session_id: c.sid,
        refresh_jti: None,
        refused: state
            .revoked
            .refuses(&c.sid, c.auth_time, verified.kid.as_deref()),
    })
}

#[derive(Serialize, ToSchema)]
struct Me<'a> {
    id: Uuid,
    username: &'a str,
    name: Option<&'a str>,
    admin: bool,
    session_id: Uuid,
}

impl Me<'_> {
    /// The body, byte for byte what `serde_json` writes for `Me` (a unit
    /// test compares them), written directly: the generic serializer was
    /// the largest part of an `/api/me` after the network (3,650
    /// instructions of 31,500; this takes about 1,100). Only the two strings
    /// can need escaping.
    fn to_json(&self) -> Vec<u8> {
        let mut buffer = Uuid::encode_buffer();
        let mut out = Vec::with_capacity(128 + self.username.len() + self.name.map_or(0, str::len));
        out.push(b'{');
        write_user_fields(&mut out, self.id, self.username, self.name, self.admin);
        out.extend_from_slice(b",\"session_id\":\"");
        out.extend_from_slice(
            self.session_id
                .hyphenated()
                .encode_lower(&mut buffer)
                .as_bytes(),
        );
        out.extend_from_slice(b"\"}");
        out
    }
}

/// `"id":…,"username":…,"name":…,"admin":…`, as `serde_json` writes
/// these fields of `Me` and of the token pair's `user`.
fn write_user_fields(out: &mut Vec<u8>, id: Uuid, username: &str, name: Option<&str>, admin: bool) {
    let mut buffer = Uuid::encode_buffer();
    out.extend_from_slice(b"\"id\":\"");
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buffer).as_bytes());
    out.extend_from_slice(b"\",\"username\":");
    write_json_str(out, username);
    out.extend_from_slice(b",\"name\":");
    match name {
        Some(name) => write_json_str(out, name),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(if admin {
        b",\"admin\":true"
    } else {
        b",\"admin\":false"
    });
}

/// `text` as a JSON string, escaped as `serde_json` escapes it.
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    // Writing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Who the access token says the caller is.
#[utoipa::path(get, path = "/api/me", tag = "account", security(("bearer" = [])),
    responses(
        (status = 200, body = Me, description = "From the token alone"),
        (status = 401, body = ErrorBody,
         description = "invalid_token, token_expired or session_revoked (WWW-Authenticate)"),
    ))]
pub(crate) async fn me(auth: Authenticated) -> HttpResponse {
    // Rendered once per token and kept with it in the verified-token cache.
    let body = auth.verified().me_body.get_or_init(|| {
        let c = auth.claims();
        let me = Me {
            id: c.sub,
            username: &c.username,
            name: c.name.as_deref(),
            admin: c.admin,
            session_id: c.sid,
        };
        me.to_json().into()
    });
    // The response made directly, with a static header value appended:
    // `ContentType::json()` formats its mime type at every call (330
    // instructions of 24,000, callgrind), and the builder's `insert_header`
    // converts the pair and looks for values to replace (240 more).
    let mut response = HttpResponse::with_body(StatusCode::OK, BoxBody::new(body.clone()));
    response.headers_mut().append(header::CONTENT_TYPE, JSON);
    response
}

/// Header values used at every request of their route, built once.
const JSON: header::HeaderValue = header::HeaderValue::from_static("application/json");
const NO_STORE: header::HeaderValue = header::HeaderValue::from_static("no-store");
const NO_CACHE: header::HeaderValue = header::HeaderValue::from_static("no-cache");

/// The tutorial's greeting.
#[utoipa::path(get, path = "/restricted", tag = "account", security(("bearer" = [])),
    responses(
        (status = 200, body = String, content_type = "text/plain", description = "Welcome <name>!"),
        (status = 401, body = ErrorBody,
         description = "invalid_token, token_expired or session_revoked (WWW-Authenticate)"),
    ))]
pub(crate) async fn restricted(auth: Authenticated) -> HttpResponse {
    let c = auth.claims();
    let name = c.name.as_deref().unwrap_or(&c.username);
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

impl TokenPairBody<'_> {
    /// The body exactly as `serde_json` writes it (the tests compare them),
    /// written directly: the two tokens are most of it, and being JWTs in
    /// compact form that keyward just signed (base64url and dots) they never
    /// need escaping, where `serde_json` checks each of their bytes (a
    /// refresh: 444,300 instructions with it, 431,200 with this; callgrind).
    fn to_json(&self) -> Vec<u8> {
        debug_assert!(is_compact_jwt(self.access_token));
        debug_assert!(self.refresh_token.is_none_or(is_compact_jwt));
        let user = self.user;
        let mut buffer = Uuid::encode_buffer();
        let mut out = Vec::with_capacity(
            256 + self.access_token.len()
                + self.refresh_token.map_or(0, str::len)
                + user.username.len()
                + user.name.as_ref().map_or(0, String::len),
        );
        out.extend_from_slice(b"{\"access_token\":\"");
        out.extend_from_slice(self.access_token.as_bytes());
        if let Some(refresh_token) = self.refresh_token {
            out.extend_from_slice(b"\",\"refresh_token\":\"");
            out.extend_from_slice(refresh_token.as_bytes());
        }
        out.extend_from_slice(b"\",\"token_type\":");
        write_json_str(&mut out, self.token_type);
        // Writing into a `Vec` cannot fail.
        let _ = write!(
            out,
            ",\"expires_in\":{},\"refresh_expires_in\":{},\"session_id\":\"{}\",\"user\":{{",
            self.expires_in,
            self.refresh_expires_in,
            self.session_id.hyphenated().encode_lower(&mut buffer),
        );
        let name = user.name.as_deref();
        write_user_fields(&mut out, user.id, &user.username, name, user.admin);
        out.extend_from_slice(b"}}");
        out
    }
}

/// Whether `token` is made of base64url characters and dots only (a JWT in
/// compact form), so that it is a JSON string's content as it is.
fn is_compact_jwt(token: &str) -> bool {
    token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The token pair answer; in browser mode the refresh token goes into the
/// `HttpOnly` cookie instead of the body.
fn token_response(state: &AppState, client: &Client, pair: TokenPair) -> HttpResponse {
    let browser_mode = client.browser;
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
        .insert_header((header::CACHE_CONTROL, NO_STORE))
        .insert_header((header::PRAGMA, NO_CACHE));
    if browser_mode {
        response.cookie(browser::refresh_cookie_for(
            &pair.refresh_token,
            pair.refresh_expires_in,
            &state.settings,
        ));
    }
    response
        .insert_header((header::CONTENT_TYPE, JSON))
        .body(body.to_json())
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::{is_compact_jwt, Me, TokenPairBody, UserSummaryBody};

    #[test]
    fn the_token_pair_body_is_what_serde_json_writes() {
        let access = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl-_w";
        for username in [
            "plain",
            "quote \" and \\ backslash",
            "control \u{1} \n",
            "ünïcødé 😀",
        ] {
            for name in [
                None,
                Some(username.to_string()),
                Some("</script>".to_string()),
            ] {
                for (admin, refresh_token) in [(false, Some("a.b.c")), (true, None)] {
                    let user = UserSummaryBody {
                        id: Uuid::new_v4(),
                        username: username.to_string(),
                        name: name.clone(),
                        admin,
                    };
                    let body = TokenPairBody {
                        access_token: access,
                        refresh_token,
                        token_type: "Bearer",
                        expires_in: 900,
                        refresh_expires_in: -1,
                        session_id: Uuid::new_v4(),
                        user: &user,
                    };
                    let expected = serde_json::to_vec(&body).unwrap();
                    assert_eq!(
                        String::from_utf8(body.to_json()).unwrap(),
                        String::from_utf8(expected).unwrap()
                    );
                }
            }
        }
    }

    #[test]
    fn only_base64url_and_dots_pass_as_compact_jwts() {
        assert!(is_compact_jwt("eyJ0.eyJ1-_.c2ln"));
        for other in ["a\"b", "a\\b", "a b", "a\nb", "ü", "a/b", "a+b", "a=b"] {
            assert!(!is_compact_jwt(other), "{other:?}");
        }
    }

    #[test]
    fn the_me_body_is_what_serde_json_writes() {
        let names = [
            "plain",
            "",
            "quote \" and \\ backslash",
            "control \u{1} \n \t \u{1f}",
            "ünïcødé ✓ 😀",
            "</script>",
        ];
        for username in names {
            for name in [None, Some(username), Some("Ada")] {
                for admin in [false, true] {
                    let me = Me {
                        id: Uuid::new_v4(),
                        username,
                        name,
                        admin,
                        session_id: Uuid::new_v4(),
                    };
                    let expected = serde_json::to_vec(&me).unwrap();
                    assert_eq!(
                        String::from_utf8(me.to_json()).unwrap(),
                        String::from_utf8(expected).unwrap()
                    );
                }
            }
        }
    }
}
