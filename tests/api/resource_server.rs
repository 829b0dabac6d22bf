//! A resource server built on keyward-verify (the workspace crate), end to
//! end against the real keyward on its own test database: the access tokens
//! of every kind of ended session are refused within a second; it keeps up
//! across a keyward restart and a cut connection (resuming by cursor), with
//! keys rotated after it started, with revocations committed at once on two
//! instances.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use chrono::TimeDelta;
use keyward::clock::Clock;
use keyward::config::Algorithm as KeyAlgorithm;
use keyward_verify::{Reason, VerifiedUser, Verifier, VerifyError};
use serde_json::json;

use crate::support::app::{free_port, spawn_app_with, spawn_on, test_settings, TestApp};
use crate::support::cli::keyward_cli;
use crate::support::client::{eventually, read, Reply, User};
use crate::support::db::TestDb;
use crate::support::proxy::Proxy;
use crate::support::services::Service;
use crate::support::tokens::{kid_of, TokenPair};

/// A resource server on the library: one protected route, `GET /me`.
struct ResourceServer {
    verifier: Verifier,
    url: String,
    client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn me(user: VerifiedUser) -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({"id": user.sub, "session_id": user.sid, "username": user.username}))
}

impl ResourceServer {
    /// Connects to the keyward at `keyward_url` as `service` and serves.
    async fn start(keyward_url: &str, service: &Service) -> Self {
        let verifier = Verifier::builder(keyward_url, &service.client_id, &service.client_secret)
            .connect()
            .await
            .expect("the verifier connects");
        let data = web::Data::new(verifier.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/me", web::get().to(me))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let url = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            verifier,
            url,
            client: reqwest::Client::new(),
            handle,
        }
    }

    async fn me(&self, token: &str) -> Reply {
        let request = self
            .client
            .get(format!("{}/me", self.url))
            .bearer_auth(token);
        read(request.send().await.unwrap()).await
    }

    async fn assert_accepts(&self, token: &str) {
        let r = self.me(token).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }

    /// Waits up to `limit` for `token` to be refused; the refusal, after
    /// checking that it is keyward's `session_revoked` for `reason`.
    async fn assert_refused_within(&self, token: &str, limit: Duration, reason: Reason) {
        let took = eventually(limit, || async { self.me(token).await.status == 401 }).await;
        assert!(took.is_some(), "not refused within {limit:?} ({reason})");
        let r = self.me(token).await;
        r.assert_error(401, "session_revoked");
        assert_eq!(
            self.verifier.verify(token).await,
            Err(VerifyError::Revoked(reason))
        );
    }
}

fn eddsa(settings: &mut keyward::config::Settings) {
    settings.auth.algorithm = KeyAlgorithm::EdDSA;
    settings.auth.jwt_secret = None;
}

async fn signed_in(app: &TestApp) -> (User, TokenPair) {
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    (user, pair)
}

const SECOND: Duration = Duration::from_secs(1);

async fn log_out(app: &TestApp, pair: &TokenPair) {
    let request = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&pair.access_token);
    assert_eq!(request.send().await.unwrap().status(), 204);
}

/// A proxy to a free port, that port, and keyward's URL through the proxy.
fn proxy_to_a_free_port() -> (Proxy, u16, String) {
    let port = free_port();
    let proxy = Proxy::start(format!("127.0.0.1:{port}"));
    let proxied = format!("http://127.0.0.1:{}", proxy.port);
    (proxy, port, proxied)
}

/// Cuts the connection through `proxy` and waits until `rs` has noticed.
async fn cut(proxy: &Proxy, rs: &ResourceServer) {
    proxy.cut();
    let gone = eventually(5 * SECOND, || async {
        !rs.verifier.feed_status().connected
    })
    .await;
    assert!(gone.is_some(), "the verifier notices the cut");
}

#[actix_web::test]
async fn the_access_tokens_of_every_kind_of_ended_session_are_refused_within_a_second() {
    let h = spawn_app_with(eddsa).await;
    let rs = ResourceServer::start(&h.address, &h.create_service()).await;
    let (_, admin_token) = h.admin(&h.db).await;
    let (_, logged_out) = signed_in(&h).await;
    let (banned_user, banned) = signed_in(&h).await;
    let (_, reused) = signed_in(&h).await;
    let (changer, other_session) = signed_in(&h).await;
    let changing = h.login(&changer).await.token_pair();
    let (_, revoked) = signed_in(&h).await;
    let all = [
        &logged_out,
        &banned,
        &reused,
        &other_session,
        &changing,
        &revoked,
    ];
    for pair in all {
        rs.assert_accepts(&pair.access_token).await;
    }

    log_out(&h, &logged_out).await;
    let path = format!("/admin/users/{}/ban", banned_user.id);
    let r = h.post_json(&path, &json!({}), Some(&admin_token)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h.refresh(&reused.refresh_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    h.clock
        .advance(TimeDelta::seconds(h.settings.auth.reuse_grace_seconds + 1));
    h.refresh(&reused.refresh_token)
        .await
        .assert_error(401, "token_reused");
    let body =
        json!({"current_password": changer.password, "new_password": "another long password"});
    let r = h
        .post_json("/auth/password", &body, Some(&changing.access_token))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let path = format!("/admin/sessions/{}", revoked.session_id);
    let r = h.delete(&path, Some(&admin_token)).await;
    assert_eq!(r.status, 204, "{}", r.text);

    for (pair, reason) in [
        (&logged_out, Reason::Logout),
        (&banned, Reason::UserBanned),
        (&reused, Reason::ReuseDetected),
        (&other_session, Reason::PasswordChanged),
        (&revoked, Reason::Admin),
    ] {
        rs.assert_refused_within(&pair.access_token, SECOND, reason)
            .await;
    }
    // The session that changed the password, and the admin's, go on.
    rs.assert_accepts(&changing.access_token).await;
    rs.assert_accepts(&admin_token).await;
}

/// An EdDSA keyward on `db` at a fixed port (so that it can come back on
/// it), with discovery naming `public_url`.
async fn keyward_at(db: &TestDb, port: u16, public_url: Option<String>) -> TestApp {
    let mut settings = test_settings(db);
    eddsa(&mut settings);
    settings.server.port = port;
    settings.server.public_url = public_url;
    spawn_on(settings, Clock::system()).await
}

#[actix_web::test]
async fn a_keyward_restart_is_resumed_by_cursor_and_nothing_is_missed() {
    let db = TestDb::new();
    let port = free_port();
    let first = keyward_at(&db, port, None).await;
    let rs = ResourceServer::start(&first.address, &first.create_service()).await;
    let (_, before) = signed_in(&first).await;
    let (during_user, during) = signed_in(&first).await;
    let (_, after) = signed_in(&first).await;
    log_out(&first, &before).await;
    rs.assert_refused_within(&before.access_token, SECOND, Reason::Logout)
        .await;

    first.shut_down().await;
    // While keyward is down, a revocation commits (from the command line).
    let out = keyward_cli(
        &db.url,
        &["sessions", "revoke", "--user", &during_user.username],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = keyward_at(&db, port, None).await;
    log_out(&second, &after).await;

    for (pair, reason) in [(&during, Reason::Admin), (&after, Reason::Logout)] {
        rs.assert_refused_within(&pair.access_token, 5 * SECOND, reason)
            .await;
    }
    let status = rs.verifier.feed_status();
    assert!(status.connections >= 2, "{status:?}");
    assert_eq!(status.resets, 1, "resumed by cursor, not reset: {status:?}");
    assert_eq!(status.entries, 3, "{status:?}");
}

#[actix_web::test]
async fn a_cut_connection_is_resumed_by_cursor_once_restored() {
    let db = TestDb::new();
    let (proxy, port, proxied) = proxy_to_a_free_port();
    let app = keyward_at(&db, port, Some(proxied.clone())).await;
    let rs = ResourceServer::start(&proxied, &app.create_service()).await;
    let (_, cut_off) = signed_in(&app).await;
    let (_, bystander) = signed_in(&app).await;
    let (_, earlier) = signed_in(&app).await;
    rs.assert_accepts(&cut_off.access_token).await;
    // One revocation before the cut, so that the verifier holds a cursor.
    log_out(&app, &earlier).await;
    rs.assert_refused_within(&earlier.access_token, SECOND, Reason::Logout)
        .await;

    cut(&proxy, &rs).await;
    log_out(&app, &cut_off).await;
    proxy.restore();

    rs.assert_refused_within(&cut_off.access_token, 5 * SECOND, Reason::Logout)
        .await;
    rs.assert_accepts(&bystander.access_token).await;
    let status = rs.verifier.feed_status();
    assert!(status.connections >= 2, "{status:?}");
    assert_eq!(status.resets, 1, "resumed by cursor, not reset: {status:?}");
}

#[actix_web::test]
async fn a_verifier_started_on_an_empty_feed_resumes_without_a_reset() {
    let db = TestDb::new();
    let (proxy, port, proxied) = proxy_to_a_free_port();
    let first = keyward_at(&db, port, Some(proxied.clone())).await;
    // Nothing has ever been revoked when it connects.
    let rs = ResourceServer::start(&proxied, &first.create_service()).await;
    let (_, cut_off) = signed_in(&first).await;
    let (_, restarted) = signed_in(&first).await;
    let (_, bystander) = signed_in(&first).await;
    let status = rs.verifier.feed_status();
    assert_eq!(status.entries, 0, "{status:?}");
    assert!(status.cursor.is_some(), "an empty feed gave no cursor");

    // A cut connection, a revocation meanwhile, the connection restored.
    cut(&proxy, &rs).await;
    log_out(&first, &cut_off).await;
    proxy.restore();
    rs.assert_refused_within(&cut_off.access_token, 5 * SECOND, Reason::Logout)
        .await;

    // A restart of keyward, and a revocation after it.
    first.shut_down().await;
    let second = keyward_at(&db, port, Some(proxied.clone())).await;
    log_out(&second, &restarted).await;
    rs.assert_refused_within(&restarted.access_token, 5 * SECOND, Reason::Logout)
        .await;
    rs.assert_accepts(&bystander.access_token).await;
    let status = rs.verifier.feed_status();
    assert!(status.connections >= 3, "{status:?}");
    assert_eq!(status.resets, 1, "resumed by cursor, not reset: {status:?}");
    assert_eq!(status.entries, 2, "{status:?}");
}

#[actix_web::test]
async fn a_key_rotated_after_it_started_is_accepted() {
    let h = spawn_app_with(eddsa).await;
    let rs = ResourceServer::start(&h.address, &h.create_service()).await;
    let user = h.register().await;
    let old = h.login(&user).await.token_pair();
    let old_kid = kid_of(&old.access_token);

    let new_kid = keyward::services::key_rotation::rotate(
        &mut h.db.connect(),
        &h.settings,
        h.clock.now(),
        true,
    )
    .unwrap()
    .kid;
    assert_ne!(new_kid, old_kid);
    let rotated = eventually(5 * SECOND, || async {
        kid_of(&h.login(&user).await.token_pair().access_token) == new_kid
    })
    .await;
    assert!(rotated.is_some(), "keyward signs with the new key");
    let new = h.login(&user).await.token_pair();
    // The verifier has not seen the new key: it fetches the keys again.
    rs.assert_accepts(&new.access_token).await;
    rs.assert_accepts(&old.access_token).await;
}

#[actix_web::test]
async fn revocations_committed_at_once_on_two_instances_all_reach_it() {
    let h = spawn_app_with(eddsa).await;
    let other = spawn_on(h.settings.clone(), Clock::system()).await;
    let rs = ResourceServer::start(&h.address, &h.create_service()).await;
    let user = h.register().await;
    let mut tokens = Vec::new();
    for _ in 0..24 {
        tokens.push(h.login(&user).await.token_pair().access_token);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(tokens.len()));
    let logouts: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let app = if i % 2 == 0 { &h.app } else { &other };
            let request = app.client.post(app.url("/auth/logout")).bearer_auth(token);
            let barrier = barrier.clone();
            actix_web::rt::spawn(async move {
                barrier.wait().await;
                request.send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    for logout in logouts {
        assert_eq!(logout.await.unwrap(), 204);
    }
    for token in &tokens {
        rs.assert_refused_within(token, SECOND, Reason::Logout)
            .await;
    }
    assert_eq!(rs.verifier.feed_status().entries, tokens.len());
}

#[actix_web::test]
async fn signing_everyone_out_and_a_revoked_key_reach_it_within_a_second() {
    let h = spawn_app_with(eddsa).await;
    let rs = ResourceServer::start(&h.address, &h.create_service()).await;
    let (_, admin_token) = h.admin(&h.db).await;
    let (user, before) = signed_in(&h).await;
    rs.assert_accepts(&before.access_token).await;

    // Signing everyone out is one `auth_before` entry in the feed.
    let r = h
        .post_json("/admin/sessions/revoke", &json!({}), Some(&admin_token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    rs.assert_refused_within(&before.access_token, SECOND, Reason::RevokedAll)
        .await;
    // A sign-in after the cut-off is not caught by it.
    h.clock.advance(TimeDelta::seconds(2));
    let after = h.login(&user).await.token_pair();
    rs.assert_accepts(&after.access_token).await;

    // A revoked signing key: every token it signed is refused.
    let kid = kid_of(&after.access_token);
    keyward::services::key_rotation::revoke(&mut h.db.connect(), &kid, h.clock.now()).unwrap();
    let token = after.access_token.clone();
    let refused = eventually(SECOND, || async {
        rs.verifier.verify(&token).await == Err(VerifyError::Revoked(Reason::KeyRevoked))
    })
    .await;
    assert!(
        refused.is_some(),
        "the revoked key's token is still accepted"
    );
    assert_eq!(rs.me(&token).await.status, 401);
}
