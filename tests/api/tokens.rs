//! Token shape and verification: typ, claims, forgeries, expiry.

use base64::Engine;
use chrono::TimeDelta;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keyward::config::Secret;
use serde_json::{json, Value};

use crate::support::app::*;
use crate::support::client::*;
use crate::support::tokens::*;

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn sign(header_typ: &str, claims: &Value, secret: &[u8], alg: Algorithm) -> String {
    let mut header = Header::new(alg);
    header.typ = Some(header_typ.to_string());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

async fn with_secret() -> Harness {
    spawn_app_with(|s| s.auth.jwt_secret = Some(Secret::new(TEST_SECRET))).await
}

#[actix_web::test]
async fn tokens_carry_the_documented_headers_and_claims() {
    // HS256 from the database (EdDSA, the default, is in `keys.rs`).
    let app = spawn_app_with(|s| s.auth.algorithm = keyward::config::Algorithm::HS256).await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let at = pair.access_token.as_str();
    let rt = pair.refresh_token.as_str();
    let (ah, ac) = (header_of(at), claims(at));
    assert_eq!(ah["typ"], "at+jwt");
    assert_eq!(ah["alg"], "HS256");
    assert!(ah["kid"].is_string(), "database-managed keys carry a kid");
    assert_eq!(ac["iss"], "keyward");
    assert_eq!(ac["aud"], "keyward");
    assert_eq!(ac["sub"], user.id.as_str());
    assert_eq!(ac["sid"], pair.session_id);
    assert_eq!(
        ac["exp"].as_i64().unwrap() - ac["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(ac["name"], user.name.as_deref().unwrap());
    assert_eq!(ac["admin"], false);
    let (rh, rc) = (header_of(rt), claims(rt));
    assert_eq!(rh["typ"], "refresh+jwt");
    let mut keys: Vec<_> = rc.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["aud", "exp", "iat", "iss", "jti", "sid", "sub"]);

    let r = app.get("/api/me", Some(at)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json,
        json!({"id": user.id, "username": user.username, "name": user.name,
               "admin": false, "session_id": pair.session_id})
    );
}

#[actix_web::test]
async fn generated_keys_are_shared_by_instances_and_survive_restarts() {
    let first = spawn_app().await;
    let user = first.register().await;
    let pair = first.login(&user).await.token_pair();
    let second = spawn_on(first.settings.clone(), keyward::clock::Clock::system()).await;
    let r = second.get("/api/me", Some(&pair.access_token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = second.refresh(pair.refresh_token.as_str()).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[actix_web::test]
async fn forged_and_foreign_tokens_are_refused() {
    let app = with_secret().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let at = pair.access_token.as_str();
    let rt = pair.refresh_token.as_str();
    let good = claims(at);
    let secret = TEST_SECRET.as_bytes();
    let with = |patch: Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let parts: Vec<&str> = at.split('.').collect();
    let forged = [
        (
            "another key",
            sign(
                "at+jwt",
                &good,
                b"another-secret-another-secret-xx",
                Algorithm::HS256,
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "at+jwt"})),
                parts[1]
            ),
        ),
        ("HS512", sign("at+jwt", &good, secret, Algorithm::HS512)),
        ("wrong typ", sign("JWT", &good, secret, Algorithm::HS256)),
        (
            "refresh typ",
            sign("refresh+jwt", &good, secret, Algorithm::HS256),
        ),
        (
            "wrong iss",
            sign(
                "at+jwt",
                &with(json!({"iss": "evil"})),
                secret,
                Algorithm::HS256,
            ),
        ),
        (
            "wrong aud",
            sign(
                "at+jwt",
                &with(json!({"aud": "evil"})),
                secret,
                Algorithm::HS256,
            ),
        ),
        (
            "exp as a string",
            sign(
                "at+jwt",
                &with(json!({"exp": "9999999999"})),
                secret,
                Algorithm::HS256,
            ),
        ),
        (
            "nbf in the future",
            sign(
                "at+jwt",
                &with(json!({"nbf": good["iat"].as_i64().unwrap() + 3600})),
                secret,
                Algorithm::HS256,
            ),
        ),
        (
            "payload swapped",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&with(json!({"admin": true}))),
                parts[2]
            ),
        ),
        ("empty", String::new()),
        ("three dots", "...".to_string()),
        ("10 KB", "a".repeat(10_240)),
        (
            "base64 garbage",
            format!("{}.{}.{}", b64(&json!("x")), b64(&json!([1])), "AAAA"),
        ),
    ];
    for (what, token) in forged {
        let r = app.get("/api/me", Some(&token)).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        assert_eq!(r.json["error"], "invalid_token", "{what}: {}", r.text);
        if !token.is_empty() {
            assert_eq!(
                r.header("www-authenticate"),
                Some(r#"Bearer realm="keyward", error="invalid_token""#),
                "{what}"
            );
        }
    }
    let expired = sign(
        "at+jwt",
        &with(json!({"exp": chrono::Utc::now().timestamp() - 120})),
        secret,
        Algorithm::HS256,
    );
    app.get("/api/me", Some(&expired))
        .await
        .assert_error(401, "token_expired");
    // The genuine ones still work.
    assert_eq!(app.get("/api/me", Some(at)).await.status, 200);
    assert_eq!(app.refresh(rt).await.status, 200);
}

#[actix_web::test]
async fn refresh_and_access_tokens_are_not_interchangeable() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let r = app.get("/api/me", Some(&pair.refresh_token)).await;
    r.assert_error(401, "invalid_token");
    let r = app.refresh(pair.access_token.as_str()).await;
    r.assert_error(401, "invalid_token");
}

#[actix_web::test]
async fn access_tokens_expire_after_their_ttl_and_the_leeway() {
    let app = spawn_app_with(|s| {
        s.auth.access_ttl_seconds = 60;
        s.auth.leeway_seconds = 5;
    })
    .await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let at = pair.access_token.as_str();
    app.clock.advance(TimeDelta::seconds(63));
    assert_eq!(
        app.get("/api/me", Some(at)).await.status,
        200,
        "inside the leeway"
    );
    app.clock.advance(TimeDelta::seconds(5));
    let r = app.get("/api/me", Some(at)).await;
    r.assert_error(401, "token_expired");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer realm=\"keyward\""));
    // The refresh token still renews the pair.
    let r = app.refresh(pair.refresh_token.as_str()).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[actix_web::test]
async fn a_missing_token_gets_a_bare_bearer_challenge() {
    let app = spawn_app().await;
    let r = app.get("/api/me", None).await;
    r.assert_error(401, "invalid_token");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="keyward""#)
    );
    let r = read(
        app.client
            .get(app.url("/api/me"))
            .header("authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(401, "invalid_token");
}

#[actix_web::test]
async fn a_bearer_token_that_is_not_text_is_invalid_not_missing() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    // A genuine token with its last byte made non-UTF-8, and any case of
    // the scheme: the token was presented, so the challenge names it.
    let mut bytes = format!("bEaReR {}", pair.access_token).into_bytes();
    *bytes.last_mut().unwrap() = 0xff;
    let value = reqwest::header::HeaderValue::from_bytes(&bytes).unwrap();
    let r = read(
        app.client
            .get(app.url("/api/me"))
            .header("authorization", value)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(401, "invalid_token");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="keyward", error="invalid_token""#)
    );
    // The genuine token, with the scheme in another case, still works.
    let r = read(
        app.client
            .get(app.url("/api/me"))
            .header("authorization", format!("BEARER {}", pair.access_token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}
