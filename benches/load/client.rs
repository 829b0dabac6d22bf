//! A minimal HTTP/1.1 keep-alive client (one tokio thread drives all the
//! clients: on a 2-core machine the load generator must cost as little as
//! possible), and the requests and answers of keyward's API it sends.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

pub(crate) struct Response {
    pub(crate) status: u16,
    body_start: usize,
    body_end: usize,
}

impl Conn {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    pub(crate) async fn connect(&mut self) -> std::io::Result<()> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        Ok(())
    }

    pub(crate) fn body(&self, r: &Response) -> &[u8] {
        &self.buf[r.body_start..r.body_end]
    }

    /// Sends one request and reads its response; on any failure the
    /// connection is dropped and reopened by the next request.
    pub(crate) async fn send(&mut self, request: &[u8]) -> std::io::Result<Response> {
        let result = self.exchange(request).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<Response> {
        use std::io::{Error, ErrorKind};
        self.connect().await?;
        let stream = self.stream.as_mut().unwrap();
        stream.write_all(request).await?;
        self.buf.clear();
        let mut chunk = [0u8; 8192];
        let header_end = loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "connection closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = std::str::from_utf8(&self.buf[..header_end])
            .map_err(|_| Error::new(ErrorKind::InvalidData, "header not UTF-8"))?;
        let status = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, "bad status line"))?;
        let mut length = 0usize;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(Error::new(ErrorKind::InvalidData, "chunked body"));
                } else if name.eq_ignore_ascii_case("connection")
                    && value.trim().eq_ignore_ascii_case("close")
                {
                    close = true;
                }
            }
        }
        while self.buf.len() < header_end + length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "connection closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        if close {
            self.stream = None;
        }
        Ok(Response {
            status,
            body_start: header_end,
            body_end: header_end + length,
        })
    }
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn get(path: &str, bearer: Option<&str>) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(token) = bearer {
        let _ = write!(r, "Authorization: Bearer {token}\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

pub(crate) fn post_json(path: &str, body: &serde_json::Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[derive(Deserialize)]
pub(crate) struct PairBody {
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
}

/// One signed-in client: its newest tokens.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) access: String,
    pub(crate) refresh: String,
}

#[derive(Clone)]
pub(crate) struct User {
    pub(crate) username: String,
    pub(crate) password: String,
}

pub(crate) fn login_request(user: &User) -> Vec<u8> {
    post_json(
        "/auth/login",
        &serde_json::json!({"username": user.username, "password": user.password}),
    )
}

pub(crate) fn refresh_request(session: &Session) -> Vec<u8> {
    post_json(
        "/auth/refresh",
        &serde_json::json!({"refresh_token": session.refresh}),
    )
}
