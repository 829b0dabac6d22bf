//! Operations: EdDSA keys published as a JWKS, key rotation across
//! instances, algorithm-confusion and foreign-kid attacks, and `/metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use chrono::TimeDelta;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use keyward::clock::Clock;
use keyward::config::{Algorithm as KeyAlgorithm, Secret};
use serde_json::{json, Value};

use crate::support::app::*;
use crate::support::client::*;
use crate::support::tokens::*;

async fn eddsa_app() -> Harness {
    spawn_app_with(|s| s.auth.algorithm = KeyAlgorithm::EdDSA).await
}

/// The published key set, checked for its shape and caching.
async fn jwks(app: &TestApp) -> Vec<Value> {
    let r = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cache = r.header("cache-control").unwrap_or_default();
    assert!(
        cache.contains("public") && cache.contains("max-age=300"),
        "{cache}"
    );
    r.json["keys"].as_array().expect("a keys array").clone()
}

fn kids(keys: &[Value]) -> Vec<String> {
    keys.iter().map(|k| field(k, "kid").to_string()).collect()
}

/// What a relying party does: picks the JWK by the token's `kid` and
/// verifies with nothing else (an independent verifier, not keyward's).
fn verify_with_jwks(keys: &[Value], token: &str, typ: &str) -> Result<Value, String> {
    let header = header_of(token);
    let kid = field(&header, "kid");
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or_else(|| format!("kid {kid} is not published"))?;
    let jwk: Jwk = serde_json::from_value(jwk.clone()).map_err(|e| e.to_string())?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["keyward"]);
    validation.set_audience(&["keyward"]);
    let data =
        jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| e.to_string())?;
    if data.header.typ.as_deref() != Some(typ) {
        return Err(format!("typ {:?}", data.header.typ));
    }
    Ok(data.claims)
}

#[actix_web::test]
async fn eddsa_tokens_verify_with_only_the_published_jwk() {
    let app = eddsa_app().await;
    let user = app.register().await;

    let pair = app.login(&user).await.token_pair();
    let keys = jwks(&app).await;

    let at = &pair.access_token;
    let rt = &pair.refresh_token;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(field(key, "x"))
        .unwrap();
    assert_eq!(x.len(), 32, "x is the raw public key");
    let mut fields: Vec<_> = key.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["alg", "crv", "kid", "kty", "use", "x"],
        "no private part"
    );
    assert_eq!(header_of(at)["alg"], "EdDSA");
    assert_eq!(kid_of(at), field(key, "kid"));
    let claims = verify_with_jwks(&keys, at, "at+jwt").unwrap();
    assert_eq!(claims["sub"], user.id.as_str());
    assert_eq!(claims["sid"], pair.session_id);
    verify_with_jwks(&keys, rt, "refresh+jwt").unwrap();
    // keyward itself accepts them too, and refreshes keep the key.
    assert_eq!(app.get("/api/me", Some(at)).await.status, 200);
    let r = app.refresh(rt).await;
    assert_eq!(r.status, 200, "{}", r.text);
    verify_with_jwks(&keys, field(&r.json, "access_token"), "at+jwt").unwrap();
}

#[actix_web::test]
async fn hs256_publishes_no_keys() {
    for app in [
        spawn_app_with(|s| s.auth.algorithm = KeyAlgorithm::HS256).await,
        spawn_app_with(|s| s.auth.jwt_secret = Some(Secret::new(TEST_SECRET))).await,
    ] {
        let user = app.register().await;
        app.login(&user).await.token_pair();
        let r = app.get("/.well-known/jwks.json", None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json, json!({"keys": []}));
        assert!(!r.text.contains(TEST_SECRET));
    }
}

/// Two instances on one database, and a user signed in before a rotation.
struct SignedIn {
    first: Harness,
    second: TestApp,
    user: User,
    old_at: String,
    old_rt: String,
    old_kid: String,
}

async fn signed_in_on_two_instances(first: Harness) -> SignedIn {
    let second = spawn_on(first.settings.clone(), Clock::system()).await;
    let user = first.register().await;
    let old = first.login(&user).await.token_pair();
    let old_at = old.access_token.clone();
    SignedIn {
        old_rt: old.refresh_token.clone(),
        old_kid: kid_of(&old_at),
        old_at,
        first,
        second,
        user,
    }
}

#[actix_web::test]
async fn a_rotation_reaches_every_instance_and_logs_nobody_out() {
    let SignedIn {
        first,
        second,
        user,
        old_at,
        old_rt,
        old_kid,
    } = signed_in_on_two_instances(eddsa_app().await).await;

    let new_kid = keyward::services::key_rotation::rotate(
        &mut first.db.connect(),
        &first.settings,
        first.clock.now(),
        true,
    )
    .unwrap()
    .kid;

    assert_ne!(new_kid, old_kid);
    for app in [&first.app, &second] {
        assert!(
            app.signs_with(&user, &new_kid, Duration::from_secs(5))
                .await,
            "{}",
            app.address
        );
        let published = kids(&jwks(app).await);
        assert_eq!(published, [old_kid.clone(), new_kid.clone()]);
        // The old key's tokens still work here.
        let r = app.get("/api/me", Some(&old_at)).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let keys = jwks(&second).await;
    let new = second.login(&user).await.token_pair();
    let new_at = &new.access_token;
    let old_claims = verify_with_jwks(&keys, &old_at, "at+jwt").unwrap();
    let new_claims = verify_with_jwks(&keys, new_at, "at+jwt").unwrap();
    println!(
        "rotation evidence: old token kid={} sub={} verifies; new token kid={} sub={} verifies",
        old_kid,
        old_claims["sub"],
        kid_of(new_at),
        new_claims["sub"]
    );
    // A refresh token signed by the old key still refreshes, now under the
    // new key: nobody is logged out.
    let r = second.refresh(&old_rt).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(kid_of(field(&r.json, "refresh_token")), new_kid);

    // Once every token the old key signed has expired (refresh TTL, leeway
    // and the propagation slack), it leaves the set and verifies nothing.
    let s = &first.settings.auth;
    let past = TimeDelta::seconds(s.refresh_ttl_seconds + s.leeway_seconds + 61);
    first.clock.advance(past);
    second.clock.advance(past);
    for app in [&first.app, &second] {
        assert_eq!(kids(&jwks(app).await), vec![new_kid.clone()]);
        let r = app.refresh(&old_rt).await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    // The new key goes on signing and verifying.
    let again = first.login(&user).await.token_pair();
    let again_at = &again.access_token;
    assert_eq!(kid_of(again_at), new_kid);
    assert_eq!(first.get("/api/me", Some(again_at)).await.status, 200);
}

#[actix_web::test]
async fn the_cli_rotates_database_managed_hs256_keys() {
    let SignedIn {
        first,
        second,
        user,
        old_at,
        old_rt,
        old_kid,
    } = signed_in_on_two_instances(
        spawn_app_with(|s| s.auth.algorithm = KeyAlgorithm::HS256).await,
    )
    .await;

    // The servers' algorithm; `--now`, since a rotated key otherwise waits
    // auth.key_publish_seconds before it signs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["keys", "rotate", "--now"])
        .env("DATABASE_URL", &first.db.url)
        .env("KEYWARD__AUTH__ALGORITHM", "HS256")
        .env_remove("KEYWARD__AUTH__JWT_SECRET")
        .output()
        .unwrap();

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let new_kid = stdout.trim().rsplit(' ').next().unwrap().to_string();
    assert_ne!(new_kid, old_kid);
    for app in [&first.app, &second] {
        assert!(
            app.signs_with(&user, &new_kid, Duration::from_secs(5))
                .await,
            "{}",
            app.address
        );
        assert_eq!(app.get("/api/me", Some(&old_at)).await.status, 200);
        assert_eq!(jwks(app).await, Vec::<Value>::new(), "secrets stay secret");
    }
    let r = second.refresh(&old_rt).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(kid_of(field(&r.json, "access_token")), new_kid);
}

fn forge(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".into());
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A fresh Ed25519 key pair nobody at keyward knows, as PKCS#8.
fn foreign_ed25519() -> EncodingKey {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    der.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    EncodingKey::from_ed_der(&der)
}

#[actix_web::test]
async fn algorithm_confusion_and_foreign_kids_are_refused() {
    let app = eddsa_app().await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let at = &pair.access_token;
    let good = claims(at);
    let kid = kid_of(at);
    let keys = jwks(&app).await;
    let x = field(&keys[0], "x");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x)
        .unwrap();
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(&raw);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&spki);
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
    let secrets: [(&str, Vec<u8>); 5] = [
        ("raw public key", raw.clone()),
        ("PEM", pem.clone().into_bytes()),
        ("PEM without newline", pem.trim_end().as_bytes().to_vec()),
        ("SPKI DER", spki.clone()),
        ("JWK x text", x.as_bytes().to_vec()),
    ];
    let mut forged = Vec::new();
    for (what, secret) in &secrets {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            for kid in [Some(kid.as_str()), None] {
                let key = EncodingKey::from_secret(secret);
                forged.push((
                    format!("{alg:?} with the {what}, kid {kid:?}"),
                    forge(alg, kid, &good, &key),
                ));
            }
        }
    }
    let stranger = foreign_ed25519();
    for k in [Some("not-ours"), Some(kid.as_str()), None, Some("")] {
        forged.push((
            format!("a foreign Ed25519 key, kid {k:?}"),
            forge(Algorithm::EdDSA, k, &good, &stranger),
        ));
    }
    // A genuine signature under a kid we do not own.
    let parts: Vec<&str> = at.split('.').collect();
    let mut header = header_of(at);
    header["kid"] = json!("someone-elses");
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&header).unwrap());
    forged.push((
        "our signature, a foreign kid".into(),
        format!("{header}.{}.{}", parts[1], parts[2]),
    ));

    for (what, token) in &forged {
        let r = app.get("/api/me", Some(token)).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        assert_eq!(r.json["error"], "invalid_token", "{what}");
    }
    assert!(forged.len() >= 30);
    assert_eq!(app.get("/api/me", Some(at)).await.status, 200);
}

#[actix_web::test]
async fn hs256_refuses_kids_it_does_not_own() {
    let app = spawn_app_with(|s| s.auth.algorithm = KeyAlgorithm::HS256).await;
    let user = app.register().await;
    let pair = app.login(&user).await.token_pair();
    let at = &pair.access_token;
    let good = claims(at);
    // Whatever the secret, a kid that is not ours is never looked up.
    let key = EncodingKey::from_secret(b"attacker-chosen-secret-of-32-bytes!");
    for kid in ["../../etc/passwd", "not-ours", "' OR 1=1 --"] {
        let token = forge(Algorithm::HS256, Some(kid), &good, &key);
        app.get("/api/me", Some(&token))
            .await
            .assert_error(401, "invalid_token");
    }
}

/// Label pairs to look a sample up by.
type Labels<'a> = &'a [(&'a str, &'a str)];

/// One sample of a scrape: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// One scrape of `/metrics`, parsed, and its text.
struct Scrape(Vec<Sample>, String);

impl Scrape {
    async fn take(app: &TestApp) -> Self {
        let r = app.get("/metrics", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            r.header("content-type")
                .unwrap_or_default()
                .starts_with("text/plain; version=0.0.4"),
            "{:?}",
            r.header("content-type")
        );
        let samples = r
            .text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split("\",")
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once('=').unwrap();
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels, value.parse().unwrap())
            })
            .collect();
        Self(samples, r.text)
    }

    /// The sum of the samples of `name` that carry all of `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, ls, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }
}

#[actix_web::test]
async fn metrics_move_when_things_happen() {
    let app = spawn_app().await;
    let user = app.register().await;
    let before = Scrape::take(&app).await;

    let first = app.login(&user).await.token_pair();
    let wrong = json!({"username": user.username, "password": "not-the-password"});
    app.post_json("/auth/login", &wrong, None)
        .await
        .assert_error(401, "invalid_credentials");
    let old_rt = first.refresh_token.clone();
    let r = app.refresh(&old_rt).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = app.login(&user).await.token_pair();
    // Past the grace window the rotated-away token is a replay.
    app.clock.advance(TimeDelta::seconds(
        app.settings.auth.reuse_grace_seconds + 1,
    ));
    app.refresh(&old_rt).await.assert_error(401, "token_reused");
    let r = app
        .post_json(
            "/auth/logout",
            &json!({"refresh_token": second.refresh_token}),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let _third = app.login(&user).await.token_pair();
    assert_eq!(app.get("/no/such/path/4711", None).await.status, 404);
    let after = Scrape::take(&app).await;

    let expected: [(&str, Labels, f64); 10] = [
        ("keyward_logins_total", &[("outcome", "success")], 3.0),
        (
            "keyward_logins_total",
            &[("outcome", "invalid_credentials")],
            1.0,
        ),
        ("keyward_refreshes_total", &[("outcome", "success")], 1.0),
        (
            "keyward_refreshes_total",
            &[("outcome", "token_reused")],
            1.0,
        ),
        ("keyward_refresh_reuse_detected_total", &[], 1.0),
        (
            "keyward_sessions_revoked_total",
            &[("reason", "reuse_detected")],
            1.0,
        ),
        (
            "keyward_sessions_revoked_total",
            &[("reason", "logout")],
            1.0,
        ),
        (
            "keyward_http_requests_total",
            &[
                ("route", "/auth/login"),
                ("method", "POST"),
                ("status", "200"),
            ],
            3.0,
        ),
        (
            "keyward_http_requests_total",
            &[("route", "/auth/login"), ("status", "401")],
            1.0,
        ),
        (
            "keyward_http_request_duration_seconds_count",
            &[("route", "/auth/login")],
            4.0,
        ),
    ];
    for (name, labels, by) in expected {
        let moved = after.value(name, labels) - before.value(name, labels);
        assert_eq!(moved, by, "{name} {labels:?}");
    }
    // Unknown paths share one label: the raw path never becomes a series.
    let unmatched = [("route", "unmatched"), ("status", "404")];
    let moved = after.value("keyward_http_requests_total", &unmatched)
        - before.value("keyward_http_requests_total", &unmatched);
    assert_eq!(moved, 1.0);
    assert!(!after.1.contains("4711"), "raw paths leak into labels");
    // Gauges: the replay revoked the first session, the second logged out,
    // the third is live.
    assert_eq!(
        after.value("keyward_live_sessions", &[]),
        1.0,
        "{}",
        after.1
    );
    assert_eq!(after.value("keyward_listener_healthy", &[]), 1.0);
    assert_eq!(after.value("keyward_signing_keys_verifying", &[]), 1.0);
    assert_eq!(after.value("keyward_db_pool_max_connections", &[]), 4.0);
    assert!(after.value("keyward_db_pool_connections", &[]) >= 1.0);
}

/// Every path a handler declares: each `path = "…"` of a `#[utoipa::path]`
/// attribute and each `alias = "…"` of the route table, anywhere under
/// `src/`. The methods each path takes come from the server itself, below.
/// Routes reach actix only through the table (`src/http/table.rs`), which
/// registers exactly those paths: this also checks that nothing else under
/// `src/` registers a resource, a route or a scope of its own.
fn registered_paths() -> BTreeSet<String> {
    fn walk(dir: &Path, paths: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let file = entry.unwrap().path();
            if file.is_dir() {
                walk(&file, paths);
            } else if file.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&file).unwrap();
                if !file.ends_with("http/table.rs") {
                    for registration in
                        ["web::resource(", ".route(", "web::scope(", "web::service("]
                    {
                        assert!(
                            !source.contains(registration),
                            "{}: registers {registration}…) outside the route table",
                            file.display()
                        );
                    }
                }
                for marker in ["path = \"/", "alias = \"/"] {
                    for rest in source.split(marker).skip(1) {
                        paths.insert(format!("/{}", rest.split_once('"').unwrap().0));
                    }
                }
            }
        }
    }
    let mut paths = BTreeSet::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut paths,
    );
    // Served by `serve --ephemeral` only; `tests/api/ephemeral.rs` checks
    // that mode's document.
    paths.retain(|p| !p.starts_with("/ephemeral/"));
    paths
}

/// The methods actix registered for `path`, as its `405` lists them in
/// `Allow` (RFC 9110), lowercased as OpenAPI writes them.
async fn registered_methods(app: &TestApp, path: &str) -> BTreeSet<String> {
    let url = app.url(&path.replace("{id}", &uuid::Uuid::new_v4().to_string()));
    let r = read(
        app.client
            .request(reqwest::Method::TRACE, url)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(405, "method_not_allowed");
    let allow = r
        .header("allow")
        .unwrap_or_else(|| panic!("{path}: a 405 without Allow"));
    allow
        .split(',')
        .map(|m| m.trim().to_ascii_lowercase())
        .collect()
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[actix_web::test]
async fn the_openapi_document_lists_exactly_the_routes_the_server_registers() {
    let app = spawn_app().await;

    let r = app.get("/openapi.json", None).await;

    assert_eq!(r.status, 200, "{}", r.text);
    let doc = r.json;
    assert!(
        field(&doc, "openapi").starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_string())
                .collect();
            (path.clone(), methods)
        })
        .collect();
    let mut registered = BTreeMap::new();
    for path in registered_paths() {
        let methods = registered_methods(&app, &path).await;
        registered.insert(path, methods);
    }
    assert!(registered.len() >= 26, "{registered:?}");
    // Both ways: nothing served undocumented, nothing documented unserved.
    assert_eq!(documented, registered);

    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
            if op["security"] == json!([{"bearer": []}]) {
                assert!(responses.contains_key("401"), "{method} {path}");
            }
            if path.contains("{id}") {
                assert!(responses.contains_key("404"), "{method} {path}");
                assert_eq!(op["parameters"][0]["schema"]["format"], "uuid");
            }
            // Every body is read by `Body`: JSON and forms alike.
            if let Some(bodies) = op["requestBody"]["content"].as_object() {
                let mut types: Vec<_> = bodies.keys().map(String::as_str).collect();
                types.sort();
                assert_eq!(
                    types,
                    ["application/json", "application/x-www-form-urlencoded"],
                    "{method} {path}"
                );
            }
        }
    }
    // The schemas come from the handlers' own types.
    let schemas = &doc["components"]["schemas"];
    for name in [
        "TokenPairBody",
        "UserSummaryBody",
        "Me",
        "JwkSet",
        "PublicJwk",
        "OwnSessions",
        "PasswordRequest",
        "UsersPage",
        "UserBody",
        "BanRequest",
        "AdminSessions",
        "EventsPage",
    ] {
        assert!(schemas[name].is_object(), "{name} missing");
    }
    assert_eq!(
        schemas["PublicJwk"]["properties"]["use"]["type"], "string",
        "serde's rename is honoured"
    );
    let limit = &doc["paths"]["/admin/users"]["get"]["parameters"];
    assert!(
        limit
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "limit" && p["schema"]["type"] == "integer"),
        "{limit}"
    );
    // An optional body may be left out; it is never JSON `null`.
    let logout = &doc["paths"]["/auth/logout"]["post"]["requestBody"];
    assert_ne!(logout["required"], true);
    assert_eq!(
        logout["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/RefreshRequest"
    );
    // Operation ids are unique, aliases included.
    let mut ids: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str().map(str::to_string))
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "{ids:?}");
}

/// What schemathesis found (scripts/schemathesis.sh), kept fixed.
#[actix_web::test]
async fn what_the_schema_fuzzer_found_stays_fixed() {
    let app = spawn_app().await;
    let (_admin, at) = app.admin(&app.db).await;
    let user = app.register().await;

    // A NUL byte cannot reach PostgreSQL text: it used to be a 500.
    let nul = json!({"username": "a\u{0}b", "password": "whatever-it-is"});
    app.post_json("/auth/login", &nul, None)
        .await
        .assert_error(401, "invalid_credentials");
    let r = app.get("/admin/users?q=%00", Some(&at)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({"users": [], "next": null}));
    // serde reads a struct from an array of its fields; a body must be an
    // object.
    let r = app
        .post_json(
            &format!("/admin/users/{}/ban", user.id),
            &json!([null, null]),
            Some(&at),
        )
        .await;
    r.assert_error(400, "invalid_request");
    // JSON Schema's integer includes 1.0.
    let r = app
        .post_json(
            &format!("/admin/users/{}/ban", user.id),
            &json!({"duration_seconds": 60.0}),
            Some(&at),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Typed query parameters present but empty are malformed, not absent.
    for query in ["user_id=", "limit=", "before="] {
        app.get(&format!("/admin/events?{query}"), Some(&at))
            .await
            .assert_error(400, "invalid_request");
    }
    app.get(
        &format!("/admin/users/{}/sessions?include_revoked=1", user.id),
        Some(&at),
    )
    .await
    .assert_error(400, "invalid_request");
}
