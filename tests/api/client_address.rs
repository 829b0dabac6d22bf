//! The client address behind proxies (API.md section 3, "Abuse limits"):
//! `X-Forwarded-For` is read from the right, skipping trusted proxies, and
//! only when the peer itself is trusted, so a client cannot choose the
//! address its limit is counted under, nor the one stored with its session
//! and events.

use serde_json::json;

use crate::support::app::*;
use crate::support::client::*;
use crate::support::db::*;

/// A wrong login sent with this `X-Forwarded-For` header, for a username
/// of its own (so that only the per-address limit can refuse it).
async fn wrong_login_via(app: &TestApp, forwarded: &str) -> Reply {
    let username = format!("nobody-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let req = app
        .client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", forwarded)
        .json(&json!({"username": username, "password": "wrong password"}));
    read(req.send().await.unwrap()).await
}

/// The addresses the failed logins were logged under, in order.
fn failed_login_ips(db: &TestDb) -> Vec<String> {
    query_texts(
        db,
        "SELECT ip AS value FROM events WHERE kind = 'login_failed' ORDER BY id",
    )
}

#[actix_web::test]
async fn a_spoofed_leftmost_entry_buys_no_fresh_budget_and_is_never_stored() {
    // Arrange: behind the default trusted proxy (the loopback peer).
    let app = spawn_app_with(|s| {
        s.server.trust_proxy = true;
        s.rate_limit.per_ip_per_minute = 3;
    })
    .await;
    let user = app.register().await; // counted under 127.0.0.1

    // Act: the attacker writes a new address on the left every time; the
    // proxy appended the real one on the right.
    let req = app
        .client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", "198.51.100.250, 203.0.113.7")
        .json(&json!({"username": user.username, "password": user.password}));
    let signed_in = read(req.send().await.unwrap()).await;
    let mut statuses = Vec::new();
    for i in 0..7 {
        let forged = format!("198.51.100.{i}, 203.0.113.7");
        statuses.push(wrong_login_via(&app, &forged).await.status);
    }

    // Assert: one budget of three for 203.0.113.7, whatever the left says.
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
    assert_eq!(statuses, [401, 401, 429, 429, 429, 429, 429]);
    let stored = query_texts(&app.db, "SELECT ip AS value FROM sessions");
    assert_eq!(stored, ["203.0.113.7"]);
    assert_eq!(failed_login_ips(&app.db), ["203.0.113.7", "203.0.113.7"]);
}

#[actix_web::test]
async fn garbage_entries_end_the_search_at_the_last_trusted_hop() {
    // Arrange: two trusted hops, the loopback peer and a 10/8 proxy.
    let app = spawn_app_with_env(
        &[(
            "KEYWARD__SERVER__TRUSTED_PROXIES",
            "127.0.0.1/32,10.0.0.0/8",
        )],
        |s| {
            s.server.trust_proxy = true;
            s.rate_limit.per_ip_per_minute = 1;
        },
    )
    .await;

    // Act: whatever stands left of an entry that is not an address could
    // have been written by anyone.
    let replies = [
        wrong_login_via(&app, "203.0.113.9, not-an-address, 10.1.2.3").await,
        wrong_login_via(&app, "198.51.100.1, unknown, 10.1.2.3").await,
        wrong_login_via(&app, "198.51.100.2,,10.1.2.3").await,
        wrong_login_via(&app, "198.51.100.3, 999.0.0.1, 10.1.2.3").await,
    ];

    // Assert: all four are the last trusted hop, 10.1.2.3, with one budget.
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 429, 429, 429]);
    replies[1].assert_error(429, "rate_limited");
    assert_eq!(failed_login_ips(&app.db), ["10.1.2.3"]);

    // A header that is garbage through and through leaves the peer.
    wrong_login_via(&app, "<script>")
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(failed_login_ips(&app.db), ["10.1.2.3", "127.0.0.1"]);
}

#[actix_web::test]
async fn ipv6_entries_are_read_from_the_right_like_ipv4_ones() {
    // Arrange: a trusted IPv6 proxy network besides the loopback peer.
    let app = spawn_app_with_env(
        &[(
            "KEYWARD__SERVER__TRUSTED_PROXIES",
            "127.0.0.1/32,2001:db8:ffff::/48",
        )],
        |s| {
            s.server.trust_proxy = true;
            s.rate_limit.per_ip_per_minute = 1;
        },
    )
    .await;

    // Act
    let first = wrong_login_via(&app, "198.51.100.1, 2001:db8:1::1, 2001:db8:ffff::2").await;
    // The same client, with a port and brackets, and a forged left entry.
    let again = wrong_login_via(&app, "198.51.100.2, [2001:db8:1::1]:443").await;
    // An IPv4 client written as IPv6 is that IPv4 client.
    let mapped = wrong_login_via(&app, "2001:db8:1::1, ::ffff:203.0.113.7").await;

    // Assert
    first.assert_error(401, "invalid_credentials");
    again.assert_error(429, "rate_limited");
    mapped.assert_error(401, "invalid_credentials");
    assert_eq!(failed_login_ips(&app.db), ["2001:db8:1::1", "203.0.113.7"]);
}

#[actix_web::test]
async fn an_untrusted_peer_cannot_name_its_client() {
    // Arrange: trust_proxy is on, but the loopback peer is no trusted proxy.
    let app = spawn_app_with_env(&[("KEYWARD__SERVER__TRUSTED_PROXIES", "10.0.0.0/8")], |s| {
        s.server.trust_proxy = true;
        s.rate_limit.per_ip_per_minute = 1;
    })
    .await;

    // Act
    let first = wrong_login_via(&app, "203.0.113.1").await;
    let second = wrong_login_via(&app, "203.0.113.2").await;

    // Assert: both are the peer, with one budget.
    first.assert_error(401, "invalid_credentials");
    second.assert_error(429, "rate_limited");
    assert_eq!(failed_login_ips(&app.db), ["127.0.0.1"]);
}
