//! The browser app (API.md section 4): its files compiled into the binary,
//! served with a Content-Security-Policy that allows no inline script; and
//! the client module the app is built on, `/keyward.js`, which other
//! single-page apps import too, with its TypeScript declarations.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::HttpResponse;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const OVERVIEW_JS: &str = include_str!("../../web/overview.js");
const SESSION_NAME_JS: &str = include_str!("../../web/session_name.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");
const KEYWARD_JS: &str = include_str!("../../web/keyward.js");
const KEYWARD_D_TS: &str = include_str!("../../web/keyward.d.ts");

/// No inline scripts or styles, no framing, nothing from elsewhere.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(body)
}

/// The browser app's page.
#[utoipa::path(get, path = "/", tag = "browser",
    responses((status = 200, body = String, content_type = "text/html", description = "The app's page")))]
pub(crate) async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// The browser app's script.
#[utoipa::path(get, path = "/app.js", tag = "browser",
    responses((status = 200, body = String, content_type = "text/javascript", description = "The app's script")))]
pub(crate) async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// The admin panel's overview (a module `app.js` imports).
#[utoipa::path(get, path = "/overview.js", tag = "browser",
    responses((status = 200, body = String, content_type = "text/javascript", description = "The overview's script")))]
pub(crate) async fn overview_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", OVERVIEW_JS)
}

/// Renaming one's own session (a module `app.js` imports).
#[utoipa::path(get, path = "/session_name.js", tag = "browser",
    responses((status = 200, body = String, content_type = "text/javascript", description = "The session-renaming script")))]
pub(crate) async fn session_name_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SESSION_NAME_JS)
}

/// The browser app's style sheet.
#[utoipa::path(get, path = "/style.css", tag = "browser",
    responses((status = 200, body = String, content_type = "text/css", description = "The app's style sheet")))]
pub(crate) async fn style_css() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// The browser client module: an ES module without dependencies that any
/// single-page app can import (from another origin when that origin is in
/// `cors.allowed_origins`).
#[utoipa::path(get, path = "/keyward.js", tag = "browser",
    responses((status = 200, body = String, content_type = "text/javascript",
               description = "The client module (ES module)")))]
pub(crate) async fn keyward_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", KEYWARD_JS)
}

/// The client module's TypeScript declarations.
#[utoipa::path(get, path = "/keyward.d.ts", tag = "browser",
    responses((status = 200, body = String, content_type = "application/typescript",
               description = "TypeScript declarations of /keyward.js")))]
pub(crate) async fn keyward_d_ts() -> HttpResponse {
    asset("application/typescript; charset=utf-8", KEYWARD_D_TS)
}
