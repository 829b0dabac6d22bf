//! Browser mode at the HTTP level (API.md section 4): the refresh cookie, the
//! origin check on refresh and logout, CORS, and the app's own files.

use reqwest::Method;
use serde_json::json;

use crate::support::app::*;
use crate::support::client::*;
use crate::support::tokens::*;

const LISTED: &str = "http://app.example.test";
const FOREIGN: &str = "http://evil.example.test";

/// Attributes of the `keyward_refresh` cookie set by a response, lower-cased
/// names; `None` when the response sets no such cookie.
struct SetCookie {
    value: String,
    attributes: Vec<(String, String)>,
}

impl SetCookie {
    fn of(reply: &Reply) -> Option<Self> {
        reply
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("keyward_refresh="))
            .map(|line| {
                let mut parts = line.split(';').map(str::trim);
                let value = parts
                    .next()
                    .and_then(|p| p.strip_prefix("keyward_refresh="))
                    .unwrap()
                    .to_string();
                let attributes = parts
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        (k.to_ascii_lowercase(), v.to_string())
                    })
                    .collect();
                Self { value, attributes }
            })
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }
}

impl TestApp {
    /// A login in browser mode (the `X-Keyward-Client: spa` header).
    async fn spa_login(&self, user: &User) -> Reply {
        let req = self
            .client
            .post(self.url("/auth/login"))
            .header("x-keyward-client", "spa")
            .json(&json!({"username": user.username, "password": user.password}));
        read(req.send().await.unwrap()).await
    }

    /// A bodiless POST carrying the refresh cookie, as the app sends it.
    async fn cookie_post(
        &self,
        path: &str,
        cookie: &str,
        spa_header: bool,
        origin: Option<&str>,
    ) -> Reply {
        let mut req = self
            .client
            .post(self.url(path))
            .header("cookie", format!("keyward_refresh={cookie}"));
        if spa_header {
            req = req.header("x-keyward-client", "spa");
        }
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        read(req.send().await.unwrap()).await
    }

    async fn request_with_origin(
        &self,
        method: Method,
        path: &str,
        origin: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header("origin", origin);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        read(req.send().await.unwrap()).await
    }

    /// Registers a user and signs in in browser mode; returns the cookie.
    async fn spa_session(&self) -> String {
        let user = self.register().await;
        let r = self.spa_login(&user).await;
        assert_eq!(r.status, 200, "{}", r.text);
        SetCookie::of(&r).expect("a refresh cookie").value
    }
}

fn with_listed_origin(s: &mut keyward::config::Settings) {
    s.cors.allowed_origins = vec![LISTED.to_string()];
}

#[actix_web::test]
async fn spa_login_puts_the_refresh_token_in_a_strict_cookie_not_the_body() {
    let app = spawn_app_with(|s| s.cookie.secure = true).await;
    let user = app.register().await;

    let r = app.spa_login(&user).await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["access_token"].is_string(), "{}", r.text);
    assert!(r.json.get("refresh_token").is_none(), "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let cookie = SetCookie::of(&r).expect("a keyward_refresh cookie");
    assert_eq!(header_of(&cookie.value)["typ"], "refresh+jwt");
    assert!(cookie.has("httponly"), "HttpOnly");
    assert_eq!(cookie.attribute("samesite"), Some("Strict"));
    assert_eq!(cookie.attribute("path"), Some("/auth"));
    assert_eq!(
        cookie.attribute("max-age"),
        Some(r.json["refresh_expires_in"].to_string().as_str())
    );
    assert_eq!(
        cookie.attribute("max-age"),
        Some(app.settings.auth.refresh_ttl_seconds.to_string().as_str())
    );
    assert!(cookie.has("secure"), "Secure by default");
}

#[actix_web::test]
async fn the_cookie_is_not_secure_when_cookie_secure_is_false() {
    let app = spawn_app_with(|s| s.cookie.secure = false).await;
    let user = app.register().await;

    let r = app.spa_login(&user).await;

    assert_eq!(r.status, 200, "{}", r.text);
    let cookie = SetCookie::of(&r).expect("a keyward_refresh cookie");
    assert!(!cookie.has("secure"), "no Secure over plain http");
    assert!(cookie.has("httponly"));
    assert_eq!(cookie.attribute("samesite"), Some("Strict"));
}

#[actix_web::test]
async fn a_login_without_the_client_header_sets_no_cookie() {
    let app = spawn_app().await;
    let user = app.register().await;

    let r = app.login(&user).await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["refresh_token"].is_string());
    assert!(SetCookie::of(&r).is_none());
}

#[actix_web::test]
async fn refresh_reads_the_cookie_only_with_the_client_header() {
    let app = spawn_app().await;
    let cookie = app.spa_session().await;

    // A cross-site form can send the cookie but not the header.
    let without = app.cookie_post("/auth/refresh", &cookie, false, None).await;
    without.assert_error(401, "invalid_token");

    let with = app.cookie_post("/auth/refresh", &cookie, true, None).await;
    assert_eq!(with.status, 200, "{}", with.text);
    assert!(with.json["access_token"].is_string());
    assert!(with.json.get("refresh_token").is_none(), "{}", with.text);
    let rotated = SetCookie::of(&with).expect("a rotated cookie");
    assert_ne!(rotated.value, cookie);
    assert_eq!(
        claims(&rotated.value)["sid"],
        claims(&cookie)["sid"],
        "same session"
    );
}

#[actix_web::test]
async fn refresh_and_logout_refuse_an_origin_neither_own_nor_listed() {
    let app = spawn_app_with(with_listed_origin).await;
    let cookie = app.spa_session().await;

    app.cookie_post("/auth/refresh", &cookie, true, Some(FOREIGN))
        .await
        .assert_error(403, "forbidden");
    app.cookie_post("/auth/logout", &cookie, true, Some(FOREIGN))
        .await
        .assert_error(403, "forbidden");

    // The refused logout ended nothing; the own origin and a listed one pass.
    let own = app.address.clone();
    let r = app
        .cookie_post("/auth/refresh", &cookie, true, Some(&own))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cookie = SetCookie::of(&r).unwrap().value;
    let r = app
        .cookie_post("/auth/refresh", &cookie, true, Some(LISTED))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("access-control-allow-origin"), Some(LISTED));
}

#[actix_web::test]
async fn spa_logout_revokes_the_session_and_clears_the_cookie() {
    let app = spawn_app().await;
    let cookie = app.spa_session().await;

    let r = app
        .cookie_post("/auth/logout", &cookie, true, Some(&app.address))
        .await;

    assert_eq!(r.status, 204, "{}", r.text);
    let cleared = SetCookie::of(&r).expect("a clearing cookie");
    assert_eq!(cleared.value, "");
    assert_eq!(cleared.attribute("max-age"), Some("0"));
    assert_eq!(cleared.attribute("path"), Some("/auth"));
    app.cookie_post("/auth/refresh", &cookie, true, None)
        .await
        .assert_error(401, "session_revoked");
}

#[actix_web::test]
async fn get_on_refresh_and_logout_is_method_not_allowed() {
    let app = spawn_app().await;
    for path in ["/auth/refresh", "/auth/logout"] {
        app.get(path, None)
            .await
            .assert_error(405, "method_not_allowed");
    }
}

#[actix_web::test]
async fn cors_echoes_a_listed_origin_with_credentials() {
    let app = spawn_app_with(with_listed_origin).await;

    let preflight = app
        .request_with_origin(
            Method::OPTIONS,
            "/auth/refresh",
            LISTED,
            &[
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "content-type,x-keyward-client,authorization",
                ),
            ],
        )
        .await;

    assert_eq!(preflight.status, 200, "{}", preflight.text);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(LISTED)
    );
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );
    let allowed = preflight
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in ["authorization", "content-type", "x-keyward-client"] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }
    assert!(preflight
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .contains("POST"));
    assert!(preflight
        .header("vary")
        .unwrap_or_default()
        .contains("Origin"));

    let actual = app
        .request_with_origin(Method::GET, "/health", LISTED, &[])
        .await;
    assert_eq!(actual.status, 200);
    assert_eq!(actual.header("access-control-allow-origin"), Some(LISTED));
    assert_eq!(
        actual.header("access-control-allow-credentials"),
        Some("true")
    );
    assert!(actual.header("vary").unwrap_or_default().contains("Origin"));
}

#[actix_web::test]
async fn cors_grants_nothing_to_an_unlisted_origin() {
    let app = spawn_app_with(with_listed_origin).await;

    let preflight = app
        .request_with_origin(
            Method::OPTIONS,
            "/auth/refresh",
            FOREIGN,
            &[
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "x-keyward-client"),
            ],
        )
        .await;

    preflight.assert_error(403, "forbidden");
    assert_eq!(preflight.header("access-control-allow-origin"), None);
    assert_eq!(preflight.header("access-control-allow-credentials"), None);
    assert_eq!(preflight.header("x-content-type-options"), Some("nosniff"));

    let actual = app
        .request_with_origin(Method::GET, "/health", FOREIGN, &[])
        .await;
    assert_eq!(actual.status, 200);
    assert_eq!(actual.header("access-control-allow-origin"), None);
    assert_eq!(actual.header("access-control-allow-credentials"), None);
    assert!(actual.header("vary").unwrap_or_default().contains("Origin"));
}

#[actix_web::test]
async fn unlisted_origins_and_wildcards_get_no_cors_answer() {
    // `*` in the settings is no wildcard: it matches no origin.
    let app = spawn_app_with(|s| s.cors.allowed_origins = vec!["*".to_string()]).await;

    for origin in [LISTED, "null", "*"] {
        let preflight = app
            .request_with_origin(
                Method::OPTIONS,
                "/auth/login",
                origin,
                &[("access-control-request-method", "POST")],
            )
            .await;
        preflight.assert_error(403, "forbidden");
        assert_eq!(preflight.header("access-control-allow-origin"), None);
    }
}

#[actix_web::test]
async fn the_app_is_served_with_a_strict_content_security_policy() {
    let app = spawn_app().await;

    let page = app.get("/", None).await;

    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/html"));
    let csp = page.header("content-security-policy").expect("a CSP");
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.starts_with(name))
            .map(str::to_string)
    };
    let scripts = directive("script-src")
        .or_else(|| directive("default-src"))
        .unwrap();
    assert!(!scripts.contains("unsafe-inline"), "{csp}");
    assert!(!scripts.contains("unsafe-eval"), "{csp}");
    assert_eq!(
        directive("frame-ancestors").as_deref(),
        Some("frame-ancestors 'none'")
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page.text.contains(r#"src="/app.js""#));
    assert!(page.text.contains(r#"href="/style.css""#));
    assert!(
        !page.text.contains("<script>"),
        "no inline script in the page"
    );

    let js = app.get("/app.js", None).await;
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/javascript"));
    assert!(js.text.contains("X-Keyward-Client"));
    let css = app.get("/style.css", None).await;
    assert_eq!(css.status, 200);
    assert!(css
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/css"));
}
