//! Signing keys (API.md sections 2, 5 and 6): EdDSA by default, HS256
//! databases carried over, `keys rotate` publishing before signing, `keys
//! list`, `keys revoke` reaching every instance, and instances re-reading the
//! keys for a `kid` they do not know.

use std::time::Duration;

use chrono::TimeDelta;
use keyward::clock::Clock;
use keyward::config::{Algorithm, Secret};
use serde_json::Value;

use crate::support::app::*;
use crate::support::cli::*;
use crate::support::client::*;
use crate::support::db::*;
use crate::support::tokens::*;

async fn published(app: &TestApp) -> Vec<String> {
    let r = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// `keys list --json`, as kid → state.
async fn key_states(db: &TestDb) -> Vec<(String, String)> {
    let out = keyward_cli_with(&db.url, &["keys", "list", "--json"], &[]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_string(),
                k["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn state_of<'a>(states: &'a [(String, String)], kid: &str) -> &'a str {
    states
        .iter()
        .find(|(k, _)| k == kid)
        .map(|(_, s)| s.as_str())
        .unwrap_or_else(|| panic!("{kid} not listed: {states:?}"))
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[actix_web::test]
async fn without_a_secret_tokens_are_eddsa_and_published() {
    let app = spawn_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let at = &pair.access_token;
    assert_eq!(alg_of(at), "EdDSA");
    assert_eq!(alg_of(&pair.refresh_token), "EdDSA");
    assert_eq!(published(&app).await, vec![kid_of(at)]);
}

#[actix_web::test]
async fn a_database_of_hs256_keys_keeps_its_users_signed_in_under_the_eddsa_default() {
    // Arrange: a database whose keys are HS256, as before EdDSA was the default.
    let old = spawn_app_with(|s| s.auth.algorithm = Algorithm::HS256).await;
    let user = old.register().await;
    let pair = old.login(&user).await.token_pair();
    let (at, rt) = (&pair.access_token, &pair.refresh_token);
    assert_eq!(alg_of(at), "HS256");

    // Act: an instance with the default settings starts on it.
    let new = spawn_on(test_settings(&old.db), Clock::system()).await;

    // Assert: the HS256 tokens still work there; new tokens are EdDSA.
    assert_eq!(new.get("/api/me", Some(at)).await.status, 200);
    let r = new.refresh(rt).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(alg_of(field(&r.json, "access_token")), "EdDSA");
    let fresh = new.login(&user).await.token_pair();
    assert_eq!(alg_of(&fresh.access_token), "EdDSA");
    assert_eq!(published(&new).await, vec![kid_of(&fresh.access_token)]);
    let states = key_states(&old.db).await;
    assert_eq!(state_of(&states, &kid_of(at)), "verifying");
    // An HS256 token naming the EdDSA key is refused (algorithm pinned per key).
    let forged = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(kid_of(&fresh.access_token));
        jsonwebtoken::encode(
            &header,
            &claims(&fresh.access_token),
            &jsonwebtoken::EncodingKey::from_secret(b"whatever-secret-of-32-bytes-long!"),
        )
        .unwrap()
    };
    new.get("/api/me", Some(&forged))
        .await
        .assert_error(401, "invalid_token");
}

#[actix_web::test]
async fn a_rotated_key_is_published_at_once_and_signs_after_the_publish_delay() {
    let app = spawn_app().await;
    let user = app.register().await;
    let kid1 = kid_of(&app.login(&user).await.token_pair().access_token);

    let out = keyward_cli_with(&app.db.url, &["keys", "rotate"], &[]).await;

    assert!(out.status.success(), "{}", output_text(&out));
    let states = key_states(&app.db).await;
    let kid2 = states
        .iter()
        .find(|(k, _)| *k != kid1)
        .map(|(k, _)| k.clone())
        .unwrap();
    assert!(stdout(&out).contains(&kid2), "{}", output_text(&out));
    assert_eq!(state_of(&states, &kid1), "signing");
    assert_eq!(state_of(&states, &kid2), "next");
    let both = eventually(Duration::from_secs(1), || async {
        published(&app).await == [kid1.clone(), kid2.clone()]
    })
    .await;
    assert!(both.is_some(), "{:?}", published(&app).await);
    assert_eq!(
        kid_of(&app.login(&user).await.token_pair().access_token),
        kid1,
        "a key signs only once published for auth.key_publish_seconds"
    );
    // While it waits, another rotation is refused, naming it.
    let again = keyward_cli_with(&app.db.url, &["keys", "rotate"], &[]).await;
    assert!(!again.status.success(), "{}", output_text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains(&kid2),
        "{}",
        output_text(&again)
    );
    assert_eq!(key_states(&app.db).await.len(), 2);

    app.clock.advance(TimeDelta::seconds(301));

    assert!(app.signs_with(&user, &kid2, Duration::from_secs(1)).await);
}

#[actix_web::test]
async fn rotate_now_makes_the_waiting_key_sign_instead_of_adding_one() {
    let app = spawn_app().await;
    let user = app.register().await;
    let kid1 = kid_of(&app.login(&user).await.token_pair().access_token);
    let out = keyward_cli_with(&app.db.url, &["keys", "rotate"], &[]).await;
    assert!(out.status.success(), "{}", output_text(&out));

    let now = keyward_cli_with(&app.db.url, &["keys", "rotate", "--now"], &[]).await;

    assert!(now.status.success(), "{}", output_text(&now));
    let states = key_states(&app.db).await;
    assert_eq!(states.len(), 2, "{states:?}");
    let kid2 = &states.iter().find(|(k, _)| *k != kid1).unwrap().0;
    assert_eq!(state_of(&states, kid2), "signing");
    assert_eq!(state_of(&states, &kid1), "verifying");
    assert!(
        stdout(&now).contains(kid2.as_str()),
        "{}",
        output_text(&now)
    );
    assert!(app.signs_with(&user, kid2, Duration::from_secs(1)).await);
}

#[actix_web::test]
async fn rotate_refuses_an_algorithm_other_than_the_databases() {
    let app = spawn_app().await;
    let user = app.register().await;
    let kid = kid_of(&app.login(&user).await.token_pair().access_token);

    let out = keyward_cli_with(
        &app.db.url,
        &["keys", "rotate", "--now"],
        &[("KEYWARD__AUTH__ALGORITHM", "HS256")],
    )
    .await;

    assert!(!out.status.success(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("EdDSA") && stderr.contains("auth.algorithm"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(key_states(&app.db).await, vec![(kid, "signing".into())]);
    // Under a configured secret there are no keys to manage.
    for args in [
        &["keys", "rotate"][..],
        &["keys", "list"],
        &["keys", "revoke", "x"],
    ] {
        let out = keyward_cli_with(
            &app.db.url,
            args,
            &[("KEYWARD__AUTH__JWT_SECRET", TEST_SECRET)],
        )
        .await;
        assert!(!out.status.success(), "{args:?}: {}", output_text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("auth.jwt_secret"),
            "{args:?}: {}",
            output_text(&out)
        );
    }
}

#[actix_web::test]
async fn a_revoked_key_stops_verifying_on_every_instance_within_a_second() {
    // Arrange: two instances; tokens of an old key and of the signing one.
    let first = spawn_app().await;
    let second = spawn_on(first.settings.clone(), Clock::system()).await;
    let user = first.register().await;
    let old = first.login(&user).await.token_pair();
    let kid1 = kid_of(&old.access_token);
    let out = keyward_cli_with(&first.db.url, &["keys", "rotate", "--now"], &[]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let kid2 = key_states(&first.db)
        .await
        .into_iter()
        .find(|(k, _)| *k != kid1)
        .unwrap()
        .0;
    assert!(
        first
            .app
            .signs_with(&user, &kid2, Duration::from_secs(1))
            .await
    );
    let current = first.login(&user).await.token_pair();

    // Act
    let out = keyward_cli_with(&first.db.url, &["keys", "revoke", &kid1], &[]).await;

    // Assert
    assert!(out.status.success(), "{}", output_text(&out));
    for app in [&first.app, &second] {
        let took = eventually(Duration::from_secs(1), || async {
            app.get("/api/me", Some(&old.access_token)).await.status == 401
        })
        .await;
        assert!(
            took.is_some(),
            "{} still accepts the revoked key",
            app.address
        );
        app.get("/api/me", Some(&old.access_token))
            .await
            .assert_error(401, "invalid_token");
        app.refresh(&old.refresh_token)
            .await
            .assert_error(401, "invalid_token");
        assert_eq!(app.me(&current).await.status, 200);
        assert_eq!(published(app).await, vec![kid2.clone()]);
    }
    assert_eq!(
        query_i64(
            &first.db,
            &format!(
                "SELECT count(*) FROM revocations WHERE kid = '{kid1}' AND reason = 'key_revoked'"
            )
        ),
        1
    );
    assert_eq!(state_of(&key_states(&first.db).await, &kid1), "revoked");
    let unknown = keyward_cli_with(&first.db.url, &["keys", "revoke", "no-such-kid"], &[]).await;
    assert!(!unknown.status.success(), "{}", output_text(&unknown));

    // Revoking the key that signs makes a new one sign at once, everywhere.
    let out = keyward_cli_with(&first.db.url, &["keys", "revoke", &kid2], &[]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let states = key_states(&first.db).await;
    let kid3 = &states.iter().find(|(_, s)| s == "signing").unwrap().0;
    assert!(
        stdout(&out).contains(kid3.as_str()),
        "{}",
        output_text(&out)
    );
    for app in [&first.app, &second] {
        assert!(
            app.signs_with(&user, kid3, Duration::from_secs(1)).await,
            "{}",
            app.address
        );
    }
    first.me(&current).await.assert_error(401, "invalid_token");
}

#[actix_web::test]
async fn an_instance_reads_the_keys_again_for_a_kid_it_does_not_know() {
    // Arrange: instance A knows one key; a new one is added without any
    // notification (as if A's listener had missed it), and instance B,
    // started after, signs with it.
    let a = spawn_app().await;
    let user = a.register().await;
    let old = a.login(&user).await.token_pair();
    let mut conn = a.db.connect();
    let now = chrono::Utc::now();
    let key =
        keyward::services::keys::generate(keyward::config::Algorithm::EdDSA, now, now).unwrap();
    {
        use diesel::RunQueryDsl;
        diesel::insert_into(keyward::db::schema::signing_keys::table)
            .values(&key)
            .execute(&mut conn)
            .unwrap();
    }
    let b = spawn_on(a.settings.clone(), Clock::system()).await;
    let fresh = b.login(&user).await.token_pair();
    assert_eq!(kid_of(&fresh.access_token), key.kid);

    // Act / Assert: A accepts the token of the key it had not read.
    let r = a.me(&fresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(a.me(&old).await.status, 200);
    let r = a.refresh(&fresh.refresh_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A kid that is nowhere stays refused.
    let at = &fresh.access_token;
    let parts: Vec<&str> = at.split('.').collect();
    let mut header = header_of(at);
    header["kid"] = Value::from("never-ours");
    let header = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&header).unwrap())
    };
    a.get(
        "/api/me",
        Some(&format!("{header}.{}.{}", parts[1], parts[2])),
    )
    .await
    .assert_error(401, "invalid_token");
}

#[actix_web::test]
async fn the_cleanup_deletes_keys_whose_tokens_have_all_expired() {
    let app = spawn_app().await;
    let user = app.register().await;
    let kid1 = kid_of(&app.login(&user).await.token_pair().access_token);
    let out = keyward_cli_with(&app.db.url, &["keys", "rotate", "--now"], &[]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let mut conn = app.db.connect();
    let lifetime = keyward::services::keys::retired_key_lifetime(&app.settings);

    let early = keyward::services::keys::delete_expired(
        &mut conn,
        &app.settings,
        app.clock.now() + lifetime - TimeDelta::seconds(5),
    )
    .unwrap();
    let late = keyward::services::keys::delete_expired(
        &mut conn,
        &app.settings,
        app.clock.now() + lifetime + TimeDelta::seconds(5),
    )
    .unwrap();

    assert_eq!((early, late), (0, 1));
    let states = key_states(&app.db).await;
    assert_eq!(states.len(), 1);
    assert!(states.iter().all(|(k, _)| *k != kid1), "{states:?}");
}

#[actix_web::test]
async fn a_configured_secret_signs_hs256_without_keys() {
    let app = spawn_app_with(|s| s.auth.jwt_secret = Some(Secret::new(TEST_SECRET))).await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    assert_eq!(alg_of(&pair.access_token), "HS256");
    assert_eq!(header_of(&pair.access_token)["kid"], Value::Null);
    assert_eq!(query_i64(&app.db, "SELECT count(*) FROM signing_keys"), 0);
}

#[actix_web::test]
async fn revoking_a_waiting_key_leaves_the_signing_key_signing_for_good() {
    let app = spawn_app().await;
    let user = app.register().await;
    let kid1 = kid_of(&app.login(&user).await.token_pair().access_token);
    let out = keyward_cli_with(&app.db.url, &["keys", "rotate"], &[]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let kid2 = key_states(&app.db)
        .await
        .into_iter()
        .find(|(k, _)| *k != kid1)
        .unwrap()
        .0;

    let out = keyward_cli_with(&app.db.url, &["keys", "revoke", &kid2], &[]).await;

    assert!(out.status.success(), "{}", output_text(&out));
    let gone = eventually(Duration::from_secs(1), || async {
        published(&app).await == [kid1.clone()]
    })
    .await;
    assert!(gone.is_some(), "{:?}", published(&app).await);
    // Long after the revoked key would have taken over, the first key still
    // signs, and what it signs verifies.
    let lifetime = keyward::services::keys::retired_key_lifetime(&app.settings);
    app.clock.advance(lifetime + TimeDelta::seconds(400));
    let pair = app.login(&user).await.token_pair();
    assert_eq!(kid_of(&pair.access_token), kid1);
    let r = app.me(&pair).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
