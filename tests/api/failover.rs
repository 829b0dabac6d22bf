//! Failover (API.md section 5, high availability): a primary and a
//! synchronous standby built in a temporary folder on free ports, two
//! instances on a multi-host `database.url`; the primary dies, the standby is
//! promoted, and refresh chains and revocations carry on across it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use keyward::clock::Clock;
use keyward::config::{Secret, Settings};
use serde_json::json;

use crate::support::app::*;
use crate::support::cli::*;
use crate::support::client::*;
use crate::support::tokens::*;

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// Runs a PostgreSQL tool, as the `postgres` user when this is root (the
/// server refuses to run as root).
fn pg_command(tool: &str) -> Command {
    let program = format!("{BIN}/{tool}");
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &program]);
        c
    } else {
        Command::new(&program)
    }
}

fn pg(tool: &str, args: &[&str]) -> Output {
    let out = pg_command(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        output_text(&out)
    );
    out
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// A primary and its synchronous standby; stopped and removed when dropped.
struct Cluster {
    dir: PathBuf,
    primary: (PathBuf, u16),
    standby: (PathBuf, u16),
}

impl Cluster {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("keyward-failover-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        if unsafe { libc::geteuid() } == 0 {
            let out = Command::new("chown")
                .args(["postgres:postgres", dir.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", output_text(&out));
        }
        let cluster = Self {
            primary: (dir.join("primary"), free_port()),
            standby: (dir.join("standby"), free_port()),
            dir,
        };
        let (primary, port) = (&cluster.primary.0, cluster.primary.1);
        let socket = cluster.dir.to_str().unwrap();
        pg(
            "initdb",
            &[
                "-D",
                primary.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        append(
            &primary.join("postgresql.conf"),
            &format!(
                "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket}'\n\
                 wal_level = replica\nmax_wal_senders = 4\nfsync = off\n\
                 synchronous_standby_names = 'standby'\n"
            ),
        );
        cluster.pg_ctl(primary, &["start", "-w"]);
        let (standby, standby_port) = (&cluster.standby.0, cluster.standby.1);
        pg(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-D",
                standby.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
            ],
        );
        // Once promoted, the standby has no standby of its own: were it to
        // keep the primary's synchronous_standby_names, every commit would
        // wait for one for ever.
        append(
            &standby.join("postgresql.conf"),
            &format!("\nport = {standby_port}\nsynchronous_standby_names = ''\n"),
        );
        append(
            &standby.join("postgresql.auto.conf"),
            &format!(
                "\nprimary_conninfo = 'host=127.0.0.1 port={port} user=postgres application_name=standby'\n"
            ),
        );
        cluster.pg_ctl(standby, &["start", "-w"]);
        cluster
    }

    fn pg_ctl(&self, data: &Path, args: &[&str]) {
        let log = data.with_extension("log");
        let mut all = vec!["-D", data.to_str().unwrap()];
        if args.first() == Some(&"start") {
            all.extend(["-l", log.to_str().unwrap()]);
        }
        all.extend_from_slice(args);
        pg("pg_ctl", &all);
    }

    fn url(&self, host: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{host}")
    }

    /// The multi-host URL the instances use.
    fn keyward_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/keyward?target_session_attrs=read-write",
            self.primary.1, self.standby.1
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (data, _) in [&self.standby, &self.primary] {
            let _ = pg_command("pg_ctl")
                .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How the server at `url` answers `sql` (one text value), or why not.
fn ask(url: &str, sql: &str) -> Result<String, String> {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Answer {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let mut conn = PgConnection::establish(url).map_err(|e| e.to_string())?;
    diesel::sql_query(format!("SELECT ({sql})::text AS value"))
        .get_result::<Answer>(&mut conn)
        .map(|a| a.value)
        .map_err(|e| e.to_string())
}

fn settings_for(url: &str) -> Settings {
    let mut s = Settings::defaults().unwrap();
    s.database.url = Secret::new(url);
    s.database.pool_size = Some(4);
    s.database.connect_timeout_ms = 1000;
    s.server.port = 0;
    s.auth.bcrypt_cost = 4;
    s.cookie.secure = false;
    s.rate_limit.enabled = false;
    s
}

#[actix_web::test]
async fn refresh_chains_and_revocations_survive_a_failover_to_the_standby() {
    // Arrange: the cluster, replication in sync, two instances.
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let primary = format!("{}/postgres", cluster.url(cluster.primary.1));
    let synced = eventually(Duration::from_secs(20), || async {
        ask(
            &primary,
            "SELECT string_agg(sync_state, ',') FROM pg_stat_replication",
        )
        .is_ok_and(|s| s == "sync")
    })
    .await;
    assert!(synced.is_some(), "the standby never became synchronous");
    let settings = settings_for(&cluster.keyward_url());
    let a = spawn_on(settings.clone(), Clock::system()).await;
    let b = spawn_on(settings, Clock::system()).await;
    let user = a.register().await;
    let chain = a.login(&user).await.token_pair();
    // (A refresh answers 200 with a pair: `token_pair` asserts it.)
    let chain = b.refresh(&chain.refresh_token).await.token_pair();
    let ended = a.login(&user).await.token_pair();
    let r = a
        .post_json(
            "/auth/logout",
            &json!({"refresh_token": &ended.refresh_token}),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let live = a.login(&user).await.token_pair();

    // Act: the primary dies; the standby is promoted.
    let promoted = {
        let (primary, standby) = (cluster.primary.0.clone(), cluster.standby.0.clone());
        let c = &cluster;
        c.pg_ctl(&primary, &["-m", "immediate", "stop"]);
        let started = std::time::Instant::now();
        c.pg_ctl(&standby, &["promote", "-w"]);
        started.elapsed()
    };

    // Assert (within a bound: a commit waiting for a standby that is gone
    // would otherwise hang the test).
    let after = after_failover(&a, &b, &chain, &ended, &live);
    let (resumed, next, heard) = tokio::time::timeout(Duration::from_secs(90), after)
        .await
        .expect("the instances hung after the failover");
    let standby = format!("{}/keyward", cluster.url(cluster.standby.1));
    assert_eq!(ask(&standby, "pg_is_in_recovery()").unwrap(), "false");
    eprintln!(
        "failover: promotion took {promoted:?}; both instances ready {resumed:?} after it, \
         the chain refreshed {next:?} after that, a new revocation reached B in {heard:?}"
    );
}

/// Writes resume through the same URL on both instances, the refresh chain
/// goes on, old revocations hold and new ones spread; how long each took.
async fn after_failover(
    a: &TestApp,
    b: &TestApp,
    chain: &TokenPair,
    ended: &TokenPair,
    live: &TokenPair,
) -> (Duration, Duration, Duration) {
    let resumed = eventually(Duration::from_secs(30), || async {
        a.get("/ready", None).await.status == 200 && b.get("/ready", None).await.status == 200
    })
    .await;
    assert!(resumed.is_some(), "the instances never became ready again");
    // The acknowledged rotation was not lost: its token continues the chain.
    let next = eventually(Duration::from_secs(10), || async {
        a.refresh(&chain.refresh_token).await.status == 200
    })
    .await;
    assert!(
        next.is_some(),
        "the refresh chain broke across the failover"
    );
    // The revocation from before is still in force, on both instances.
    for app in [a, b] {
        app.me(ended).await.assert_error(401, "session_revoked");
        app.refresh(&ended.refresh_token)
            .await
            .assert_error(401, "session_revoked");
    }
    // A revocation after the failover reaches the other instance: its
    // listener moved to the new primary.
    assert_eq!(b.me(live).await.status, 200);
    let r = a
        .post_json(
            "/auth/logout",
            &json!({"refresh_token": &live.refresh_token}),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let heard = eventually(Duration::from_secs(5), || async {
        b.me(live).await.status == 401
    })
    .await;
    assert!(heard.is_some(), "instance B never heard of the revocation");
    (resumed.unwrap(), next.unwrap(), heard.unwrap())
}
