//! The browser driver: chromedriver started in a process group of its own,
//! headless Chromium sessions with fresh profiles, the generic commands the
//! tests give a page (run a script, wait for a condition, fill, click,
//! screenshot), one browser test at a time, and a second site on another
//! origin. What the browser app itself shows is asked in `e2e.rs`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

use super::app::{free_port, spawn_app_with, Harness};
use super::client::{eventually, User};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long any single condition may take before the test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(15);

/// One browser test at a time (see the module comment).
pub(crate) async fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chromedriver child process with its own process group, so that
/// dropping it also ends every Chromium it started; and the fresh profile
/// directories of those browsers.
pub(crate) struct Driver {
    child: Child,
    url: String,
    profiles: Vec<PathBuf>,
}

impl Driver {
    pub(crate) async fn start() -> Self {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {CHROMEDRIVER} (apt install chromium-driver): {e}")
            });
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profiles: Vec::new(),
        };
        let status = format!("{}/status", driver.url);
        let ready = eventually(PATIENCE, || async {
            match reqwest::get(&status).await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            }
        })
        .await;
        assert!(ready.is_some(), "chromedriver did not become ready");
        driver
    }

    /// A new browser session with a profile of its own (own cookies, own
    /// BroadcastChannel): another person at another computer.
    pub(crate) async fn browser(&mut self, test: &'static str) -> Browser {
        let profile =
            std::env::temp_dir().join(format!("keyward-e2e-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&profile).unwrap();
        self.profiles.push(profile.clone());
        let args = [
            "--headless".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-quic".to_string(),
            "--no-first-run".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = Capabilities::new();
        caps.insert("browserName".to_string(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".to_string(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM} through chromedriver: {e}"));
        client.set_window_size(1280, 900).await.unwrap();
        Browser { client, test }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(group) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group,
            // which is chromedriver's own (process_group(0) above); no memory
            // is involved.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for profile in &self.profiles {
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}

/// One browser session; its current window is the one commands act on.
pub(crate) struct Browser {
    pub(crate) client: Client,
    test: &'static str,
}

impl Browser {
    /// Runs `script` (a function body) in the page and returns its value.
    pub(crate) async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Waits until `script` returns something truthy; on timeout saves a
    /// screenshot and fails with `what`.
    pub(crate) async fn until(&self, what: &str, script: &str) {
        let start = Instant::now();
        loop {
            let ok = self
                .client
                .execute(&format!("{VISIBLE}\n{script}"), vec![])
                .await
                .is_ok_and(|v| v.as_bool().unwrap_or(!v.is_null()));
            if ok {
                return;
            }
            if start.elapsed() > PATIENCE {
                self.screenshot("timeout").await;
                let message = self.text("message").await;
                panic!(
                    "{}: waited {PATIENCE:?} for {what} (message on the page: {message:?})",
                    self.test
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn text(&self, id: &str) -> String {
        self.js(&format!(
            "const e = document.getElementById({}); return e ? e.textContent : null",
            json!(id)
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_string()
    }

    pub(crate) async fn fill(&self, id: &str, text: &str) {
        let field = self.client.find(Locator::Id(id)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub(crate) async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Saves `target/e2e/<test>[-<suffix>].png`.
    pub(crate) async fn screenshot(&self, suffix: &str) {
        let name = if suffix.is_empty() {
            format!("{}.png", self.test)
        } else {
            format!("{}-{suffix}.png", self.test)
        };
        if let Ok(png) = self.client.screenshot().await {
            std::fs::write(screenshot_dir().join(name), png).unwrap();
        }
    }

    pub(crate) async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// `visible(id)`, for the conditions of `Browser::until`.
const VISIBLE: &str = "const visible = (id) => { const e = document.getElementById(id); \
    return !!e && e.checkVisibility(); };";

/// One test's world: its turn at the browser, the app, a registered user
/// and a chromedriver.
pub(crate) struct Scene {
    pub(crate) app: Harness,
    pub(crate) user: User,
    pub(crate) driver: Driver,
    // Declared last: the next test starts once everything above is gone.
    _turn: MutexGuard<'static, ()>,
}

impl Scene {
    pub(crate) async fn new(configure: impl FnOnce(&mut keyward::config::Settings)) -> Self {
        let turn = one_at_a_time().await;
        let app = spawn_app_with(configure).await;
        let user = app.register().await;
        let driver = Driver::start().await;
        Self {
            app,
            user,
            driver,
            _turn: turn,
        }
    }
}

/// A site on another port of the same loopback address serving `page` at `/`.
pub(crate) async fn spawn_site(page: &'static str) -> (String, actix_web::dev::ServerHandle) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let server = HttpServer::new(move || {
        App::new().route(
            "/",
            web::get().to(move || async move {
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body(page)
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (format!("http://127.0.0.1:{port}"), handle)
}
