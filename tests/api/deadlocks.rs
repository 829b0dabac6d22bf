//! Concurrent revocations of one user's sessions never answer 500: the rows
//! are locked in one order, and a transaction that still loses a lock cycle
//! ("deadlock detected") runs again.

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use serde_json::json;
use tokio::sync::Barrier;

use crate::support::app::*;
use crate::support::client::*;
use crate::support::db::*;

const LOW: &str = "00000000-0000-4000-8000-000000000001";
const HIGH: &str = "ffffffff-ffff-4fff-bfff-ffffffffffff";

/// Inserts a live session of `user_id` with this id.
fn insert_session(db: &TestDb, user_id: &str, id: &str) {
    db.exec(&format!(
        "INSERT INTO sessions (id, user_id, current_jti, rotated_at, created_at, last_used_at, expires_at) \
         VALUES ('{id}', '{user_id}', gen_random_uuid(), now(), now(), now(), now() + interval '1 day')"
    ));
}

#[actix_web::test]
async fn a_revocation_that_loses_a_lock_cycle_runs_again_instead_of_failing() {
    // Arrange: a user with two sessions, the first one in id order also the
    // first in the table; another transaction holds the second.
    let app = spawn_app().await;
    let (_, admin_at) = app.admin(&app.db).await;
    let user = app.register().await;
    insert_session(&app.db, &user.id, LOW);
    insert_session(&app.db, &user.id, HIGH);
    let mut other = app.db.connect();
    other
        .batch_execute(&format!(
            "SET deadlock_timeout = '10s'; BEGIN; \
             SELECT 1 FROM sessions WHERE id = '{HIGH}' FOR UPDATE"
        ))
        .unwrap();

    // Act: the administrator revokes all the user's sessions: it locks the
    // first and waits for the second...
    let revoke = {
        let (client, url, token) = (
            app.client.clone(),
            app.url(&format!("/admin/users/{}/sessions", user.id)),
            admin_at.clone(),
        );
        actix_web::rt::spawn(async move {
            read(client.delete(url).bearer_auth(token).send().await.unwrap()).await
        })
    };
    let waiting = eventually(Duration::from_secs(5), || async {
        query_i64(
            &app.db,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'keyward' \
               AND wait_event_type = 'Lock'",
        ) == 1
    })
    .await;
    assert!(
        waiting.is_some(),
        "the revocation never waited for the lock"
    );
    // ...while the other transaction now wants the first: a cycle, which
    // PostgreSQL breaks by aborting the revocation (it waited first).
    let other = tokio::task::spawn_blocking(move || {
        other
            .batch_execute(&format!(
                "SELECT 1 FROM sessions WHERE id = '{LOW}' FOR UPDATE; COMMIT"
            ))
            .map(|()| "committed")
    })
    .await
    .unwrap();

    // Assert
    assert_eq!(other, Ok("committed"));
    let r = revoke.await.unwrap();
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        query_i64(
            &app.db,
            &format!(
                "SELECT count(*) FROM sessions WHERE user_id = '{}' AND revoked_at IS NULL",
                user.id
            )
        ),
        0
    );
}

#[actix_web::test]
async fn logouts_of_every_session_racing_an_administrators_revocation_never_fail() {
    let app = spawn_app_with(|s| s.rate_limit.enabled = false).await;
    let (_, admin_at) = app.admin(&app.db).await;
    let user = app.register().await;
    let mut statuses = std::collections::BTreeMap::new();
    for _round in 0..4 {
        let mut pairs = Vec::new();
        for _ in 0..8 {
            pairs.push(app.login(&user).await.token_pair());
        }
        // Refreshes move rows around in the table while the revocations run.
        let barrier = Arc::new(Barrier::new(16));
        let mut tasks = Vec::new();
        for (i, pair) in pairs.iter().enumerate() {
            let (client, released, rt) = (
                app.client.clone(),
                barrier.clone(),
                pair.refresh_token.clone(),
            );
            let refresh = app.url("/auth/refresh");
            let logout = app.url("/auth/logout?scope=all");
            let revoke_all = app.url(&format!("/admin/users/{}/sessions", user.id));
            let admin_at = admin_at.clone();
            tasks.push(actix_web::rt::spawn(async move {
                released.wait().await;
                let request = match i % 4 {
                    0 => client.post(logout).json(&json!({ "refresh_token": rt })),
                    1 => client.delete(revoke_all).bearer_auth(admin_at),
                    _ => client.post(refresh).json(&json!({ "refresh_token": rt })),
                };
                request.send().await.unwrap().status().as_u16()
            }));
            let (client, released, rt) = (
                app.client.clone(),
                barrier.clone(),
                pair.refresh_token.clone(),
            );
            let url = app.url("/auth/refresh");
            tasks.push(actix_web::rt::spawn(async move {
                released.wait().await;
                let request = client.post(url).json(&json!({ "refresh_token": rt }));
                request.send().await.unwrap().status().as_u16()
            }));
        }
        for task in tasks {
            *statuses.entry(task.await.unwrap()).or_insert(0) += 1;
        }
    }
    eprintln!("statuses of racing revocations and refreshes: {statuses:?}");
    assert!(
        statuses.keys().all(|s| [200, 204, 401].contains(s)),
        "{statuses:?}"
    );
}
