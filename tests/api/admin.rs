//! The administrators' routes: access checked in the database at each call,
//! users and their listing, bans, deletion, sessions and the event log; and
//! the command line doing the same.

use std::collections::HashMap;
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{json, Value};

use crate::support::app::*;
use crate::support::cli::*;
use crate::support::client::*;
use crate::support::db::*;
use crate::support::tokens::*;

/// Every admin route, with a method and a path naming `id`.
fn admin_routes(id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GET", "/admin/users".into()),
        ("GET", format!("/admin/users/{id}")),
        ("POST", format!("/admin/users/{id}/ban")),
        ("POST", format!("/admin/users/{id}/unban")),
        ("DELETE", format!("/admin/users/{id}")),
        ("GET", format!("/admin/users/{id}/sessions")),
        ("DELETE", format!("/admin/users/{id}/sessions")),
        ("DELETE", format!("/admin/sessions/{id}")),
        ("GET", "/admin/events".into()),
    ]
}

async fn call(app: &TestApp, method: &str, path: &str, token: &str) -> Reply {
    match method {
        "GET" => app.get(path, Some(token)).await,
        "POST" => app.post_json(path, &json!({}), Some(token)).await,
        _ => app.delete(path, Some(token)).await,
    }
}

/// An app with a signed-in administrator (and their access token) and
/// another registered user.
struct Scene {
    app: Harness,
    admin: User,
    at: String,
    user: User,
}

async fn scene() -> Scene {
    let app = spawn_app().await;
    let (admin, at) = app.admin(&app.db).await;
    let user = app.register().await;
    Scene {
        app,
        admin,
        at,
        user,
    }
}

/// `GET /admin/users/{id}` as the administrator `at`.
async fn user_view(app: &TestApp, at: &str, id: &str) -> Reply {
    app.get(&format!("/admin/users/{id}"), Some(at)).await
}

/// Events of the log for one user, as the admin sees them.
async fn events_of(app: &TestApp, admin: &str, user_id: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/admin/events?user_id={user_id}"), Some(admin))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["events"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn non_admins_are_refused_every_admin_route() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let at = &pair.access_token;

    for (method, path) in admin_routes(&user.id) {
        let r = call(&app, method, &path, at).await;
        r.assert_error(403, "forbidden");
    }
    for (method, path) in admin_routes(&user.id) {
        let r = match method {
            "GET" => app.get(&path, None).await,
            "POST" => app.post_json(&path, &json!({}), None).await,
            _ => app.delete(&path, None).await,
        };
        r.assert_error(401, "invalid_token");
    }
    // The user still exists and is not banned: nothing was done.
    app.login(&user).await.token_pair();
}

#[actix_web::test]
async fn a_demoted_admin_loses_admin_routes_at_the_next_request() {
    let app = spawn_app().await;
    let (admin, at) = app.admin(&app.db).await;
    assert_eq!(app.get("/admin/users", Some(&at)).await.status, 200);

    app.db.exec(&format!(
        "UPDATE users SET admin = false WHERE id = '{}'",
        admin.id
    ));

    // The access token still says `admin: true`; the database decides.
    assert_eq!(claims(&at)["admin"], true);
    app.get("/admin/users", Some(&at))
        .await
        .assert_error(403, "forbidden");
    assert_eq!(app.get("/api/me", Some(&at)).await.status, 200);
}

#[actix_web::test]
async fn a_banned_admin_loses_admin_routes_at_once() {
    let app = spawn_app().await;
    let (first, first_at) = app.admin(&app.db).await;
    let (_second, second_at) = app.admin(&app.db).await;
    assert_eq!(app.get("/admin/events", Some(&first_at)).await.status, 200);

    // A ban set behind keyward's back (no session revoked): the admin check
    // itself must see it.
    app.db.exec(&format!(
        "UPDATE users SET banned = true WHERE id = '{}'",
        first.id
    ));

    app.get("/admin/events", Some(&first_at))
        .await
        .assert_error(403, "forbidden");
    // Through the API, a ban ends the sessions too.
    app.db.exec(&format!(
        "UPDATE users SET banned = false WHERE id = '{}'",
        first.id
    ));
    let r = app
        .post_json(
            &format!("/admin/users/{}/ban", first.id),
            &json!({}),
            Some(&second_at),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.get("/admin/events", Some(&first_at))
        .await
        .assert_error(401, "session_revoked");
}

#[actix_web::test]
async fn a_ban_revokes_every_session_and_blocks_sign_in() {
    // Arrange
    let Scene {
        app,
        admin,
        at,
        user,
    } = scene().await;
    let one = app.login(&user).await.token_pair();
    let two = app.login(&user).await.token_pair();

    // Act
    let r = app
        .post_json(
            &format!("/admin/users/{}/ban", user.id),
            &json!({"reason": "  spam  "}),
            Some(&at),
        )
        .await;

    // Assert
    assert_eq!(r.status, 204, "{}", r.text);
    for pair in [&one, &two] {
        app.me(pair).await.assert_error(401, "session_revoked");
        app.refresh(&pair.refresh_token)
            .await
            .assert_error(403, "user_banned");
    }
    app.login(&user).await.assert_error(403, "user_banned");
    let shown = user_view(&app, &at, &user.id).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.json["banned"], true);
    assert_eq!(shown.json["ban_reason"], "spam");
    assert_eq!(shown.json["banned_until"], Value::Null);
    assert_eq!(shown.json["active_sessions"], 0);
    let events = events_of(&app, &at, &user.id).await;
    let banned = events
        .iter()
        .find(|e| e["kind"] == "user_banned")
        .expect("a user_banned event");
    assert_eq!(banned["actor_id"], admin.id.as_str());
    assert_eq!(banned["detail"]["reason"], "spam");

    // Unbanning lets them in again; the old sessions stay revoked.
    let r = app
        .post_json(
            &format!("/admin/users/{}/unban", user.id),
            &json!({}),
            Some(&at),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.login(&user).await.token_pair();
    app.refresh(&one.refresh_token)
        .await
        .assert_error(401, "session_revoked");
    let events = events_of(&app, &at, &user.id).await;
    assert!(events.iter().any(|e| e["kind"] == "user_unbanned"));
}

#[actix_web::test]
async fn a_timed_ban_ends_by_itself() {
    let Scene {
        app,
        admin: _,
        at,
        user,
    } = scene().await;
    let r = app
        .post_json(
            &format!("/admin/users/{}/ban", user.id),
            &json!({"duration_seconds": 60}),
            Some(&at),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let shown = user_view(&app, &at, &user.id).await;
    assert_eq!(shown.json["banned"], true);
    assert!(shown.json["banned_until"].is_string(), "{}", shown.text);
    app.login(&user).await.assert_error(403, "user_banned");

    app.clock.advance(TimeDelta::seconds(61));

    let pair = app.login(&user).await.token_pair();
    let refreshed = app.refresh(&pair.refresh_token).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let shown = user_view(&app, &at, &user.id).await;
    assert_eq!(shown.json["banned"], false, "{}", shown.text);
    assert_eq!(shown.json["banned_until"], Value::Null);
    assert_eq!(shown.json["active_sessions"], 1);
}

#[actix_web::test]
async fn a_ban_duration_must_be_a_sensible_number_of_seconds() {
    let Scene {
        app,
        admin: _,
        at,
        user,
    } = scene().await;
    let path = format!("/admin/users/{}/ban", user.id);

    for bad in [
        json!(0),
        json!(-5),
        json!(1.5),
        json!(1e30),
        json!("soon"),
        json!(3_155_760_001_i64),
        json!(true),
    ] {
        let r = app
            .post_json(&path, &json!({"duration_seconds": bad}), Some(&at))
            .await;
        let message = r.assert_error(400, "invalid_request");
        assert!(message.contains("duration_seconds"), "{bad}: {message}");
    }
    app.post_json(&path, &json!({"reason": "x".repeat(501)}), Some(&at))
        .await
        .assert_error(400, "invalid_request");

    // Nothing was banned by the refused requests.
    app.login(&user).await.token_pair();
    // Form bodies work too: the number arrives as text.
    let r = app
        .post_form_with_token(&path, &[("duration_seconds", "3600")], &at)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let shown = user_view(&app, &at, &user.id).await;
    assert_eq!(shown.json["banned"], true);
}

#[actix_web::test]
async fn an_admin_cannot_ban_or_delete_themselves() {
    let app = spawn_app().await;
    let (admin, at) = app.admin(&app.db).await;

    let ban = app
        .post_json(
            &format!("/admin/users/{}/ban", admin.id),
            &json!({}),
            Some(&at),
        )
        .await;
    let delete = app
        .delete(&format!("/admin/users/{}", admin.id), Some(&at))
        .await;

    ban.assert_error(409, "conflict");
    delete.assert_error(409, "conflict");
    assert_eq!(app.get("/admin/users", Some(&at)).await.status, 200);
}

#[actix_web::test]
async fn unknown_users_sessions_and_malformed_ids_are_not_found() {
    let app = spawn_app().await;
    let (_admin, at) = app.admin(&app.db).await;
    let unknown = uuid::Uuid::new_v4().to_string();

    for id in [unknown.as_str(), "not-a-uuid"] {
        for (method, path) in admin_routes(id) {
            if !path.contains(id) {
                continue;
            }
            let r = call(&app, method, &path, &at).await;
            r.assert_error(404, "not_found");
        }
    }
    let put = read(
        app.client
            .put(app.url("/admin/users"))
            .bearer_auth(&at)
            .send()
            .await
            .unwrap(),
    )
    .await;
    put.assert_error(405, "method_not_allowed");
}

#[actix_web::test]
async fn user_pages_visit_every_user_exactly_once_while_users_are_added() {
    // Arrange: 23 users besides the admin, in no particular order.
    let app = spawn_app().await;
    let (admin, at) = app.admin(&app.db).await;
    let mut existing: Vec<String> = (0..23)
        .map(|i| {
            insert_user(
                &app.db,
                &format!("{}user{i:02}", (b'a' + (i * 7 % 26) as u8) as char),
            )
        })
        .collect();
    existing.push(admin.id.clone());

    // Act: pages of 5; between pages, users join before and after the
    // position reached so far.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(id) => format!("/admin/users?limit=5&after={id}"),
            None => "/admin/users?limit=5".to_string(),
        };
        let r = app.get(&path, Some(&at)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let users = r.json["users"].as_array().unwrap();
        assert!(users.len() <= 5);
        let names: Vec<String> = users
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_lowercase())
            .collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "ordered: {names:?}");
        for u in users {
            *seen
                .entry(u["id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        insert_user(&app.db, &format!("Anew{pages:02}"));
        insert_user(&app.db, &format!("znew{pages:02}"));
        pages += 1;
        assert!(pages < 50, "pagination does not end");
        match r.json["next"].as_str() {
            Some(next) => {
                assert_eq!(users.len(), 5);
                assert_eq!(next, users[4]["id"].as_str().unwrap());
                after = Some(next.to_string());
            }
            None => break,
        }
    }

    // Assert
    for id in &existing {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "user {id} seen {:?} times",
            seen.get(id)
        );
    }
    assert!(seen.values().all(|n| *n == 1), "no user twice");
}

#[actix_web::test]
async fn the_user_search_is_a_case_insensitive_literal_prefix() {
    let app = spawn_app().await;
    let (_admin, at) = app.admin(&app.db).await;
    let underscore = insert_user(&app.db, "Pre_fix");
    let letter = insert_user(&app.db, "preXfix");
    insert_user(&app.db, "other");

    let ids = |r: &Reply| -> Vec<String> {
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect()
    };
    let both = app.get("/admin/users?q=PRE", Some(&at)).await;
    let literal = app.get("/admin/users?q=pre_", Some(&at)).await;
    let percent = app.get("/admin/users?q=%25", Some(&at)).await;
    let backslash = app.get("/admin/users?q=%5C", Some(&at)).await;

    assert_eq!(ids(&both), vec![underscore.clone(), letter]);
    assert_eq!(both.json["next"], Value::Null);
    assert_eq!(ids(&literal), vec![underscore]);
    assert!(ids(&percent).is_empty());
    assert!(ids(&backslash).is_empty());
}

#[actix_web::test]
async fn listing_limits_are_checked_and_capped() {
    let app = spawn_app().await;
    let (_admin, at) = app.admin(&app.db).await;
    app.db.exec(
        "INSERT INTO users (id, username, password_hash, created_at) \
         SELECT gen_random_uuid(), 'bulk' || g, 'not-a-hash', now() \
         FROM generate_series(1, 205) AS g",
    );

    for bad in ["0", "-1", "abc", "1.5"] {
        for route in ["/admin/users", "/admin/events"] {
            let r = app.get(&format!("{route}?limit={bad}"), Some(&at)).await;
            assert!(r.assert_error(400, "invalid_request").contains("limit"));
        }
    }
    app.get("/admin/users?after=nope", Some(&at))
        .await
        .assert_error(400, "invalid_request");
    app.get("/admin/events?before=nope", Some(&at))
        .await
        .assert_error(400, "invalid_request");
    app.get("/admin/events?user_id=nope", Some(&at))
        .await
        .assert_error(400, "invalid_request");
    let default = app.get("/admin/users", Some(&at)).await;
    let capped = app.get("/admin/users?limit=1000", Some(&at)).await;

    assert_eq!(default.json["users"].as_array().unwrap().len(), 50);
    assert_eq!(capped.json["users"].as_array().unwrap().len(), 200);
    assert!(capped.json["next"].is_string());
}

#[actix_web::test]
async fn a_user_shows_its_live_sessions_count_and_fields() {
    let Scene {
        app,
        admin: _,
        at,
        user,
    } = scene().await;
    let pairs = [
        app.login(&user).await.token_pair(),
        app.login(&user).await.token_pair(),
        app.login(&user).await.token_pair(),
    ];
    let r = app
        .post_json("/auth/logout", &json!({}), Some(&pairs[0].access_token))
        .await;
    assert_eq!(r.status, 204);

    let listed = app
        .get(&format!("/admin/users?q={}", user.username), Some(&at))
        .await;
    let one = user_view(&app, &at, &user.id).await;

    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["users"][0], one.json);
    let u = &one.json;
    assert_eq!(u["id"], user.id.as_str());
    assert_eq!(u["username"], user.username.as_str());
    assert_eq!(u["name"], user.name.as_deref().unwrap());
    assert_eq!(u["admin"], false);
    assert_eq!(u["banned"], false);
    assert_eq!(u["banned_until"], Value::Null);
    assert_eq!(u["ban_reason"], Value::Null);
    assert!(u["created_at"].is_string());
    assert!(u["last_login_at"].is_string());
    assert_eq!(u["active_sessions"], 2);
    assert!(u.get("password_hash").is_none());
}

#[actix_web::test]
async fn an_admin_revokes_one_session_or_all_of_them() {
    // Arrange
    let Scene {
        app,
        admin,
        at,
        user,
    } = scene().await;
    let one = app.login(&user).await.token_pair();
    let two = app.login(&user).await.token_pair();

    // Act: one session
    let r = app
        .delete(&format!("/admin/sessions/{}", one.session_id), Some(&at))
        .await;

    // Assert
    assert_eq!(r.status, 204, "{}", r.text);
    app.me(&one).await.assert_error(401, "session_revoked");
    assert_eq!(app.me(&two).await.status, 200);
    let live = app
        .get(&format!("/admin/users/{}/sessions", user.id), Some(&at))
        .await;
    assert_eq!(live.status, 200, "{}", live.text);
    let live = live.json["sessions"].as_array().unwrap().clone();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["id"], two.session_id);
    let all = app
        .get(
            &format!("/admin/users/{}/sessions?include_revoked=true", user.id),
            Some(&at),
        )
        .await;
    let all = all.json["sessions"].as_array().unwrap().clone();
    assert_eq!(all.len(), 2);
    let revoked = all.iter().find(|s| s["id"] == one.session_id).unwrap();
    assert_eq!(revoked["revoked_reason"], "admin_revoked");
    assert!(revoked["revoked_at"].is_string());

    // Act: all sessions
    let r = app
        .delete(&format!("/admin/users/{}/sessions", user.id), Some(&at))
        .await;

    assert_eq!(r.status, 204, "{}", r.text);
    app.me(&two).await.assert_error(401, "session_revoked");
    app.refresh(&two.refresh_token)
        .await
        .assert_error(401, "session_revoked");
    let events = events_of(&app, &at, &user.id).await;
    let revocations: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "session_revoked")
        .collect();
    assert_eq!(revocations.len(), 2);
    assert!(revocations
        .iter()
        .all(|e| e["actor_id"] == admin.id.as_str()));
    let metrics = app.get("/metrics", None).await;
    assert!(
        metrics
            .text
            .contains(r#"keyward_sessions_revoked_total{reason="admin_revoked"} 2"#),
        "{}",
        metrics.text
    );
    // The user can still sign in: revoking sessions is not a ban.
    app.login(&user).await.token_pair();
}

#[actix_web::test]
async fn a_replayed_refresh_token_shows_in_the_event_log() {
    let Scene {
        app,
        admin: _,
        at,
        user,
    } = scene().await;
    let pair = app.login(&user).await.token_pair();
    let rotated = app.refresh(&pair.refresh_token).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    app.clock.advance(TimeDelta::seconds(
        app.settings.auth.reuse_grace_seconds + 1,
    ));

    app.refresh(&pair.refresh_token)
        .await
        .assert_error(401, "token_reused");

    let events = events_of(&app, &at, &user.id).await;
    let reuse = events
        .iter()
        .find(|e| e["kind"] == "reuse_detected")
        .expect("a reuse_detected event");
    assert_eq!(reuse["session_id"], pair.session_id);
    assert_eq!(reuse["user_id"], user.id.as_str());
    assert!(reuse["id"].is_i64() && reuse["at"].is_string());
    assert!(events.iter().all(|e| e["user_id"] == user.id.as_str()));
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["reuse_detected", "refreshed", "login_succeeded"]);
}

#[actix_web::test]
async fn events_page_backwards_with_before() {
    let Scene {
        app,
        admin: _,
        at,
        user,
    } = scene().await;
    for _ in 0..4 {
        app.login(&user).await.token_pair();
    }
    let everything = app.get("/admin/events", Some(&at)).await;
    let all_ids: Vec<i64> = everything.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(all_ids.len() >= 5, "{}", everything.text);

    let mut paged: Vec<i64> = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(id) => format!("/admin/events?limit=2&before={id}"),
            None => "/admin/events?limit=2".into(),
        };
        let r = app.get(&path, Some(&at)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let ids: Vec<i64> = r.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        if ids.is_empty() {
            break;
        }
        assert!(ids.len() <= 2);
        paged.extend(&ids);
        before = ids.last().copied();
    }

    assert_eq!(paged, all_ids, "newest first, each once");
    assert!(paged.windows(2).all(|w| w[0] > w[1]));
}

#[actix_web::test]
async fn deleting_a_user_ends_their_tokens_and_removes_their_sessions() {
    // Arrange
    let Scene {
        app,
        admin,
        at,
        user,
    } = scene().await;
    let pair = app.login(&user).await.token_pair();

    // Act
    let r = app
        .delete(&format!("/admin/users/{}", user.id), Some(&at))
        .await;

    // Assert
    assert_eq!(r.status, 204, "{}", r.text);
    app.me(&pair).await.assert_error(401, "session_revoked");
    app.refresh(&pair.refresh_token)
        .await
        .assert_error(401, "invalid_token");
    user_view(&app, &at, &user.id)
        .await
        .assert_error(404, "not_found");
    app.get(&format!("/admin/users/{}/sessions", user.id), Some(&at))
        .await
        .assert_error(404, "not_found");
    app.login(&user)
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(
        query_i64(
            &app.db,
            &format!(
                "SELECT count(*) FROM sessions WHERE user_id = '{}'",
                user.id
            )
        ),
        0
    );
    let events = events_of(&app, &at, &user.id).await;
    let deleted = events
        .iter()
        .find(|e| e["kind"] == "user_deleted")
        .expect("the event keeps the user id");
    assert_eq!(deleted["actor_id"], admin.id.as_str());
    assert_eq!(deleted["detail"]["sessions"][0], pair.session_id);
}

#[actix_web::test]
async fn a_deletion_reaches_another_instance() {
    let a = spawn_app().await;
    let b = spawn_on(a.settings.clone(), keyward::clock::Clock::system()).await;
    let ready = eventually(Duration::from_secs(5), || async {
        b.get("/ready", None).await.status == 200
    })
    .await;
    assert!(ready.is_some(), "instance B's listener never caught up");
    let (_admin, at) = a.admin(&a.db).await;
    let user = a.register().await;
    let pair = a.login(&user).await.token_pair();
    let user_at = &pair.access_token;
    assert_eq!(b.get("/api/me", Some(user_at)).await.status, 200);

    let r = a
        .delete(&format!("/admin/users/{}", user.id), Some(&at))
        .await;

    assert_eq!(r.status, 204, "{}", r.text);
    let took = eventually(Duration::from_secs(1), || async {
        b.get("/api/me", Some(user_at)).await.status == 401
    })
    .await;
    assert!(took.is_some(), "instance B still accepts the token");
}

#[actix_web::test]
async fn the_command_line_ban_has_the_same_effect() {
    // Arrange
    let Scene {
        app,
        admin: _,
        at,
        user,
    } = scene().await;
    let pair = app.login(&user).await.token_pair();

    // Act
    let db = app.db.url.clone();
    let name = user.username.clone();
    let out = tokio::task::spawn_blocking(move || {
        keyward_cli(&db, &["users", "ban", &name, "--reason", "from the shell"])
    })
    .await
    .unwrap();

    // Assert
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another process revoked: the notice arrives through the database.
    let took = eventually(Duration::from_secs(1), || async {
        app.me(&pair).await.status == 401
    })
    .await;
    assert!(took.is_some(), "the banned user's token still works");
    app.me(&pair).await.assert_error(401, "session_revoked");
    app.refresh(&pair.refresh_token)
        .await
        .assert_error(403, "user_banned");
    app.login(&user).await.assert_error(403, "user_banned");
    let shown = user_view(&app, &at, &user.id).await;
    assert_eq!(shown.json["banned"], true);
    assert_eq!(shown.json["ban_reason"], "from the shell");
    let events = events_of(&app, &at, &user.id).await;
    let banned = events.iter().find(|e| e["kind"] == "user_banned").unwrap();
    assert_eq!(banned["actor_id"], Value::Null);

    let db = app.db.url.clone();
    let name = user.username.clone();
    let out = tokio::task::spawn_blocking(move || keyward_cli(&db, &["users", "unban", &name]))
        .await
        .unwrap();
    assert!(out.status.success());
    app.login(&user).await.token_pair();
}
