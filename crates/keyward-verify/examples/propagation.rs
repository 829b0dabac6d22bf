//! Measures what keyward-verify costs and how fast it learns of revocations
//! (prints; asserts nothing):
//!
//! - propagation: from a logout sent to keyward to the first `401` from a
//!   separate resource-server process on this library (the
//!   `resource_server` example), over `REVOCATIONS` logouts (default 200):
//!   p50, p99, max;
//! - the resource server's protected route (`/me`, a token verified per
//!   request) against its unprotected one (`/health`), both sent the same
//!   requests cycling through `TOKENS` distinct tokens (default 200),
//!   requests/s with `wrk`
//!   (`-t1 -c16`, `SECONDS` per slice, default 3), in `ROUNDS` interleaved
//!   rounds (default 5): each round's ratio, their median and spread; and
//!   the same ratio by the resource server's CPU time per request (from
//!   `/proc`), which moves less with whatever else the machine runs.
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

/// One slice of load: requests/s, and the server's CPU per request.
struct Slice {
    rps: f64,
    cpu_us: f64,
}

/// CPU seconds (user + system, all threads) `pid` has used so far.
fn cpu_seconds(pid: u32, tick: f64) -> Result<f64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("no /proc stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / tick)
}

/// `wrk` on `url` with `script` and its token file, while measuring the
/// CPU that the server `pid` spends.
fn wrk(
    url: &str,
    seconds: u64,
    script: (&std::path::Path, &std::path::Path),
    pid: u32,
    tick: f64,
) -> Result<Slice, Error> {
    let mut command = Command::new("wrk");
    command.args(["-t1", "-c16", &format!("-d{seconds}s"), url]);
    command.arg("-s").arg(script.0).env("TOKENS", script.1);
    let before = cpu_seconds(pid, tick)?;
    let out = String::from_utf8(command.output()?.stdout)?;
    let cpu = cpu_seconds(pid, tick)? - before;
    if out.contains("Non-2xx") {
        return Err(format!("wrk saw errors on {url}:\n{out}").into());
    }
    let number = |prefix: &str, suffix: &str| {
        out.lines().find_map(|l| {
            let rest = l.trim().strip_prefix(prefix)?;
            rest.trim().split(suffix).next()?.trim().parse::<f64>().ok()
        })
    };
    let rps =
        number("Requests/sec:", " ").ok_or_else(|| format!("no Requests/sec from wrk:\n{out}"))?;
    let requests = out
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ")?.0.parse::<f64>().ok())
        .ok_or_else(|| format!("no request count from wrk:\n{out}"))?;
    Ok(Slice {
        rps,
        cpu_us: cpu * 1e6 / requests.max(1.0),
    })
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
    let pid = server.0.id();
    let tick = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0);
    let script = (script.as_path(), token_file.as_path());
    let (mut rps_ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
    for round in 1..=rounds.max(1) {
        // The same requests on both routes: /health ignores the token.
        let open = wrk(&health, seconds as u64, script, pid, tick)?;
        let protected = wrk(&me, seconds as u64, script, pid, tick)?;
        println!(
            "round {round}: /health {:.0} req/s {:.2} us CPU/req, /me {:.0} req/s {:.2} us CPU/req; \
             ratio {:.3} by req/s, {:.3} by CPU",
            open.rps,
            open.cpu_us,
            protected.rps,
            protected.cpu_us,
            protected.rps / open.rps,
            open.cpu_us / protected.cpu_us,
        );
        rps_ratios.push(protected.rps / open.rps);
        cpu_ratios.push(open.cpu_us / protected.cpu_us);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let spread = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        format!(
            "median {:.3} (min {:.3}, max {:.3})",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        )
    };
    println!(
        "resource server /me against /health (wrk -t1 -c16 -d{seconds}s, {} interleaved rounds, \
         {tokens} distinct tokens): by req/s {}; by the server's CPU per request {}",
        rps_ratios.len(),
        spread(&mut rps_ratios),
        spread(&mut cpu_ratios),
    );
    Ok(())
}
