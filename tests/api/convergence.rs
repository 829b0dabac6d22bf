//! Revocation converges without notifications (issue 13, item 2): every
//! instance re-reads the `revocations` log every `revocation.poll_seconds`,
//! and with `revocation.max_staleness_seconds` set it refuses access tokens
//! once it cannot. Real time is the subject here, so these tests wait.

use std::time::{Duration, Instant};

use crate::support::app::*;
use crate::support::client::*;
use crate::support::proxy::{through_proxy, Proxy};

async fn ready(app: &TestApp) {
    let ready = eventually(Duration::from_secs(5), || async {
        app.get("/ready", None).await.status == 200
    })
    .await;
    assert!(ready.is_some(), "the instance never became ready");
}

#[actix_web::test]
async fn a_revocation_written_without_notify_reaches_both_instances_within_the_poll() {
    let a = spawn_app().await;
    let b = second_instance(&a).await;
    let poll = Duration::from_secs(a.settings.revocation.poll_seconds);
    let user = a.register().await;
    let pair = a.login(&user).await.token_pair();
    let token = &pair.access_token;
    let sid = &pair.session_id;
    for app in [&a.app, &b] {
        assert_eq!(app.me(&pair).await.status, 200);
    }

    // As a pooler that drops LISTEN would leave it: the rows, no NOTIFY.
    a.db.exec(&format!(
        "BEGIN; \
         UPDATE sessions SET revoked_at = now(), revoked_reason = 'admin_revoked' \
           WHERE id = '{sid}'; \
         INSERT INTO revocations (at, reason, session_id, user_id) \
           VALUES (now(), 'admin', '{sid}', '{}'); \
         COMMIT;",
        user.id
    ));
    let committed = Instant::now();
    let mut took = Vec::new();
    for app in [&a.app, &b] {
        let refused = eventually(poll + Duration::from_secs(2), || async {
            let r = app.get("/api/me", Some(token)).await;
            r.status == 401 && r.json["error"] == "session_revoked"
        })
        .await;
        assert!(refused.is_some(), "an instance never saw the revocation");
        took.push(committed.elapsed());
    }
    eprintln!("refused without NOTIFY after {took:?} (poll every {poll:?})");
    for t in took {
        assert!(
            t <= poll + Duration::from_secs(1),
            "refused only after {t:?}, more than poll_seconds + 1 s"
        );
    }
}

#[actix_web::test]
async fn a_stale_set_answers_503_and_recovers_when_the_database_returns() {
    let proxy = Proxy::start(crate::support::proxy::pg_address());
    let app = spawn_app_with(|s| {
        through_proxy(s, &proxy);
        s.revocation.poll_seconds = 1;
        s.revocation.max_staleness_seconds = 2;
    })
    .await;
    ready(&app).await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    assert_eq!(app.me(&pair).await.status, 200);

    proxy.cut();
    let cut = Instant::now();
    // Still trusted while the set may be current: within the bound.
    let r = app.me(&pair).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let refused = eventually(Duration::from_secs(5), || async {
        app.me(&pair).await.status == 503
    })
    .await;
    assert!(refused.is_some(), "a stale set kept trusting tokens");
    let after = cut.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after <= Duration::from_secs(4),
        "503 after {after:?}, with max_staleness_seconds = 2"
    );
    let r = app.me(&pair).await;
    r.assert_error(503, "unavailable");
    assert!(r.header("retry-after").is_some(), "503 carries Retry-After");

    // The listener reconnects promptly once the database answers again.
    proxy.restore();
    let restored = Instant::now();
    let back = eventually(Duration::from_secs(5), || async {
        app.me(&pair).await.status == 200 && app.get("/ready", None).await.status == 200
    })
    .await;
    assert!(back.is_some(), "never trusted tokens again");
    eprintln!(
        "503 {after:?} after the cut; ready and trusting {:?} after the restore",
        restored.elapsed()
    );
    assert!(
        restored.elapsed() < Duration::from_secs(2),
        "recovery took {:?}",
        restored.elapsed()
    );
}

#[actix_web::test]
async fn without_a_staleness_bound_an_outage_keeps_tokens_working() {
    let proxy = Proxy::start(crate::support::proxy::pg_address());
    let app = spawn_app_with(|s| {
        through_proxy(s, &proxy);
        s.revocation.poll_seconds = 1;
    })
    .await;
    ready(&app).await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    proxy.cut();
    // Three polls missed: the default (0) chooses availability.
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    let r = app.me(&pair).await;
    assert_eq!(r.status, 200, "{}", r.text);
    proxy.restore();
}
