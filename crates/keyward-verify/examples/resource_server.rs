//! A resource server on keyward-verify and actix-web: `GET /me` needs a
//! valid, unrevoked keyward access token; `GET /health` needs nothing.
//!
//! ```text
//! keyward services create example     # prints client_id and client_secret
//! KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_CLIENT_ID=... KEYWARD_CLIENT_SECRET=... \
//!     cargo run -p keyward-verify --features actix --example resource_server
//! curl -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:8090/me
//! ```
//!
//! `BIND` sets the address (default `127.0.0.1:8090`; port 0 picks a free
//! one). Once ready it prints one line, `listening on http://ADDRESS`.

use actix_web::{web, App, HttpResponse, HttpServer};
use keyward_verify::{VerifiedUser, Verifier};

/// What `GET /me` answers: a typed body, serialised straight to bytes (a
/// `serde_json::json!` value would build a map first).
#[derive(serde::Serialize)]
struct Me<'a> {
    id: uuid::Uuid,
    username: &'a str,
    name: Option<&'a str>,
    admin: bool,
    session_id: uuid::Uuid,
}

/// Protected: only reached with a verified token.
async fn me(user: VerifiedUser) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        id: user.sub,
        username: &user.username,
        name: user.name.as_deref(),
        admin: user.admin,
        session_id: user.sid,
    })
}

/// Unprotected.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

fn env(name: &str) -> std::io::Result<String> {
    std::env::var(name).map_err(|_| std::io::Error::other(format!("set {name}")))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::init_from_env(env_logger::Env::default().default_filter_or("warn"));
    let verifier = Verifier::builder(
        env("KEYWARD_URL")?,
        env("KEYWARD_CLIENT_ID")?,
        env("KEYWARD_CLIENT_SECRET")?,
    )
    .connect()
    .await
    .map_err(std::io::Error::other)?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8090".into());
    let verifier = web::Data::new(verifier);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(verifier.clone())
            .route("/me", web::get().to(me))
            .route("/health", web::get().to(health))
    })
    .bind(&bind)?;
    for address in server.addrs() {
        println!("listening on http://{address}");
    }
    server.run().await
}
