//! A fake keyward for the library's own tests: discovery, a JWKS the test
//! replaces, and a revocation stream the test writes to, on a bare HTTP/1.1
//! server (one request per connection).

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub const CLIENT_ID: &str = "svc";
pub const CLIENT_SECRET: &str = "s3cret";

#[derive(Default)]
pub struct State {
    pub jwks: Vec<u8>,
    pub jwks_fetches: usize,
    /// When each JWKS request arrived.
    pub jwks_fetched_at: Vec<std::time::Instant>,
    pub algorithms: Vec<String>,
    /// Answer 404 on the stream (a keyward without the feed).
    pub no_stream: bool,
    /// The `Last-Event-ID` of each stream connection, in order.
    pub resumed_from: Vec<Option<String>>,
    /// The open streams: what the test sends is written to each as is.
    pub streams: Vec<mpsc::UnboundedSender<String>>,
}

pub struct FakeKeyward {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl FakeKeyward {
    pub async fn start(jwks: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            jwks,
            algorithms: vec!["EdDSA".into()],
            ..State::default()
        }));
        let (shared, base) = (state.clone(), url.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, shared.clone(), base.clone()));
            }
        });
        Self { url, state }
    }

    /// Writes raw event-stream text to every open stream; false if none.
    pub fn send(&self, text: &str) -> bool {
        let mut state = self.state.lock().unwrap();
        state.streams.retain(|s| s.send(text.to_string()).is_ok());
        !state.streams.is_empty()
    }

    /// Closes the open streams (verifiers reconnect).
    pub fn cut(&self) {
        self.state.lock().unwrap().streams.clear();
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().resumed_from.len()
    }
}

async fn serve(mut socket: TcpStream, state: Arc<Mutex<State>>, base: String) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request).to_string();
    let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
    let header = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let json = |body: String| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let reply = match path.as_str() {
        "/.well-known/openid-configuration" => {
            let algs = state.lock().unwrap().algorithms.clone();
            json(
                serde_json::json!({
                    "issuer": "keyward",
                    "jwks_uri": format!("{base}/.well-known/jwks.json"),
                    "introspection_endpoint": format!("{base}/oauth/introspect"),
                    "revocation_endpoint_feed": format!("{base}/revocations"),
                    "revocation_endpoint_stream": format!("{base}/revocations/stream"),
                    "id_token_signing_alg_values_supported": algs,
                })
                .to_string(),
            )
        }
        "/.well-known/jwks.json" => {
            let mut s = state.lock().unwrap();
            s.jwks_fetches += 1;
            s.jwks_fetched_at.push(std::time::Instant::now());
            json(String::from_utf8(s.jwks.clone()).unwrap())
        }
        "/revocations/stream" if state.lock().unwrap().no_stream => {
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
        }
        "/revocations/stream" => {
            use base64::Engine;
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
            );
            if header("authorization").as_deref() != Some(expected.as_str()) {
                let body = r#"{"error":"invalid_client","message":"no"}"#;
                format!("HTTP/1.1 401 Unauthorized\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
            } else {
                return stream(socket, state, header("last-event-id")).await;
            }
        }
        _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string(),
    };
    let _ = socket.write_all(reply.as_bytes()).await;
}

async fn stream(mut socket: TcpStream, state: Arc<Mutex<State>>, cursor: Option<String>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    {
        let mut s = state.lock().unwrap();
        // A consumer without a cursor gets the (empty) set first.
        if cursor.is_none() {
            tx.send("event: reset\ndata:\n\n".to_string()).unwrap();
        }
        s.resumed_from.push(cursor);
        s.streams.push(tx);
    }
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    while let Some(text) = rx.recv().await {
        if socket.write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
}
