//! The browser side of the client module's tests (`tests/api/keyward_js.rs`):
//! the test page, opened on keyward's origin or another, and what the tests
//! ask of it; and what the server counted.

use serde_json::{json, Value};

use crate::support::app::*;
use crate::support::browser::Browser;
use crate::support::client::*;
use crate::support::db::*;

/// A page of "another app" built on `/keyward.js` (see its comment).
pub(crate) const PAGE: &str = include_str!("client_page.html");

/// The `route="/auth/refresh"` requests keyward counted, whatever their
/// answer (`/metrics`).
pub(crate) async fn refresh_requests(app: &TestApp) -> u64 {
    let metrics = app.get("/metrics", None).await.text;
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("keyward_http_requests_total{") && l.contains("route=\"/auth/refresh\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

pub(crate) fn rotations(db: &TestDb, user: &User) -> i64 {
    query_i64(
        db,
        &format!(
            "SELECT count(*) FROM events WHERE kind = 'refreshed' AND user_id = '{}'",
            user.id
        ),
    )
}

impl Browser {
    /// Opens the test page on keyward's own origin: a keyward document
    /// replaced by the page, whose script then imports `/keyward.js`.
    pub(crate) async fn open_page_on(&self, keyward: &str, query: &str) {
        self.client
            .goto(&format!("{keyward}/health?{query}"))
            .await
            .unwrap();
        self.js(&format!(
            "document.open(); document.write({}); document.close(); return true",
            json!(PAGE)
        ))
        .await;
        if query.contains("wait") {
            self.until(
                "the page to wait for the start",
                "return window.waiting === true",
            )
            .await;
        } else {
            self.until_page_ready().await;
        }
    }

    /// Opens the test page where another site serves it.
    pub(crate) async fn open_page_at(&self, url: &str) {
        self.client.goto(url).await.unwrap();
        self.until_page_ready().await;
    }

    pub(crate) async fn until_page_ready(&self) {
        self.until(
            "the page's client to start",
            "return window.kwReady === true",
        )
        .await;
    }

    /// Runs `body` (an async function body) in the page; its value, or
    /// `{"error": code}` when it throws.
    pub(crate) async fn call(&self, body: &str) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             (async () => {{ {body} }})().then(
               (value) => done({{ value: value === undefined ? null : value }}),
               (e) => done({{ error: String((e && (e.code || e.message)) || e) }}));"
        );
        let out = self.client.execute_async(&script, vec![]).await.unwrap();
        assert!(out.get("error").is_none(), "{body}: {out}");
        out["value"].clone()
    }

    pub(crate) async fn sign_in_with_module(&self, user: &User) {
        let name = self
            .call(&format!(
                "return (await kw.login({}, {})).username",
                json!(user.username),
                json!(user.password)
            ))
            .await;
        assert_eq!(name, json!(user.username));
    }

    pub(crate) async fn until_signed_out_because(&self, reason: &str) {
        self.until(
            &format!("a sign-out with reason {reason}"),
            &format!(
                "const last = window.changes[window.changes.length - 1]; \
                 return kw.user === null && !!last && last.type === 'signed_out' && last.reason === {}",
                json!(reason)
            ),
        )
        .await;
    }

    /// `kw.fetch(url)`: the status and the JSON body.
    pub(crate) async fn kw_fetch(&self, url: &str) -> Value {
        self.call(&format!(
            "const r = await kw.fetch({}, {{ cache: 'no-store' }}); \
             return {{ status: r.status, body: await r.json() }};",
            json!(url)
        ))
        .await
    }

    pub(crate) async fn clear_requests(&self) {
        self.js("window.requests.length = 0; return true").await;
    }

    pub(crate) async fn requests(&self) -> Vec<(String, u16)> {
        serde_json::from_value(self.js("return window.requests").await).unwrap()
    }
}

/// The access token's lifetime and the leeway, passed: every access token
/// issued so far is expired at the server.
pub(crate) fn past_access_expiry(app: &TestApp) {
    let s = &app.settings.auth;
    app.clock.advance(chrono::TimeDelta::seconds(
        s.access_ttl_seconds + s.leeway_seconds + 1,
    ));
}
