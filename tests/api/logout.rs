//! Logout and its scopes; revocation reaching access tokens.

use std::time::Duration;

use serde_json::json;

use crate::support::app::*;
use crate::support::client::*;

#[actix_web::test]
async fn logout_revokes_the_session_and_is_idempotent() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let at = pair.access_token.as_str();
    let r = app.post_json("/auth/logout", &json!({}), Some(at)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.refresh(pair.refresh_token.as_str())
        .await
        .assert_error(401, "session_revoked");
    app.get("/api/me", Some(at))
        .await
        .assert_error(401, "session_revoked");
    // A bodiless POST with the same token: still 204.
    let r = read(
        app.client
            .post(app.url("/auth/logout"))
            .bearer_auth(at)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

#[actix_web::test]
async fn logout_by_refresh_token_in_the_body() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let rt = pair.refresh_token.as_str();
    let r = app
        .post_form("/auth/logout", &[("refresh_token", rt)])
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.refresh(rt).await.assert_error(401, "session_revoked");
    app.post_json("/auth/logout", &json!({}), None)
        .await
        .assert_error(401, "invalid_token");
}

#[actix_web::test]
async fn logout_scopes_all_and_others() {
    let app = spawn_app().await;
    let user = app.register().await;
    let a = app.login(&user).await.token_pair();
    let b = app.login(&user).await.token_pair();
    let c = app.login(&user).await.token_pair();
    let r = app
        .post_json(
            "/auth/logout?scope=others",
            &json!({}),
            Some(&a.access_token),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(app.get("/api/me", Some(&a.access_token)).await.status, 200);
    for gone in [&b, &c] {
        app.get("/api/me", Some(&gone.access_token))
            .await
            .assert_error(401, "session_revoked");
    }
    let d = app.login(&user).await.token_pair();
    let r = app
        .post_json("/auth/logout?scope=all", &json!({}), Some(&d.access_token))
        .await;
    assert_eq!(r.status, 204);
    for gone in [&a, &d] {
        app.refresh(gone.refresh_token.as_str())
            .await
            .assert_error(401, "session_revoked");
    }
    app.post_json(
        "/auth/logout?scope=galaxy",
        &json!({}),
        Some(&a.access_token),
    )
    .await
    .assert_error(400, "invalid_request");
}

#[actix_web::test]
async fn revocation_reaches_another_instance_within_a_second() {
    let a = spawn_app().await;
    let b = spawn_on(a.settings.clone(), keyward::clock::Clock::system()).await;
    let ready = eventually(Duration::from_secs(5), || async {
        b.get("/ready", None).await.status == 200
    })
    .await;
    assert!(ready.is_some());
    let user = a.register().await;
    let pair = a.login(&user).await.token_pair();
    let at = pair.access_token.as_str();
    assert_eq!(b.get("/api/me", Some(at)).await.status, 200);
    let r = a.post_json("/auth/logout", &json!({}), Some(at)).await;
    assert_eq!(r.status, 204);
    let took = eventually(Duration::from_secs(1), || async {
        b.get("/api/me", Some(at)).await.status == 401
    })
    .await;
    assert!(
        took.is_some(),
        "instance B still accepts the token after 1 s"
    );
    b.get("/api/me", Some(at))
        .await
        .assert_error(401, "session_revoked");
}

#[actix_web::test]
async fn a_stale_token_can_end_only_its_own_session() {
    let app = spawn_app().await;
    let user = app.register().await;
    let other = app.login(&user).await.token_pair();
    let pair = app.login(&user).await.token_pair();
    let rt0 = pair.refresh_token.clone();
    let rotated = app.refresh(&rt0).await;
    assert_eq!(rotated.status, 200);
    app.clock.advance(chrono::TimeDelta::seconds(11));
    // rt0 was rotated away more than the grace window ago: it may end its
    // own session, not the user's others.
    let r = app
        .post_json(
            "/auth/logout?scope=all",
            &json!({"refresh_token": rt0}),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.get("/api/me", Some(&other.access_token)).await.status,
        200,
        "the other session survives"
    );
    // A revoked session's access token cannot end the others either.
    let r = app
        .post_json(
            "/auth/logout?scope=others",
            &json!({}),
            Some(&pair.access_token),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        app.get("/api/me", Some(&other.access_token)).await.status,
        200
    );
}
