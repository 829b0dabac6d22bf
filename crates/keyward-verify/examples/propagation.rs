//! Measures what keyward-verify costs and how fast it learns of revocations
//! (prints; asserts nothing):
//!
//! - propagation: from a logout sent to keyward to the first `401` from a
//!   separate resource-server process on this library (the
//!   `resource_server` example), over `REVOCATIONS` logouts (default 200):
//!   p50, p99, max;
//! - the resource server's protected route (`/me`, a token verified per
//!   request, cycling through `TOKENS` distinct tokens, default 200)
//!   against its unprotected one (`/health`), requests/s with `wrk`
//!   (`-t1 -c16`, `SECONDS` per slice, default 3), in `ROUNDS` interleaved
//!   rounds (default 5): each round's ratio, their median and spread.
//!
//! It starts keyward (`KEYWARD_BIN`, default the `keyward` binary beside
//! this one's folder) on a fresh database of the PostgreSQL at
//! `PG_URL` (default `postgres://postgres@127.0.0.1:5432`), which it drops
//! at the end.
//!
//! It needs `wrk` and `dropdb` on the `PATH`.
//!
//! ```text
//! cargo build --release --workspace --examples --bin keyward
//! target/release/examples/propagation
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn keyward(bin: &std::path::Path, database_url: &str) -> Command {
    let mut command = Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("KEYWARD__") || key == "KEYWARD_CONFIG" {
            command.env_remove(key);
        }
    }
    command
        .env("DATABASE_URL", database_url)
        .env("KEYWARD__AUTH__ALGORITHM", "EdDSA")
        .env("KEYWARD__AUTH__BCRYPT_COST", "4")
        .env("KEYWARD__RATE_LIMIT__ENABLED", "false")
        .env("RUST_LOG", "warn");
    command
}

/// The `client_id` and `client_secret` that `keyward services create`
/// printed, as `name: value`, `name=value` or JSON.
fn credentials(output: &str) -> Option<(String, String)> {
    let find = |name: &str| {
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(output.trim()) {
            return json[name].as_str().map(str::to_string);
        }
        output.lines().find_map(|line| {
            let rest = line.trim().strip_prefix(name)?;
            let value = rest.trim_start_matches([':', '=', ' ', '\t', '"']);
            let value = value.trim_end_matches(['"', ',']).trim();
            (!value.is_empty()).then(|| value.to_string())
        })
    };
    Some((find("client_id")?, find("client_secret")?))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}

/// A wrk script cycling through the tokens in the file `$TOKENS` (one a
/// line) as Bearer tokens, from a random place (wrk itself reports answers
/// other than 2xx, which fail the run).
const CYCLE_TOKENS_LUA: &str = r#"
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local i = math.random(#tokens)
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
"#;

/// Requests/s of `wrk` on `url`, with `script` (and its environment) if given.
fn wrk(
    url: &str,
    seconds: u64,
    script: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<f64, Error> {
    let mut command = Command::new("wrk");
    command.args(["-t1", "-c16", &format!("-d{seconds}s"), url]);
    if let Some((script, tokens)) = script {
        command.arg("-s").arg(script).env("TOKENS", tokens);
    }
    let out = String::from_utf8(command.output()?.stdout)?;
    if out.contains("Non-2xx") {
        return Err(format!("wrk saw errors on {url}:\n{out}").into());
    }
    out.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec from wrk:\n{out}").into())
}

struct Http {
    client: reqwest::Client,
    keyward: String,
}

impl Http {
    async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
        bearer: Option<&str>,
    ) -> Result<(u16, serde_json::Value), Error> {
        let mut req = self
            .client
            .post(format!("{}{path}", self.keyward))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let response = req.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or_default()))
    }

    async fn status(&self, url: &str, bearer: &str) -> Result<u16, Error> {
        Ok(self
            .client
            .get(url)
            .bearer_auth(bearer)
            .send()
            .await?
            .status()
            .as_u16())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let here = std::env::current_exe()?;
    let examples = here.parent().ok_or("no folder")?;
    let bin = std::env::var("KEYWARD_BIN").map_or_else(
        |_| {
            examples
                .parent()
                .map(|d| d.join("keyward"))
                .ok_or("no folder")
        },
        |p| Ok(p.into()),
    )?;
    let revocations: usize = std::env::var("REVOCATIONS").map_or(Ok(200), |v| v.parse())?;
    let pg =
        std::env::var("PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let db = format!("keyward_verify_bench_{}", std::process::id());
    let database_url = format!("{pg}/{db}");

    let status = keyward(&bin, &database_url).arg("migrate").status()?;
    if !status.success() {
        return Err(format!("{} migrate failed", bin.display()).into());
    }
    let result = run(&bin, &database_url, examples, revocations).await;
    let dropped = Command::new("dropdb")
        .args([
            "--force",
            "--if-exists",
            &format!("--maintenance-db={pg}/postgres"),
            &db,
        ])
        .status();
    if !dropped.is_ok_and(|s| s.success()) {
        eprintln!("could not drop database {db}");
    }
    result
}

async fn run(
    bin: &std::path::Path,
    database_url: &str,
    examples: &std::path::Path,
    n: usize,
) -> Result<(), Error> {
    let created = keyward(bin, database_url)
        .args(["services", "create", "propagation-bench"])
        .output()?;
    let printed = String::from_utf8_lossy(&created.stdout);
    let (client_id, client_secret) =
        credentials(&printed).ok_or_else(|| format!("no credentials in: {printed}"))?;

    let port = free_port()?;
    let keyward_url = format!("http://127.0.0.1:{port}");
    let _keyward = Process(
        keyward(bin, database_url)
            .arg("serve")
            .env("KEYWARD__SERVER__PORT", port.to_string())
            .stdout(Stdio::null())
            .spawn()?,
    );
    let http = Http {
        client: reqwest::Client::new(),
        keyward: keyward_url.clone(),
    };
    let started = Instant::now();
    while http
        .client
        .get(format!("{keyward_url}/health"))
        .send()
        .await
        .is_err()
    {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("keyward did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut server = Process(
        Command::new(examples.join("resource_server"))
            .env("KEYWARD_URL", &keyward_url)
            .env("KEYWARD_CLIENT_ID", &client_id)
            .env("KEYWARD_CLIENT_SECRET", &client_secret)
            .env("BIND", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let stdout = server.0.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let rs = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("the resource server said: {line}"))?
        .to_string();

    let user = serde_json::json!({"username": "bench_user", "password": "a long enough password"});
    let (status, body) = http.post("/auth/register", user.clone(), None).await?;
    if status != 201 {
        return Err(format!("register: {status} {body}").into());
    }
    let me = format!("{rs}/me");
    let mut delays = Vec::with_capacity(n);
    for _ in 0..n {
        let (status, pair) = http.post("/auth/login", user.clone(), None).await?;
        let token = pair["access_token"]
            .as_str()
            .ok_or_else(|| format!("login: {status} {pair}"))?
            .to_string();
        if http.status(&me, &token).await? != 200 {
            return Err("the resource server refused a fresh token".into());
        }
        let sent = Instant::now();
        let logout = format!("{keyward_url}/auth/logout");
        let status = http
            .client
            .post(logout)
            .bearer_auth(&token)
            .send()
            .await?
            .status();
        if status != 204 {
            return Err(format!("logout answered {status}").into());
        }
        loop {
            if http.status(&me, &token).await? == 401 {
                delays.push(sent.elapsed());
                break;
            }
            if sent.elapsed() > Duration::from_secs(5) {
                return Err("a revocation took more than 5 s to reach the resource server".into());
            }
        }
    }
    delays.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "propagation over {n} logouts: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&delays, 0.50)),
        ms(percentile(&delays, 0.99)),
        ms(*delays.last().ok_or("no revocation measured")?),
    );

    let var = |name: &str, default: usize| -> Result<usize, Error> {
        Ok(std::env::var(name).map_or(Ok(default), |v| v.parse())?)
    };
    let (tokens, rounds, seconds) = (var("TOKENS", 200)?, var("ROUNDS", 5)?, var("SECONDS", 3)?);
    let dir = std::env::temp_dir().join(format!("keyward-propagation-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (script, token_file) = (dir.join("cycle.lua"), dir.join("tokens"));
    std::fs::write(&script, CYCLE_TOKENS_LUA)?;
    let mut lines = String::new();
    for _ in 0..tokens.max(1) {
        let (_, pair) = http.post("/auth/login", user.clone(), None).await?;
        lines.push_str(pair["access_token"].as_str().ok_or("no token")?);
        lines.push('\n');
    }
    std::fs::write(&token_file, lines)?;
    let health = format!("{rs}/health");
    let mut ratios = Vec::new();
    let (mut open_sum, mut protected_sum) = (0.0, 0.0);
    for round in 1..=rounds.max(1) {
        let open = wrk(&health, seconds as u64, None)?;
        let protected = wrk(&me, seconds as u64, Some((&script, &token_file)))?;
        println!(
            "round {round}: /health {open:.0} req/s, /me {protected:.0} req/s, ratio {:.3}",
            protected / open
        );
        ratios.push(protected / open);
        open_sum += open;
        protected_sum += protected;
    }
    let _ = std::fs::remove_dir_all(&dir);
    ratios.sort_by(f64::total_cmp);
    println!(
        "resource server (wrk -t1 -c16 -d{seconds}s, {} interleaved rounds, {tokens} distinct tokens on /me): \
         ratio median {:.3}, min {:.3}, max {:.3}; overall {:.3} ({:.0} vs {:.0} req/s)",
        ratios.len(),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
        protected_sum / open_sum,
        protected_sum / ratios.len() as f64,
        open_sum / ratios.len() as f64,
    );
    Ok(())
}
