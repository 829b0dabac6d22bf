//! The keyward binary run as an operator would, against a test database.

/// Runs the keyward binary against the test database (see
/// [`keyward_command`]).
pub fn keyward_cli(database_url: &str, args: &[&str]) -> std::process::Output {
    keyward_command(database_url, args, &[], None)
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
