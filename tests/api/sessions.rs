//! Self-service: listing and revoking one's own sessions, changing one's
//! password.

use serde_json::json;

use crate::support::app::*;
use crate::support::client::*;
use crate::support::db::*;
use crate::support::tokens::*;

#[actix_web::test]
async fn sessions_lists_live_sessions_and_marks_the_current_one() {
    // Arrange: three sign-ins, one from a named browser, one logged out.
    let app = spawn_app().await;
    let user = app.register().await;
    let a = app.login(&user).await.token_pair();
    let b = read(
        app.client
            .post(app.url("/auth/login"))
            .header("user-agent", "TestBrowser/1.0")
            .json(&json!({"username": user.username, "password": user.password}))
            .send()
            .await
            .unwrap(),
    )
    .await
    .token_pair();
    let c = app.login(&user).await.token_pair();
    let r = app
        .post_json("/auth/logout", &json!({}), Some(&c.access_token))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    // Act
    let r = app.get("/auth/sessions", Some(&a.access_token)).await;

    // Assert
    assert_eq!(r.status, 200, "{}", r.text);
    let sessions = r.json["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{}", r.text);
    let find = |pair: &TokenPair| {
        sessions
            .iter()
            .find(|s| s["id"] == pair.session_id)
            .unwrap_or_else(|| panic!("session missing: {}", r.text))
            .clone()
    };
    let (mine, other) = (find(&a), find(&b));
    assert_eq!(mine["current"], true);
    assert_eq!(other["current"], false);
    assert_eq!(other["user_agent"], "TestBrowser/1.0");
    assert_eq!(other["ip"], "127.0.0.1");
    for field in ["created_at", "last_used_at", "expires_at"] {
        assert!(mine[field].is_string(), "{field}: {}", r.text);
    }
    assert!(!r.text.contains("jti"), "no token ids leak: {}", r.text);
}

#[actix_web::test]
async fn revoking_ones_own_session_ends_it_at_once() {
    let app = spawn_app().await;
    let user = app.register().await;
    let a = app.login(&user).await.token_pair();
    let b = app.login(&user).await.token_pair();
    let path = format!("/auth/sessions/{}", b.session_id);

    let r = app.delete(&path, Some(&a.access_token)).await;

    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    app.me(&b).await.assert_error(401, "session_revoked");
    app.refresh(&b.refresh_token)
        .await
        .assert_error(401, "session_revoked");
    let list = app.get("/auth/sessions", Some(&a.access_token)).await;
    assert_eq!(list.json["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(list.json["sessions"][0]["id"], a.session_id);
    // Revoking it again changes nothing and is not an error.
    let again = app.delete(&path, Some(&a.access_token)).await;
    assert_eq!(again.status, 204, "{}", again.text);
}

#[actix_web::test]
async fn another_users_session_is_not_found() {
    let app = spawn_app().await;
    let (alice, bob) = (app.register().await, app.register().await);
    let a = app.login(&alice).await.token_pair();
    let b = app.login(&bob).await.token_pair();
    let at = &a.access_token;

    let theirs = app
        .delete(&format!("/auth/sessions/{}", b.session_id), Some(at))
        .await;
    let unknown = app
        .delete(
            &format!("/auth/sessions/{}", uuid::Uuid::new_v4()),
            Some(at),
        )
        .await;
    let not_a_uuid = app.delete("/auth/sessions/not-a-uuid", Some(at)).await;

    theirs.assert_error(404, "not_found");
    unknown.assert_error(404, "not_found");
    not_a_uuid.assert_error(404, "not_found");
    assert_eq!(app.me(&b).await.status, 200, "bob's session must survive");
}

#[actix_web::test]
async fn session_routes_need_an_access_token() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();

    let none = app.get("/auth/sessions", None).await;
    let refresh_as_bearer = app.get("/auth/sessions", Some(&pair.refresh_token)).await;
    let password = app
        .post_json(
            "/auth/password",
            &json!({"current_password": user.password, "new_password": "another-password"}),
            None,
        )
        .await;
    let wrong_method = app.get("/auth/password", Some(&pair.access_token)).await;

    none.assert_error(401, "invalid_token");
    assert!(none
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    refresh_as_bearer.assert_error(401, "invalid_token");
    password.assert_error(401, "invalid_token");
    wrong_method.assert_error(405, "method_not_allowed");
}

#[actix_web::test]
async fn password_change_kills_other_sessions_and_the_old_password() {
    // Arrange
    let app = spawn_app().await;
    let user = app.register().await;
    let here = app.login(&user).await.token_pair();
    let elsewhere = app.login(&user).await.token_pair();
    let new_password = "a brand new password ✓";

    // Act
    let r = app
        .post_json(
            "/auth/password",
            &json!({"current_password": user.password, "new_password": new_password}),
            Some(&here.access_token),
        )
        .await;

    // Assert
    assert_eq!(r.status, 204, "{}", r.text);
    app.me(&elsewhere)
        .await
        .assert_error(401, "session_revoked");
    app.refresh(&elsewhere.refresh_token)
        .await
        .assert_error(401, "session_revoked");
    assert_eq!(
        app.me(&here).await.status,
        200,
        "the current session survives"
    );
    let rotated = app.refresh(&here.refresh_token).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    app.login(&user)
        .await
        .assert_error(401, "invalid_credentials");
    let renewed = User {
        password: new_password.to_string(),
        ..user.clone()
    };
    app.login(&renewed).await.token_pair();
    assert_eq!(
        query_i64(
            &app.db,
            &format!(
                "SELECT count(*) FROM events WHERE kind = 'password_changed' \
                 AND user_id = '{}' AND session_id = '{}'",
                user.id, &here.session_id
            )
        ),
        1
    );
    assert_eq!(
        query_i64(
            &app.db,
            &format!(
                "SELECT count(*) FROM sessions WHERE revoked_reason = 'password_changed' \
                 AND id = '{}'",
                &elsewhere.session_id
            )
        ),
        1
    );
}

#[actix_web::test]
async fn a_wrong_current_password_changes_nothing() {
    let app = spawn_app().await;
    let user = app.register().await;
    let here = app.login(&user).await.token_pair();
    let elsewhere = app.login(&user).await.token_pair();
    let at = &here.access_token;

    let wrong = app
        .post_json(
            "/auth/password",
            &json!({"current_password": "not-my-password", "new_password": "another-password"}),
            Some(at),
        )
        .await;
    let short = app
        .post_form_with_token(
            "/auth/password",
            &[
                ("current_password", user.password.as_str()),
                ("new_password", "short"),
            ],
            at,
        )
        .await;
    let missing = app
        .post_json(
            "/auth/password",
            &json!({"new_password": "another-password"}),
            Some(at),
        )
        .await;

    // A mistyped password is not a reason to sign the browser app out: it is
    // `invalid_credentials`, not one of the token errors.
    wrong.assert_error(401, "invalid_credentials");
    assert!(short
        .assert_error(400, "invalid_request")
        .contains("new_password"));
    assert!(missing
        .assert_error(400, "invalid_request")
        .contains("current_password"));
    assert_eq!(app.me(&elsewhere).await.status, 200);
    app.login(&user).await.token_pair();
}

#[actix_web::test]
async fn password_change_by_form_works_too() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();

    let r = app
        .post_form_with_token(
            "/auth/password",
            &[
                ("current_password", user.password.as_str()),
                ("new_password", "form-password-1"),
            ],
            &pair.access_token,
        )
        .await;

    assert_eq!(r.status, 204, "{}", r.text);
    app.login(&User {
        password: "form-password-1".into(),
        ..user
    })
    .await
    .token_pair();
}

#[actix_web::test]
async fn guesses_at_the_current_password_share_the_login_budget() {
    let app = spawn_app_with(|s| s.rate_limit.per_ip_per_minute = 3).await;
    let user = app.register().await; // 1 of 3
    let here = app.login(&user).await.token_pair(); // 2 of 3
    let at = &here.access_token;
    let guess = json!({"current_password": "a-guess-at-it", "new_password": "another-password"});
    app.post_json("/auth/password", &guess, Some(at))
        .await
        .assert_error(401, "invalid_credentials");
    let r = app.post_json("/auth/password", &guess, Some(at)).await;
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
}
