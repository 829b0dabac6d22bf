//! The verifier against a fake keyward: discovery, key refetch, the feed
//! (entries, resume by cursor, staleness), and the web integrations.
// A failed unwrap is a failed test; the support code fails the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support {
    pub mod fake_keyward;
    pub mod keys;
}

use std::time::Duration;

use keyward_verify::{ConnectError, Reason, StalePolicy, Verifier, VerifyError, ACCESS_TYP};
use support::fake_keyward::{FakeKeyward, CLIENT_ID, CLIENT_SECRET};
use support::keys::{claims_json, jwks, now, sign, test_key};

async fn connect(fake: &FakeKeyward, policy: StalePolicy) -> Verifier {
    Verifier::builder(&fake.url, CLIENT_ID, CLIENT_SECRET)
        .stale_policy(policy)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

/// Waits up to 2 s for `check` to hold.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn refused_within_2s(verifier: &Verifier, token: &str) -> Option<VerifyError> {
    for _ in 0..200 {
        if let Err(e) = verifier.verify(token).await {
            return Some(e);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test]
async fn entries_of_each_kind_refuse_their_tokens() {
    let key = test_key("k1", 1);
    let fake = FakeKeyward::start(jwks(&[&key])).await;
    let verifier = connect(&fake, StalePolicy::default()).await;

    let by_session = claims_json(now());
    let by_time = claims_json(now() - 100);
    let bystander = claims_json(now());
    let tokens: Vec<String> = [&by_session, &by_time, &bystander]
        .iter()
        .map(|c| sign(&key, ACCESS_TYP, c))
        .collect();
    for token in &tokens {
        let claims = verifier.verify(token).await.unwrap();
        assert_eq!(claims.username, "jon");
    }
    let sid = by_session["sid"].as_str().unwrap();
    assert!(fake.send(&format!(
        "event: revoked\nid: c1\ndata: {{\"sid\":\"{sid}\",\"sub\":\"{sid}\",\"at\":\"2026-12-01T10:00:00Z\",\"reason\":\"user_banned\"}}\n\n"
    )));
    assert_eq!(
        refused_within_2s(&verifier, &tokens[0]).await,
        Some(VerifyError::Revoked(Reason::UserBanned))
    );
    let before = now() - 50;
    fake.send(&format!(
        "event: revoked\nid: c2\ndata: {{\"auth_before\":{before},\"at\":{before},\"reason\":\"revoked_all\"}}\n\n"
    ));
    assert_eq!(
        refused_within_2s(&verifier, &tokens[1]).await,
        Some(VerifyError::Revoked(Reason::RevokedAll))
    );
    assert!(
        verifier.verify(&tokens[2]).await.is_ok(),
        "signed in after auth_before"
    );
    fake.send(
        "event: revoked\nid: c3\ndata: {\"kid\":\"k1\",\"at\":1,\"reason\":\"key_revoked\"}\n\n",
    );
    assert_eq!(
        refused_within_2s(&verifier, &tokens[2]).await,
        Some(VerifyError::Revoked(Reason::KeyRevoked))
    );
    assert_eq!(verifier.feed_status().cursor.as_deref(), Some("c3"));
}

#[tokio::test]
async fn a_lost_stream_is_resumed_from_the_cursor_and_nothing_is_missed() {
    let key = test_key("k1", 1);
    let fake = FakeKeyward::start(jwks(&[&key])).await;
    let verifier = connect(&fake, StalePolicy::default()).await;
    fake.send(
        "event: revoked\nid: c7\ndata: {\"kid\":\"old\",\"at\":1,\"reason\":\"key_revoked\"}\n\n",
    );
    assert!(eventually(|| verifier.feed_status().cursor.as_deref() == Some("c7")).await);

    fake.cut();
    assert!(eventually(|| fake.connections() == 2).await, "reconnected");
    assert_eq!(
        fake.state.lock().unwrap().resumed_from,
        vec![None, Some("c7".to_string())]
    );
    let claims = claims_json(now());
    let token = sign(&key, ACCESS_TYP, &claims);
    assert!(verifier.verify(&token).await.is_ok());
    let sid = claims["sid"].as_str().unwrap();
    fake.send(&format!(
        "event: revoked\nid: c8\ndata: {{\"sid\":\"{sid}\",\"at\":1,\"reason\":\"logout\"}}\n\n"
    ));
    assert_eq!(
        refused_within_2s(&verifier, &token).await,
        Some(VerifyError::Revoked(Reason::Logout))
    );
    let status = verifier.feed_status();
    assert!(status.connected);
    assert_eq!(
        (status.connections, status.resets, status.entries),
        (2, 1, 2)
    );
}

#[tokio::test]
async fn a_reset_replaces_the_set() {
    let key = test_key("k1", 1);
    let fake = FakeKeyward::start(jwks(&[&key])).await;
    let verifier = connect(&fake, StalePolicy::default()).await;
    let (a, b) = (claims_json(now()), claims_json(now()));
    let entry = |c: &serde_json::Value, id: &str| {
        format!(
            "event: revoked\nid: {id}\ndata: {{\"sid\":\"{}\",\"at\":{},\"reason\":\"admin\"}}\n\n",
            c["sid"].as_str().unwrap(),
            now()
        )
    };
    fake.send(&entry(&a, "c1"));
    let (ta, tb) = (sign(&key, ACCESS_TYP, &a), sign(&key, ACCESS_TYP, &b));
    assert!(refused_within_2s(&verifier, &ta).await.is_some());
    // keyward dropped what came before: the new set holds b only.
    fake.send(&format!(
        "event: reset\ndata:\n\n{}: heartbeat\n\n",
        entry(&b, "c9")
    ));
    assert!(refused_within_2s(&verifier, &tb).await.is_some());
    assert!(eventually(|| verifier.feed_status().entries == 1).await);
    assert!(verifier.verify(&ta).await.is_ok());
    assert_eq!(verifier.feed_status().resets, 2);
}

#[tokio::test]
async fn a_key_rotated_later_is_fetched_at_most_once_a_second() {
    let (k1, k2, stranger) = (test_key("k1", 1), test_key("k2", 2), test_key("zz", 3));
    let fake = FakeKeyward::start(jwks(&[&k1])).await;
    let verifier = connect(&fake, StalePolicy::default()).await;
    assert_eq!(fake.state.lock().unwrap().jwks_fetches, 1);
    fake.state.lock().unwrap().jwks = jwks(&[&k1, &k2]);
    // Many at once, within a second of the first fetch: they wait for the
    // second to pass, then share one fetch, and every one is accepted.
    let rotated = sign(&k2, ACCESS_TYP, &claims_json(now()));
    let results = futures_join(&verifier, &rotated, 8).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(fake.state.lock().unwrap().jwks_fetches, 2);
    // A key keyward does not have: one more fetch, a second later, then no.
    let unknown = sign(&stranger, ACCESS_TYP, &claims_json(now()));
    assert_eq!(verifier.verify(&unknown).await, Err(VerifyError::Invalid));
    let at = fake.state.lock().unwrap().jwks_fetched_at.clone();
    assert_eq!(at.len(), 3);
    for pair in at.windows(2) {
        // Fetches start at least a second apart (the request leaves a little
        // after the verifier's clock started the second).
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(990),
            "{:?}",
            pair[1] - pair[0]
        );
    }
    // Known keys cause no fetch.
    assert!(verifier.verify(&rotated).await.is_ok());
    assert_eq!(fake.state.lock().unwrap().jwks_fetches, 3);
}

async fn futures_join(
    verifier: &Verifier,
    token: &str,
    n: usize,
) -> Vec<Result<keyward_verify::AccessClaims, VerifyError>> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (v, t) = (verifier.clone(), token.to_string());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_silent_feed_fails_closed_until_heard_again_unless_fail_open() {
    let key = test_key("k1", 1);
    let fake = FakeKeyward::start(jwks(&[&key])).await;
    let after = Duration::from_millis(500);
    let lenient = connect(&fake, StalePolicy::FailOpen).await;
    let strict = connect(&fake, StalePolicy::FailClosed { after }).await;
    let token = sign(&key, ACCESS_TYP, &claims_json(now()));
    assert!(strict.verify(&token).await.is_ok());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(strict.verify(&token).await, Err(VerifyError::FeedStale));
    assert!(lenient.verify(&token).await.is_ok());
    // Garbage is still garbage, stale or not.
    assert_eq!(strict.verify("nope").await, Err(VerifyError::Invalid));
    assert!(fake.send(": heartbeat\n\n"));
    assert!(eventually(|| strict.feed_status().silent_for < after).await);
    assert!(strict.verify(&token).await.is_ok());
}

#[tokio::test]
async fn wrong_credentials_and_hmac_only_keyward_do_not_connect() {
    let key = test_key("k1", 1);
    let fake = FakeKeyward::start(jwks(&[&key])).await;
    let wrong = Verifier::builder(&fake.url, CLIENT_ID, "wrong")
        .connect()
        .await;
    assert!(
        matches!(wrong, Err(ConnectError::InvalidClient)),
        "{wrong:?}"
    );
    fake.state.lock().unwrap().algorithms = vec!["HS256".into()];
    let hmac = Verifier::builder(&fake.url, CLIENT_ID, CLIENT_SECRET)
        .connect()
        .await;
    assert!(
        matches!(hmac, Err(ConnectError::UnsupportedAlgorithm(_))),
        "{hmac:?}"
    );
    fake.state.lock().unwrap().algorithms = vec!["EdDSA".into()];
    fake.state.lock().unwrap().no_stream = true;
    let no_feed = Verifier::builder(&fake.url, CLIENT_ID, CLIENT_SECRET)
        .connect()
        .await;
    assert!(
        matches!(
            no_feed,
            Err(ConnectError::Fetch {
                what: "the revocation feed",
                ..
            })
        ),
        "{no_feed:?}"
    );
    let nothing = Verifier::builder("http://127.0.0.1:9", CLIENT_ID, CLIENT_SECRET)
        .connect()
        .await;
    assert!(
        matches!(nothing, Err(ConnectError::Fetch { .. })),
        "{nothing:?}"
    );
}

#[tokio::test]
async fn a_cached_token_is_still_refused_once_revoked_or_expired() {
    let key = test_key("k1", 1);
    let fake = FakeKeyward::start(jwks(&[&key])).await;
    let verifier = Verifier::builder(&fake.url, CLIENT_ID, CLIENT_SECRET)
        .leeway(Duration::ZERO)
        .connect()
        .await
        .unwrap();
    let revoked = claims_json(now());
    let mut expiring = claims_json(now());
    expiring["exp"] = (now() + 1).into();
    let (revoked_token, expiring_token) = (
        sign(&key, ACCESS_TYP, &revoked),
        sign(&key, ACCESS_TYP, &expiring),
    );
    // Verified twice: the second answer comes from the cache.
    for token in [&revoked_token, &expiring_token] {
        for _ in 0..2 {
            assert!(verifier.verify(token).await.is_ok());
        }
    }
    let sid = revoked["sid"].as_str().unwrap();
    fake.send(&format!(
        "event: revoked\nid: c1\ndata: {{\"sid\":\"{sid}\",\"at\":1,\"reason\":\"admin\"}}\n\n"
    ));
    assert_eq!(
        refused_within_2s(&verifier, &revoked_token).await,
        Some(VerifyError::Revoked(Reason::Admin))
    );
    // `exp` is one second ahead and there is no leeway: within about two
    // seconds the cached token is refused as expired, and stays so.
    let mut refused = None;
    for _ in 0..40 {
        if let Err(e) = verifier.verify(&expiring_token).await {
            refused = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused, Some(VerifyError::Expired));
    assert_eq!(
        verifier.verify(&expiring_token).await,
        Err(VerifyError::Expired)
    );
}
