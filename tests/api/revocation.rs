//! Revocation reaching access tokens on every instance (issue 4): through
//! LISTEN/NOTIFY, surviving a lost listener connection, and kept only as
//! long as it is needed.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use diesel::connection::SimpleConnection;
use keyward::clock::Clock;
use keyward::services::admin::{self, Actor};
use serde_json::json;

use crate::support::app::*;
use crate::support::client::*;
use crate::support::db::*;
use crate::support::tokens::*;

/// Polls `b` until it refuses `token` as revoked; returns how long it took.
async fn until_refused(b: &TestApp, token: &str, limit: Duration) -> Option<Duration> {
    eventually(limit, || async {
        let r = b.get("/api/me", Some(token)).await;
        r.status == 401 && r.json["error"] == "session_revoked"
    })
    .await
}

fn uuid(s: &str) -> uuid::Uuid {
    s.parse().unwrap()
}

#[actix_web::test]
async fn ban_and_reuse_on_one_instance_reach_the_other_within_a_second() {
    let a = spawn_app().await;
    let b = second_instance(&a).await;

    // A ban (as the admin routes and the CLI do it).
    let banned = a.register().await;
    let pair = a.login(&banned).await.token_pair();
    let at = pair.access_token.as_str();
    assert_eq!(b.get("/api/me", Some(at)).await.status, 200);
    let mut conn = a.db.connect();
    admin::ban(
        &mut conn,
        Actor::Operator,
        uuid(&banned.id),
        Some("test"),
        None,
        a.clock.now(),
    )
    .unwrap();
    assert!(until_refused(&b, at, Duration::from_secs(1))
        .await
        .is_some());

    // Reuse detection on A.
    let user = a.register().await;
    let pair = a.login(&user).await.token_pair();
    let rt0 = pair.refresh_token.as_str();
    let first = a.refresh(rt0).await;
    let at1 = field(&first.json, "access_token").to_string();
    a.clock.advance(TimeDelta::seconds(11));
    a.refresh(rt0).await.assert_error(401, "token_reused");
    assert!(until_refused(&b, &at1, Duration::from_secs(1))
        .await
        .is_some());
}

#[actix_web::test]
async fn propagation_latency_over_a_hundred_revocations() {
    // A hundred logins from one address would hit the per-IP limit.
    let a = spawn_app_with(|s| s.rate_limit.enabled = false).await;
    let b = second_instance(&a).await;
    let user = a.register().await;
    let mut took = Vec::new();
    for _ in 0..100 {
        let pair = a.login(&user).await.token_pair();
        let at = pair.access_token.as_str();
        let r = a.post_json("/auth/logout", &json!({}), Some(at)).await;
        assert_eq!(r.status, 204);
        let start = Instant::now();
        let seen = until_refused(&b, at, Duration::from_secs(1)).await;
        assert!(
            seen.is_some(),
            "B accepted a revoked token for over a second"
        );
        took.push(start.elapsed());
    }
    took.sort();
    eprintln!(
        "revocation propagation over {} logouts: median {:?}, worst {:?}",
        took.len(),
        took[took.len() / 2],
        took[took.len() - 1]
    );
}

#[actix_web::test]
async fn revocations_made_while_the_listener_is_cut_off_are_enforced_after_it_recovers() {
    let a = spawn_app().await;
    let b = second_instance(&a).await;
    let user = a.register().await;
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(a.login(&user).await.token_pair().access_token);
    }
    let mut conn = a.db.connect();
    let kill = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{}' AND application_name = '{}'",
        a.db.name,
        keyward::listener::APPLICATION_NAME
    );
    // Cut both listeners off, revoke from outside any instance (as the CLI
    // would), twice over.
    for _ in 0..2 {
        conn.batch_execute(&kill).unwrap();
        admin::revoke_sessions_of_user(&mut conn, Actor::Operator, uuid(&user.id), a.clock.now())
            .unwrap();
        for _ in 0..3 {
            tokens.push(a.login(&user).await.token_pair().access_token);
        }
    }
    conn.batch_execute(&kill).unwrap();
    admin::revoke_sessions_of_user(&mut conn, Actor::Operator, uuid(&user.id), a.clock.now())
        .unwrap();
    let ready = eventually(Duration::from_secs(5), || async {
        b.get("/ready", None).await.status == 200 && a.get("/ready", None).await.status == 200
    })
    .await;
    assert!(ready.is_some(), "the listeners never recovered");
    // The last cut may not have been noticed yet when /ready answered: the
    // reconnect and catch-up take a few milliseconds more.
    for token in &tokens {
        for app in [&a.app, &b] {
            let refused = until_refused(app, token, Duration::from_secs(2)).await;
            assert!(
                refused.is_some(),
                "a revoked token still works after recovery"
            );
        }
    }
}

#[actix_web::test]
async fn entries_expire_and_a_restart_reloads_only_the_ones_still_needed() {
    let a = spawn_app_with(|s| {
        s.auth.access_ttl_seconds = 60;
        s.auth.leeway_seconds = 0;
    })
    .await;
    let user = a.register().await;
    let old = a.login(&user).await.token_pair();
    let recent = a.login(&user).await.token_pair();
    for pair in [&old, &recent] {
        let r = a
            .post_json("/auth/logout", &json!({}), Some(&pair.access_token))
            .await;
        assert_eq!(r.status, 204);
    }
    let old_sid = uuid(old.session_id.as_str());
    let recent_sid = uuid(recent.session_id.as_str());
    assert!(a.state.revoked.contains(&old_sid) && a.state.revoked.contains(&recent_sid));

    // Past the access-token lifetime the entries go (the listener prunes
    // every second with the app's clock).
    a.clock.advance(TimeDelta::seconds(61));
    let pruned = eventually(Duration::from_secs(3), || async {
        a.state.revoked.is_empty()
    })
    .await;
    assert!(
        pruned.is_some(),
        "entries were never pruned: {} left",
        a.state.revoked.len()
    );

    // A restart loads what is still needed: one session revoked 2 minutes
    // ago (its tokens are all expired) and one 10 seconds ago.
    // (The set is loaded from the `revocations` log, which keeps the time.)
    a.db.exec(&format!(
        "UPDATE sessions SET revoked_at = now() - interval '2 minutes' WHERE id = '{old_sid}'; \
         UPDATE sessions SET revoked_at = now() - interval '10 seconds' WHERE id = '{recent_sid}'; \
         UPDATE revocations SET at = now() - interval '2 minutes' WHERE session_id = '{old_sid}'; \
         UPDATE revocations SET at = now() - interval '10 seconds' \
           WHERE session_id = '{recent_sid}';"
    ));
    let restarted = spawn_on(a.settings.clone(), Clock::system()).await;
    assert!(restarted.state.revoked.contains(&recent_sid));
    assert!(!restarted.state.revoked.contains(&old_sid));
    assert_eq!(restarted.state.revoked.len(), 1);
}

#[actix_web::test]
async fn a_restart_still_refuses_the_tokens_of_a_deleted_user() {
    let a = spawn_app().await;
    let user = a.register().await;
    let pair = a.login(&user).await.token_pair();
    let sid = uuid(pair.session_id.as_str());
    let mut conn = a.db.connect();
    admin::delete_user(
        &mut conn,
        Actor::Admin(uuid::Uuid::new_v4()),
        uuid(&user.id),
        a.clock.now(),
    )
    .unwrap();
    // The session rows are gone with the user; the revocations log keeps them.
    let restarted = spawn_on(a.settings.clone(), Clock::system()).await;
    assert!(restarted.state.revoked.contains(&sid));
    restarted
        .get("/api/me", Some(&pair.access_token))
        .await
        .assert_error(401, "session_revoked");
}

#[actix_web::test]
async fn access_tokens_carry_the_sign_in_time_unchanged_by_refreshes() {
    let a = spawn_app().await;
    let user = a.register().await;
    let pair = a.login(&user).await.token_pair();
    let first = claims(&pair.access_token);
    let created = query_i64(
        &a.db,
        &format!(
            "SELECT extract(epoch FROM created_at)::bigint FROM sessions WHERE id = '{}'",
            &pair.session_id
        ),
    );
    assert_eq!(first["auth_time"], created);
    a.clock.advance(TimeDelta::seconds(30));
    let refreshed = a.refresh(&pair.refresh_token).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let second = claims(field(&refreshed.json, "access_token"));
    assert_eq!(second["auth_time"], created);
    assert!(second["iat"].as_i64().unwrap() >= created + 30);
    // A refresh inside the grace window (the other path) keeps it too.
    let again = a.refresh(&pair.refresh_token).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(
        claims(field(&again.json, "access_token"))["auth_time"],
        created
    );
}

#[actix_web::test]
async fn every_revocation_is_logged_with_the_feeds_reason() {
    let a = spawn_app().await;
    let (_, admin_token) = a.admin(&a.db).await;
    let user = a.register().await;
    let own = a.login(&user).await.token_pair();
    let other = a.login(&user).await.token_pair();
    let by_admin = a.login(&user).await.token_pair();
    // The user ends one of their own sessions; an administrator another.
    let r = a
        .delete(
            &format!("/auth/sessions/{}", other.session_id),
            Some(&own.access_token),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = a
        .delete(
            &format!("/admin/sessions/{}", by_admin.session_id),
            Some(&admin_token),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let reason_of = |pair: &TokenPair| {
        query_i64(
            &a.db,
            &format!(
                "SELECT count(*) FROM revocations r JOIN sessions s ON s.id = r.session_id \
                 WHERE r.session_id = '{}' AND r.user_id = '{}' AND r.at = s.revoked_at \
                   AND r.reason = '{}'",
                pair.session_id,
                user.id,
                if pair == &other { "logout" } else { "admin" }
            ),
        )
    };
    assert_eq!(reason_of(&other), 1);
    assert_eq!(reason_of(&by_admin), 1);
    // What the sessions and events say is unchanged.
    let kept = query_i64(
        &a.db,
        "SELECT count(*) FROM sessions WHERE revoked_reason IN ('revoked_by_user', 'admin_revoked')",
    );
    assert_eq!(kept, 2);
}
