//! RFC 7662 introspection (API.md section 7): a live access token's claims,
//! and `{"active": false}` with nothing else for every other token state.

use chrono::TimeDelta;
use serde_json::json;

use crate::support::app::*;
use crate::support::client::*;
use crate::support::proxy::{pg_address, through_proxy, Proxy};
use crate::support::services::*;
use crate::support::tokens::*;

struct Scene {
    app: Harness,
    service: Service,
    user: User,
    pair: TokenPair,
}

async fn scene() -> Scene {
    let app = spawn_app().await;
    let service = app.create_service();
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    Scene {
        app,
        service,
        user,
        pair,
    }
}

#[track_caller]
fn assert_inactive(r: &Reply, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    assert_eq!(r.json, json!({"active": false}), "{what}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
}

#[actix_web::test]
async fn a_live_access_token_is_active_with_its_claims() {
    let Scene {
        app,
        service,
        user,
        pair,
    } = scene().await;
    let at = &pair.access_token;

    let r = app.introspect(&service, at).await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let claims = claims(at);
    let b = &r.json;
    assert_eq!(b["active"], true);
    assert_eq!(b["token_type"], "access_token");
    for key in [
        "sub",
        "sid",
        "username",
        "name",
        "admin",
        "iss",
        "aud",
        "iat",
        "exp",
        "auth_time",
        "jti",
    ] {
        assert_eq!(b[key], claims[key], "{key}");
    }
    assert_eq!(b["sub"], user.id.as_str());
    assert_eq!(b["sid"], pair.session_id);
    assert_eq!(b["username"], user.username.as_str());
    assert_eq!(b["admin"], false);
    assert!(b["auth_time"].as_i64().unwrap() > 0, "{}", r.text);
    // The hint is ignored, whatever it says.
    let hinted = app
        .post_form(
            "/oauth/introspect",
            &[
                ("token", at),
                ("token_type_hint", "refresh_token"),
                ("client_id", &service.client_id),
                ("client_secret", &service.client_secret),
            ],
        )
        .await;
    assert_eq!(hinted.json, r.json);
}

#[actix_web::test]
async fn an_expired_access_token_is_inactive_past_the_leeway() {
    let Scene {
        app, service, pair, ..
    } = scene().await;
    let at = &pair.access_token;
    let ttl = app.settings.auth.access_ttl_seconds;
    let leeway = app.settings.auth.leeway_seconds;

    // Inside the leeway (two seconds to spare for the real clock).
    app.clock.advance(TimeDelta::seconds(ttl + leeway - 2));
    assert_eq!(app.introspect(&service, at).await.json["active"], true);

    app.clock.advance(TimeDelta::seconds(3));
    assert_inactive(&app.introspect(&service, at).await, "expired");
}

#[actix_web::test]
async fn a_logged_out_sessions_access_token_is_inactive() {
    let Scene {
        app, service, pair, ..
    } = scene().await;
    let at = &pair.access_token;
    let r = app.client.post(app.url("/auth/logout")).bearer_auth(at);
    assert_eq!(r.send().await.unwrap().status(), 204);

    assert_inactive(&app.introspect(&service, at).await, "logged out");
}

#[actix_web::test]
async fn a_banned_users_access_token_is_inactive() {
    let Scene {
        app,
        service,
        user,
        pair,
    } = scene().await;
    let (_, admin_at) = app.admin(&app.db).await;
    let banned = app
        .post_json(
            &format!("/admin/users/{}/ban", user.id),
            &json!({}),
            Some(&admin_at),
        )
        .await;
    assert_eq!(banned.status, 204, "{}", banned.text);

    let r = app.introspect(&service, &pair.access_token).await;

    assert_inactive(&r, "banned");
}

#[actix_web::test]
async fn anything_but_an_access_token_of_this_keyward_is_inactive() {
    let Scene {
        app, service, pair, ..
    } = scene().await;
    let at = &pair.access_token;
    let now = app.clock.now().timestamp();
    let mut foreign = app.state.tokens.verify_access(at, now).unwrap();
    foreign.iss = "https://elsewhere.example".into();
    let other_issuer = app.state.tokens.sign_access(&foreign).unwrap();
    foreign.iss = app.settings.auth.issuer.clone();
    foreign.aud = "another-audience".into();
    let other_audience = app.state.tokens.sign_access(&foreign).unwrap();
    let elsewhere = spawn_app().await;
    let other_keyward = elsewhere
        .login(&elsewhere.register().await)
        .await
        .token_pair()
        .access_token;
    let (h, p, s) = {
        let mut parts = at.split('.');
        (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        )
    };
    let bad_signature = format!("{h}.{p}.{}", s.chars().rev().collect::<String>());
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{p}.");
    let too_long = format!("{at}{}", "A".repeat(5000));

    for (what, token) in [
        ("a refresh token", pair.refresh_token.as_str()),
        ("another issuer's token", &other_issuer),
        ("another audience's token", &other_audience),
        ("another keyward's token", &other_keyward),
        ("a bad signature", &bad_signature),
        ("alg none", &unsigned),
        ("garbage", "garbage"),
        ("empty", ""),
        ("too long", &too_long),
    ] {
        assert_inactive(&app.introspect(&service, token).await, what);
    }
    // The live token stays active throughout.
    assert_eq!(app.introspect(&service, at).await.json["active"], true);
}

#[actix_web::test]
async fn a_request_without_a_token_is_a_bad_request() {
    let Scene { app, service, .. } = scene().await;

    let r = app
        .post_form(
            "/oauth/introspect",
            &[
                ("client_id", &service.client_id),
                ("client_secret", &service.client_secret),
            ],
        )
        .await;

    let message = r.assert_error(400, "invalid_request");
    assert!(message.contains("token"), "{message}");
}

/// Real time is the subject here (the staleness bound), so this test waits.
#[actix_web::test]
async fn introspection_needs_no_database_until_the_set_is_stale() {
    // Arrange: the database behind a proxy that the test cuts.
    let proxy = Proxy::start(pg_address());
    let app = spawn_app_with(|s| {
        through_proxy(s, &proxy);
        s.revocation.poll_seconds = 1;
        s.revocation.max_staleness_seconds = 3;
    })
    .await;
    let service = app.create_service();
    let pair = app.login(&app.register().await).await.token_pair();
    let at = &pair.access_token;

    // Act
    proxy.cut();

    // Assert: credentials and tokens are checked from memory alone...
    let r = app.introspect(&service, at).await;
    assert_eq!(r.json["active"], true, "{}", r.text);
    assert_inactive(&app.introspect(&service, "garbage").await, "garbage");
    // ...until the set cannot be confirmed current: then neither answer.
    let stale = eventually(std::time::Duration::from_secs(6), || async {
        app.introspect(&service, at).await.status == 503
    })
    .await;
    assert!(stale.is_some(), "a stale set kept answering");
    let r = app.introspect(&service, at).await;
    r.assert_error(503, "unavailable");
    assert!(r.header("retry-after").is_some());
    proxy.restore();
    let back = eventually(std::time::Duration::from_secs(5), || async {
        app.introspect(&service, at).await.json["active"] == true
    })
    .await;
    assert!(back.is_some(), "introspection never recovered");
}
