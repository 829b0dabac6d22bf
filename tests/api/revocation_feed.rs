//! The revocation feed (API.md section 7, issue 14): `GET /revocations` and
//! `GET /revocations/stream`, across instances, restarts and the horizon,
//! and the three kinds of entry refusing the right access tokens.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use keyward::clock::Clock;
use serde_json::{json, Value};

use crate::support::app::*;
use crate::support::client::*;
use crate::support::services::*;
use crate::support::tokens::*;

/// `GET /revocations` with the service's credentials.
async fn feed(app: &TestApp, service: &Service, after: Option<&str>, wait: u64) -> Reply {
    let mut query = vec![("wait", wait.to_string())];
    if let Some(after) = after {
        query.push(("after", after.to_string()));
    }
    let req = app
        .client
        .get(app.url("/revocations"))
        .query(&query)
        .header("authorization", service.basic());
    read(req.send().await.unwrap()).await
}

/// The session ids of a page's entries.
fn sids(page: &Value) -> Vec<String> {
    page["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["sid"].as_str().map(str::to_string))
        .collect()
}

fn cursor(page: &Value) -> String {
    field(page, "cursor").to_string()
}

async fn logout(app: &TestApp, pair: &TokenPair) {
    let r = app
        .post_json("/auth/logout", &json!({}), Some(&pair.access_token))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

/// Two instances of one keyward (rate limits off), a service both know,
/// and `n` sessions of one user.
async fn two_instances_signed_in(n: usize) -> (Harness, TestApp, Service, Vec<TokenPair>) {
    let a = spawn_app_with(|s| s.rate_limit.enabled = false).await;
    let b = second_instance(&a).await;
    let service = a.create_service();
    b.state
        .services
        .reload(&mut b.state.pool.get().unwrap())
        .unwrap();
    let user = a.register().await;
    let mut pairs = Vec::new();
    for _ in 0..n {
        pairs.push(a.login(&user).await.token_pair());
    }
    (a, b, service, pairs)
}

/// Logs `pairs` out, half on each instance, all released at once.
async fn log_out_at_once(a: &TestApp, b: &TestApp, pairs: &[TokenPair]) {
    let barrier = Arc::new(tokio::sync::Barrier::new(pairs.len()));
    let logouts = pairs.iter().enumerate().map(|(i, pair)| {
        let barrier = barrier.clone();
        let app = if i % 2 == 0 { a } else { b };
        async move {
            barrier.wait().await;
            logout(app, pair).await;
        }
    });
    futures_util::future::join_all(logouts).await;
}

/// A cursor past everything revoked so far.
async fn newest_cursor(app: &TestApp, service: &Service) -> String {
    let first = feed(app, service, None, 0).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json["reset"], true);
    cursor(&first.json)
}

#[actix_web::test]
async fn revocations_committed_at_once_on_two_instances_all_reach_a_consumer_of_both() {
    let (a, b, service, pairs) = two_instances_signed_in(40).await;
    let start = newest_cursor(&a, &service).await;

    // Meanwhile a consumer follows the feed, switching instance at every call.
    let consumer = async {
        let mut seen = HashSet::new();
        let mut cursor_now = start.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut calls = 0;
        while seen.len() < pairs.len() && Instant::now() < deadline {
            let app = if calls % 2 == 0 { &a.app } else { &b };
            let page = feed(app, &service, Some(&cursor_now), 1).await;
            assert_eq!(page.status, 200, "{}", page.text);
            assert_eq!(page.json["reset"], false, "a fresh cursor was reset");
            seen.extend(sids(&page.json));
            cursor_now = cursor(&page.json);
            calls += 1;
        }
        (seen, calls)
    };
    let (_, (seen, calls)) = tokio::join!(log_out_at_once(&a, &b, &pairs), consumer);
    let missing: Vec<_> = pairs
        .iter()
        .map(|p| p.session_id.clone())
        .filter(|sid| !seen.contains(sid))
        .collect();
    assert!(
        missing.is_empty(),
        "after {calls} calls the consumer never saw {missing:?}"
    );
}

#[actix_web::test]
async fn a_cursor_survives_a_restart_of_the_instance() {
    let a = spawn_app().await;
    let service = a.create_service();
    let user = a.register().await;
    let (first, second) = (
        a.login(&user).await.token_pair(),
        a.login(&user).await.token_pair(),
    );
    let start = newest_cursor(&a, &service).await;
    logout(&a, &first).await;
    let page = feed(&a, &service, Some(&start), 5).await;
    assert_eq!(sids(&page.json), vec![first.session_id.clone()]);
    let after_first = cursor(&page.json);

    // Another instance revokes while this one restarts.
    let settings = a.settings.clone();
    let Harness { app, db } = a;
    drop(app);
    let b = spawn_on(settings.clone(), Clock::system()).await;
    logout(&b, &second).await;
    drop(b);
    let restarted = spawn_on(settings, Clock::system()).await;
    let page = feed(&restarted, &service, Some(&after_first), 5).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.json["reset"], false, "{}", page.text);
    assert!(
        sids(&page.json).contains(&second.session_id.clone()),
        "{}",
        page.text
    );
    drop(db);
}

#[actix_web::test]
async fn a_cursor_that_missed_an_entry_past_the_horizon_gets_a_reset() {
    let a = spawn_app().await;
    let service = a.create_service();
    let user = a.register().await;
    let (gone, live) = (
        a.login(&user).await.token_pair(),
        a.login(&user).await.token_pair(),
    );
    let before = newest_cursor(&a, &service).await;
    logout(&a, &gone).await;
    let page = feed(&a, &service, Some(&before), 5).await;
    assert_eq!(sids(&page.json), vec![gone.session_id.clone()]);
    let kept_up = cursor(&page.json);

    // Past the horizon (access_ttl + leeway) the entry is dropped.
    let horizon = a.settings.auth.access_ttl_seconds + a.settings.auth.leeway_seconds;
    a.clock.advance(TimeDelta::seconds(horizon + 2));
    let dropped = eventually(Duration::from_secs(3), || async { a.state.feed.is_empty() }).await;
    assert!(dropped.is_some(), "the entry was never dropped");

    let page = feed(&a, &service, Some(&before), 0).await;
    assert_eq!(page.json["reset"], true, "it missed a dropped entry");
    assert!(
        sids(&page.json).is_empty(),
        "nothing is left in the horizon"
    );
    let page = feed(&a, &service, Some(&kept_up), 0).await;
    assert_eq!(page.json["reset"], false, "it had seen the dropped entry");
    // A reset is never held, even with wait.
    let started = Instant::now();
    let page = feed(&a, &service, Some("not-a-cursor"), 5).await;
    assert_eq!(page.json["reset"], true);
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(live);
}

#[actix_web::test]
async fn a_long_poll_wakes_when_a_revocation_arrives() {
    let a = spawn_app().await;
    let b = second_instance(&a).await;
    let service = a.create_service();
    let user = a.register().await;
    let pair = a.login(&user).await.token_pair();
    let start = newest_cursor(&a, &service).await;
    let poll = async {
        let started = Instant::now();
        let page = feed(&a, &service, Some(&start), 10).await;
        (page, started.elapsed())
    };
    let revoke = async {
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        // On the other instance: the news comes through the database.
        logout(&b, &pair).await;
        Instant::now()
    };
    let ((page, took), _) = tokio::join!(poll, revoke);
    assert_eq!(sids(&page.json), vec![pair.session_id.clone()]);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(1600),
        "answered after {took:?}"
    );
    let entry = &page.json["revocations"][0];
    assert_eq!(entry["sub"], user.id.as_str());
    assert_eq!(entry["reason"], "logout");
    assert!(entry["at"].as_str().is_some());
}

/// A `text/event-stream` answer read event by event.
struct Events {
    response: reqwest::Response,
    text: String,
}

#[derive(Debug, Default)]
struct Event {
    event: String,
    id: Option<String>,
    data: String,
}

impl Events {
    async fn open(app: &TestApp, service: &Service, last_event_id: Option<&str>) -> Self {
        let mut req = app
            .client
            .get(app.url("/revocations/stream"))
            .header("accept", "text/event-stream")
            .header("authorization", service.basic());
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"].to_str().unwrap();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Self {
            response,
            text: String::new(),
        }
    }

    /// The next event, or `None` when the stream ends or `limit` passes.
    async fn next(&mut self, limit: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let mut event = Event::default();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event.event = v.to_string();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        event.id = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data = v.trim_start().to_string();
                    }
                }
                if !event.event.is_empty() {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Events until a `revoked` one for `sid`; returns it and what came before.
    async fn until_revoked(&mut self, sid: &str) -> (Option<Event>, Vec<Event>) {
        let mut before = Vec::new();
        while let Some(event) = self.next(Duration::from_secs(3)).await {
            let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            if event.event == "revoked" && data["sid"] == sid {
                return (Some(event), before);
            }
            before.push(event);
        }
        (None, before)
    }
}

#[actix_web::test]
async fn the_stream_starts_with_a_reset_and_resumes_from_last_event_id() {
    let a = spawn_app().await;
    let service = a.create_service();
    let user = a.register().await;
    let (first, second, third) = (
        a.login(&user).await.token_pair(),
        a.login(&user).await.token_pair(),
        a.login(&user).await.token_pair(),
    );
    logout(&a, &first).await;
    let mut stream = Events::open(&a, &service, None).await;
    let reset = stream.next(Duration::from_secs(3)).await.unwrap();
    assert_eq!(reset.event, "reset");
    let (event, _) = stream.until_revoked(&first.session_id).await;
    let event = event.expect("the set after the reset holds the first session");
    logout(&a, &second).await;
    let (live, _) = stream.until_revoked(&second.session_id).await;
    let live = live.expect("a logout while connected arrives");
    let data: Value = serde_json::from_str(&live.data).unwrap();
    assert_eq!(data["sub"], user.id.as_str());
    assert_eq!(data["reason"], "logout");
    drop(stream);
    assert!(event.id.is_some());

    // Revoked while disconnected: resuming delivers it, with no reset.
    logout(&a, &third).await;
    let mut resumed = Events::open(&a, &service, live.id.as_deref()).await;
    let (missed, before) = resumed.until_revoked(&third.session_id).await;
    assert!(missed.is_some(), "resuming lost an entry: {before:?}");
    assert!(
        before.iter().all(|e| e.event != "reset"),
        "a fresh Last-Event-ID got a reset: {before:?}"
    );
}

#[actix_web::test]
async fn a_deleted_services_stream_ends_within_a_second() {
    let a = spawn_app().await;
    let service = a.create_service();
    let mut stream = Events::open(&a, &service, None).await;
    assert_eq!(
        stream.next(Duration::from_secs(3)).await.unwrap().event,
        "reset"
    );
    let mut conn = a.db.connect();
    keyward::services::service_registry::delete(&mut conn, &service.name, a.clock.now()).unwrap();
    let deleted = Instant::now();
    while stream.next(Duration::from_secs(3)).await.is_some() {}
    let took = deleted.elapsed();
    assert!(took < Duration::from_millis(1500), "ended after {took:?}");
}

#[actix_web::test]
async fn each_kind_of_entry_refuses_the_right_access_tokens() {
    let a = spawn_app().await;
    let b = second_instance(&a).await;
    let service = a.create_service();
    let (alice, bob) = (a.register().await, a.register().await);
    let alice_pair = a.login(&alice).await.token_pair();
    let bob_pair = a.login(&bob).await.token_pair();

    // auth_before: everyone signed in before the cut-off, on every instance.
    a.clock.advance(TimeDelta::seconds(2));
    b.clock.advance(TimeDelta::seconds(2));
    let cut = a.clock.now() - TimeDelta::seconds(1);
    let mut conn = a.db.connect();
    keyward::db::revocations::append_auth_before(&mut conn, cut, a.clock.now()).unwrap();
    let later = a.login(&alice).await.token_pair();
    for app in [&a.app, &b] {
        for pair in [&alice_pair, &bob_pair] {
            let refused = eventually(Duration::from_secs(1), || async {
                app.me(pair).await.status == 401
            })
            .await;
            assert!(
                refused.is_some(),
                "a sign-in before the cut-off still works"
            );
            app.me(pair).await.assert_error(401, "session_revoked");
        }
        assert_eq!(app.me(&later).await.status, 200, "a later sign-in works");
    }

    // kid: every token its key signed, whoever's session.
    let kid = header_of(&later.access_token)["kid"]
        .as_str()
        .expect("keys in the database carry a kid")
        .to_string();
    let bob_later = a.login(&bob).await.token_pair();
    keyward::db::revocations::append_kid(&mut conn, &kid, a.clock.now()).unwrap();
    for app in [&a.app, &b] {
        for pair in [&later, &bob_later] {
            let refused = eventually(Duration::from_secs(1), || async {
                app.me(pair).await.status == 401
            })
            .await;
            assert!(refused.is_some(), "a token of the revoked key still works");
        }
    }

    // The feed carries both, in the shapes of section 7.
    let page = feed(&a, &service, None, 0).await;
    let entries = page.json["revocations"].as_array().unwrap();
    assert!(entries
        .iter()
        .any(|e| e["reason"] == "revoked_all" && e["auth_before"].is_string()));
    assert!(entries
        .iter()
        .any(|e| e["reason"] == "key_revoked" && e["kid"] == kid.as_str()));
}

#[actix_web::test]
async fn a_consumer_that_saw_the_feed_empty_resumes_without_a_reset_and_misses_nothing() {
    let (a, b, service, pairs) = two_instances_signed_in(10).await;

    // Nothing revoked yet: both forms of the feed still hand out a cursor.
    let empty = feed(&a, &service, None, 0).await;
    assert_eq!(empty.json["reset"], true, "{}", empty.text);
    assert!(sids(&empty.json).is_empty(), "{}", empty.text);
    let polled = cursor(&empty.json);
    assert!(!polled.is_empty());
    let mut stream = Events::open(&a, &service, None).await;
    let reset = stream.next(Duration::from_secs(3)).await.unwrap();
    assert_eq!(reset.event, "reset");
    let streamed = reset.id.expect("an empty set's reset carries the cursor");
    drop(stream);

    // Revocations commit afterwards, at once on two instances.
    log_out_at_once(&a, &b, &pairs).await;
    let all: HashSet<String> = pairs.iter().map(|p| p.session_id.clone()).collect();

    // The long-poll consumer resumes on the other instance.
    let mut seen = HashSet::new();
    let mut at = polled;
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen != all && Instant::now() < deadline {
        let page = feed(&b, &service, Some(&at), 1).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(
            page.json["reset"], false,
            "an empty feed's cursor was reset"
        );
        seen.extend(sids(&page.json));
        at = cursor(&page.json);
    }
    assert_eq!(seen, all, "the long-poll consumer missed some");

    // The stream consumer resumes by Last-Event-ID.
    let mut resumed = Events::open(&b, &service, Some(&streamed)).await;
    let mut seen = HashSet::new();
    while seen != all {
        let Some(event) = resumed.next(Duration::from_secs(3)).await else {
            break;
        };
        assert_ne!(event.event, "reset", "an empty set's cursor was reset");
        let data: Value = serde_json::from_str(&event.data).unwrap();
        seen.insert(data["sid"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, all, "the stream consumer missed some");
}
