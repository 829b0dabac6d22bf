//! The administrators' overview at the top of the admin panel, and renaming
//! a session, in the real browser, at desktop and at phone width.

use chrono::{TimeDelta, Utc};
use fantoccini::Locator;
use serde_json::json;

use super::*;

/// Sign-ins, failed sign-ins, reuse detections and revocations spread over
/// the last hours, straight into the event log.
fn seed_events(db: &TestDb) {
    let now = Utc::now();
    let mut values = Vec::new();
    for hours_ago in 0..24i64 {
        let at = (now - TimeDelta::hours(hours_ago)).to_rfc3339();
        for _ in 0..(hours_ago % 5 + 1) {
            values.push(format!("('{at}', 'login_succeeded', '{{}}')"));
        }
        if hours_ago % 3 == 0 {
            values.push(format!("('{at}', 'login_failed', '{{}}')"));
        }
        if hours_ago == 7 {
            values.push(format!("('{at}', 'reuse_detected', '{{}}')"));
            values.push(format!("('{at}', 'logout', '{{\"revoked\": 3}}')"));
        }
    }
    db.exec(&format!(
        "INSERT INTO events (at, kind, detail) VALUES {}",
        values.join(", ")
    ));
}

#[actix_web::test]
async fn e2e_the_admin_overview_draws_the_last_day_at_desktop_and_phone_width() {
    const TEST: &str = "e2e_the_admin_overview";
    let mut scene = Scene::new(|s| s.cookie.secure = false).await;
    let app = &scene.app;
    let admin = app.register().await;
    app.make_admin(&app.db, &admin);
    seed_events(&app.db);
    let browser = scene.driver.browser(TEST).await;
    browser.open(&app.address).await;
    browser.sign_in(&admin).await;

    // The overview: three counts, four charts of 24 bars, a table of 24 rows.
    browser
        .until(
            "the overview",
            "return document.getElementById('overview-body').dataset.loaded === 'true'",
        )
        .await;
    // The scene's user and the administrator; only the administrator is
    // signed in.
    assert_eq!(browser.text("overview-users").await, "2users");
    assert_eq!(browser.text("overview-banned").await, "0banned users");
    assert_eq!(browser.text("overview-live").await, "1live sessions");
    let shape = browser
        .js(
            "const charts = [...document.querySelectorAll('#overview svg.chart')]; \
             return { charts: charts.length, \
                      bars: charts.map((c) => c.querySelectorAll('rect.bar').length), \
                      labelled: charts.every((c) => c.getAttribute('role') === 'img' \
                          && document.getElementById(c.getAttribute('aria-labelledby'))), \
                      rows: document.querySelectorAll('#overview .overview-table tbody tr').length, \
                      reuse: document.querySelector('[data-series=reuse_detected] .chart-total').textContent, \
                      revocations: document.querySelector('[data-series=revocations] .chart-total').textContent, \
                      summary: document.querySelector('#overview-chart-logins title').textContent }",
        )
        .await;
    assert_eq!(shape["charts"], 4, "{shape}");
    assert_eq!(shape["bars"], json!([24, 24, 24, 24]), "{shape}");
    assert_eq!(shape["labelled"], true, "{shape}");
    assert_eq!(shape["rows"], 24, "{shape}");
    assert_eq!(shape["reuse"], "1", "{shape}");
    assert_eq!(shape["revocations"], "4", "{shape}");
    assert!(
        shape["summary"]
            .as_str()
            .unwrap()
            .starts_with("Sign-ins: 71 in the last 24 hours"),
        "the chart's text alternative sums the sign-ins (70 seeded, 1 real): {shape}"
    );
    browser
        .js("document.getElementById('overview').scrollIntoView(); return true")
        .await;
    browser.screenshot("desktop").await;

    // At phone width nothing spills sideways, and the charts still fit.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser
        .until(
            "the overview fitting a phone's width",
            "const o = document.getElementById('overview').getBoundingClientRect(); \
             return document.documentElement.scrollWidth <= window.innerWidth \
                 && o.right <= window.innerWidth && o.width > 0",
        )
        .await;
    browser
        .js("document.getElementById('overview').scrollIntoView(); return true")
        .await;
    browser.screenshot("phone").await;
    browser.close().await;
}

#[actix_web::test]
async fn e2e_a_user_renames_this_browsers_session() {
    const TEST: &str = "e2e_a_user_renames_this_browsers_session";
    let mut scene = Scene::new(|s| s.cookie.secure = false).await;
    let browser = scene.signed_in_browser(TEST).await;
    browser
        .until(
            "the session named after the browser",
            "const t = document.querySelector('#sessions-list .session.current .row-title strong'); \
             return t && t.textContent.includes('on Linux')",
        )
        .await;
    browser
        .click("#sessions-list .session.current button.rename-session")
        .await;
    browser
        .until(
            "the rename form",
            "return !!document.querySelector('form.rename-form input')",
        )
        .await;
    let input = browser
        .client
        .find(Locator::Css("form.rename-form input"))
        .await
        .unwrap();
    input.clear().await.unwrap();
    input.send_keys("Work laptop").await.unwrap();
    browser.click("form.rename-form button[type=submit]").await;
    browser
        .until(
            "the new name",
            "const t = document.querySelector('#sessions-list .session.current .row-title strong'); \
             return t && t.textContent === 'Work laptop'",
        )
        .await;
    let named = query_texts(&scene.app.db, "SELECT name AS value FROM sessions");
    assert_eq!(named, ["Work laptop"]);
    browser.finish().await;
}
