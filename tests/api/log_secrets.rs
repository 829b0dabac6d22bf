//! Secrets kept out of the log: passwords, tokens, cookies and the signing
//! secret never reach keyward's output, even at `RUST_LOG=trace`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::client::*;
use crate::support::db::*;

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
