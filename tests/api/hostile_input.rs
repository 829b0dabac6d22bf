//! Hostile input over the whole request surface: generated requests (any
//! route, method, query, body, content type, token, cookie, origin) never
//! get a 500 and always get the contract's error shape; malformed HTTP
//! written on the socket gets that shape or a closed connection.

use std::time::Duration;

use chrono::Utc;
use keyward::config::Secret;
use serde_json::{json, Value};

use crate::support::app::*;
use crate::support::tokens::*;

mod hostile {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// One request of the hostile surface, before signing.
    #[derive(Debug, Clone)]
    pub struct Case {
        pub method: &'static str,
        pub path: String,
        pub query: Option<String>,
        pub content_type: Option<Vec<u8>>,
        pub body: Vec<u8>,
        pub authorization: Option<Auth>,
        pub cookie: Option<Vec<u8>>,
        pub browser: bool,
        pub origin: Option<&'static str>,
    }

    #[derive(Debug, Clone)]
    pub enum Token {
        Raw(Vec<u8>),
        /// Claims signed with the app's secret: a valid signature over
        /// whatever claims and `typ`.
        Signed {
            typ: Option<String>,
            claims: Value,
        },
        Unsigned(Value),
        RealAccess,
        RealRefresh,
    }

    #[derive(Debug, Clone)]
    pub struct Auth {
        pub scheme: &'static str,
        pub token: Token,
    }

    /// Each route with the method it answers (one of them).
    const ROUTES: &[(&str, &str)] = &[
        ("GET", "/health"),
        ("GET", "/ready"),
        ("POST", "/auth/register"),
        ("POST", "/auth/login"),
        ("POST", "/login"),
        ("POST", "/auth/refresh"),
        ("POST", "/token"),
        ("POST", "/auth/logout"),
        ("GET", "/auth/sessions"),
        ("DELETE", "/auth/sessions/{id}"),
        ("POST", "/auth/password"),
        ("GET", "/api/me"),
        ("GET", "/restricted"),
        ("GET", "/admin/users"),
        ("GET", "/admin/users/{id}"),
        ("DELETE", "/admin/users/{id}"),
        ("POST", "/admin/users/{id}/ban"),
        ("POST", "/admin/users/{id}/unban"),
        ("GET", "/admin/users/{id}/sessions"),
        ("DELETE", "/admin/users/{id}/sessions"),
        ("DELETE", "/admin/sessions/{id}"),
        ("GET", "/admin/events"),
        ("GET", "/.well-known/jwks.json"),
        ("GET", "/.well-known/openid-configuration"),
        ("POST", "/oauth/introspect"),
        ("GET", "/openapi.json"),
        ("GET", "/metrics"),
        ("GET", "/"),
    ];

    const KEYS: &[&str] = &[
        "username",
        "password",
        "name",
        "refresh_token",
        "current_password",
        "new_password",
        "reason",
        "duration_seconds",
        "admin",
        "limit",
        "token",
        "client_id",
        "client_secret",
    ];

    fn id() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(uuid::Uuid::new_v4().to_string()),
            Just("00000000-0000-0000-0000-000000000000".to_string()),
            Just("not-a-uuid".to_string()),
            Just("-1".to_string()),
            Just("1e30".to_string()),
            Just("%FF%FE".to_string()),
            Just("..%2F..%2Fetc".to_string()),
            "[a-zA-Z0-9_.~-]{0,80}",
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-g]{12}",
        ]
    }

    const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH"];

    /// A method and a path: mostly a route with its own method (so that
    /// the request reaches the handler), sometimes another method or a path
    /// of no route.
    fn target() -> impl Strategy<Value = (&'static str, String)> {
        let route = || {
            (prop::sample::select(ROUTES), id())
                .prop_map(|((method, route), id)| (method, route.replace("{id}", &id)))
        };
        prop_oneof![
            12 => route(),
            3 => (prop::sample::select(METHODS), route()).prop_map(|(m, (_, p))| (m, p)),
            1 => (prop::sample::select(METHODS), "(/[a-zA-Z0-9%._~-]{0,20}){1,4}"),
            1 => (prop::sample::select(ROUTES), "[a-z%./]{0,12}")
                .prop_map(|((m, route), tail)| (m, format!("{route}/{tail}"))),
        ]
    }

    fn query() -> impl Strategy<Value = Option<String>> {
        let fixed = prop::sample::select(vec![
            "limit=-1",
            "limit=0",
            "limit=1e30",
            "limit=99999999999999999999999",
            "limit=abc",
            "after=not-a-uuid",
            "after=",
            "before=-5",
            "before=1e30",
            "user_id=xyz",
            "q=%FF%FE%00",
            "q=%25%25%25",
            "scope=all",
            "scope=others",
            "scope=everything",
            "include_revoked=maybe",
            "include_revoked=true",
            "duration_seconds=1e30",
            "limit=1&limit=2",
            "%zz=%zz",
        ]);
        prop_oneof![
            3 => Just(None),
            3 => fixed.prop_map(|q| Some(q.to_string())),
            1 => "[a-z_]{1,10}=[a-zA-Z0-9%+-]{0,30}".prop_map(Some),
        ]
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            Just(json!(1e30)),
            Just(json!(-1)),
            Just(json!(u64::MAX)),
            "\\PC{0,40}".prop_map(Value::from),
            Just(Value::from("x".repeat(200))),
            Just(Value::from("\u{0}\u{7}\u{202e}")),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                vec(("[a-z_]{1,8}", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            2 => Just(Vec::new()),
            4 => vec((prop::sample::select(KEYS), json_value()), 0..5).prop_map(|kv| {
                let map: serde_json::Map<String, Value> =
                    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                serde_json::to_vec(&Value::Object(map)).unwrap()
            }),
            2 => vec((prop::sample::select(KEYS), "\\PC{0,30}"), 0..5).prop_map(|kv| {
                serde_urlencoded::to_string(&kv).unwrap().into_bytes()
            }),
            1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            2 => vec(any::<u8>(), 0..512),
            1 => Just(b"\xff\xfe{\"username\":\"\xc3\x28\"}".to_vec()),
            1 => Just(b"username=%FF%FE&password=%C3%28".to_vec()),
            1 => (1usize..40_000).prop_map(|n| vec![b'{'; n]),
            1 => Just(br#"{"duration_seconds": 1e30, "limit": -1}"#.to_vec()),
            1 => Just(br#"{"username": "a", "username": "b"}"#.to_vec()),
        ]
    }

    fn content_type() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            Just(Some(b"application/json".to_vec())),
            Just(Some(b"application/json; charset=utf-16".to_vec())),
            Just(Some(b"application/x-www-form-urlencoded".to_vec())),
            Just(Some(b"application/problem+json".to_vec())),
            Just(Some(b"text/plain".to_vec())),
            Just(Some(b"multipart/form-data; boundary=x".to_vec())),
            Just(Some(b"application/xml".to_vec())),
            Just(Some(b"".to_vec())),
            Just(Some(b";;;".to_vec())),
            Just(Some(b"application/json\xff".to_vec())),
            "[ -~]{0,30}".prop_map(|s| Some(s.into_bytes())),
        ]
    }

    fn claims() -> impl Strategy<Value = Value> {
        let claim = prop::sample::select(vec![
            "iss", "aud", "sub", "sid", "jti", "iat", "exp", "nbf", "name", "admin", "username",
        ]);
        let value = prop_oneof![
            leaf(),
            Just(Value::from("keyward")),
            Just(Value::from(uuid::Uuid::new_v4().to_string())),
            Just(json!(Utc::now().timestamp() + 600)),
            Just(json!((Utc::now().timestamp() + 600).to_string())),
            Just(json!(["keyward"])),
        ];
        let base = json!({
            "iss": "keyward", "aud": "keyward",
            "sub": uuid::Uuid::new_v4(), "sid": uuid::Uuid::new_v4(),
            "jti": uuid::Uuid::new_v4(), "iat": Utc::now().timestamp(),
            "exp": Utc::now().timestamp() + 600, "username": "someone", "admin": true
        });
        (any::<bool>(), vec((claim, value), 0..4)).prop_map(move |(from_base, changes)| {
            let mut claims = if from_base { base.clone() } else { json!({}) };
            for (k, v) in changes {
                claims[k] = v;
            }
            claims
        })
    }

    fn token() -> impl Strategy<Value = Token> {
        let typ = prop_oneof![
            Just(None),
            Just(Some("at+jwt".to_string())),
            Just(Some("refresh+jwt".to_string())),
            Just(Some("JWT".to_string())),
            "[ -~]{0,10}".prop_map(Some),
        ];
        prop_oneof![
            1 => Just(Token::Raw(Vec::new())),
            1 => Just(Token::Raw(b"...".to_vec())),
            1 => Just(Token::Raw(b"a.b.c".to_vec())),
            1 => Just(Token::Raw(vec![b'a'; 10 * 1024])),
            1 => Just(Token::Raw(b"eyJhbGciOiJub25lIn0.e30.".to_vec())),
            1 => vec(any::<u8>(), 0..64).prop_map(Token::Raw),
            1 => (vec(any::<u8>(), 0..40), vec(any::<u8>(), 0..200), vec(any::<u8>(), 0..40))
                .prop_map(|(a, b, c)| {
                    use base64::Engine;
                    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                    Token::Raw(
                        format!("{}.{}.{}", e.encode(a), e.encode(b), e.encode(c)).into_bytes(),
                    )
                }),
            3 => (typ, claims()).prop_map(|(typ, claims)| Token::Signed { typ, claims }),
            1 => claims().prop_map(Token::Unsigned),
            1 => Just(Token::RealAccess),
            1 => Just(Token::RealRefresh),
        ]
    }

    fn auth() -> impl Strategy<Value = Option<Auth>> {
        let scheme = prop::sample::select(vec!["Bearer", "bearer", "BEARER", "Basic", ""]);
        prop_oneof![
            1 => Just(None),
            3 => (scheme, token()).prop_map(|(scheme, token)| Some(Auth { scheme, token })),
        ]
    }

    pub fn case() -> impl Strategy<Value = Case> {
        let cookie = prop_oneof![
            Just(None),
            "[ -~]{0,60}".prop_map(|v| Some(format!("keyward_refresh={v}").into_bytes())),
            Just(Some(b"keyward_refresh=\xff\xfe".to_vec())),
            Just(Some(b"=;=;keyward_refresh;".to_vec())),
        ];
        let origin = prop::sample::select(vec![
            None,
            Some("https://evil.example"),
            Some("null"),
            Some("http://127.0.0.1"),
        ]);
        (
            (target(), query(), content_type(), body()),
            (auth(), cookie, any::<bool>(), origin),
        )
            .prop_map(
                |(
                    ((method, path), query, content_type, body),
                    (authorization, cookie, browser, origin),
                )| Case {
                    method,
                    path,
                    query,
                    content_type,
                    body,
                    authorization,
                    cookie,
                    browser,
                    origin,
                },
            )
    }
}

/// Renders a token of the hostile surface.
fn render(token: &hostile::Token, real: &TokenPair) -> Vec<u8> {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    match token {
        hostile::Token::Raw(bytes) => bytes.clone(),
        hostile::Token::Signed { typ, claims } => {
            let mut header = Header::new(Algorithm::HS256);
            header.typ = typ.clone();
            encode(
                &header,
                claims,
                &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
            )
            .unwrap()
            .into_bytes()
        }
        hostile::Token::Unsigned(claims) => {
            use base64::Engine;
            let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.",
                e.encode(br#"{"alg":"none","typ":"at+jwt"}"#),
                e.encode(serde_json::to_vec(claims).unwrap())
            )
            .into_bytes()
        }
        hostile::Token::RealAccess => real.access_token.as_bytes().to_vec(),
        hostile::Token::RealRefresh => real.refresh_token.as_bytes().to_vec(),
    }
}

/// What a non-2xx answer must look like: JSON, exactly `error` and `message`.
fn check_error_shape(status: u16, content_type: &str, body: &[u8]) -> Result<(), String> {
    if status >= 500 {
        return Err(format!("status {status}"));
    }
    if status < 400 {
        return Ok(());
    }
    if !content_type.contains("json") {
        return Err(format!("content-type {content_type:?}"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("not an object")?;
    let ok = object.len() == 2
        && object
            .get("error")
            .and_then(Value::as_str)
            .is_some_and(|e| !e.is_empty())
        && object
            .get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.is_empty());
    if ok {
        Ok(())
    } else {
        Err(format!("shape: {value}"))
    }
}

#[actix_web::test]
async fn hostile_requests_never_500_and_always_get_the_error_shape() {
    use proptest::strategy::{Strategy, ValueTree};
    use reqwest::header::{HeaderName, HeaderValue};

    let cases: usize = std::env::var("KEYWARD_HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let app = spawn_app_with(|s| {
        // Let every body reach the parsers rather than the limiter.
        s.rate_limit.enabled = false;
        s.auth.jwt_secret = Some(Secret::new(TEST_SECRET));
    })
    .await;
    let user = app.register().await;
    app.make_admin(&app.db, &user);
    let mut real = app.login(&user).await.token_pair();

    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = hostile::case();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    let mut failures = Vec::new();
    let mut skipped = 0;
    for i in 0..cases {
        // Cases may log the real session out: start a fresh one now and then.
        if i % 100 == 99 {
            real = app.login(&user).await.token_pair();
        }
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let mut url = app.url(&case.path);
        if let Some(q) = &case.query {
            url = format!("{url}?{q}");
        }
        let Ok(parsed) = reqwest::Url::parse(&url) else {
            skipped += 1;
            continue;
        };
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut req = app.client.request(method, parsed).body(case.body.clone());
        let mut headers: Vec<(&'static str, Vec<u8>)> = Vec::new();
        if let Some(ct) = &case.content_type {
            headers.push(("content-type", ct.clone()));
        }
        if let Some(auth) = &case.authorization {
            let mut value = auth.scheme.as_bytes().to_vec();
            value.push(b' ');
            value.extend(render(&auth.token, &real));
            headers.push(("authorization", value));
        }
        if let Some(cookie) = &case.cookie {
            headers.push(("cookie", cookie.clone()));
        }
        if case.browser {
            headers.push(("x-keyward-client", b"spa".to_vec()));
        }
        if let Some(origin) = case.origin {
            headers.push(("origin", origin.as_bytes().to_vec()));
        }
        for (name, value) in headers {
            // Bytes no header may carry (CR, LF, NUL) cannot be sent at all.
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                req = req.header(HeaderName::from_static(name), value);
            }
        }
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{case:?}: no answer: {e}"));
                continue;
            }
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.bytes().await.unwrap_or_default();
        *by_status.entry(status).or_default() += 1;
        if let Err(why) = check_error_shape(status, &content_type, &body) {
            failures.push(format!(
                "{} {} -> {status} {why}: {:.300}",
                case.method,
                url,
                String::from_utf8_lossy(&body)
            ));
        }
    }
    let tried: usize = by_status.values().sum();
    eprintln!(
        "hostile requests: {tried} tried ({skipped} not expressible as a URL), by status {by_status:?}, {} bad",
        failures.len()
    );
    assert!(tried > cases / 2, "too few cases were sent");
    assert!(
        failures.is_empty(),
        "{} of {tried} hostile requests broke the contract:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The app is still whole.
    assert_eq!(app.get("/health", None).await.status, 200);
    app.login(&user).await.token_pair();
}

/// Requests no well-behaved client library would send, written on the socket.
#[actix_web::test]
async fn malformed_http_gets_the_error_shape_or_a_closed_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app().await;
    let big_header = format!("X-Big: {}\r\n", "a".repeat(40 * 1024));
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "header over 32 KiB",
            format!("GET /health HTTP/1.1\r\nHost: x\r\n{big_header}Connection: close\r\n\r\n")
                .into_bytes(),
        ),
        (
            "200 headers",
            format!("GET /health HTTP/1.1\r\nHost: x\r\n{many_headers}Connection: close\r\n\r\n")
                .into_bytes(),
        ),
        (
            "invalid UTF-8 in the path",
            b"GET /auth/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "absurd Content-Length",
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999999999999\r\nConnection: close\r\n\r\n{}".to_vec(),
        ),
        (
            "Content-Length over the body limit",
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n{}".to_vec(),
        ),
        (
            "bad chunk size",
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "invalid UTF-8 in headers",
            b"POST /auth/logout HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\xff\r\nAuthorization: Bearer \xff\xfe.\x80.\x81\r\nCookie: keyward_refresh=\xff\r\nX-Keyward-Client: spa\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
        ),
        (
            "form with invalid percent-encoding",
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 27\r\nConnection: close\r\n\r\nusername=%FF&password=%C3%2".to_vec(),
        ),
    ];
    let mut outcomes = Vec::new();
    for (what, request) in cases {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
            .await
            .unwrap();
        let _ = socket.write_all(&request).await;
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
        assert!(
            read.is_ok(),
            "{what}: the server neither answered nor closed"
        );
        let text = String::from_utf8_lossy(&answer).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            // A request the server cannot even parse may be refused by
            // closing the connection.
            outcomes.push(format!("{what}: closed without an answer"));
            continue;
        };
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default();
        outcomes.push(format!(
            "{what}: {status}{}",
            if body.is_empty() { " (no body)" } else { "" }
        ));
        // Actix answers a request head it cannot parse itself (431, 400)
        // before any route runs; those carry no body. Everything that
        // reaches keyward must be in the contract's shape.
        if body.is_empty() && matches!(status, 400 | 431) {
            continue;
        }
        check_error_shape(status, &content_type, body.as_bytes())
            .unwrap_or_else(|why| panic!("{what}: {status} {why}: {body}"));
    }
    eprintln!("malformed HTTP: {}", outcomes.join("; "));
    assert_eq!(app.get("/health", None).await.status, 200);
}
