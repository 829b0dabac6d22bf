//! The session cap (`auth.max_sessions_per_user`) and session names
//! (`PATCH /auth/sessions/{id}`).

use std::sync::Arc;

use chrono::TimeDelta;
use serde_json::{json, Value};

use crate::support::app::*;
use crate::support::client::*;
use crate::support::db::*;

fn live_sessions(db: &TestDb, user: &User) -> i64 {
    query_i64(
        db,
        &format!(
            "SELECT count(*) FROM sessions WHERE user_id = '{}' \
             AND revoked_at IS NULL AND expires_at > now()",
            user.id
        ),
    )
}

#[actix_web::test]
async fn a_login_beyond_the_cap_revokes_the_least_recently_used_session() {
    // Arrange: three sessions a second apart; the oldest is then used again,
    // so the second one is the least recently used.
    let h = spawn_app_with(|s| s.auth.max_sessions_per_user = 3).await;
    let user = h.register().await;
    let first = h.login(&user).await.token_pair();
    h.clock.advance(TimeDelta::seconds(1));
    let second = h.login(&user).await.token_pair();
    h.clock.advance(TimeDelta::seconds(1));
    let third = h.login(&user).await.token_pair();
    h.clock.advance(TimeDelta::seconds(1));
    let first = h.refresh(&first.refresh_token).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let first = first.token_pair();
    h.clock.advance(TimeDelta::seconds(1));

    // Act
    let fourth = h.login(&user).await.token_pair();

    // Assert: the second is gone, everyone else stays, and the cap holds.
    h.me(&second).await.assert_error(401, "session_revoked");
    for pair in [&first, &third, &fourth] {
        let r = h.me(pair).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(live_sessions(&h.db, &user), 3);
    let second_id = &second.session_id;
    let reason = query_texts(
        &h.db,
        &format!("SELECT revoked_reason AS value FROM sessions WHERE id = '{second_id}'"),
    );
    assert_eq!(reason, ["session_limit"]);
    let admin = admin_token(&h).await;
    let events = h
        .get(&format!("/admin/events?user_id={}", user.id), Some(&admin))
        .await;
    let revoked: Vec<&Value> = events.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "session_revoked")
        .collect();
    assert_eq!(revoked.len(), 1, "{}", events.text);
    assert_eq!(revoked[0]["session_id"], *second_id);
    assert_eq!(revoked[0]["detail"]["reason"], "session_limit");
    let logged = query_texts(
        &h.db,
        &format!("SELECT reason AS value FROM revocations WHERE session_id = '{second_id}'"),
    );
    assert_eq!(logged, ["session_limit"], "the revocation feed names it");
    h.refresh(&second.refresh_token)
        .await
        .assert_error(401, "session_revoked");
}

async fn admin_token(h: &Harness) -> String {
    h.admin(&h.db).await.1
}

#[actix_web::test]
async fn simultaneous_logins_at_the_cap_never_leave_more_than_the_cap_alive() {
    // Arrange: a user already at the cap of 2. Eight simultaneous attempts
    // are more than the per-username lockout lets through (attempts count
    // as they arrive, before their check): the subject here is the cap.
    let h = spawn_app_with(|s| {
        s.auth.max_sessions_per_user = 2;
        s.rate_limit.enabled = false;
    })
    .await;
    let user = h.register().await;
    h.login(&user).await.token_pair();
    h.login(&user).await.token_pair();
    const LOGINS: usize = 8;
    let barrier = Arc::new(tokio::sync::Barrier::new(LOGINS));

    // Act: eight logins released at once.
    let mut tasks = Vec::new();
    for _ in 0..LOGINS {
        let (client, url, barrier) = (h.client.clone(), h.url("/auth/login"), barrier.clone());
        let body = json!({"username": user.username, "password": user.password});
        tasks.push(actix_web::rt::spawn(async move {
            barrier.wait().await;
            client.post(url).json(&body).send().await.unwrap().status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }

    // Assert: every login got in, and exactly two sessions are alive.
    assert_eq!(live_sessions(&h.db, &user), 2);
    let ended = query_i64(
        &h.db,
        &format!(
            "SELECT count(*) FROM sessions WHERE user_id = '{}' AND revoked_reason = 'session_limit'",
            user.id
        ),
    );
    assert_eq!(ended, LOGINS as i64);
}

#[actix_web::test]
async fn without_a_cap_logins_never_revoke() {
    let h = spawn_app().await;
    let user = h.register().await;
    for _ in 0..5 {
        h.login(&user).await.token_pair();
    }
    assert_eq!(live_sessions(&h.db, &user), 5);
}

#[actix_web::test]
async fn own_sessions_show_a_device_name_and_the_address_last_used_from() {
    // Arrange
    let h = spawn_app().await;
    let user = h.register().await;
    let agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/156.0.0.0 Safari/537.36";
    let r = h
        .client
        .post(h.url("/auth/login"))
        .header("user-agent", agent)
        .json(&json!({"username": user.username, "password": user.password}))
        .send()
        .await
        .unwrap();
    let pair = read(r).await.token_pair();

    // Act
    let r = h.get("/auth/sessions", Some(&pair.access_token)).await;

    // Assert
    assert_eq!(r.status, 200, "{}", r.text);
    let session = &r.json["sessions"][0];
    assert_eq!(session["device"], "Chrome on Linux");
    assert_eq!(session["last_ip"], "127.0.0.1");
    assert_eq!(session["name"], Value::Null);
}

#[actix_web::test]
async fn a_user_renames_their_own_session_and_only_theirs() {
    // Arrange
    let h = spawn_app().await;
    let (alice, bob) = (h.register().await, h.register().await);
    let (a, b) = (
        h.login(&alice).await.token_pair(),
        h.login(&bob).await.token_pair(),
    );
    let path = format!("/auth/sessions/{}", a.session_id);
    let a_token = &a.access_token;

    // Act
    let renamed = h
        .patch_json(&path, &json!({"name": "  Work laptop "}), Some(a_token))
        .await;
    let by_bob = h
        .patch_json(&path, &json!({"name": "mine now"}), Some(&b.access_token))
        .await;
    let too_long = h
        .patch_json(&path, &json!({"name": "x".repeat(65)}), Some(a_token))
        .await;

    // Assert
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.json["name"], "Work laptop");
    assert_eq!(renamed.json["current"], true);
    by_bob.assert_error(404, "not_found");
    too_long.assert_error(400, "invalid_request");
    let listed = h.get("/auth/sessions", Some(a_token)).await;
    assert_eq!(listed.json["sessions"][0]["name"], "Work laptop");

    // A blank name removes it again.
    let cleared = h
        .patch_json(&path, &json!({"name": ""}), Some(a_token))
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.json["name"], Value::Null);
    let unknown = format!("/auth/sessions/{}", uuid::Uuid::new_v4());
    h.patch_json(&unknown, &json!({"name": "x"}), Some(a_token))
        .await
        .assert_error(404, "not_found");
}
