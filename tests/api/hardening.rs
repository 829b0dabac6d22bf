//! Hardening: the per-IP limit, the shared lockout, a database outage
//! through a proxy the test controls, the cleanup job, hostile input over
//! the whole request surface, and secrets kept out of the log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use diesel::RunQueryDsl;
use keyward::clock::Clock;
use keyward::config::Secret;
use serde_json::{json, Value};

use crate::support::app::*;
use crate::support::client::*;
use crate::support::db::*;
use crate::support::proxy::{pg_address, through_proxy, Proxy};
use crate::support::tokens::*;

// ---------------------------------------------------------------- per-IP limit

#[actix_web::test]
async fn the_per_ip_limit_engages_with_retry_after_and_refills() {
    let app = spawn_app_with(|s| s.rate_limit.per_ip_per_minute = 3).await;
    let wrong = json!({"username": "nobody-here", "password": "wrong password"});
    // Login and register share the address's budget of three.
    app.post_json("/auth/login", &wrong, None)
        .await
        .assert_error(401, "invalid_credentials");
    app.post_json("/auth/register", &json!({"username": "x"}), None)
        .await
        .assert_error(400, "invalid_request");
    app.post_json("/login", &wrong, None)
        .await
        .assert_error(401, "invalid_credentials");

    let r = app.post_json("/auth/login", &wrong, None).await;
    r.assert_error(429, "rate_limited");
    // One attempt comes back every 60 / 3 = 20 seconds.
    assert_eq!(r.header("retry-after"), Some("20"));
    let r = app
        .post_json(
            "/auth/register",
            &json!({"username": "fresh_user", "password": "long enough"}),
            None,
        )
        .await;
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    // Other routes are not limited.
    assert_eq!(app.get("/health", None).await.status, 200);

    app.clock.advance(TimeDelta::seconds(20));
    app.post_json("/auth/login", &wrong, None)
        .await
        .assert_error(401, "invalid_credentials");
    app.post_json("/auth/login", &wrong, None)
        .await
        .assert_error(429, "rate_limited");
}

#[actix_web::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let post = |app: &TestApp, forwarded: &'static str| {
        let req = app
            .client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"username": "nobody-here", "password": "wrong password"}));
        async move { read(req.send().await.unwrap()).await }
    };
    // Not trusted: every forwarded address is the one peer.
    let direct = spawn_app_with(|s| s.rate_limit.per_ip_per_minute = 1).await;
    assert_eq!(post(&direct, "192.0.2.1").await.status, 401);
    post(&direct, "192.0.2.2")
        .await
        .assert_error(429, "rate_limited");

    // Trusted: each client has its own budget. (The header is read from
    // the right, skipping trusted proxies: here a second hop on loopback.)
    let proxied = spawn_app_with(|s| {
        s.rate_limit.per_ip_per_minute = 1;
        s.server.trust_proxy = true;
    })
    .await;
    assert_eq!(post(&proxied, "192.0.2.1, 127.0.0.1").await.status, 401);
    assert_eq!(post(&proxied, "192.0.2.2").await.status, 401);
    post(&proxied, "192.0.2.1")
        .await
        .assert_error(429, "rate_limited");
}

#[actix_web::test]
async fn no_per_ip_limit_when_rate_limiting_is_disabled() {
    let app = spawn_app_with(|s| {
        s.rate_limit.enabled = false;
        s.rate_limit.per_ip_per_minute = 1;
    })
    .await;
    let wrong = json!({"username": "nobody-here", "password": "wrong password"});
    for _ in 0..5 {
        app.post_json("/auth/login", &wrong, None)
            .await
            .assert_error(401, "invalid_credentials");
    }
}

// ------------------------------------------------------------ shared lockout

#[actix_web::test]
async fn the_lockout_is_shared_by_two_instances_on_one_database() {
    let a = spawn_app_with(|s| {
        s.rate_limit.lockout_threshold = 3;
        s.rate_limit.lockout_seconds = 60;
    })
    .await;
    let b = spawn_on(a.settings.clone(), Clock::system()).await;
    let user = a.register().await;
    let wrong = json!({"username": user.username, "password": "not the password"});
    a.post_json("/auth/login", &wrong, None)
        .await
        .assert_error(401, "invalid_credentials");
    b.post_json("/auth/login", &wrong, None)
        .await
        .assert_error(401, "invalid_credentials");
    // The third failure, counted across both, locks the username.
    let upper = json!({"username": user.username.to_uppercase(), "password": "nope nope"});
    a.post_json("/auth/login", &upper, None)
        .await
        .assert_error(401, "invalid_credentials");
    let good = json!({"username": user.username, "password": user.password});
    for app in [&a.app, &b] {
        let r = app.post_json("/auth/login", &good, None).await;
        r.assert_error(429, "rate_limited");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=61).contains(&retry), "retry-after {retry}");
    }
    // Once it has passed (on either instance's clock), the right password works.
    b.clock.advance(TimeDelta::seconds(61));
    let r = b.post_json("/auth/login", &good, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

// ----------------------------------------------------------- database outage

#[actix_web::test]
async fn a_database_outage_gives_quick_503s_and_recovers_without_loss() {
    let proxy = Proxy::start(pg_address());
    let app = spawn_app_with(|s| through_proxy(s, &proxy)).await;
    let timeout = Duration::from_millis(500);

    // Arrange: a user with two sessions, one of them refreshed.
    let user = app.register().await;
    let first = app.login(&user).await.token_pair();
    let second = app.login(&user).await.token_pair();
    let r = app.refresh(first.refresh_token.as_str()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let first_rt = field(&r.json, "refresh_token").to_string();
    let first_at = field(&r.json, "access_token").to_string();
    let second_rt = second.refresh_token.clone();
    let sessions_of_user = format!(
        "SELECT count(*) FROM sessions WHERE user_id = '{}'",
        user.id
    );
    assert_eq!(query_i64(&app.db, &sessions_of_user), 2);
    eventually(Duration::from_secs(5), || async {
        app.get("/ready", None).await.status == 200
    })
    .await
    .expect("ready before the outage");

    // A query in flight when the database goes away: it must end with an
    // error the service maps to "unavailable", not hang.
    let pool = app.state.pool.clone();
    let in_flight = std::thread::spawn(move || {
        let mut conn = pool.get().unwrap();
        let started = Instant::now();
        let outcome = diesel::sql_query("SELECT pg_sleep(30)").execute(&mut conn);
        (outcome, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));

    // Act: cut the database off.
    let cut_at = Instant::now();
    proxy.cut();
    let (outcome, in_flight_took) = in_flight.join().unwrap();
    let error = outcome.expect_err("the query cannot finish without the database");
    assert!(
        matches!(
            keyward::db::StoreError::from(error),
            keyward::db::StoreError::Unavailable(_)
        ),
        "a connection lost mid-query is 'unavailable'"
    );
    assert!(
        in_flight_took < Duration::from_secs(5),
        "{in_flight_took:?}"
    );
    let credentials = json!({"username": user.username, "password": user.password});
    let started = Instant::now();
    let r = app.post_json("/auth/login", &credentials, None).await;
    let login_503 = started.elapsed();
    let time_to_503 = cut_at.elapsed();
    r.assert_error(503, "unavailable");
    assert!(r.header("retry-after").is_some(), "503 carries Retry-After");

    let started = Instant::now();
    let r = app.refresh(&first_rt).await;
    let refresh_503 = started.elapsed();
    r.assert_error(503, "unavailable");
    assert!(r.header("retry-after").is_some());

    let started = Instant::now();
    let r = app
        .post_json(
            "/auth/register",
            &json!({"username": "during_outage", "password": "long enough"}),
            None,
        )
        .await;
    let register_503 = started.elapsed();
    r.assert_error(503, "unavailable");

    let started = Instant::now();
    let r = app.get("/ready", None).await;
    let ready_503 = started.elapsed();
    r.assert_error(503, "unavailable");
    assert!(r.header("retry-after").is_some());

    // Access tokens still answer from the token alone, at once.
    let started = Instant::now();
    let r = app.get("/api/me", Some(&first_at)).await;
    let me_ok = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["username"], user.username.as_str());
    assert_eq!(app.get("/health", None).await.status, 200);

    // Every database route answered within about the checkout timeout.
    let slack = Duration::from_millis(1500);
    for (what, took) in [
        ("login", login_503),
        ("refresh", refresh_503),
        ("register", register_503),
        ("ready", ready_503),
    ] {
        assert!(took < timeout + slack, "{what} took {took:?}");
    }
    assert!(me_ok < Duration::from_millis(500), "/api/me took {me_ok:?}");

    // Restore: everything recovers without a restart.
    let restored_at = Instant::now();
    proxy.restore();
    let to_login = eventually(Duration::from_secs(15), || async {
        app.post_json("/auth/login", &credentials, None)
            .await
            .status
            == 200
    })
    .await
    .expect("login recovers");
    let to_ready = eventually(Duration::from_secs(15), || async {
        app.get("/ready", None).await.status == 200
    })
    .await
    .expect("/ready recovers");
    let recovered = restored_at.elapsed();
    // The refresh token that failed during the outage was never rotated away.
    let r = app.refresh(&first_rt).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.refresh(&second_rt).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // No session was lost or duplicated: the two from before, plus the one
    // login that succeeded after the restore.
    assert_eq!(query_i64(&app.db, &sessions_of_user), 3);
    assert_eq!(
        query_i64(
            &app.db,
            "SELECT count(*) FROM users WHERE username = 'during_outage'"
        ),
        0
    );
    assert_eq!(
        query_i64(
            &app.db,
            &format!(
                "SELECT count(*) FROM sessions WHERE user_id = '{}' AND revoked_at IS NOT NULL",
                user.id
            )
        ),
        0
    );

    eprintln!(
        "outage timeline (connect_timeout_ms = 500): cut -> first 503 {time_to_503:?} \
         (login {login_503:?}, refresh {refresh_503:?}, register {register_503:?}, \
         /ready {ready_503:?}; /api/me 200 in {me_ok:?}; a query in flight failed after \
         {in_flight_took:?}); restore -> login 200 in {to_login:?}, \
         /ready 200 {to_ready:?} later; recovered {recovered:?} after the restore"
    );
}

#[actix_web::test]
async fn pooled_connections_carry_a_statement_timeout() {
    let app = spawn_app().await;
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement_timeout: String,
    }
    let mut conn = app.state.pool.get().unwrap();
    let shown = diesel::sql_query("SHOW statement_timeout")
        .get_result::<Setting>(&mut conn)
        .unwrap();
    assert_eq!(shown.statement_timeout, "5s");
    // A statement past it ends as "unavailable" (a 503), not as a 500.
    diesel::sql_query("SET statement_timeout = 50")
        .execute(&mut conn)
        .unwrap();
    let error = diesel::sql_query("SELECT pg_sleep(1)")
        .execute(&mut conn)
        .unwrap_err();
    assert!(matches!(
        keyward::db::StoreError::from(error),
        keyward::db::StoreError::Unavailable(_)
    ));
    diesel::sql_query("SET statement_timeout = 5000")
        .execute(&mut conn)
        .unwrap();
}

// ---------------------------------------------------------------- cleanup job

#[actix_web::test]
async fn the_cleanup_job_deletes_only_what_outlived_its_retention() {
    let app = spawn_app().await;
    let user = app.register().await;
    // `now` lies far ahead, so that the app's own background sweep (on the
    // real clock) cannot touch these rows while the test runs.
    let now = Utc::now() + TimeDelta::days(400);
    let at = |days: i64| (now + TimeDelta::days(days)).to_rfc3339();
    let session = |label: &str, expires: i64, revoked: Option<i64>| {
        format!(
            "INSERT INTO sessions (id, user_id, current_jti, rotated_at, created_at, last_used_at, \
             expires_at, revoked_at, user_agent) VALUES (gen_random_uuid(), '{}', gen_random_uuid(), \
             '{c}', '{c}', '{c}', '{}', {}, '{label}');",
            user.id,
            at(expires),
            revoked.map_or("NULL".to_string(), |d| format!("'{}'", at(d))),
            c = at(-40),
        )
    };
    let mut sql = String::new();
    sql += &session("expired_8_days_ago", -8, None);
    sql += &session("expired_6_days_ago", -6, None);
    sql += &session("revoked_8_days_ago", 1, Some(-8));
    sql += &session("revoked_6_days_ago", 1, Some(-6));
    sql += &session("live", 1, None);
    // Enough long-ended sessions for several batches.
    sql += &format!(
        "INSERT INTO sessions (id, user_id, current_jti, rotated_at, created_at, last_used_at, \
         expires_at, user_agent) SELECT gen_random_uuid(), '{}', gen_random_uuid(), '{c}', '{c}', \
         '{c}', '{}', 'bulk' FROM generate_series(1, 2500);",
        user.id,
        at(-30),
        c = at(-40),
    );
    sql += &format!(
        "INSERT INTO events (at, kind) VALUES ('{}', 'old_event'), ('{}', 'kept_event');",
        at(-91),
        at(-89)
    );
    sql += &format!(
        "INSERT INTO login_throttle (username_key, failures, last_failure, locked_until) VALUES \
         ('stale', 2, '{}', NULL), ('stale_but_locked', 0, '{}', '{}'), ('recent', 1, '{}', NULL);",
        at(-8),
        at(-8),
        at(1),
        at(-1)
    );
    app.db.exec(&sql);
    let events_before = query_i64(
        &app.db,
        &format!("SELECT count(*) FROM events WHERE at < '{}'", at(-90)),
    );
    let events_total = query_i64(&app.db, "SELECT count(*) FROM events");

    let mut conn = app.db.connect();
    let swept = keyward::cleanup::sweep(&mut conn, &app.settings.retention, now).unwrap();

    assert_eq!(swept.sessions, 2502, "{swept:?}");
    assert_eq!(swept.events as i64, events_before, "{swept:?}");
    assert_eq!(swept.throttle, 1, "{swept:?}");
    #[derive(diesel::QueryableByName)]
    struct Label {
        #[diesel(sql_type = diesel::sql_types::Text)]
        label: String,
    }
    let left: Vec<String> =
        diesel::sql_query("SELECT user_agent AS label FROM sessions ORDER BY user_agent")
            .load::<Label>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|l| l.label)
            .collect();
    assert_eq!(
        left,
        ["expired_6_days_ago", "live", "revoked_6_days_ago"],
        "kept sessions"
    );
    let kinds: Vec<String> =
        diesel::sql_query("SELECT kind AS label FROM events WHERE kind LIKE '%_event'")
            .load::<Label>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|l| l.label)
            .collect();
    assert_eq!(kinds, ["kept_event"]);
    assert_eq!(
        query_i64(&app.db, "SELECT count(*) FROM events"),
        events_total - events_before
    );
    let keys: Vec<String> =
        diesel::sql_query("SELECT username_key AS label FROM login_throttle ORDER BY username_key")
            .load::<Label>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|l| l.label)
            .collect();
    assert_eq!(keys, ["recent", "stale_but_locked"]);

    // A second sweep finds nothing more; the user itself is untouched.
    let again = keyward::cleanup::sweep(&mut conn, &app.settings.retention, now).unwrap();
    assert_eq!(again, keyward::cleanup::Swept::default());
    assert_eq!(app.get("/health", None).await.status, 200);
    assert_eq!(
        query_i64(
            &app.db,
            &format!("SELECT count(*) FROM users WHERE id = '{}'", user.id)
        ),
        1
    );
}

// -------------------------------------------------------------- hostile input

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

// ------------------------------------------------------------ secrets in logs

/// Sends and checks the status.
async fn expect(req: reqwest::RequestBuilder, status: u16) -> reqwest::Response {
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), status, "{:?}", r.url().path());
    r
}

#[actix_web::test]
async fn no_secret_reaches_the_log_even_at_trace() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let db = TestDb::new();
    let secret = "log-capture-secret-0123456789abcdefghijklmnop";
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .env("DATABASE_URL", &db.url)
        .env("KEYWARD__SERVER__PORT", "0")
        .env("KEYWARD__AUTH__JWT_SECRET", secret)
        .env("KEYWARD__AUTH__BCRYPT_COST", "4")
        .env("KEYWARD__COOKIE__SECURE", "false")
        .env("RUST_LOG", "trace")
        .env_remove("KEYWARD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (port_tx, port_rx) = std::sync::mpsc::channel::<String>();
    let mut readers = Vec::new();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let (log, port_tx) = (log.clone(), port_tx.clone());
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("keyward listening on http://").nth(1) {
                    let _ = port_tx.send(addr.trim().to_string());
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        }));
    }
    let address = port_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no listening line: {}", log.lock().unwrap()));
    let base = format!("http://{address}");
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| client.post(format!("{base}{path}")).json(&body);

    let password = "correct-horse-battery-staple-42";
    let wrong_password = "wrong-horse-battery-staple-43";
    let short_password = "short7";
    let mut secrets: Vec<String> = vec![
        secret.to_string(),
        password.to_string(),
        wrong_password.to_string(),
        short_password.to_string(),
    ];
    // Bad and good inputs, JSON and form.
    let json_of = |r: reqwest::Response| async move { r.json::<Value>().await.unwrap() };
    let short = json!({"username": "logcheck", "password": short_password});
    expect(post("/auth/register", short), 400).await;
    let good = json!({"username": "logcheck", "password": password, "name": "Log Check"});
    expect(post("/auth/register", good), 201).await;
    let wrong = json!({"username": "logcheck", "password": wrong_password});
    expect(post("/auth/login", wrong), 401).await;
    let form = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("username=logcheck&password={password}"));
    let pair = json_of(expect(form, 200).await).await;
    let access = field(&pair, "access_token").to_string();
    let refresh = field(&pair, "refresh_token").to_string();
    let me = client.get(format!("{base}/api/me")).bearer_auth(&access);
    expect(me, 200).await;
    let pair2 = expect(
        post("/auth/refresh", json!({ "refresh_token": refresh })),
        200,
    )
    .await;
    let pair2 = json_of(pair2).await;
    let access2 = field(&pair2, "access_token").to_string();
    let refresh2 = field(&pair2, "refresh_token").to_string();
    // A tampered token and an access token where a refresh one belongs.
    let tampered = format!("{}x", &refresh2[..refresh2.len() - 1]);
    expect(
        post("/auth/refresh", json!({ "refresh_token": tampered })),
        401,
    )
    .await;
    expect(post("/token", json!({ "refresh_token": access2 })), 401).await;
    // Browser mode: the refresh token travels in a cookie.
    let spa_login = post(
        "/auth/login",
        json!({"username": "logcheck", "password": password}),
    )
    .header("x-keyward-client", "spa");
    let r = expect(spa_login, 200).await;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let cookie_value = cookie.split_once('=').unwrap().1.to_string();
    let browser_access = field(&json_of(r).await, "access_token").to_string();
    let spa_refresh = client
        .post(format!("{base}/auth/refresh"))
        .header("x-keyward-client", "spa")
        .header("cookie", &cookie);
    expect(spa_refresh, 200).await;
    let logout = client
        .post(format!("{base}/auth/logout"))
        .bearer_auth(&access2);
    expect(logout, 204).await;
    expect(
        post("/auth/logout", json!({ "refresh_token": refresh2 })),
        204,
    )
    .await;
    secrets.extend([
        access.clone(),
        refresh.clone(),
        access2,
        refresh2.clone(),
        tampered,
        cookie_value,
        browser_access,
    ]);
    // Signatures alone are secrets too.
    for token in [&access, &refresh, &refresh2] {
        secrets.push(token.rsplit('.').next().unwrap().to_string());
    }

    // Stop it the way an operator would, and wait for the logs to end.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "keyward did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for reader in readers {
        reader.join().unwrap();
    }
    let log = log.lock().unwrap().clone();
    assert!(exit.success(), "exit {exit:?}; log:\n{log}");
    // The capture worked: the request log and trace output are there.
    assert!(log.contains("/auth/login"), "request log missing:\n{log}");
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace missing"
    );
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret reached the log: {secret:.16}…"
        );
    }
    eprintln!(
        "log capture: {} lines, {} bytes, checked for {} secrets",
        log.lines().count(),
        log.len(),
        secrets.len()
    );
}
