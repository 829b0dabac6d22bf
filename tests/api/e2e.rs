//! End-to-end tests: the browser app in headless Chromium, driven through
//! chromedriver with fantoccini, against the app started in-process on port
//! 0. Every test saves a screenshot of its final state under `target/e2e/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them). The tests run one at a time: each starts a browser, and the
//! short token lifetimes they rely on should not compete for the CPU.

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use serde_json::{json, Value};

use crate::support::browser::*;
use crate::support::client::*;
use crate::support::db::*;

/// The access-token lifetime of the tests that watch tokens expire.
const SHORT_TTL: i64 = 3;

impl Browser {
    async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap();
        self.until("the app has started", "return !!window.keyward")
            .await;
    }

    async fn until_signed_in_as(&self, username: &str) {
        self.until(
            &format!("the dashboard of {username}"),
            &format!(
                "return visible('dashboard') && !visible('auth') \
                 && document.getElementById('me-username').textContent === {}",
                json!(username)
            ),
        )
        .await;
    }

    async fn until_signed_out(&self) {
        self.until(
            "the sign-in form",
            "return visible('signin-form') && !visible('dashboard') \
             && !window.keyward.state.signedIn",
        )
        .await;
    }

    async fn state(&self) -> Value {
        self.js("return window.keyward.state").await
    }

    async fn sign_in(&self, user: &User) {
        self.until("the sign-in form", "return visible('signin-form')")
            .await;
        self.fill("signin-username", &user.username).await;
        self.fill("signin-password", &user.password).await;
        self.click("#signin-submit").await;
        self.until_signed_in_as(&user.username).await;
    }

    /// Opens a second window of this browser session (same cookies, same
    /// BroadcastChannel) on `url`, waits for `user` to be signed in there
    /// too, and returns both windows' handles.
    async fn second_window(
        &self,
        url: &str,
        user: &User,
    ) -> (fantoccini::wd::WindowHandle, fantoccini::wd::WindowHandle) {
        let first = self.client.window().await.unwrap();
        let second = self.client.new_window(false).await.unwrap().handle;
        self.client.switch_to_window(second.clone()).await.unwrap();
        self.client.set_window_size(1280, 900).await.unwrap();
        self.open(url).await;
        self.until_signed_in_as(&user.username).await;
        (first, second)
    }

    async fn switch(&self, window: &fantoccini::wd::WindowHandle) {
        self.client.switch_to_window(window.clone()).await.unwrap();
    }

    /// Saves the screenshot of the final state and ends the session.
    async fn finish(self) {
        self.screenshot("").await;
        self.close().await;
    }
}

/// Settings for the tests that watch tokens expire: plain http, so no
/// `Secure` cookie; no leeway, so an expired token is refused at once.
fn short_lived(s: &mut keyward::config::Settings) {
    s.auth.access_ttl_seconds = SHORT_TTL;
    s.auth.leeway_seconds = 0;
    s.cookie.secure = false;
}

/// The live sessions of a user and how many were revoked, from the database.
fn sessions_of(db: &TestDb, user: &User) -> (i64, i64) {
    #[derive(diesel::QueryableByName)]
    struct Counts {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        live: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        revoked: i64,
    }
    let counts: Counts = diesel::sql_query(
        "SELECT count(*) FILTER (WHERE revoked_at IS NULL) AS live, \
                count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked \
         FROM sessions WHERE user_id = $1::uuid",
    )
    .bind::<diesel::sql_types::Text, _>(&user.id)
    .get_result(&mut db.connect())
    .unwrap();
    (counts.live, counts.revoked)
}

/// The current refresh `jti` of the user's only session.
fn current_jti(db: &TestDb, user: &User) -> String {
    #[derive(diesel::QueryableByName)]
    struct Jti {
        #[diesel(sql_type = diesel::sql_types::Text)]
        jti: String,
    }
    diesel::sql_query("SELECT current_jti::text AS jti FROM sessions WHERE user_id = $1::uuid")
        .bind::<diesel::sql_types::Text, _>(&user.id)
        .get_result::<Jti>(&mut db.connect())
        .unwrap()
        .jti
}

impl Scene {
    /// A browser of its own on the app, with the user signed in.
    async fn signed_in_browser(&mut self, test: &'static str) -> Browser {
        let browser = self.driver.browser(test).await;
        browser.open(&self.app.address).await;
        browser.sign_in(&self.user).await;
        browser
    }
}

#[actix_web::test]
async fn e2e_sign_up_and_sign_in() {
    let mut scene = Scene::new(short_lived).await;
    let browser = scene.driver.browser("e2e_sign_up_and_sign_in").await;
    browser.open(&scene.app.address).await;

    // Sign up: the app signs the new account in at once.
    browser
        .until("the sign-in form", "return visible('signin-form')")
        .await;
    browser.click("#show-signup").await;
    browser
        .until("the sign-up form", "return visible('signup-form')")
        .await;
    browser.fill("signup-username", "ada.lovelace").await;
    browser.fill("signup-name", "Ada Lovelace").await;
    browser.fill("signup-password", "analytical-engine").await;
    browser.click("#signup-submit").await;
    browser.until_signed_in_as("ada.lovelace").await;
    assert_eq!(browser.text("me-name").await, "Ada Lovelace");
    assert!(browser
        .text("message")
        .await
        .contains("Welcome, Ada Lovelace"));
    browser
        .until(
            "a countdown of the access token",
            r"return /^\d+:\d\d$|renewing/.test(document.getElementById('token-countdown').textContent)",
        )
        .await;
    // The refresh token never reaches the page's script.
    assert_eq!(browser.js("return document.cookie").await, json!(""));

    // Log out, then sign in with the new account.
    browser.click("#logout").await;
    browser.until_signed_out().await;
    let user = User {
        id: String::new(),
        username: "ada.lovelace".to_string(),
        password: "analytical-engine".to_string(),
        name: Some("Ada Lovelace".to_string()),
    };
    browser.sign_in(&user).await;
    browser
        .until(
            "this browser's session in the list",
            "return document.querySelectorAll('#sessions-list .session.current').length === 1",
        )
        .await;

    browser.screenshot("").await;
    // The same page on a phone-sized screen.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.screenshot("phone").await;
    browser.close().await;
}

#[actix_web::test]
async fn e2e_an_expired_access_token_is_renewed_silently() {
    let mut scene = Scene::new(short_lived).await;
    let browser = scene
        .signed_in_browser("e2e_an_expired_access_token_is_renewed_silently")
        .await;
    // Suppress the page's timed refresh from here on, as a browser does in
    // a background tab or a sleeping laptop, so that the access token really
    // expires in memory; and log what the page fetches.
    browser
        .js("const realSetTimeout = window.setTimeout.bind(window);
             window.setTimeout = (f, ms, ...rest) => (ms >= 400 ? 0 : realSetTimeout(f, ms, ...rest));
             const realFetch = window.fetch.bind(window);
             window.e2eLog = [];
             window.fetch = async (url, init) => {
               const r = await realFetch(url, init);
               window.e2eLog.push([String(url), r.status]);
               return r;
             };
             return true;")
        .await;
    let first = browser.state().await;
    let first_expiry = first["accessExpiresAt"].as_f64().unwrap();

    // Wait out the access token: the page's periodic check meets a 401,
    // refreshes once and carries on.
    browser
        .until(
            "a 401 followed by a refresh",
            "const log = window.e2eLog; \
             const refused = log.findIndex(([, status]) => status === 401); \
             return refused >= 0 && log.slice(refused + 1) \
               .some(([url, status]) => url === '/auth/refresh' && status === 200);",
        )
        .await;
    assert!(browser.state().await["accessExpiresAt"].as_f64().unwrap() > first_expiry);
    let now = browser.state().await;
    assert_eq!(now["signedIn"], true);
    assert_eq!(now["sessionId"], first["sessionId"], "the same session");

    // The next action needs a valid access token: it works.
    browser
        .js("document.getElementById('sessions-list').replaceChildren(); return true")
        .await;
    browser.click("#sessions-reload").await;
    browser
        .until(
            "the reloaded session list",
            "return document.querySelectorAll('#sessions-list .session.current').length === 1",
        )
        .await;
    assert_eq!(browser.text("message").await, "", "no error shown");
    assert_eq!(sessions_of(&scene.app.db, &scene.user), (1, 0));
    // The renewal came from a refused request: a 401, one refresh, and the
    // same request again.
    let log = browser.js("return window.e2eLog").await;
    let log: Vec<(String, u16)> = serde_json::from_value(log).unwrap();
    let refused = log
        .iter()
        .position(|(_, status)| *status == 401)
        .unwrap_or_else(|| panic!("no 401 in {log:?}"));
    let (url, _) = &log[refused];
    let after = &log[refused + 1..];
    let refreshed = after
        .iter()
        .position(|(u, status)| u == "/auth/refresh" && *status == 200)
        .unwrap();
    let retried = after[refreshed + 1..]
        .iter()
        .position(|entry| entry == &(url.clone(), 200))
        .unwrap_or_else(|| panic!("the refused request was not retried: {log:?}"));
    assert_eq!(
        after[..refreshed + 1 + retried]
            .iter()
            .filter(|(u, _)| u == "/auth/refresh")
            .count(),
        1,
        "one refresh before the retry: {log:?}"
    );

    browser.finish().await;
}

#[actix_web::test]
async fn e2e_two_tabs_refreshing_at_the_same_moment_both_stay_signed_in() {
    let mut scene = Scene::new(short_lived).await;
    let browser = scene
        .signed_in_browser("e2e_two_tabs_refreshing_at_the_same_moment_both_stay_signed_in")
        .await;
    let (app, user) = (&scene.app, &scene.user);
    let (first, second) = browser.second_window(&app.address, user).await;

    // Both tabs start over at the same instant: each finds no token in
    // memory and asks for one with the shared refresh cookie.
    let at = browser.js("return Date.now() + 700").await;
    let reload_at = format!(
        "window.e2eOldPage = true; \
         setTimeout(() => location.reload(), {at} - Date.now()); return true"
    );
    browser.js(&reload_at).await;
    browser.switch(&first).await;
    browser.js(&reload_at).await;
    for window in [&first, &second] {
        browser.switch(window).await;
        browser
            .until(
                "the reloaded page to start",
                "return !window.e2eOldPage && window.keyward.state.booted",
            )
            .await;
        browser.until_signed_in_as(&user.username).await;
    }

    // And the refresh endpoint itself, called by both tabs at one instant
    // with the same cookie: the reuse grace window answers both.
    let at = browser.js("return Date.now() + 500").await;
    let refresh_at = format!(
        "setTimeout(() => fetch('/auth/refresh', {{method: 'POST', \
             headers: {{'X-Keyward-Client': 'spa'}}}}) \
           .then((r) => {{ window.e2eRefresh = r.status; }}, \
                 (e) => {{ window.e2eRefresh = String(e); }}), {at} - Date.now()); \
         return true;"
    );
    for window in [&first, &second] {
        browser.switch(window).await;
        browser.js(&refresh_at).await;
    }
    for window in [&second, &first] {
        browser.switch(window).await;
        browser
            .until(
                "the answer to the simultaneous refresh",
                "return window.e2eRefresh !== undefined",
            )
            .await;
        assert_eq!(browser.js("return window.e2eRefresh").await, json!(200));
    }

    // Both keep renewing their tokens, together, for a while.
    for window in [&first, &second] {
        browser.switch(window).await;
        let expiry = browser.state().await["accessExpiresAt"].as_f64().unwrap();
        browser
            .until(
                "a renewed token",
                &format!("return window.keyward.state.accessExpiresAt > {expiry}"),
            )
            .await;
        browser.until_signed_in_as(&user.username).await;
    }
    let a = browser.state().await;
    browser.switch(&second).await;
    let b = browser.state().await;
    assert_eq!(a["sessionId"], b["sessionId"], "one shared sign-in");
    assert_eq!(sessions_of(&app.db, user), (1, 0), "nothing was revoked");

    browser.finish().await;
}

#[actix_web::test]
async fn e2e_logout_in_one_tab_signs_out_the_other() {
    let mut scene = Scene::new(short_lived).await;
    let browser = scene
        .signed_in_browser("e2e_logout_in_one_tab_signs_out_the_other")
        .await;
    let (app, user) = (&scene.app, &scene.user);
    let (first, _) = browser.second_window(&app.address, user).await;

    browser.click("#logout").await;
    browser.until_signed_out().await;
    // The cookie is gone too: a reload of this tab stays signed out.
    browser.open(&app.address).await;
    browser
        .until("the start-up check", "return window.keyward.state.booted")
        .await;
    browser.until_signed_out().await;

    browser.switch(&first).await;
    browser.until_signed_out().await;
    assert_eq!(
        browser.text("message").await,
        "You signed out in another tab."
    );
    assert_eq!(sessions_of(&app.db, user), (0, 1));

    browser.finish().await;
}

#[actix_web::test]
async fn e2e_an_administrator_bans_the_user_and_their_tab_is_signed_out() {
    const TEST: &str = "e2e_an_administrator_bans_the_user_and_their_tab_is_signed_out";
    let mut scene = Scene::new(short_lived).await;
    let user_browser = scene.signed_in_browser(TEST).await;
    let admin_browser = scene.driver.browser(TEST).await;
    let (app, user) = (&scene.app, &scene.user);
    let admin = app.register().await;
    app.make_admin(&app.db, &admin);

    // The administrator, in a browser of their own, finds the user and bans
    // them.
    admin_browser.open(&app.address).await;
    admin_browser.sign_in(&admin).await;
    admin_browser
        .until("the admin panel", "return visible('admin-panel')")
        .await;
    admin_browser.fill("admin-search", &user.username).await;
    admin_browser.click("#admin-search-submit").await;
    let row = format!(".admin-user[data-username={}]", json!(user.username));
    admin_browser
        .until(
            "the user in the search results",
            &format!(
                "const rows = document.querySelectorAll('#admin-users .admin-user'); \
                 return rows.length === 1 && !!document.querySelector({})",
                json!(row)
            ),
        )
        .await;
    admin_browser.fill("ban-reason", "Spamming the forum").await;
    admin_browser.click(&format!("{row} button.ban-user")).await;
    let banned_at = Instant::now();
    admin_browser
        .until(
            "the banned badge",
            &format!(
                "return !!document.querySelector({})",
                json!(format!("{row}.banned"))
            ),
        )
        .await;

    // Within a few seconds the user's tab is back at the sign-in form, and
    // says why.
    user_browser.until_signed_out().await;
    let took = banned_at.elapsed();
    assert!(took < Duration::from_secs(6), "signed out after {took:?}");
    assert_eq!(
        user_browser.text("message").await,
        "Your account is banned."
    );
    assert_eq!(sessions_of(&app.db, user).0, 0, "no live session");
    // Signing in again is refused with a readable message.
    user_browser.fill("signin-username", &user.username).await;
    user_browser.fill("signin-password", &user.password).await;
    user_browser.click("#signin-submit").await;
    user_browser
        .until(
            "the refusal",
            "return document.getElementById('message').classList.contains('error') \
             && /banned/i.test(document.getElementById('message').textContent)",
        )
        .await;

    user_browser.screenshot("").await;
    admin_browser
        .until(
            "the ban in the event log",
            "return /user banned/.test(document.getElementById('events-list').textContent)",
        )
        .await;
    admin_browser.screenshot("admin").await;
    user_browser.close().await;
    admin_browser.close().await;
}

/// A page on another origin: the same loopback address, another port.
async fn spawn_other_site() -> (String, actix_web::dev::ServerHandle) {
    spawn_site("<!doctype html><title>Another site</title><h1>Another site</h1>").await
}

#[actix_web::test]
async fn e2e_the_refresh_cookie_cannot_be_used_from_another_origin() {
    // A long access lifetime: the page itself does not refresh meanwhile, so
    // any rotation would be the other site's doing.
    let mut scene = Scene::new(|s| s.cookie.secure = false).await;
    let browser = scene
        .signed_in_browser("e2e_the_refresh_cookie_cannot_be_used_from_another_origin")
        .await;
    let (app, user) = (&scene.app, &scene.user);
    let (other, other_handle) = spawn_other_site().await;
    let jti = current_jti(&app.db, user);

    // Same site (so a SameSite=Strict cookie is sent), other origin: the
    // preflight for the header is refused, and without the header the
    // cookie is not read.
    browser.client.goto(&other).await.unwrap();
    let attempts = browser
        .client
        .execute_async(
            "const [target, done] = arguments;
             const out = {};
             const post = (init) => fetch(target + '/auth/refresh',
                 { method: 'POST', credentials: 'include', ...init });
             post({ headers: { 'X-Keyward-Client': 'spa' } })
               .then((r) => { out.with_header = r.status; }, () => { out.with_header = 'refused'; })
               .then(() => post({ mode: 'no-cors' }))
               .then((r) => { out.without_header = r.type; }, () => { out.without_header = 'refused'; })
               .then(() => {
                 const p = document.createElement('p');
                 p.textContent = `POST ${target}/auth/refresh with the app's header: ${out.with_header}; `
                   + `as a simple request (no-cors): ${out.without_header}, unreadable.`;
                 document.body.append(p);
                 done(out);
               });",
            vec![json!(app.address)],
        )
        .await
        .unwrap();
    assert_eq!(attempts["with_header"], "refused", "{attempts}");
    assert_eq!(attempts["without_header"], "opaque", "{attempts}");
    assert_eq!(
        current_jti(&app.db, user),
        jti,
        "the session did not rotate"
    );
    browser.screenshot("other-site").await;

    // Back on keyward's own origin the same request works and the page is
    // still signed in.
    browser.open(&app.address).await;
    browser.until_signed_in_as(&user.username).await;
    let own = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/auth/refresh', { method: 'POST', headers: { 'X-Keyward-Client': 'spa' } })
               .then((r) => done(r.status), (e) => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(own, json!(200));
    assert_ne!(current_jti(&app.db, user), jti);

    browser.screenshot("").await;
    browser.close().await;
    drop(other_handle.stop(false));
}

/// The administrators' overview and session names (issue 16).
mod overview;
