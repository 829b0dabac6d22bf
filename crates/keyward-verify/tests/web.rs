//! The actix-web extractor and the tower layer, in front of a fake keyward.
// A failed unwrap is a failed test; the support code fails the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "actix", feature = "axum"))]

mod support {
    pub mod fake_keyward;
    pub mod keys;
}

use std::time::Duration;

use keyward_verify::{VerifiedUser, Verifier, ACCESS_TYP};
use support::fake_keyward::{FakeKeyward, CLIENT_ID, CLIENT_SECRET};
use support::keys::{claims_json, jwks, now, sign, test_key};

/// A verifier on a fake keyward, a good token and the session it is of.
async fn setup() -> (FakeKeyward, Verifier, String, String) {
    let key = test_key("k1", 1);
    let fake = FakeKeyward::start(jwks(&[&key])).await;
    let verifier = Verifier::builder(&fake.url, CLIENT_ID, CLIENT_SECRET)
        .connect()
        .await
        .unwrap();
    let claims = claims_json(now());
    let sid = claims["sid"].as_str().unwrap().to_string();
    (fake, verifier, sign(&key, ACCESS_TYP, &claims), sid)
}

async fn revoke(fake: &FakeKeyward, verifier: &Verifier, sid: &str) {
    fake.send(&format!(
        "event: revoked\nid: c1\ndata: {{\"sid\":\"{sid}\",\"at\":1,\"reason\":\"logout\"}}\n\n"
    ));
    for _ in 0..200 {
        if verifier.feed_status().entries == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the revocation never arrived");
}

#[actix_web::test]
async fn the_actix_extractor_admits_good_tokens_and_answers_refusals_in_json() {
    use actix_web::{test, web, App};
    let (fake, verifier, token, sid) = setup().await;
    let app = test::init_service(App::new().app_data(web::Data::new(verifier.clone())).route(
        "/me",
        web::get().to(|user: VerifiedUser| async move { user.username.clone() }),
    ))
    .await;
    let get = |auth: Option<String>| {
        let mut req = test::TestRequest::get().uri("/me");
        if let Some(auth) = auth {
            req = req.insert_header(("authorization", auth));
        }
        req.to_request()
    };
    let ok = test::call_service(&app, get(Some(format!("Bearer {token}")))).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(test::read_body(ok).await, "jon");

    let missing = test::call_service(&app, get(None)).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers().get("www-authenticate").unwrap(),
        "Bearer realm=\"keyward\""
    );
    let body: serde_json::Value = test::read_body_json(missing).await;
    assert_eq!(body["error"], "invalid_token");

    revoke(&fake, &verifier, &sid).await;
    let revoked = test::call_service(&app, get(Some(format!("Bearer {token}")))).await;
    assert_eq!(revoked.status(), 401);
    assert_eq!(
        revoked.headers().get("www-authenticate").unwrap(),
        "Bearer realm=\"keyward\", error=\"invalid_token\""
    );
    let body: serde_json::Value = test::read_body_json(revoked).await;
    assert_eq!(body["error"], "session_revoked");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[actix_web::test]
async fn requests_with_one_token_share_its_claims_instead_of_copying_them() {
    use actix_web::{test, web, App};
    let (_fake, verifier, token, _) = setup().await;
    let app = test::init_service(App::new().app_data(web::Data::new(verifier.clone())).route(
        "/me",
        web::get().to(|user: VerifiedUser| async move {
            format!("{} {:p}", user.username, std::sync::Arc::as_ptr(&user.0))
        }),
    ))
    .await;
    let mut answers = Vec::new();
    for _ in 0..2 {
        let req = test::TestRequest::get()
            .uri("/me")
            .insert_header(("authorization", format!("Bearer {token}")))
            .to_request();
        let body = test::call_and_read_body(&app, req).await;
        answers.push(String::from_utf8(body.to_vec()).unwrap());
    }
    assert!(answers[0].starts_with("jon "), "{}", answers[0]);
    assert_eq!(answers[0], answers[1], "the same allocation both times");
    // `verify` still hands out claims of the caller's own, equal to them.
    let own = verifier.verify(&token).await.unwrap();
    assert_eq!(own.username, "jon");
}

#[actix_web::test]
async fn the_actix_extractor_without_a_verifier_is_a_500_not_a_panic() {
    use actix_web::{test, web, App};
    let app = test::init_service(App::new().route(
        "/me",
        web::get().to(|user: VerifiedUser| async move { user.username.clone() }),
    ))
    .await;
    let response = test::call_service(&app, test::TestRequest::get().uri("/me").to_request()).await;
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = test::read_body_json(response).await;
    assert_eq!(body["error"], "internal");
}

#[actix_web::test]
async fn the_actix_extractor_fetches_a_key_rotated_after_it_started() {
    use actix_web::{test, web, App};
    let (k1, k2) = (test_key("k1", 1), test_key("k2", 2));
    let fake = FakeKeyward::start(jwks(&[&k1])).await;
    let verifier = Verifier::builder(&fake.url, CLIENT_ID, CLIENT_SECRET)
        .connect()
        .await
        .unwrap();
    let app = test::init_service(App::new().app_data(web::Data::new(verifier)).route(
        "/me",
        web::get().to(|user: VerifiedUser| async move { user.username.clone() }),
    ))
    .await;
    fake.state.lock().unwrap().jwks = jwks(&[&k1, &k2]);
    let rotated = sign(&k2, ACCESS_TYP, &claims_json(now()));
    let req = test::TestRequest::get()
        .uri("/me")
        .insert_header(("authorization", format!("Bearer {rotated}")))
        .to_request();
    let ok = test::call_service(&app, req).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(test::read_body(ok).await, "jon");
    assert_eq!(fake.state.lock().unwrap().jwks_fetches, 2);
}

#[tokio::test]
async fn the_tower_layer_puts_the_user_in_extensions_or_refuses() {
    use http::{Request, Response};
    use tower::{Layer, ServiceExt};
    let (fake, verifier, token, sid) = setup().await;
    let inner = tower::service_fn(|req: Request<String>| async move {
        let user = req.extensions().get::<VerifiedUser>().cloned();
        Ok::<_, std::convert::Infallible>(Response::new(
            user.map_or(String::new(), |u| u.username.clone()),
        ))
    });
    let service = keyward_verify::layer::VerifyLayer::new(verifier.clone()).layer(inner);
    let request = |auth: &str| {
        Request::get("/me")
            .header("authorization", auth)
            .body(String::new())
            .unwrap()
    };
    let ok = service
        .clone()
        .oneshot(request(&format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!((ok.status().as_u16(), ok.body().as_str()), (200, "jon"));

    let bad = service
        .clone()
        .oneshot(request("Bearer nope"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let body: serde_json::Value = serde_json::from_str(bad.body()).unwrap();
    assert_eq!(body["error"], "invalid_token");

    revoke(&fake, &verifier, &sid).await;
    let revoked = service
        .oneshot(request(&format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401);
    let body: serde_json::Value = serde_json::from_str(revoked.body()).unwrap();
    assert_eq!(body["error"], "session_revoked");
}
