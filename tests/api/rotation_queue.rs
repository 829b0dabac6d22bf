//! The rotation queue (`db::rotation_queue`): refreshes that wait for the
//! database go together in one statement, and each answers as it would
//! alone. The runners are held up by row locks another transaction takes,
//! so what waits, and what goes together, is known.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::PgConnection;
use serde_json::json;

use crate::support::app::*;
use crate::support::client::*;
use crate::support::db::*;
use crate::support::tokens::*;

/// How many rotation statements run at once (`rotation_queue::RUNNERS`).
const RUNNERS: usize = 2;

/// One counter or gauge of a scrape of `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Signs in `n` new users, one session each.
async fn sessions(app: &TestApp, n: usize) -> Vec<TokenPair> {
    let mut pairs = Vec::new();
    for _ in 0..n {
        let user = app.register().await;
        pairs.push(app.login(&user).await.token_pair());
    }
    pairs
}

/// Another transaction, holding these sessions' rows.
fn lock_sessions(db: &TestDb, pairs: &[&TokenPair], settings: &str) -> PgConnection {
    let ids: Vec<String> = pairs
        .iter()
        .map(|p| format!("'{}'", p.session_id))
        .collect();
    let mut conn = db.connect();
    conn.batch_execute(&format!(
        "{settings} BEGIN; SELECT 1 FROM sessions WHERE id IN ({}) FOR UPDATE",
        ids.join(", ")
    ))
    .unwrap();
    conn
}

/// Waits until `n` of keyward's connections wait for a row lock.
async fn until_waiting_for_locks(db: &TestDb, n: i64) {
    let waiting = eventually(Duration::from_secs(10), || async {
        query_i64(
            db,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'keyward' \
               AND wait_event_type = 'Lock'",
        ) == n
    })
    .await;
    assert!(
        waiting.is_some(),
        "{n} rotations never waited for the locks"
    );
}

/// Waits until `n` rotations wait in the queue.
async fn until_queued(app: &TestApp, n: usize) {
    let queued = eventually(Duration::from_secs(10), || async {
        metric(app, "keyward_rotations_waiting").await == n as f64
    })
    .await;
    assert!(queued.is_some(), "{n} rotations never waited in the queue");
}

/// Starts a refresh in the background.
fn refresh_later(app: &TestApp, rt: &str) -> actix_web::rt::task::JoinHandle<Reply> {
    let (client, url, body) = (
        app.client.clone(),
        app.url("/auth/refresh"),
        json!({ "refresh_token": rt }),
    );
    actix_web::rt::spawn(
        async move { read(client.post(url).json(&body).send().await.unwrap()).await },
    )
}

/// Holds both runners on locked rows: returns the lock holder and the two
/// refreshes waiting for it.
async fn hold_the_runners(
    app: &Harness,
    busy: &[TokenPair],
) -> (PgConnection, Vec<actix_web::rt::task::JoinHandle<Reply>>) {
    let held: Vec<&TokenPair> = busy.iter().collect();
    let lock = lock_sessions(&app.db, &held, "");
    let mut waiting = Vec::new();
    // One at a time: two started together could go in one statement.
    for (n, p) in (1..).zip(busy) {
        waiting.push(refresh_later(app, &p.refresh_token));
        until_waiting_for_locks(&app.db, n).await;
    }
    (lock, waiting)
}

async fn replies(handles: Vec<actix_web::rt::task::JoinHandle<Reply>>) -> Vec<Reply> {
    let mut replies = Vec::new();
    for h in handles {
        replies.push(h.await.unwrap());
    }
    replies
}

#[actix_web::test]
async fn refreshes_that_wait_for_the_database_go_together_in_one_statement() {
    // Arrange: both runners held on locked rows, twenty more sessions.
    let app = spawn_app().await;
    let busy = sessions(&app, RUNNERS).await;
    let others = sessions(&app, 20).await;
    let (mut lock, held) = hold_the_runners(&app, &busy).await;

    // Act: twenty refreshes wait in the queue, then the locks go.
    let queued: Vec<_> = others
        .iter()
        .map(|p| refresh_later(&app, &p.refresh_token))
        .collect();
    until_queued(&app, others.len()).await;
    lock.batch_execute("COMMIT").unwrap();
    let (held, queued) = (replies(held).await, replies(queued).await);

    // Assert: every refresh rotated its own session, and the twenty went in
    // one statement: three in all.
    for (pair, r) in others.iter().chain(&busy).zip(queued.iter().chain(&held)) {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["session_id"], pair.session_id);
        let jti = claims(field(&r.json, "refresh_token"))["jti"].clone();
        let current = query_texts(
            &app.db,
            &format!(
                "SELECT current_jti::text AS value FROM sessions WHERE id = '{}'",
                pair.session_id
            ),
        );
        assert_eq!(current, vec![jti.as_str().unwrap().to_string()]);
        assert_eq!(app.me(&r.token_pair()).await.status, 200);
    }
    assert_eq!(metric(&app, "keyward_rotation_statements_total").await, 3.0);
    assert_eq!(
        metric(&app, "keyward_rotation_statement_rotations_total").await,
        22.0
    );
    assert_eq!(metric(&app, "keyward_rotations_waiting").await, 0.0);
    assert_eq!(
        query_i64(
            &app.db,
            "SELECT count(*) FROM events WHERE kind = 'refreshed'"
        ),
        22
    );
}

#[actix_web::test]
async fn each_refresh_of_a_statement_answers_as_it_would_alone() {
    // Arrange: both runners held; sessions in every state a refresh can meet.
    let app = spawn_app().await;
    let busy = sessions(&app, RUNNERS).await;
    let s = sessions(&app, 5).await;
    let (fresh, twice, replayed, banned, ended) = (&s[0], &s[1], &s[2], &s[3], &s[4]);
    let old = replayed.refresh_token.clone();
    let mut current = old.clone();
    for _ in 0..2 {
        let r = app.refresh(&current).await;
        current = field(&r.json, "refresh_token").to_string();
    }
    app.db.exec(&format!(
        "UPDATE users SET banned = true WHERE id = (SELECT user_id FROM sessions WHERE id = '{}')",
        banned.session_id
    ));
    let r = app
        .post_json(
            "/auth/logout",
            &json!({"refresh_token": ended.refresh_token}),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let (mut lock, held) = hold_the_runners(&app, &busy).await;

    // Act: one refresh of each, and two of `twice` with the same token, all
    // waiting together for the next statement.
    let queued: Vec<_> = [fresh, twice, twice, banned, ended]
        .iter()
        .map(|p| p.refresh_token.as_str())
        .chain([old.as_str()])
        .map(|rt| refresh_later(&app, rt))
        .collect();
    until_queued(&app, 6).await;
    lock.batch_execute("COMMIT").unwrap();
    let mut r = replies(queued).await.into_iter();
    let (r_fresh, r_twice, r_twice_again, r_banned, r_ended, r_replayed) = (
        r.next().unwrap(),
        r.next().unwrap(),
        r.next().unwrap(),
        r.next().unwrap(),
        r.next().unwrap(),
        r.next().unwrap(),
    );
    for r in replies(held).await {
        assert_eq!(r.status, 200, "{}", r.text);
    }

    // Assert: what each would have got alone.
    assert_eq!(r_fresh.status, 200, "{}", r_fresh.text);
    assert_eq!(r_twice.status, 200, "{}", r_twice.text);
    assert_eq!(r_twice_again.status, 200, "{}", r_twice_again.text);
    assert_eq!(
        field(&r_twice.json, "refresh_token"),
        field(&r_twice_again.json, "refresh_token"),
        "two refreshes with one token hold the same new one"
    );
    r_banned.assert_error(403, "user_banned");
    r_ended.assert_error(401, "session_revoked");
    r_replayed.assert_error(401, "token_reused");
    app.refresh(&current)
        .await
        .assert_error(401, "session_revoked");
    // One event per rotation: the busy two, `fresh`, `twice` once, and the
    // two rotations of `replayed` before.
    assert_eq!(
        query_i64(
            &app.db,
            "SELECT count(*) FROM events WHERE kind = 'refreshed'"
        ),
        6
    );
    // Statements: two for `replayed` before, the busy two, the six queued
    // together (the second of `twice` left out of it), the last refresh.
    assert_eq!(metric(&app, "keyward_rotation_statements_total").await, 6.0);
    assert_eq!(
        metric(&app, "keyward_rotation_statement_rotations_total").await,
        10.0
    );
}

#[actix_web::test]
async fn a_statement_that_fails_runs_each_of_its_refreshes_alone() {
    // Arrange: both runners held; two more sessions, and a trigger that fails
    // the first update of the second one as a lost lock cycle would.
    let app = spawn_app().await;
    let busy = sessions(&app, RUNNERS).await;
    let pair = sessions(&app, 2).await;
    app.db.exec(&format!(
        "CREATE SEQUENCE first_update; \
         CREATE FUNCTION fail_once() RETURNS trigger AS $$ BEGIN \
           IF NEW.id = '{}' THEN \
             IF nextval('first_update') = 1 THEN \
               RAISE EXCEPTION 'deadlock detected' USING ERRCODE = 'deadlock_detected'; \
             END IF; \
           END IF; \
           RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER fail_once BEFORE UPDATE ON sessions \
           FOR EACH ROW EXECUTE FUNCTION fail_once()",
        pair[1].session_id
    ));
    let (mut lock, held) = hold_the_runners(&app, &busy).await;

    // Act: the two wait together, and go in one statement, which fails.
    let queued: Vec<_> = pair
        .iter()
        .map(|p| refresh_later(&app, &p.refresh_token))
        .collect();
    until_queued(&app, 2).await;
    lock.batch_execute("COMMIT").unwrap();

    // Assert: each then ran alone and rotated its session.
    for (p, r) in pair.iter().zip(replies(queued).await) {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["session_id"], p.session_id);
        assert_eq!(app.me(&r.token_pair()).await.status, 200);
    }
    for r in replies(held).await {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(
        metric(&app, "keyward_rotation_statements_failed_total").await,
        1.0
    );
    // The session was updated twice (the failed statement, then alone);
    // this read is the third call.
    assert_eq!(query_i64(&app.db, "SELECT nextval('first_update')"), 3);
    assert_eq!(
        query_i64(
            &app.db,
            "SELECT count(*) FROM events WHERE kind = 'refreshed'"
        ),
        4
    );
}
