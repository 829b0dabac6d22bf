//! actix-web servers inside the bench process, each on a thread of its own
//! with as many workers as keyward's server (one per core): the baselines
//! that are not keyward. A bare handler answering a constant body, and a
//! resource server on keyward-verify with a protected and an unprotected
//! route.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpResponse, HttpServer};
use keyward_verify::{VerifiedUser, Verifier};
use tokio::runtime::Runtime;

/// A running in-process server; [`InProcess::stop`] ends it.
pub(crate) struct InProcess {
    pub(crate) addr: SocketAddr,
    handle: ServerHandle,
    thread: JoinHandle<()>,
}

impl InProcess {
    pub(crate) fn stop(self, runtime: &Runtime) {
        runtime.block_on(self.handle.stop(false));
        let _ = self.thread.join();
    }
}

/// `GET /api/me` (any headers) answers `body` as JSON, as it is: the least an
/// actix-web server does for a request shaped like keyward's.
pub(crate) fn bare(workers: usize, body: String) -> Option<InProcess> {
    spawn(
        "bare server",
        move || async move { bare_server(workers, body) },
    )
}

/// The bare handler's server, bound and not yet running (also run as a
/// process of its own: `bare_process`).
pub(crate) fn bare_server(workers: usize, body: String) -> std::io::Result<(SocketAddr, Server)> {
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/api/me",
            web::get().to(move || {
                let body = body.clone();
                async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(body)
                }
            }),
        )
    })
    .workers(workers)
    .bind(("127.0.0.1", 0))?;
    Ok((server.addrs()[0], server.run()))
}

/// keyward-verify's example resource server against the keyward at
/// `issuer`: `GET /me` needs a verified token, `GET /health` nothing.
pub(crate) fn resource_server(
    workers: usize,
    issuer: String,
    client_id: String,
    client_secret: String,
) -> Option<InProcess> {
    spawn("resource server", move || async move {
        let verifier = Verifier::builder(issuer, client_id, client_secret)
            .connect()
            .await
            .map_err(std::io::Error::other)?;
        let verifier = web::Data::new(verifier);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(verifier.clone())
                .route("/me", web::get().to(protected))
                .route("/health", web::get().to(unprotected))
        })
        .workers(workers)
        .bind(("127.0.0.1", 0))?;
        Ok((server.addrs()[0], server.run()))
    })
}

/// `GET /me`'s body, as in `crates/keyward-verify/examples/resource_server.rs`.
#[derive(serde::Serialize)]
struct Me<'a> {
    id: uuid::Uuid,
    username: &'a str,
    name: Option<&'a str>,
    admin: bool,
    session_id: uuid::Uuid,
}

/// As in `crates/keyward-verify/examples/resource_server.rs`.
async fn protected(user: VerifiedUser) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        id: user.sub,
        username: &user.username,
        name: user.name.as_deref(),
        admin: user.admin,
        session_id: user.sid,
    })
}

async fn unprotected() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Runs `start` on an actix system in a thread of its own; waits until it
/// has bound (`None` if it could not start).
fn spawn<Fut>(what: &'static str, start: impl FnOnce() -> Fut + Send + 'static) -> Option<InProcess>
where
    Fut: std::future::Future<Output = std::io::Result<(SocketAddr, Server)>> + 'static,
{
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let served = actix_web::rt::System::new().block_on(async move {
            let (addr, server) = start().await?;
            let _ = tx.send((addr, server.handle()));
            server.await
        });
        if let Err(e) = served {
            eprintln!("{what}: {e}");
        }
    });
    // On failure the thread has said why and dropped the sender.
    let (addr, handle) = rx.recv_timeout(std::time::Duration::from_secs(60)).ok()?;
    Some(InProcess {
        addr,
        handle,
        thread,
    })
}
