//! Browser mode (API.md section 4): with `X-Keyward-Client: spa` the refresh
//! token travels in an `HttpOnly` cookie instead of the body, and requests
//! that read the cookie must come from an allowed origin.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{HeaderValue, HOST, ORIGIN};
use actix_web::HttpRequest;

use crate::config::Settings;
use crate::error::{ApiError, ErrorCode};

pub(crate) const CLIENT_HEADER: &str = "x-keyward-client";
pub(crate) const COOKIE_NAME: &str = "keyward_refresh";
const COOKIE_PATH: &str = "/auth";

/// Whether the request asks for browser mode.
pub(crate) fn is_browser(req: &HttpRequest) -> bool {
    req.headers()
        .get(CLIENT_HEADER)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"spa"))
}

/// The refresh cookie, read only in browser mode (a cross-site form cannot
/// set the header).
pub(crate) fn refresh_cookie(req: &HttpRequest) -> Option<String> {
    if !is_browser(req) {
        return None;
    }
    req.cookie(COOKIE_NAME)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// Refuses a browser-mode request from an origin other than the server's own
/// or one of `cors.allowed_origins`.
pub(crate) fn check_origin(req: &HttpRequest, settings: &Settings) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(ORIGIN) else {
        return Ok(());
    };
    if origin_allowed(origin, req.headers().get(HOST), settings) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            "Requests from this origin are not allowed.",
        ))
    }
}

pub(crate) fn origin_allowed(
    origin: &HeaderValue,
    host: Option<&HeaderValue>,
    settings: &Settings,
) -> bool {
    if is_listed_origin(origin, settings) {
        return true;
    }
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let same_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .zip(host.and_then(|h| h.to_str().ok()))
        .is_some_and(|(origin_host, host)| origin_host.eq_ignore_ascii_case(host));
    same_host
}

/// Whether `origin` is one of `cors.allowed_origins` (letter case and a
/// trailing slash in the settings do not matter; `*` matches nothing).
pub(crate) fn is_listed_origin(origin: &HeaderValue, settings: &Settings) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    settings
        .cors
        .allowed_origins
        .iter()
        .map(|allowed| allowed.trim_end_matches('/'))
        .any(|allowed| allowed != "*" && allowed.eq_ignore_ascii_case(origin))
}

/// The cookie that carries a refresh token for `max_age` seconds.
pub(crate) fn refresh_cookie_for(
    token: &str,
    max_age: i64,
    settings: &Settings,
) -> Cookie<'static> {
    Cookie::build(COOKIE_NAME, token.to_string())
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(settings.cookie.secure)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age))
        .finish()
}

/// The cookie that clears the refresh token.
pub(crate) fn cleared_cookie(settings: &Settings) -> Cookie<'static> {
    let mut cookie = refresh_cookie_for("", 0, settings);
    cookie.make_removal();
    cookie
}
