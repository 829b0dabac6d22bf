//! Every command exits cleanly (API.md section 6): run as a child process
//! many times, each run of each command must end with its own status, never
//! with a signal. (A command that left a connection pool's threads inside
//! libpq when it returned crashed now and then: SIGSEGV, or SIGABRT from
//! Kerberos' `k5_mutex_lock`.)

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::support::cli::*;
use crate::support::client::*;
use crate::support::db::*;

/// How an exit reads in the tally: `exit 0`, `exit 1`, `signal 11`.
fn outcome(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => "unknown".into(),
    }
}

/// Runs `args` `times` times; returns the tally of outcomes and the first
/// failure's output.
fn run_many(db: &TestDb, times: usize, args: impl Fn(usize) -> Vec<String>) -> Tally {
    let mut tally = Tally::default();
    for i in 0..times {
        let args = args(i);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = keyward_command(&db.url, &args, &[], Some("correct-horse-battery\n"));
        *tally.outcomes.entry(outcome(out.status)).or_default() += 1;
        if !out.status.success() && tally.first_failure.is_none() {
            tally.first_failure = Some(format!("{args:?}: {}", output_text(&out)));
        }
    }
    tally
}

#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<String, usize>,
    first_failure: Option<String>,
}

#[test]
fn every_command_exits_with_status_zero_however_often_it_runs() {
    let db = TestDb::new();
    let mut report = Vec::new();
    let mut check = |what: &str, tally: Tally| {
        report.push(format!("{what}: {:?}", tally.outcomes));
        assert_eq!(tally.first_failure, None, "{what}: {:?}", tally.outcomes);
    };
    check(
        "users create",
        run_many(&db, 50, |i| {
            vec![
                "users".into(),
                "create".into(),
                format!("user{i}"),
                "--admin".into(),
            ]
        }),
    );
    let cases: [(&str, Vec<&str>); 8] = [
        ("migrate", vec!["migrate"]),
        (
            "users ban",
            vec!["users", "ban", "user0", "--reason", "test"],
        ),
        ("users unban", vec!["users", "unban", "user0"]),
        (
            "sessions revoke",
            vec!["sessions", "revoke", "--user", "user1"],
        ),
        ("keys rotate --now", vec!["keys", "rotate", "--now"]),
        ("keys list", vec!["keys", "list"]),
        ("keys list --json", vec!["keys", "list", "--json"]),
        ("--version", vec!["--version"]),
    ];
    for (what, args) in cases {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        check(what, run_many(&db, 15, |_| args.clone()));
    }
    // A failing command exits 1 (not by a signal) every time too.
    let failing = run_many(&db, 15, |_| {
        vec!["users".into(), "ban".into(), "nobody".into()]
    });
    report.push(format!("users ban (unknown user): {:?}", failing.outcomes));
    assert_eq!(
        failing.outcomes.into_iter().collect::<Vec<_>>(),
        vec![("exit 1".to_string(), 15)]
    );
    eprintln!("command-line exit statuses: {}", report.join("; "));
}

/// Starts `keyward serve` on a free port; returns the child and its address.
fn start_server(db: &TestDb) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("KEYWARD__SERVER__PORT", "0")
        .env("KEYWARD__AUTH__BCRYPT_COST", "4")
        .env("RUST_LOG", "info")
        .env_remove("KEYWARD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line.split("keyward listening on http://").nth(1) {
                let _ = tx.send(address.trim().to_string());
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server reports its address");
    (child, address)
}

#[actix_web::test]
async fn serve_exits_with_status_zero_on_sigterm_every_time() {
    let db = TestDb::new();
    let client = reqwest::Client::new();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..10 {
        let (mut child, address) = start_server(&db);
        // Traffic that takes pool connections, then the signal.
        let ready = eventually(Duration::from_secs(10), || async {
            let r = client.get(format!("http://{address}/ready")).send().await;
            r.is_ok_and(|r| r.status() == 200)
        })
        .await;
        assert!(ready.is_some(), "the server never became ready");
        let pid = i32::try_from(child.id()).unwrap();
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        *tally.entry(outcome(status)).or_default() += 1;
    }
    eprintln!("serve exit statuses after SIGTERM: {tally:?}");
    assert_eq!(
        tally.into_iter().collect::<Vec<_>>(),
        vec![("exit 0".to_string(), 10)]
    );
}
