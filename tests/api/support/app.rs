//! Running apps: the test settings, a test database and one app on it
//! (`Harness`), more instances on the same database, all started in-process
//! on port 0.

use keyward::clock::Clock;
use keyward::config::{Secret, Settings};
use keyward::startup::Application;

use super::client::eventually;
use super::db::TestDb;

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

/// A port free now, for an instance that must come back on the same one
/// or a process that takes its port as an argument.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
