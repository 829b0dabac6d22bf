//! The browser client module `/keyward.js` (API.md section 4): what is
//! served, and the module at work in headless Chromium on a test page of
//! its own (`support/client_page.html`, driven by `support/client_page.rs`;
//! not the bundled app), which imports it from keyward. The page is put on
//! keyward's own origin (written into a keyward document, as an app served
//! behind the same host would be), or served from another origin listed in
//! `cors.allowed_origins`. Screenshots of the page go to `target/e2e/`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::app::*;
use crate::support::browser::{one_at_a_time, spawn_site, Driver, Scene};
use crate::support::client::*;
use crate::support::client_page::{past_access_expiry, refresh_requests, rotations, PAGE};
use crate::support::db::*;

#[actix_web::test]
async fn the_module_and_its_types_are_served_and_the_app_is_built_on_it() {
    let app = spawn_app().await;

    let js = app.get("/keyward.js", None).await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(js.header("x-content-type-options"), Some("nosniff"));
    assert!(js.text.contains("export function createClient("));
    assert!(
        !js.text
            .lines()
            .any(|l| l.trim_start().starts_with("import ")),
        "no dependencies"
    );
    for word in [
        "navigator.locks",
        "BroadcastChannel",
        "X-Keyward-Client",
        "/auth/refresh",
    ] {
        assert!(js.text.contains(word), "{word}");
    }
    let types = app.get("/keyward.d.ts", None).await;
    assert_eq!(types.status, 200);
    assert!(types
        .header("content-type")
        .unwrap()
        .starts_with("application/typescript"));
    for word in [
        "export function createClient",
        "onChange",
        "SignOutReason",
        "'another_tab'",
    ] {
        assert!(types.text.contains(word), "{word}");
    }

    // The app imports the module and keeps none of its logic.
    let app_js = app.get("/app.js", None).await.text;
    let import = app_js
        .lines()
        .find(|l| l.starts_with("import "))
        .unwrap_or_default();
    assert!(
        import.contains("createClient") && import.ends_with("from '/keyward.js';"),
        "{import}"
    );
    for word in [
        "navigator.locks",
        "BroadcastChannel",
        "/auth/refresh",
        "/auth/logout",
        "/auth/login",
    ] {
        assert!(!app_js.contains(word), "app.js still has {word}");
    }
}

#[actix_web::test]
async fn module_signs_in_and_kw_fetch_renews_an_expired_token_silently() {
    let mut scene = Scene::new(|_| {}).await;
    let (app, user) = (&scene.app, scene.user.clone());
    let page = scene
        .driver
        .browser("module_signs_in_and_renews_silently")
        .await;
    page.open_page_on(&app.address, "").await;
    assert_eq!(
        page.js("return kw.user").await,
        Value::Null,
        "no sign-in yet"
    );

    page.sign_in_with_module(&user).await;
    let signed_in = page.js("return window.changes").await;
    assert_eq!(signed_in.as_array().unwrap().len(), 1, "{signed_in}");
    assert_eq!(signed_in[0]["type"], "signed_in");
    assert_eq!(signed_in[0]["user"]["username"], json!(user.username));
    assert_eq!(
        page.js("return document.cookie").await,
        json!(""),
        "the refresh token is HttpOnly"
    );
    let me = page.kw_fetch("/api/me").await;
    assert_eq!(me["status"], 200, "{me}");
    let session = page.js("return kw.sessionId").await;
    assert_eq!(me["body"]["session_id"], session);

    // The server's clock passes the access token's expiry; the page's does not.
    past_access_expiry(app);
    page.clear_requests().await;
    let before = refresh_requests(app).await;
    let me = page.kw_fetch("/api/me").await;

    assert_eq!(me["status"], 200, "{me}");
    assert_eq!(me["body"]["username"], json!(user.username));
    assert_eq!(
        page.requests().await,
        [
            ("/api/me".to_string(), 401),
            ("/auth/refresh".to_string(), 200),
            ("/api/me".to_string(), 200)
        ]
    );
    assert_eq!(refresh_requests(app).await - before, 1);
    assert_eq!(
        page.js("return kw.sessionId").await,
        session,
        "the same session"
    );
    let last = page
        .js("return window.changes[window.changes.length - 1]")
        .await;
    assert_eq!(last["type"], "renewed", "{last}");
    assert_eq!(rotations(&app.db, &user), 1);

    page.screenshot("").await;
    page.close().await;
}

#[actix_web::test]
async fn five_tabs_opening_at_the_moment_of_expiry_make_one_refresh() {
    let mut scene = Scene::new(|_| {}).await;
    let (app, user) = (&scene.app, scene.user.clone());
    let browser = scene.driver.browser("module_five_tabs_one_refresh").await;
    browser.open_page_on(&app.address, "").await;
    browser.sign_in_with_module(&user).await;
    let first = browser.client.window().await.unwrap();
    // This tab leaves: only the cookie remains, and the access token it
    // held is past its expiry at the server.
    browser.client.goto(&app.url("/health")).await.unwrap();
    past_access_expiry(app);
    let before = refresh_requests(app).await;

    // Five tabs open and start their clients at one instant: none has a
    // token, none finds another tab to offer one, all want the cookie's.
    let mut tabs = Vec::new();
    for _ in 0..5 {
        let tab = browser.client.new_window(false).await.unwrap().handle;
        browser.client.switch_to_window(tab.clone()).await.unwrap();
        browser.open_page_on(&app.address, "wait&then=me").await;
        tabs.push(tab);
    }
    browser.client.switch_to_window(first).await.unwrap();
    browser
        .js("new BroadcastChannel('test-start').postMessage('go'); return true")
        .await;

    let mut refreshes_seen = 0;
    for tab in &tabs {
        browser.client.switch_to_window(tab.clone()).await.unwrap();
        browser
            .until(
                "the tab's first kw.fetch",
                "return window.firstFetch !== undefined",
            )
            .await;
        assert_eq!(browser.js("return window.firstFetch").await, json!(200));
        assert_eq!(
            browser.js("return kw.user && kw.user.username").await,
            json!(user.username)
        );
        refreshes_seen += browser
            .requests()
            .await
            .iter()
            .filter(|(url, _)| url == "/auth/refresh")
            .count();
    }
    let counted = refresh_requests(app).await - before;
    println!("five tabs at the moment of expiry: {counted} refresh request(s) at the server");
    assert_eq!(counted, 1, "refresh requests at the server");
    assert_eq!(refreshes_seen, 1, "refresh requests the tabs sent");
    assert_eq!(rotations(&app.db, &user), 1);

    browser
        .client
        .switch_to_window(tabs[4].clone())
        .await
        .unwrap();
    browser.screenshot("").await;
    browser.close().await;
}

#[actix_web::test]
async fn a_logout_in_one_tab_signs_out_the_others_with_reason_another_tab() {
    let mut scene = Scene::new(|_| {}).await;
    let (app, user) = (&scene.app, scene.user.clone());
    let browser = scene.driver.browser("module_logout_another_tab").await;
    browser.open_page_on(&app.address, "").await;
    browser.sign_in_with_module(&user).await;
    let first = browser.client.window().await.unwrap();
    let mut others = Vec::new();
    for _ in 0..2 {
        let tab = browser.client.new_window(false).await.unwrap().handle;
        browser.client.switch_to_window(tab.clone()).await.unwrap();
        browser.open_page_on(&app.address, "").await;
        assert_eq!(
            browser.js("return kw.user && kw.user.username").await,
            json!(user.username)
        );
        others.push(tab);
    }

    browser
        .client
        .switch_to_window(first.clone())
        .await
        .unwrap();
    browser.call("await kw.logout()").await;
    browser.until_signed_out_because("logout").await;

    for tab in &others {
        browser.client.switch_to_window(tab.clone()).await.unwrap();
        browser.until_signed_out_because("another_tab").await;
    }
    let live = query_i64(
        &app.db,
        &format!(
            "SELECT count(*) FROM sessions WHERE user_id = '{}' AND revoked_at IS NULL",
            user.id
        ),
    );
    assert_eq!(live, 0);
    // The cookie went with it: a new tab stays signed out.
    let tab = browser.client.new_window(false).await.unwrap().handle;
    browser.client.switch_to_window(tab).await.unwrap();
    browser.open_page_on(&app.address, "").await;
    assert_eq!(browser.js("return kw.user").await, Value::Null);

    browser
        .client
        .switch_to_window(others[0].clone())
        .await
        .unwrap();
    browser.screenshot("").await;
    browser.close().await;
}

#[actix_web::test]
async fn an_admin_ban_signs_the_tab_out_with_reason_banned() {
    let mut scene = Scene::new(|_| {}).await;
    let (app, user) = (&scene.app, scene.user.clone());
    let page = scene.driver.browser("module_ban_banned").await;
    page.open_page_on(&app.address, "check=500").await;
    page.sign_in_with_module(&user).await;
    let (_, admin_token) = app.admin(&app.db).await;

    let r = app
        .post_json(
            &format!("/admin/users/{}/ban", user.id),
            &json!({}),
            Some(&admin_token),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let banned_at = Instant::now();

    page.until_signed_out_because("banned").await;
    assert!(
        banned_at.elapsed() < Duration::from_secs(5),
        "{:?}",
        banned_at.elapsed()
    );
    let refused = page
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             kw.login(arguments[0], arguments[1]).then(() => done('signed in'), (e) => done(e.code));",
            vec![json!(user.username), json!(user.password)],
        )
        .await;
    assert_eq!(refused.unwrap(), json!("user_banned"));

    page.screenshot("").await;
    page.close().await;
}

#[actix_web::test]
async fn a_refresh_token_replayed_elsewhere_signs_the_tab_out_with_reason_reuse() {
    let mut scene = Scene::new(|_| {}).await;
    let (app, user) = (&scene.app, scene.user.clone());
    let page = scene.driver.browser("module_replayed_token_reuse").await;
    page.open_page_on(&app.address, "").await;
    page.sign_in_with_module(&user).await;
    let tab = page.client.window().await.unwrap();

    // Someone steals the refresh cookie (read in a window on its path) and
    // uses it elsewhere.
    let thief = page.client.new_window(false).await.unwrap().handle;
    page.client.switch_to_window(thief.clone()).await.unwrap();
    page.client.goto(&app.url("/auth/refresh")).await.unwrap();
    let stolen = page
        .client
        .get_named_cookie("keyward_refresh")
        .await
        .unwrap();
    page.client.close_window().await.unwrap();
    page.client.switch_to_window(tab).await.unwrap();
    let r = app.refresh(stolen.value()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let thiefs = field(&r.json, "refresh_token").to_string();

    // Past the grace window and the access token: the tab's next request
    // refreshes with the cookie, now a replayed token.
    past_access_expiry(app);
    let me = page.kw_fetch("/api/me").await;
    assert_eq!(me["status"], 401, "{me}");
    page.until_signed_out_because("reuse").await;
    app.refresh(&thiefs)
        .await
        .assert_error(401, "session_revoked");

    page.screenshot("").await;
    page.close().await;
}

#[actix_web::test]
async fn a_page_on_a_listed_origin_uses_the_module_cross_origin() {
    let turn = one_at_a_time().await;
    // A page of another app on another origin (another port of the same
    // address: the same site, so the `SameSite=Strict` cookie still goes).
    let (site, site_handle) = spawn_site(PAGE).await;
    let allowed = site.clone();
    let app = spawn_app_with(move |s| s.cors.allowed_origins = vec![allowed]).await;
    let user = app.register().await;
    let mut driver = Driver::start().await;
    let page = driver.browser("module_cross_origin").await;
    let url = format!("{site}/?base={}", app.address);
    page.open_page_at(&url).await;
    assert_eq!(page.js("return location.origin").await, json!(site));

    page.sign_in_with_module(&user).await;
    let me = page.kw_fetch(&format!("{}/api/me", app.address)).await;
    assert_eq!(me["status"], 200, "{me}");
    past_access_expiry(&app);
    page.clear_requests().await;
    let me = page.kw_fetch(&format!("{}/api/me", app.address)).await;
    assert_eq!(me["status"], 200, "{me}");
    let statuses: Vec<u16> = page.requests().await.iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, [401, 200, 200], "refused, refreshed, retried");

    // A reload finds the sign-in through the cookie; a logout ends it.
    page.open_page_at(&url).await;
    assert_eq!(
        page.js("return kw.user && kw.user.username").await,
        json!(user.username)
    );
    page.screenshot("").await;
    page.call("await kw.logout({ scope: 'all' })").await;
    page.until_signed_out_because("logout").await;
    page.open_page_at(&url).await;
    assert_eq!(page.js("return kw.user").await, Value::Null);

    page.close().await;
    drop(site_handle.stop(false));
    drop(driver);
    drop(turn);
}
