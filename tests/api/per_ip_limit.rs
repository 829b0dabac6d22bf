//! The per-address limit on sign-ins and registrations (API.md section 3,
//! "Abuse limits"): its budget and `Retry-After`, `X-Forwarded-For` only
//! behind a trusted proxy, and no limit when rate limiting is off.

use chrono::TimeDelta;
use serde_json::json;

use crate::support::app::*;
use crate::support::client::*;

#[actix_web::test]
async fn the_per_ip_limit_engages_with_retry_after_and_refills() {
    let app = spawn_app_with(|s| s.rate_limit.per_ip_per_minute = 3).await;
    let wrong = json!({"username": "nobody-here", "password": "wrong password"});
    // Login and register share the address's budget of three.
    app.post_json("/auth/login", &wrong, None)
        .await
        .assert_error(401, "invalid_credentials");
    app.post_json("/auth/register", &json!({"username": "x"}), None)
        .await
        .assert_error(400, "invalid_request");
    app.post_json("/login", &wrong, None)
        .await
        .assert_error(401, "invalid_credentials");

    let r = app.post_json("/auth/login", &wrong, None).await;
    r.assert_error(429, "rate_limited");
    // One attempt comes back every 60 / 3 = 20 seconds.
    assert_eq!(r.header("retry-after"), Some("20"));
    let r = app
        .post_json(
            "/auth/register",
            &json!({"username": "fresh_user", "password": "long enough"}),
            None,
        )
        .await;
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    // Other routes are not limited.
    assert_eq!(app.get("/health", None).await.status, 200);

    app.clock.advance(TimeDelta::seconds(20));
    app.post_json("/auth/login", &wrong, None)
        .await
        .assert_error(401, "invalid_credentials");
    app.post_json("/auth/login", &wrong, None)
        .await
        .assert_error(429, "rate_limited");
}

#[actix_web::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let post = |app: &TestApp, forwarded: &'static str| {
        let req = app
            .client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"username": "nobody-here", "password": "wrong password"}));
        async move { read(req.send().await.unwrap()).await }
    };
    // Not trusted: every forwarded address is the one peer.
    let direct = spawn_app_with(|s| s.rate_limit.per_ip_per_minute = 1).await;
    assert_eq!(post(&direct, "192.0.2.1").await.status, 401);
    post(&direct, "192.0.2.2")
        .await
        .assert_error(429, "rate_limited");

    // Trusted: each client has its own budget. (The header is read from
    // the right, skipping trusted proxies: here a second hop on loopback.)
    let proxied = spawn_app_with(|s| {
        s.rate_limit.per_ip_per_minute = 1;
        s.server.trust_proxy = true;
    })
    .await;
    assert_eq!(post(&proxied, "192.0.2.1, 127.0.0.1").await.status, 401);
    assert_eq!(post(&proxied, "192.0.2.2").await.status, 401);
    post(&proxied, "192.0.2.1")
        .await
        .assert_error(429, "rate_limited");
}

#[actix_web::test]
async fn no_per_ip_limit_when_rate_limiting_is_disabled() {
    let app = spawn_app_with(|s| {
        s.rate_limit.enabled = false;
        s.rate_limit.per_ip_per_minute = 1;
    })
    .await;
    let wrong = json!({"username": "nobody-here", "password": "wrong password"});
    for _ in 0..5 {
        app.post_json("/auth/login", &wrong, None)
            .await
            .assert_error(401, "invalid_credentials");
    }
}
