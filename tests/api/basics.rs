//! Health, registration, login, body handling and the error shape.

use serde_json::json;

use crate::support::app::*;
use crate::support::client::*;

#[actix_web::test]
async fn health_and_ready_answer_ok() {
    let app = spawn_app().await;
    let r = app.get("/health", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json, json!({"status": "ok"}));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let ok = eventually(std::time::Duration::from_secs(5), || async {
        app.get("/ready", None).await.status == 200
    })
    .await;
    assert!(ok.is_some(), "/ready never became 200");
}

#[actix_web::test]
async fn register_returns_the_user_without_secrets() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/auth/register",
            &json!({"username": "Jon.Doe", "password": "correct horse", "name": "Jon Doe"}),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["username"], "Jon.Doe");
    assert_eq!(r.json["name"], "Jon Doe");
    assert_eq!(r.json["admin"], false);
    assert!(r.json["id"].as_str().unwrap().len() == 36);
    assert!(r.json["created_at"].is_string());
    assert!(!r.text.contains("correct horse") && !r.text.contains("$2"));

    let r = app
        .post_json(
            "/auth/register",
            &json!({"username": "noname", "password": "password1"}),
            None,
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json["name"], serde_json::Value::Null);
}

#[actix_web::test]
async fn usernames_are_unique_without_regard_to_case() {
    let app = spawn_app().await;
    let user = app.register().await;
    for variant in [user.username.to_uppercase(), user.username.clone()] {
        let r = app
            .post_json(
                "/auth/register",
                &json!({"username": variant, "password": "another-password"}),
                None,
            )
            .await;
        r.assert_error(409, "conflict");
    }
}

#[actix_web::test]
async fn invalid_registrations_name_the_field() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"username": "ab", "password": "password1"}),
            "username",
        ),
        (
            json!({"username": "x".repeat(33), "password": "password1"}),
            "username",
        ),
        (
            json!({"username": "bad name", "password": "password1"}),
            "username",
        ),
        (
            json!({"username": "émile", "password": "password1"}),
            "username",
        ),
        (json!({"password": "password1"}), "username"),
        (json!({"username": 42, "password": "password1"}), "username"),
        (
            json!({"username": "gooduser", "password": "short"}),
            "password",
        ),
        (
            json!({"username": "gooduser", "password": "a".repeat(129)}),
            "password",
        ),
        (json!({"username": "gooduser"}), "password"),
        (
            json!({"username": "gooduser", "password": "password1", "name": "x".repeat(101)}),
            "name",
        ),
    ];
    for (body, field) in cases {
        let r = app.post_json("/auth/register", &body, None).await;
        let message = r.assert_error(400, "invalid_request");
        assert!(message.contains(field), "{body}: {message}");
    }
    // Nothing was half-written: the valid name is still free.
    let r = app
        .post_json(
            "/auth/register",
            &json!({"username": "gooduser", "password": "password1"}),
            None,
        )
        .await;
    assert_eq!(r.status, 201);
}

#[actix_web::test]
async fn registration_can_be_closed() {
    let app = spawn_app_with(|s| s.auth.allow_registration = false).await;
    let r = app
        .post_json(
            "/auth/register",
            &json!({"username": "someone", "password": "password1"}),
            None,
        )
        .await;
    r.assert_error(403, "forbidden");
}

#[actix_web::test]
async fn login_accepts_json_and_form_and_any_case() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(pair.expires_in, 900);
    assert!((86_390..=86_400).contains(&pair.refresh_expires_in));
    assert_eq!(pair.raw["user"]["username"], user.username.as_str());

    let r = app
        .post_form(
            "/auth/login",
            &[
                ("username", &user.username.to_uppercase()),
                ("password", &user.password),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_ne!(r.json["session_id"], pair.session_id);
}

#[actix_web::test]
async fn wrong_password_and_unknown_user_answer_alike() {
    let app = spawn_app().await;
    let user = app.register().await;
    let wrong = app
        .post_json(
            "/auth/login",
            &json!({"username": user.username, "password": "not-the-password"}),
            None,
        )
        .await;
    wrong.assert_error(401, "invalid_credentials");
    let unknown = app
        .post_json(
            "/auth/login",
            &json!({"username": "nobody-here", "password": "not-the-password"}),
            None,
        )
        .await;
    unknown.assert_error(401, "invalid_credentials");
    assert_eq!(wrong.json, unknown.json);
}

#[actix_web::test]
async fn the_first_72_bytes_of_a_long_password_do_not_log_in() {
    let app = spawn_app().await;
    let password = "é".repeat(100);
    let r = app
        .post_json(
            "/auth/register",
            &json!({"username": "longpass", "password": password}),
            None,
        )
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": "longpass", "password": "é".repeat(36)}),
            None,
        )
        .await;
    r.assert_error(401, "invalid_credentials");
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": "longpass", "password": password}),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
}

#[actix_web::test]
async fn a_banned_user_cannot_log_in_or_refresh() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    app.db.exec(&format!(
        "UPDATE users SET banned = true WHERE id = '{}'",
        user.id
    ));
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": user.username, "password": user.password}),
            None,
        )
        .await;
    r.assert_error(403, "user_banned");
    let r = app.refresh(pair.refresh_token.as_str()).await;
    r.assert_error(403, "user_banned");
}

#[actix_web::test]
async fn a_timed_ban_that_has_ended_no_longer_blocks() {
    let app = spawn_app().await;
    let user = app.register().await;
    app.db.exec(&format!(
        "UPDATE users SET banned = true, banned_until = now() - interval '1 second' WHERE id = '{}'",
        user.id
    ));
    app.login(&user).await.token_pair();
}

#[actix_web::test]
async fn failed_logins_lock_the_username_then_success_resets() {
    let app = spawn_app_with(|s| {
        s.rate_limit.lockout_threshold = 3;
        s.rate_limit.lockout_seconds = 60;
    })
    .await;
    let user = app.register().await;
    let bad = json!({"username": user.username, "password": "wrong-password"});
    for _ in 0..3 {
        app.post_json("/auth/login", &bad, None)
            .await
            .assert_error(401, "invalid_credentials");
    }
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": user.username, "password": user.password}),
            None,
        )
        .await;
    r.assert_error(429, "rate_limited");
    let retry: i64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=61).contains(&retry), "{retry}");
    // Unknown usernames are locked alike.
    let ghost = json!({"username": "ghost-user", "password": "wrong-password"});
    for _ in 0..3 {
        app.post_json("/auth/login", &ghost, None)
            .await
            .assert_error(401, "invalid_credentials");
    }
    app.post_json("/auth/login", &ghost, None)
        .await
        .assert_error(429, "rate_limited");

    app.clock.advance(chrono::TimeDelta::seconds(61));
    app.login(&user).await.token_pair();
    // The success reset the count: two failures do not lock.
    for _ in 0..2 {
        app.post_json("/auth/login", &bad, None)
            .await
            .assert_error(401, "invalid_credentials");
    }
    app.login(&user).await.token_pair();
}

#[actix_web::test]
async fn bodies_that_cannot_be_read_get_json_errors() {
    let app = spawn_app().await;
    let post = |body: &'static [u8], content_type: &'static str| {
        let req = app
            .client
            .post(app.url("/auth/login"))
            .header("content-type", content_type)
            .body(body);
        async move { read(req.send().await.unwrap()).await }
    };
    post(b"{\"username\": \"x\", ", "application/json")
        .await
        .assert_error(400, "invalid_request");
    post(b"[1,2,3]", "application/json")
        .await
        .assert_error(400, "invalid_request");
    post(b"\xff\xfe\xfd", "application/json")
        .await
        .assert_error(400, "invalid_request");
    post(b"<xml/>", "application/xml")
        .await
        .assert_error(415, "unsupported_media_type");
    let big = vec![b'a'; 20 * 1024];
    let r = read(
        app.client
            .post(app.url("/auth/login"))
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(413, "payload_too_large");
    // Unknown fields are ignored.
    let user = app.register().await;
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": user.username, "password": user.password, "extra": [1]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
}

#[actix_web::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    app.get("/no/such/route", None)
        .await
        .assert_error(404, "not_found");
    app.get("/auth/refresh", None)
        .await
        .assert_error(405, "method_not_allowed");
    app.get("/auth/logout", None)
        .await
        .assert_error(405, "method_not_allowed");
    app.delete("/api/me", None)
        .await
        .assert_error(405, "method_not_allowed");
}

#[actix_web::test]
async fn the_tutorial_flow_works_unchanged() {
    let app = spawn_app().await;
    let user = app.register().await;
    let r = app
        .post_form(
            "/login",
            &[("username", &user.username), ("password", &user.password)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = field(&r.json, "access_token").to_string();
    let refresh = field(&r.json, "refresh_token").to_string();
    let r = app.get("/restricted", Some(&access)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text,
        format!("Welcome {}!", user.name.as_deref().unwrap())
    );
    let r = app.get("/restricted", None).await;
    r.assert_error(401, "invalid_token");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="keyward""#)
    );
    let r = app
        .post_form("/token", &[("refresh_token", &refresh)])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(field(&r.json, "refresh_token"), refresh);
}

#[actix_web::test]
async fn a_login_racing_a_ban_never_leaves_a_live_session() {
    // bcrypt at cost 12 takes about a quarter of a second: the ban lands
    // while the login is verifying the password.
    let app = spawn_app_with(|s| s.auth.bcrypt_cost = 12).await;
    let user = app.register().await;
    let credentials = json!({"username": user.username, "password": user.password});
    let login = app.post_json("/auth/login", &credentials, None);
    let ban = async {
        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        let mut conn = app.db.connect();
        keyward::services::admin::ban(
            &mut conn,
            keyward::services::admin::Actor::Operator,
            user.id.parse().unwrap(),
            Some("race"),
            None,
            app.clock.now(),
        )
        .unwrap();
    };
    let (r, ()) = tokio::join!(login, ban);
    if r.status == 200 {
        // The login won: the ban must have revoked its session.
        app.get("/api/me", r.json["access_token"].as_str())
            .await
            .assert_error(401, "session_revoked");
    } else {
        r.assert_error(403, "user_banned");
    }
    let live: i64 = {
        use diesel::prelude::*;
        use keyward::db::schema::sessions;
        sessions::table
            .filter(sessions::revoked_at.is_null())
            .count()
            .get_result(&mut app.db.connect())
            .unwrap()
    };
    assert_eq!(live, 0, "a banned user has no live session");
}

#[actix_web::test]
async fn names_that_cannot_be_usernames_fail_like_unknown_ones() {
    let app = spawn_app_with(|s| s.rate_limit.lockout_threshold = 2).await;
    let r = app
        .post_json(
            "/auth/register",
            &json!({"username": "jimmy", "password": "password-1"}),
            None,
        )
        .await;
    assert_eq!(r.status, 201);
    // PostgreSQL's lower('JİMMY') is 'jimmy'; Rust's is not: such a name
    // must neither log in nor get a lockout count of its own.
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": "jİmmy", "password": "password-1"}),
            None,
        )
        .await;
    r.assert_error(401, "invalid_credentials");
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": "nul\u{0}name", "password": "password-1"}),
            None,
        )
        .await;
    r.assert_error(401, "invalid_credentials");
}
