//! Rotation: compare-and-swap, the grace window, replay detection, sliding
//! expiry.

use chrono::TimeDelta;
use serde_json::json;

use crate::support::app::*;
use crate::support::client::*;
use crate::support::db::*;
use crate::support::tokens::*;

#[actix_web::test]
async fn refresh_rotates_the_jti_and_keeps_the_session() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let rt0 = pair.refresh_token.as_str();
    let r = app.refresh(rt0).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let rt1 = field(&r.json, "refresh_token");
    assert_ne!(claims(rt0)["jti"], claims(rt1)["jti"]);
    assert_eq!(r.json["session_id"], pair.session_id);
    assert_eq!(r.json["user"]["username"], user.username.as_str());
    let row = app.db.connect();
    drop(row);
    assert_eq!(
        app.get("/api/me", r.json["access_token"].as_str())
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn sixteen_concurrent_refreshes_all_get_the_same_new_token() {
    let app = spawn_app().await;
    let user = app.register().await;
    let mut rt = app.login(&user).await.token_pair().refresh_token;
    for _ in 0..3 {
        let replies = futures_util::future::join_all((0..16).map(|_| app.refresh(&rt))).await;
        let mut tokens = std::collections::HashSet::new();
        for r in &replies {
            assert_eq!(r.status, 200, "{}", r.text);
            tokens.insert(field(&r.json, "refresh_token").to_string());
        }
        assert_eq!(tokens.len(), 1, "all 16 must hold the same refresh token");
        let next = tokens.into_iter().next().unwrap();
        assert_ne!(next, rt);
        rt = next;
    }
    assert_eq!(app.refresh(&rt).await.status, 200);
}

#[actix_web::test]
async fn within_the_grace_window_the_previous_token_gets_the_current_one() {
    let app = spawn_app().await;
    let user = app.register().await;
    let rt0 = app.login(&user).await.token_pair().refresh_token;
    let first = app.refresh(&rt0).await;
    app.clock.advance(TimeDelta::seconds(9));
    let again = app.refresh(&rt0).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["refresh_token"], first.json["refresh_token"]);
    assert_ne!(again.json["access_token"], first.json["access_token"]);
    assert_eq!(
        app.get("/api/me", again.json["access_token"].as_str())
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn replayed_refresh_token_revokes_the_session() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let rt0 = pair.refresh_token.clone();
    let first = app.refresh(&rt0).await;
    let rt1 = field(&first.json, "refresh_token").to_string();
    let at1 = field(&first.json, "access_token").to_string();
    app.clock.advance(TimeDelta::seconds(11));
    app.refresh(&rt0).await.assert_error(401, "token_reused");
    app.refresh(&rt1).await.assert_error(401, "session_revoked");
    app.get("/api/me", Some(&at1))
        .await
        .assert_error(401, "session_revoked");
    let mut conn = app.db.connect();
    use diesel::prelude::*;
    use keyward::db::schema::sessions;
    let reason: Option<String> = sessions::table
        .select(sessions::revoked_reason)
        .first(&mut conn)
        .unwrap();
    assert_eq!(reason.as_deref(), Some("reuse_detected"));
}

#[actix_web::test]
async fn a_token_two_rotations_old_is_a_replay_even_inside_the_grace() {
    let app = spawn_app().await;
    let user = app.register().await;
    let rt0 = app.login(&user).await.token_pair().refresh_token;
    let rt1 = field(&app.refresh(&rt0).await.json, "refresh_token").to_string();
    assert_eq!(app.refresh(&rt1).await.status, 200);
    app.refresh(&rt0).await.assert_error(401, "token_reused");
}

#[actix_web::test]
async fn expiry_slides_but_never_past_the_session_maximum() {
    let app = spawn_app_with(|s| {
        s.auth.refresh_ttl_seconds = 100;
        s.auth.session_max_seconds = 150;
    })
    .await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    assert_eq!(pair.refresh_expires_in, 100);
    app.clock.advance(TimeDelta::seconds(80));
    let r = app.refresh(pair.refresh_token.as_str()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Rotated at about 80 s: min(80 + 100, 0 + 150) = 150, capped by the
    // session maximum. Counted from the tokens' own whole-second times, as a
    // second boundary may pass between the requests.
    let created = claims(pair.refresh_token.as_str())["iat"].as_i64().unwrap();
    let rotated = claims(field(&r.json, "refresh_token"));
    let rotated_at = rotated["iat"].as_i64().unwrap();
    assert!((80..=81).contains(&(rotated_at - created)));
    assert_eq!(rotated["exp"].as_i64().unwrap(), created + 150);
    assert_eq!(r.json["refresh_expires_in"], created + 150 - rotated_at);
    app.clock.advance(TimeDelta::seconds(75));
    let r = app.refresh(field(&r.json, "refresh_token")).await;
    assert_eq!(r.status, 401, "past the session maximum: {}", r.text);
}

#[actix_web::test]
async fn an_unknown_session_is_an_invalid_token() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    app.db.exec("DELETE FROM sessions");
    app.refresh(pair.refresh_token.as_str())
        .await
        .assert_error(401, "invalid_token");
    app.post_json("/auth/refresh", &json!({}), None)
        .await
        .assert_error(401, "invalid_token");
}

async fn rotate(app: &TestApp, rt: &str) -> String {
    let r = app.refresh(rt).await;
    assert_eq!(r.status, 200, "{}", r.text);
    field(&r.json, "refresh_token").to_string()
}

fn refreshed_events(db: &TestDb) -> i64 {
    use diesel::prelude::*;
    use keyward::db::schema::events;
    events::table
        .filter(events::kind.eq("refreshed"))
        .count()
        .get_result(&mut db.connect())
        .unwrap()
}

#[actix_web::test]
async fn every_rotation_is_logged_as_a_refreshed_event() {
    let app = spawn_app().await;
    let user = app.register().await;
    let mut rt = app.login(&user).await.token_pair().refresh_token;
    let mut previous = rt.clone();
    for _ in 0..3 {
        previous = rt.clone();
        rt = rotate(&app, &rt).await;
    }
    assert_eq!(refreshed_events(&app.db), 3);
    // A grace answer hands back the current token: nothing rotated, nothing
    // logged.
    assert_eq!(rotate(&app, &previous).await, rt);
    assert_eq!(refreshed_events(&app.db), 3);
}
