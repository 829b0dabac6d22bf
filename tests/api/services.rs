//! Service credentials (API.md section 7): the `keyward services` commands,
//! HTTP Basic and form credentials, deletion reaching every instance, the
//! per-address failure limit; and the discovery document.

use std::time::Duration;

use chrono::TimeDelta;
use serde_json::Value;

use crate::support::app::*;
use crate::support::cli::*;
use crate::support::client::*;
use crate::support::db::*;
use crate::support::services::*;
use crate::support::tokens::*;

/// A form POST to the introspection route with extra headers.
async fn introspect_with(
    app: &TestApp,
    fields: &[(&str, &str)],
    authorization: Option<&str>,
) -> Reply {
    let mut req = app
        .client
        .post(app.url("/oauth/introspect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap());
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    read(req.send().await.unwrap()).await
}

async fn access_token(app: &TestApp) -> String {
    let user = app.register().await;
    app.login(&user).await.token_pair().access_token
}

fn run_cli(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let out = keyward_cli(&db.url, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_web::test]
async fn the_command_line_creates_lists_and_deletes_services() {
    // Arrange
    let app = spawn_app().await;
    let at = access_token(&app).await;

    // Act
    let (ok, stdout, stderr) = run_cli(&app.db, &["services", "create", "billing"]);

    // Assert: one JSON object, the secret at least 256 bits in base64url.
    assert!(ok, "{stderr}");
    let printed: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(printed["name"], "billing");
    let service = Service {
        name: "billing".into(),
        client_id: field(&printed, "client_id").into(),
        client_secret: field(&printed, "client_secret").into(),
    };
    assert!(service.client_secret.len() >= 43, "{stdout}");
    assert_ne!(service.client_id, service.client_secret);
    // Only a 32-byte hash is stored, never the secret.
    let stored = query_i64(
        &app.db,
        &format!(
            "SELECT count(*) FROM services WHERE client_id = '{}' AND length(secret_hash) = 32 \
             AND position(convert_to('{}', 'UTF8') in secret_hash) = 0",
            service.client_id, service.client_secret
        ),
    );
    assert_eq!(stored, 1);
    // The listener hears of it: the credentials work within a second.
    let took = eventually(Duration::from_secs(1), || async {
        app.introspect(&service, &at).await.status == 200
    })
    .await;
    assert!(took.is_some(), "the new service is not accepted");

    // A name taken, in any letter case, is an error of one line.
    let (ok, _, stderr) = run_cli(&app.db, &["services", "create", "BILLING"]);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
    let (ok, _, stderr) = run_cli(&app.db, &["services", "create", "no spaces"]);
    assert!(!ok && stderr.contains("service name"), "{stderr}");

    // `list` names it and never prints a secret.
    run_cli(&app.db, &["services", "create", "chat"]);
    let (ok, stdout, _) = run_cli(&app.db, &["services", "list"]);
    assert!(ok);
    let names: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["billing", "chat"], "{stdout}");
    assert!(stdout.contains(&service.client_id));
    assert!(!stdout.contains(&service.client_secret));

    // `delete` ends it; deleting an unknown name fails with one line.
    let (ok, _, stderr) = run_cli(&app.db, &["services", "delete", "billing"]);
    assert!(ok, "{stderr}");
    let took = eventually(Duration::from_secs(1), || async {
        app.introspect(&service, &at).await.status == 401
    })
    .await;
    assert!(took.is_some(), "a deleted service is still accepted");
    app.introspect(&service, &at).await.assert_invalid_client();
    let (ok, _, stderr) = run_cli(&app.db, &["services", "delete", "billing"]);
    assert!(!ok);
    assert_eq!(stderr.trim(), "keyward: no service named billing");
    let (_, stdout, _) = run_cli(&app.db, &["services", "list"]);
    assert!(
        !stdout.contains("billing") && stdout.contains("chat"),
        "{stdout}"
    );
    let events = query_i64(
        &app.db,
        "SELECT count(*) FROM events WHERE kind IN ('service_created', 'service_deleted') \
         AND detail->>'name' = 'billing'",
    );
    assert_eq!(events, 2);
}

#[actix_web::test]
async fn basic_and_form_credentials_are_both_accepted() {
    let app = spawn_app().await;
    let service = app.create_service();
    let at = access_token(&app).await;

    let by_basic = app.introspect(&service, &at).await;
    let by_form = introspect_with(
        &app,
        &[
            ("token", &at),
            ("client_id", &service.client_id),
            ("client_secret", &service.client_secret),
        ],
        None,
    )
    .await;

    for r in [by_basic, by_form] {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["active"], true, "{}", r.text);
    }
}

#[actix_web::test]
async fn missing_or_wrong_credentials_get_invalid_client_with_a_basic_challenge() {
    let app = spawn_app().await;
    let service = app.create_service();
    let at = access_token(&app).await;
    let mut wrong = service.clone();
    wrong.client_secret.pop();
    wrong.client_secret.push('!');
    let mut unknown = service.clone();
    unknown.client_id = "kw_nosuchclient".into();
    let bearer = format!("Bearer {at}");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<String>);
    let cases: Vec<Case> = vec![
        ("missing", vec![("token", &at)], None),
        ("wrong secret", vec![("token", &at)], Some(wrong.basic())),
        ("unknown id", vec![("token", &at)], Some(unknown.basic())),
        ("a user's token", vec![("token", &at)], Some(bearer)),
        ("not base64", vec![("token", &at)], Some("Basic %%%".into())),
        (
            "no colon",
            vec![("token", &at)],
            Some("Basic a3dfbm9jb2xvbg==".into()),
        ),
        (
            "wrong form secret",
            vec![
                ("token", &at),
                ("client_id", &service.client_id),
                ("client_secret", &wrong.client_secret),
            ],
            None,
        ),
        (
            "form id without secret",
            vec![("token", &at), ("client_id", &service.client_id)],
            None,
        ),
        (
            "both methods at once",
            vec![
                ("token", &at),
                ("client_id", &service.client_id),
                ("client_secret", &service.client_secret),
            ],
            Some(service.basic()),
        ),
    ];

    for (what, fields, authorization) in cases {
        let r = introspect_with(&app, &fields, authorization.as_deref()).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        r.assert_invalid_client();
    }
    // The right credentials still work.
    assert_eq!(app.introspect(&service, &at).await.json["active"], true);
}

#[actix_web::test]
async fn a_deleted_service_fails_on_another_instance_within_a_second() {
    // Arrange: two instances on one database.
    let a = spawn_app().await;
    let b = spawn_on(a.settings.clone(), keyward::clock::Clock::system()).await;
    let service = a.create_service();
    let at = access_token(&a).await;
    let took = eventually(Duration::from_secs(1), || async {
        b.introspect(&service, &at).await.status == 200
    })
    .await;
    assert!(took.is_some(), "B never learnt of the new service");

    // Act
    let mut conn = a.db.connect();
    keyward::services::service_registry::delete(&mut conn, &service.name, a.clock.now()).unwrap();

    // Assert
    let took = eventually(Duration::from_secs(1), || async {
        b.introspect(&service, &at).await.status == 401
    })
    .await;
    assert!(took.is_some(), "B still accepts the deleted service");
    b.introspect(&service, &at).await.assert_invalid_client();
    assert!(b.state.services.is_empty());
}

#[actix_web::test]
async fn failed_credentials_count_toward_a_per_address_limit() {
    // Arrange: a budget of 3 a minute.
    let app = spawn_app_with(|s| s.rate_limit.per_ip_per_minute = 3).await;
    let service = app.create_service();
    // Two of the three login attempts of this address.
    let user = app.register().await;
    let at = app.login(&user).await.token_pair().access_token;
    let mut wrong = service.clone();
    wrong.client_secret = "x".repeat(43);

    // Successes spend nothing.
    for _ in 0..10 {
        assert_eq!(app.introspect(&service, &at).await.status, 200);
    }
    // Act: three failures spend the budget.
    for _ in 0..3 {
        app.introspect(&wrong, &at).await.assert_invalid_client();
    }

    // Assert: then every attempt is refused before its check, the right
    // secret included, until a token is back (one per 20 s).
    let limited = app.introspect(&wrong, &at).await;
    limited.assert_error(429, "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("20"));
    app.introspect(&service, &at)
        .await
        .assert_error(429, "rate_limited");
    // Logins have a budget of their own: the third attempt goes through.
    assert_eq!(app.login(&user).await.status, 200);
    app.clock.advance(TimeDelta::seconds(20));
    assert_eq!(app.introspect(&service, &at).await.status, 200);
}

#[actix_web::test]
async fn discovery_names_absolute_urls_of_the_bound_address() {
    let app = spawn_app().await;
    let at = access_token(&app).await;

    let r = app.get("/.well-known/openid-configuration", None).await;

    assert_eq!(r.status, 200, "{}", r.text);
    let d = &r.json;
    assert_eq!(d["issuer"], "keyward");
    for (key, path) in [
        ("jwks_uri", "/.well-known/jwks.json"),
        ("introspection_endpoint", "/oauth/introspect"),
        ("revocation_endpoint_feed", "/revocations"),
        ("revocation_endpoint_stream", "/revocations/stream"),
    ] {
        assert_eq!(d[key], app.url(path), "{key}");
    }
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        serde_json::json!([header_of(&at)["alg"]])
    );
    // The jwks_uri as given answers.
    let jwks = read(app.client.get(field(d, "jwks_uri")).send().await.unwrap()).await;
    assert_eq!(jwks.status, 200);
    assert!(jwks.json["keys"].is_array());
}

#[actix_web::test]
async fn discovery_urls_follow_server_public_url() {
    let app = spawn_app_with(|s| {
        s.server.public_url = Some("https://auth.example.test/".into());
        s.auth.issuer = "https://auth.example.test".into();
    })
    .await;

    let r = app.get("/.well-known/openid-configuration", None).await;

    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["issuer"], "https://auth.example.test");
    assert_eq!(
        r.json["jwks_uri"],
        "https://auth.example.test/.well-known/jwks.json"
    );
    assert_eq!(
        r.json["introspection_endpoint"],
        "https://auth.example.test/oauth/introspect"
    );
    assert_eq!(
        r.json["revocation_endpoint_feed"],
        "https://auth.example.test/revocations"
    );
    assert_eq!(
        r.json["revocation_endpoint_stream"],
        "https://auth.example.test/revocations/stream"
    );
}

#[actix_web::test]
async fn a_service_created_a_moment_ago_elsewhere_works_at_once() {
    // Arrange: a service written to the database as another instance or the
    // command line would, with no reload of this instance's registry (its
    // listener may not have heard of it yet).
    let app = spawn_app().await;
    let at = access_token(&app).await;
    let name = format!("svc{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let (_, credentials) =
        keyward::services::service_registry::create(&mut app.db.connect(), &name, app.clock.now())
            .unwrap();
    let service = Service {
        name,
        client_id: credentials.client_id,
        client_secret: credentials.client_secret,
    };

    // Act: the very next request uses it.
    let reply = app.introspect(&service, &at).await;

    // Assert: the unknown client_id made the instance re-read the services.
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["active"], true, "{}", reply.text);
}
