//! Target a's baseline as a process of its own, as keyward's server is:
//! this bench binary run again with [`SERVE_ENV`] set, serving the bare
//! handler of [`inproc::bare`] on a port it prints, until it is killed.
//!
//! Inside the bench process the baseline shares an address space with the
//! load generator, and switching between threads of one process is cheaper
//! than between processes: that favoured it over keyward by a margin that
//! has nothing to do with the handler (the in-process figure is still
//! measured and printed beside it).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use crate::inproc;

/// Set in the child: how many workers.
const SERVE_ENV: &str = "KEYWARD_BENCH_BARE_SERVER";
/// Set in the child: the body to answer.
const BODY_ENV: &str = "KEYWARD_BENCH_BARE_BODY";

/// The running child.
pub(crate) struct BareProcess {
    pub(crate) addr: SocketAddr,
    child: Child,
}

impl BareProcess {
    pub(crate) fn start(workers: usize, body: &str) -> Option<Self> {
        let mut child = Command::new(std::env::current_exe().ok()?)
            .env(SERVE_ENV, workers.to_string())
            .env(BODY_ENV, body)
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take()?)
            .read_line(&mut line)
            .ok()?;
        let addr = line.trim().parse().ok()?;
        Some(Self { addr, child })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BareProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In the child (the variables set): serves until killed, never returns.
/// Otherwise returns at once.
pub(crate) fn serve_if_asked() {
    let Some(workers) = std::env::var(SERVE_ENV).ok().and_then(|w| w.parse().ok()) else {
        return;
    };
    let body = std::env::var(BODY_ENV).unwrap_or_default();
    let served = actix_web::rt::System::new().block_on(async move {
        let (addr, server) = inproc::bare_server(workers, body)?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{addr}")?;
        stdout.flush()?;
        server.await
    });
    if let Err(e) = served {
        eprintln!("bare server: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}
