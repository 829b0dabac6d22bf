//! Database outages on demand: a TCP proxy between keyward and PostgreSQL
//! that a test cuts and restores, and the settings that route an app
//! through it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use keyward::config::{Secret, Settings};

use super::db::pg_base;

/// A TCP proxy between keyward and PostgreSQL that the test can cut: every
/// open connection is shut down and new ones are closed at once, until
/// restored. It runs on threads of its own: `Application::build` connects
/// through it while blocking the test's single-threaded runtime.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<(std::net::TcpStream, std::net::TcpStream)>>>,
}

impl Proxy {
    pub fn start(target: String) -> Self {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            up: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            links: Arc::default(),
        };
        let (up, stop, links) = (proxy.up.clone(), proxy.stop.clone(), proxy.links.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(inbound) = inbound else { continue };
                if !up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(&target) else {
                    continue;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                let (Ok(i2), Ok(o2), Ok(i3), Ok(o3)) = (
                    inbound.try_clone(),
                    outbound.try_clone(),
                    inbound.try_clone(),
                    outbound.try_clone(),
                ) else {
                    continue;
                };
                links.lock().unwrap().push((i3, o3));
                pipe(inbound, outbound);
                pipe(o2, i2);
            }
        });
        proxy
    }

    /// Shuts every connection down and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for (inbound, outbound) in self.links.lock().unwrap().drain(..) {
            let _ = inbound.shutdown(std::net::Shutdown::Both);
            let _ = outbound.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the stop.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// `host:port` of the PostgreSQL server the tests use.
pub fn pg_address() -> String {
    let base = pg_base();
    let rest = base.split_once("://").map_or(base.as_str(), |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/')
        .next()
        .unwrap_or("127.0.0.1:5432")
        .to_string()
}

/// Points `settings` at its database through `proxy` (with a short connect
/// timeout, so that an outage is noticed quickly).
pub fn through_proxy(settings: &mut Settings, proxy: &Proxy) {
    let target = pg_address();
    let proxied = format!("127.0.0.1:{}", proxy.port);
    let url = settings
        .database
        .url
        .expose()
        .replacen(&target, &proxied, 1);
    assert!(
        url.contains(&proxied),
        "the test database goes through the proxy"
    );
    settings.database.url = Secret::new(url);
    settings.database.connect_timeout_ms = 500;
}
