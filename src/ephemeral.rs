//! `keyward serve --ephemeral` (API.md section 8): a throw-away instance for
//! other projects' integration tests. A fresh database of its own (cloned
//! from a migrated template, see `db::ephemeral`), a free loopback port,
//! EdDSA keys of its own, bcrypt cost 4 and no rate limits; one JSON line on
//! stdout when ready; its database dropped and exit 0 on SIGTERM, SIGINT,
//! or its standard input (a pipe) closing, so that a test runner that dies
//! takes it along.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::pin::pin;

use actix_web::dev::ServerHandle;
use actix_web::rt::signal::unix::{signal, Signal, SignalKind};
use futures_util::future::{select, Either};

use crate::clock::Clock;
use crate::config::{Algorithm, Secret, Settings};
use crate::db::ephemeral as databases;
use crate::startup::{Application, Mode};

/// The instance's database, dropped when this goes out of scope, whatever
/// ended the instance (a signal, stdin, a failed start).
struct OwnDatabase {
    server_url: String,
    name: String,
}

impl Drop for OwnDatabase {
    fn drop(&mut self) {
        match databases::drop_database(&self.server_url, &self.name) {
            Ok(()) => log::info!("dropped the database {}", self.name),
            Err(e) => log::error!("cannot drop the database {}: {e}", self.name),
        }
    }
}

/// The one line printed on stdout when ready (in the contract's order).
#[derive(serde::Serialize)]
struct ReadyLine {
    url: String,
    database_url: String,
    jwks_uri: String,
    pid: u32,
}

/// Runs an ephemeral instance until it is told to stop. `port_configured`:
/// whether `server.port` was set (otherwise a free port is picked).
pub(crate) fn serve(mut settings: Settings, port_configured: bool) -> Result<(), String> {
    let host = loopback_host(&settings.server.host)?;
    throw_away_settings(&mut settings, port_configured);
    actix_web::rt::System::new().block_on(async move {
        // Before the database exists: from here on SIGTERM and SIGINT no
        // longer kill the process outright, so the database is always dropped.
        let stop_signals = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        let (Ok(term), Ok(int)) = stop_signals else {
            return Err("cannot listen for SIGTERM and SIGINT".to_string());
        };
        let server_url = settings.database.url.expose().to_string();
        let (name, database_url) = databases::create(&server_url)?;
        let _database = OwnDatabase { server_url, name };
        settings.database.url = Secret::new(database_url.clone());
        let app = Application::build_as(settings, Clock::system(), Mode::Ephemeral)?;
        let url = format!("http://{host}:{}", app.port());
        let line = serde_json::to_string(&ReadyLine {
            jwks_uri: format!("{url}/.well-known/jwks.json"),
            url,
            database_url,
            pid: std::process::id(),
        })
        .map_err(|e| e.to_string())?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
        drop(out);
        actix_web::rt::spawn(stop_on_signal(term, int, app.handle()));
        if stdin_is_pipe() {
            stop_when_stdin_closes(app.handle())?;
        }
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

/// The host as it goes into a URL, if it is a loopback one; an ephemeral
/// instance is for tests on this machine and has no rate limits, so it never
/// listens where others can reach it.
fn loopback_host(host: &str) -> Result<String, String> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok("localhost".to_string());
    }
    match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_loopback() => Ok(ip.to_string()),
        Ok(IpAddr::V6(ip)) if ip.is_loopback() => Ok(format!("[{ip}]")),
        _ => Err(format!(
            "server.host must be a loopback address (127.0.0.1, ::1 or localhost) \
             with --ephemeral, not {host}"
        )),
    }
}

/// What section 8 fixes, whatever the configuration says.
fn throw_away_settings(settings: &mut Settings, port_configured: bool) {
    if !port_configured {
        settings.server.port = 0;
    }
    settings.auth.algorithm = Algorithm::EdDSA;
    settings.auth.jwt_secret = None;
    settings.auth.bcrypt_cost = 4;
    settings.rate_limit.enabled = false;
    // Plain http on a loopback address: a `Secure` cookie would not be sent.
    settings.cookie.secure = false;
}

async fn stop_on_signal(mut term: Signal, mut int: Signal, server: ServerHandle) {
    let (term, int) = (pin!(term.recv()), pin!(int.recv()));
    let which = select(term, int).await;
    let name = match which {
        Either::Left(_) => "SIGTERM",
        Either::Right(_) => "SIGINT",
    };
    log::info!("{name}: stopping and dropping the database");
    server.stop(true).await;
}

/// Whether standard input is a pipe (or a socket: Node's `child_process`
/// passes those); a terminal or `/dev/null` is no signal of anything.
fn stdin_is_pipe() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_socket())
}

/// Reads (and ignores) standard input until it ends, then stops the server.
fn stop_when_stdin_closes(server: ServerHandle) -> Result<(), String> {
    std::thread::Builder::new()
        .name("ephemeral-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 512];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            log::info!("standard input closed: stopping and dropping the database");
            drop(server.stop(true));
        })
        .map(drop)
        .map_err(|e| format!("cannot watch standard input: {e}"))
}

#[cfg(test)]
mod tests {
    use super::loopback_host;

    #[test]
    fn only_loopback_hosts_are_accepted() {
        assert_eq!(loopback_host("127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(loopback_host("127.0.0.2").unwrap(), "127.0.0.2");
        assert_eq!(loopback_host("::1").unwrap(), "[::1]");
        assert_eq!(loopback_host("LOCALHOST").unwrap(), "localhost");
        for host in ["0.0.0.0", "::", "192.168.1.10", "example.com", ""] {
            let err = loopback_host(host).unwrap_err();
            assert!(err.contains("server.host"), "{host}: {err}");
        }
    }
}
