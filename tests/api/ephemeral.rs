//! `keyward serve --ephemeral` (API.md section 8), run as the real binary:
//! its one JSON line, its own database, the clock and user routes, and
//! every way it ends (stdin closing, SIGTERM, SIGINT, a parent that dies)
//! dropping its database and exiting 0.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::app::*;
use crate::support::client::*;
use crate::support::db::*;
use crate::support::tokens::*;

const BINARY: &str = env!("CARGO_BIN_EXE_keyward");
/// How long a start or an exit may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// The command with a clean environment: the server of the test databases,
/// a small pool, quiet logs.
fn command(extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BINARY);
    cmd.args(["serve", "--ephemeral"]);
    for (key, _) in std::env::vars() {
        if key.starts_with("KEYWARD") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd.env("DATABASE_URL", format!("{}/postgres", pg_base()))
        .env("KEYWARD__DATABASE__POOL_SIZE", "4")
        .env("RUST_LOG", "warn");
    for (key, value) in extra {
        cmd.env(key, value);
    }
    cmd
}

/// Reads one line from `stdout` within `PATIENCE`; `None` at end of file.
fn first_line(stdout: ChildStdout) -> (Option<String>, mpsc::Receiver<String>) {
    let (line_tx, line_rx) = mpsc::channel();
    let (rest_tx, rest_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let got = reader.read_line(&mut line).unwrap_or(0);
        let _ = line_tx.send((got > 0).then_some(line));
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        let _ = rest_tx.send(rest);
    });
    let line = line_rx
        .recv_timeout(PATIENCE)
        .expect("no line on stdout in time");
    (line, rest_rx)
}

/// A running instance and what it printed.
struct Instance {
    child: Child,
    info: Value,
    database: String,
    /// Whatever it prints on stdout after its line, once it exits.
    rest: mpsc::Receiver<String>,
}

impl Instance {
    fn start(extra: &[(&str, &str)]) -> Self {
        let mut child = command(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the keyward binary starts");
        let (line, rest) = first_line(child.stdout.take().unwrap());
        let line = line.expect("a JSON line before stdout ends");
        let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let database = database_of(&info);
        Self {
            child,
            info,
            database,
            rest,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", field(&self.info, "url"))
    }

    /// Waits for the exit; asserts status 0, nothing more on stdout and the
    /// database gone.
    fn assert_clean_exit(mut self) {
        let status = wait_for_exit(&mut self.child);
        assert!(status.success(), "exited with {status}");
        let rest = self.rest.recv_timeout(PATIENCE).unwrap();
        assert_eq!(rest, "", "exactly one line on stdout");
        assert!(
            !database_exists(&mut maintenance(), &self.database),
            "{} is still there",
            self.database
        );
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // A failed test leaves neither a process nor a database behind.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = diesel::connection::SimpleConnection::batch_execute(
            &mut maintenance(),
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database),
        );
    }
}

fn database_of(info: &Value) -> String {
    let url = field(info, "database_url");
    let name = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    assert!(name.starts_with("keyward_ephemeral_"), "{url}");
    name.to_string()
}

fn wait_for_exit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "still running after {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn post(url: &str, body: Value, token: Option<&str>) -> Reply {
    let mut req = reqwest::Client::new().post(url).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    read(req.send().await.unwrap()).await
}

async fn get(url: &str, token: Option<&str>) -> Reply {
    let mut req = reqwest::Client::new().get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    read(req.send().await.unwrap()).await
}

/// Creates a user through `/ephemeral/users` and signs them in.
async fn user_signed_in(eph: &Instance, username: &str, admin: bool) -> TokenPair {
    let password = "a-password-for-tests";
    let r = post(
        &eph.url("/ephemeral/users"),
        json!({"username": username, "password": password, "name": "Eph", "admin": admin}),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["admin"], admin);
    let r = post(
        &eph.url("/auth/login"),
        json!({"username": username, "password": password}),
        None,
    )
    .await;
    r.token_pair()
}

async fn advance(eph: &Instance, seconds: i64) -> Reply {
    post(
        &eph.url("/ephemeral/clock"),
        json!({ "advance_seconds": seconds }),
        None,
    )
    .await
}

#[actix_web::test]
async fn ephemeral_prints_one_line_serves_its_routes_and_ends_when_stdin_closes() {
    let eph = Instance::start(&[]);

    // The line: a loopback URL on a free port, its database, the JWKS, the pid.
    let url = field(&eph.info, "url");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_ne!(url, "http://127.0.0.1:8080");
    assert_eq!(eph.info["pid"], json!(eph.child.id()));
    assert!(database_exists(&mut maintenance(), &eph.database));
    let jwks = get(field(&eph.info, "jwks_uri"), None).await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.json["keys"][0]["alg"], "EdDSA", "{}", jwks.text);

    // A user made directly, a 900 s token, the clock moved past it.
    let pair = user_signed_in(&eph, "eph.admin", true).await;
    assert_eq!(pair.raw["user"]["admin"], true);
    let access = &pair.access_token;
    assert_eq!(get(&eph.url("/api/me"), Some(access)).await.status, 200);
    let moved = advance(&eph, 1000).await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    let now = chrono::DateTime::parse_from_rfc3339(field(&moved.json, "now")).unwrap();
    let ahead = now.timestamp() - chrono::Utc::now().timestamp();
    assert!((995..=1005).contains(&ahead), "{ahead} s ahead");
    get(&eph.url("/api/me"), Some(access))
        .await
        .assert_error(401, "token_expired");
    let renewed = post(
        &eph.url("/auth/refresh"),
        json!({"refresh_token": &pair.refresh_token}),
        None,
    )
    .await;
    assert_eq!(renewed.status, 200, "{}", renewed.text);
    let me = get(
        &eph.url("/api/me"),
        Some(field(&renewed.json, "access_token")),
    )
    .await;
    assert_eq!(me.status, 200, "{}", me.text);

    // Bad input gets the contract's errors.
    for (body, code) in [
        (json!({}), 400),
        (json!({"advance_seconds": -1}), 400),
        (json!({"advance_seconds": 1.5}), 400),
        (json!({"advance_seconds": "ten"}), 400),
    ] {
        let r = post(&eph.url("/ephemeral/clock"), body.clone(), None).await;
        let message = r.assert_error(code, "invalid_request");
        assert!(message.contains("advance_seconds"), "{body}: {message}");
    }
    let r = post(
        &eph.url("/ephemeral/users"),
        json!({"username": "eph.admin", "password": "another-password"}),
        None,
    )
    .await;
    r.assert_error(409, "conflict");
    let r = post(&eph.url("/ephemeral/users"), json!({"username": "x"}), None).await;
    r.assert_error(400, "invalid_request");

    // Its OpenAPI document lists the two routes, as the server serves them.
    let doc = get(&eph.url("/openapi.json"), None).await.json;
    for path in ["/ephemeral/clock", "/ephemeral/users"] {
        assert!(
            doc["paths"][path]["post"].is_object(),
            "{path} undocumented"
        );
        let r = read(
            reqwest::Client::new()
                .request(reqwest::Method::TRACE, eph.url(path))
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_error(405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some("POST"), "{path}");
    }

    // Closing its standard input ends it.
    let mut eph = eph;
    drop(eph.child.stdin.take());
    eph.assert_clean_exit();
}

#[actix_web::test]
async fn the_ordinary_server_has_no_ephemeral_routes() {
    let app = spawn_app().await;
    let r = app
        .post_json("/ephemeral/clock", &json!({"advance_seconds": 60}), None)
        .await;
    r.assert_error(404, "not_found");
    let r = app
        .post_json(
            "/ephemeral/users",
            &json!({"username": "sneaky", "password": "password-1", "admin": true}),
            None,
        )
        .await;
    r.assert_error(404, "not_found");
    let doc = app.get("/openapi.json", None).await.json;
    assert!(doc["paths"]["/ephemeral/clock"].is_null());
}

#[actix_web::test]
async fn the_ephemeral_clock_moves_the_rules_evaluated_in_sql_too() {
    let eph = Instance::start(&[]);
    let admin = user_signed_in(&eph, "eph.admin", true).await;
    let pair = user_signed_in(&eph, "eph.user", false).await;

    // The reuse grace window (10 s) ends by the clock alone.
    let first = &pair.refresh_token;
    let r = post(
        &eph.url("/auth/refresh"),
        json!({"refresh_token": first}),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(advance(&eph, 11).await.status, 200);
    let r = post(
        &eph.url("/auth/refresh"),
        json!({"refresh_token": first}),
        None,
    )
    .await;
    r.assert_error(401, "token_reused");

    // A ban for 60 s runs out by the clock alone.
    let user_id = field(&pair.raw["user"], "id");
    let r = post(
        &eph.url(&format!("/admin/users/{user_id}/ban")),
        json!({"duration_seconds": 60}),
        Some(&admin.access_token),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let login = json!({"username": "eph.user", "password": "a-password-for-tests"});
    post(&eph.url("/auth/login"), login.clone(), None)
        .await
        .assert_error(403, "user_banned");
    assert_eq!(advance(&eph, 61).await.status, 200);
    let r = post(&eph.url("/auth/login"), login, None).await;
    assert_eq!(r.status, 200, "{}", r.text);

    eph.signal(libc::SIGTERM);
    eph.assert_clean_exit();
}

#[actix_web::test]
async fn sigterm_drops_the_database_and_exits_0_on_a_configured_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let eph = Instance::start(&[("KEYWARD__SERVER__PORT", &port.to_string())]);
    assert_eq!(field(&eph.info, "url"), format!("http://127.0.0.1:{port}"));
    assert_eq!(get(&eph.url("/health"), None).await.status, 200);
    eph.signal(libc::SIGTERM);
    eph.assert_clean_exit();
}

#[actix_web::test]
async fn sigint_drops_the_database_and_exits_0() {
    let eph = Instance::start(&[]);
    assert_eq!(get(&eph.url("/health"), None).await.status, 200);
    eph.signal(libc::SIGINT);
    eph.assert_clean_exit();
}

#[test]
fn a_crashed_parent_takes_the_instance_and_its_database_along() {
    // The parent (a shell standing in for a test runner) holds the only
    // write end of the instance's stdin, passes its line on and waits (on
    // its own stdin, so with no child of its own); then it dies by SIGKILL,
    // with no chance to clean anything up.
    let mut parent = Command::new("bash")
        .arg("-c")
        .arg(concat!(
            r#"coproc KW { exec "$0" serve --ephemeral; }; "#,
            r#"read -r line <&"${KW[0]}"; echo "$line"; read -r _"#
        ))
        .arg(BINARY)
        .envs(command(&[]).get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (line, _) = first_line(parent.stdout.take().unwrap());
    let info: Value = serde_json::from_str(&line.expect("the instance's line")).unwrap();
    let database = database_of(&info);
    let pid = libc::pid_t::try_from(info["pid"].as_i64().unwrap()).unwrap();
    assert!(database_exists(&mut maintenance(), &database));

    parent.kill().unwrap();
    parent.wait().unwrap();

    // The instance is not our child: watch its pid until it is gone (or a
    // zombie, where no one reaps orphans).
    let start = Instant::now();
    let running = || {
        // SAFETY: kill(2) with signal 0 only checks that the process exists.
        let exists = unsafe { libc::kill(pid, 0) } == 0;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(") ")
            .next()
            .and_then(|rest| rest.chars().next());
        exists && state != Some('Z')
    };
    while running() {
        assert!(
            start.elapsed() < PATIENCE,
            "the instance outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !database_exists(&mut maintenance(), &database),
        "{database} is still there"
    );
}

#[test]
fn a_non_loopback_host_is_refused() {
    let out = command(&[("KEYWARD__SERVER__HOST", "0.0.0.0")])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "no line printed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("server.host") && stderr.contains("0.0.0.0"),
        "{stderr}"
    );
}

#[actix_web::test]
async fn instances_starting_at_the_same_moment_each_get_a_database_of_their_own() {
    const N: usize = 5;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(N));
    let starts: Vec<_> = (0..N)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                Instance::start(&[])
            })
        })
        .collect();
    let instances: Vec<Instance> = starts.into_iter().map(|t| t.join().unwrap()).collect();
    let mut names: Vec<_> = instances.iter().map(|i| i.database.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), N, "{names:?}");
    for (i, eph) in instances.iter().enumerate() {
        let pair = user_signed_in(eph, &format!("same.name{}", i % 2), false).await;
        assert_eq!(
            get(&eph.url("/api/me"), Some(&pair.access_token))
                .await
                .status,
            200
        );
    }
    for mut eph in instances {
        drop(eph.child.stdin.take());
        eph.assert_clean_exit();
    }
}
