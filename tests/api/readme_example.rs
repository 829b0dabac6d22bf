//! The Rust example of the README's "Testing your app against keyward",
//! kept here so that it runs: an app's test that starts a throw-away
//! keyward, signs a user in, moves keyward's clock past the access token's
//! expiry, checks that the app refuses the token, and stops keyward.

use std::io::BufRead;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// The app under test: the orders of a signed-in user, else `401`. It asks
/// keyward's `/api/me` about the token (an app that verifies tokens itself
/// checks `exp` against its own clock: move that one too).
async fn list_orders(keyward: &str, token: &str) -> u16 {
    let me = reqwest::Client::new()
        .get(format!("{keyward}/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if me.status() == 200 {
        200
    } else {
        401
    }
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    // Start it; its stdin is a pipe, so if this test process dies, keyward
    // drops its database and exits on its own.
    let binary =
        std::env::var("KEYWARD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_keyward").into());
    let mut keyward = Command::new(binary)
        .args(["serve", "--ephemeral"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(keyward.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    let url = info["url"].as_str().unwrap();
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| http.post(format!("{url}{path}")).json(&body).send();

    // A user, signed in.
    let user = json!({"username": "ada", "password": "correct-horse-battery"});
    assert_eq!(
        post("/ephemeral/users", user.clone())
            .await
            .unwrap()
            .status(),
        201
    );
    let pair: Value = post("/auth/login", user)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = pair["access_token"].as_str().unwrap();
    assert_eq!(list_orders(url, token).await, 200);

    // Past the access token's lifetime, without waiting.
    let past = pair["expires_in"].as_i64().unwrap() + 60;
    post("/ephemeral/clock", json!({ "advance_seconds": past }))
        .await
        .unwrap();
    assert_eq!(list_orders(url, token).await, 401);

    // Stop it: close its stdin (or send SIGTERM); it drops its database.
    drop(keyward.stdin.take());
    assert!(keyward.wait().unwrap().success());
}
