//! Test scaffolding: a fresh database per test, cloned from a migrated
//! template built once, and the app started in-process on port 0.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::OnceLock;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use keyward::clock::Clock;
use keyward::config::{Secret, Settings};
use keyward::startup::Application;
use serde_json::{json, Value};

/// The server every test database lives on.
pub fn pg_base() -> String {
    std::env::var("KEYWARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

/// Serialises template creation and cloning across test processes.
const TEMPLATE_LOCK: i64 = 0x6b77_7465_7374;

pub fn maintenance() -> PgConnection {
    PgConnection::establish(&format!("{}/postgres", pg_base()))
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (see README)")
}

/// The template's name changes whenever a migration does.
fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let mut hasher = DefaultHasher::new();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<_> = walk(&dir);
        files.sort();
        for file in files {
            file.hash(&mut hasher);
            std::fs::read(&file).unwrap().hash(&mut hasher);
        }
        format!("keyward_tpl_{:016x}", hasher.finish())
    })
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

pub fn database_exists(conn: &mut PgConnection, name: &str) -> bool {
    keyward::db::database_exists(conn, name).unwrap()
}

fn stale_templates(conn: &mut PgConnection, current: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'keyward\\_tpl\\_%' AND datname <> $1",
    )
    .bind::<diesel::sql_types::Text, _>(current)
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|n| n.datname)
    .collect()
}

/// A database of its own for one test, dropped (with any connections left)
/// when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> Self {
        let template = template_name();
        let name = format!("keyward_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = maintenance();
        conn.batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
            .unwrap();
        if !database_exists(&mut conn, template) {
            // Templates of earlier migrations are of no more use.
            for stale in stale_templates(&mut conn, template) {
                let _ =
                    conn.batch_execute(&format!("DROP DATABASE IF EXISTS {stale} WITH (FORCE)"));
            }
            conn.batch_execute(&format!("CREATE DATABASE {template}"))
                .unwrap();
            keyward::db::prepare_database(&format!("{}/{template}", pg_base())).unwrap();
        }
        let cloned = conn.batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY"
        ));
        conn.batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
            .unwrap();
        cloned.unwrap();
        let url = format!("{}/{name}", pg_base());
        Self { name, url }
    }

    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }

    /// Runs SQL against this database (arrange steps the API cannot do).
    pub fn exec(&self, sql: &str) {
        self.connect().batch_execute(sql).unwrap();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&format!("{}/postgres", pg_base())) {
            let _ = conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Settings for a test app on `db`: port 0, cheap bcrypt, keys in the
/// database.
pub fn test_settings(db: &TestDb) -> Settings {
    let mut s = for_test(Settings::defaults().unwrap(), db);
    // Tests of concurrent refreshes send dozens of one session's refreshes
    // in a second; the limit itself is tested with its own budget
    // (`floods.rs`).
    s.rate_limit.refresh_per_session_per_minute = 1000;
    s
}

/// `settings` with the test overrides of [`test_settings`] applied.
fn for_test(mut s: Settings, db: &TestDb) -> Settings {
    s.database.url = Secret::new(db.url.clone());
    s.database.pool_size = Some(4);
    s.server.port = 0;
    s.auth.bcrypt_cost = 4;
    s.cookie.secure = false;
    s
}

pub const TEST_SECRET: &str = "test-secret-of-at-least-thirty-two-bytes!!";

/// One running app. Several may share a database (`spawn_on`).
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub clock: Clock,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub state: actix_web::web::Data<keyward::http::AppState>,
    handle: actix_web::dev::ServerHandle,
}

impl TestApp {
    /// Stops this instance at once and waits until it has: its port is
    /// free again (open streams are cut, not waited for).
    pub async fn shut_down(&self) {
        self.handle.stop(false).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command at once; the server winds down by itself.
        drop(self.handle.stop(false));
    }
}

/// A test database and one app on it.
pub struct Harness {
    pub app: TestApp,
    // Declared last: dropped after the app has been told to stop.
    pub db: TestDb,
}

impl std::ops::Deref for Harness {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

pub async fn spawn_app() -> Harness {
    spawn_app_with(|_| {}).await
}

/// A test app configured as an operator would: the built-in defaults with
/// these `KEYWARD__…` variables applied, then the test overrides and
/// `configure`.
pub async fn spawn_app_with_env(
    vars: &[(&str, &str)],
    configure: impl FnOnce(&mut Settings),
) -> Harness {
    let db = TestDb::new();
    let env: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut settings = for_test(Settings::from_env(&env).unwrap(), &db);
    configure(&mut settings);
    let app = spawn_on(settings, Clock::system()).await;
    Harness { app, db }
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> Harness {
    let db = TestDb::new();
    let mut settings = test_settings(&db);
    configure(&mut settings);
    let app = spawn_on(settings, Clock::system()).await;
    Harness { app, db }
}

/// Starts an app with these settings and clock.
pub async fn spawn_on(settings: Settings, clock: Clock) -> TestApp {
    let application = Application::build(settings.clone(), clock.clone()).expect("app builds");
    let port = application.port();
    let state = application.state();
    let handle = application.handle();
    actix_web::rt::spawn(application.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        clock,
        client,
        settings,
        state,
        handle,
    }
}

/// Another instance on `app`'s database, once it is ready.
pub async fn second_instance(app: &TestApp) -> TestApp {
    let b = spawn_on(app.settings.clone(), Clock::system()).await;
    let ready = eventually(std::time::Duration::from_secs(5), || async {
        b.get("/ready", None).await.status == 200
    })
    .await;
    assert!(ready.is_some(), "the second instance never became ready");
    b
}

/// A response read whole: status, headers, body as text and JSON.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the contract's error shape and code, and returns the message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.json["error"], code, "body: {}", self.text);
        let message = self.json["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "an error needs a message: {}",
            self.text
        );
        assert!(
            self.header("content-type")
                .unwrap_or_default()
                .contains("json"),
            "errors are JSON"
        );
        message.to_string()
    }
}

impl Reply {
    /// Asserts `401 invalid_client` with the `Basic realm="keyward"` challenge.
    #[track_caller]
    pub fn assert_invalid_client(&self) {
        self.assert_error(401, "invalid_client");
        assert_eq!(
            self.header("www-authenticate"),
            Some(r#"Basic realm="keyward""#),
            "{}",
            self.text
        );
    }
}

pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

/// A user the tests registered: name and password.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password: String,
    pub name: Option<String>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Reply {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn patch_json(&self, path: &str, body: &Value, token: Option<&str>) -> Reply {
        let mut req = self.client.patch(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        read(req.send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.client.delete(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.unwrap()).await
    }

    /// Registers a fresh user (201 expected).
    pub async fn register(&self) -> User {
        let username = format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let name = Some(format!("Test {username}"));
        let r = self
            .post_json(
                "/auth/register",
                &json!({"username": username, "password": password, "name": name}),
                None,
            )
            .await;
        assert_eq!(r.status, 201, "register: {}", r.text);
        User {
            id: r.json["id"].as_str().unwrap().to_string(),
            username,
            password,
            name,
        }
    }

    /// Logs in (200 expected) and returns the token pair.
    pub async fn login(&self, user: &User) -> Value {
        let r = self
            .post_json(
                "/auth/login",
                &json!({"username": user.username, "password": user.password}),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "login: {}", r.text);
        r.json
    }

    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post_json(
            "/auth/refresh",
            &json!({ "refresh_token": refresh_token }),
            None,
        )
        .await
    }

    /// Makes a user an administrator directly in the database.
    pub fn make_admin(&self, db: &TestDb, user: &User) {
        db.exec(&format!(
            "UPDATE users SET admin = true WHERE id = '{}'",
            user.id
        ));
    }
}

/// Waits up to `limit` for `check` to hold, polling every 20 ms; returns how
/// long it took, or `None`.
pub async fn eventually<F, Fut>(
    limit: std::time::Duration,
    mut check: F,
) -> Option<std::time::Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The JSON claims of a JWT, unverified (for assertions only).
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub fn header_of(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

impl TestApp {
    /// Registers a user, makes them an administrator and signs them in;
    /// returns the user and an access token.
    pub async fn admin(&self, db: &TestDb) -> (User, String) {
        let user = self.register().await;
        self.make_admin(db, &user);
        let pair = self.login(&user).await;
        let token = pair["access_token"].as_str().unwrap().to_string();
        (user, token)
    }

    /// A sign-in attempt, whatever its answer.
    pub async fn try_login(&self, user: &User) -> Reply {
        self.post_json(
            "/auth/login",
            &json!({"username": user.username, "password": user.password}),
            None,
        )
        .await
    }

    /// `GET /api/me` with the access token of a token pair.
    pub async fn me(&self, pair: &Value) -> Reply {
        self.get("/api/me", Some(field(pair, "access_token"))).await
    }

    /// A form POST with a Bearer token.
    pub async fn post_form_with_token(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        token: &str,
    ) -> Reply {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let req = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        read(req.send().await.unwrap()).await
    }
}

/// Inserts a user straight into the database (no password works for it);
/// returns its id.
pub fn insert_user(db: &TestDb, username: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    db.exec(&format!(
        "INSERT INTO users (id, username, password_hash, created_at) \
         VALUES ('{id}', '{username}', 'not-a-hash', now())"
    ));
    id
}

/// The single `bigint` a query returns (`SELECT count(*) …`).
pub fn query_i64(db: &TestDb, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    use diesel::RunQueryDsl;
    diesel::sql_query(format!("SELECT ({sql}) AS value"))
        .get_result::<Value>(&mut db.connect())
        .unwrap()
        .value
}

/// A text field of a JSON body (a token pair's `access_token`, say).
pub fn field<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no text field {key} in {value}"))
}

/// Runs the `n` requests `make` builds, released together by a barrier
/// once all of them are ready, and returns their replies in order.
pub async fn all_at_once<F, Fut>(n: usize, make: F) -> Vec<Reply>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let barrier = tokio::sync::Barrier::new(n);
    let barrier = &barrier;
    futures_util::future::join_all((0..n).map(|i| {
        let request = make(i);
        async move {
            barrier.wait().await;
            request.await
        }
    }))
    .await
}

/// How many replies have this status.
pub fn count_status(replies: &[Reply], status: u16) -> usize {
    replies.iter().filter(|r| r.status == status).count()
}

/// The text column `value` of every row a query returns (NULL as "NULL").
pub fn query_texts(db: &TestDb, sql: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        value: Option<String>,
    }
    use diesel::RunQueryDsl;
    diesel::sql_query(sql)
        .load::<Row>(&mut db.connect())
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap_or_else(|| "NULL".into()))
        .collect()
}

/// Runs the keyward binary against the test database (see
/// [`keyward_command`]).
pub fn keyward_cli(database_url: &str, args: &[&str]) -> std::process::Output {
    keyward_command(database_url, args, &[], None)
}

/// A service's credentials, as `keyward services create` prints them.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
}

impl Service {
    /// The `Authorization: Basic` value of these credentials.
    pub fn basic(&self) -> String {
        use base64::Engine;
        let pair = format!("{}:{}", self.client_id, self.client_secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

impl TestApp {
    /// Creates a service in the database (which announces it to every
    /// instance) and reloads this instance's registry at once.
    pub fn create_service(&self) -> Service {
        let name = format!("svc{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut conn = self.state.pool.get().unwrap();
        let (row, credentials) =
            keyward::services::service_registry::create(&mut conn, &name, self.clock.now())
                .unwrap();
        self.state.services.reload(&mut conn).unwrap();
        Service {
            name: row.name,
            client_id: credentials.client_id,
            client_secret: credentials.client_secret,
        }
    }

    /// `POST /oauth/introspect` with the service's credentials by HTTP Basic.
    pub async fn introspect(&self, service: &Service, token: &str) -> Reply {
        let body = serde_urlencoded::to_string([("token", token)]).unwrap();
        let req = self
            .client
            .post(self.url("/oauth/introspect"))
            .header("authorization", service.basic())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        read(req.send().await.unwrap()).await
    }
}

/// Runs the keyward binary (the one cargo built for these tests) on
/// `database_url`, with `env` on top of a clean `KEYWARD_*` environment and
/// cheap bcrypt, `stdin` as its standard input.
pub fn keyward_command(
    database_url: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KEYWARD_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("KEYWARD__AUTH__BCRYPT_COST", "4")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// [`keyward_command`] off the async runtime.
pub async fn keyward_cli_with(
    database_url: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let url = database_url.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        keyward_command(&url, &args, &env, None)
    })
    .await
    .unwrap()
}

/// Standard output and error of a finished command, for messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "status {:?}; stdout: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}
