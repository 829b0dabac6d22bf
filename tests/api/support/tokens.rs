//! Tokens as the tests see them: the token pair a sign-in or refresh
//! answers with, and what a JWT carries (its header and claims, decoded
//! without verifying, for assertions only).

use std::time::Duration;

use serde_json::Value;

use super::app::TestApp;
use super::client::{eventually, User};

/// A token pair answer (API.md section 2), typed; `raw` is the body as
/// sent, for the tests that assert on its shape or on `user`.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_expires_in: i64,
    pub session_id: String,
    pub raw: Value,
}

impl TokenPair {
    /// Reads a token pair body; panics (the test fails) when a field is
    /// missing or of the wrong type.
    #[track_caller]
    pub fn from_json(raw: Value) -> Self {
        let text = |key: &str| {
            raw[key]
                .as_str()
                .unwrap_or_else(|| panic!("no text field {key} in the token pair {raw}"))
                .to_string()
        };
        let number = |key: &str| {
            raw[key]
                .as_i64()
                .unwrap_or_else(|| panic!("no integer {key} in the token pair {raw}"))
        };
        Self {
            access_token: text("access_token"),
            refresh_token: text("refresh_token"),
            token_type: text("token_type"),
            expires_in: number("expires_in"),
            refresh_expires_in: number("refresh_expires_in"),
            session_id: text("session_id"),
            raw: raw.clone(),
        }
    }
}

/// The JSON claims of a JWT, unverified (for assertions only).
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub fn header_of(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The `kid` a token's header names (the token must name one).
pub fn kid_of(token: &str) -> String {
    header_field(token, "kid")
}

/// The `alg` of a token's header.
pub fn alg_of(token: &str) -> String {
    header_field(token, "alg")
}

fn header_field(token: &str, key: &str) -> String {
    let header = header_of(token);
    header[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in the token header {header}"))
        .to_string()
}

impl TestApp {
    /// Signs `user` in until the new pair's access token carries `kid` (the
    /// instance has heard of a rotation), for up to `limit`.
    pub async fn signs_with(&self, user: &User, kid: &str, limit: Duration) -> bool {
        eventually(limit, || async {
            kid_of(&self.login(user).await.token_pair().access_token) == kid
        })
        .await
        .is_some()
    }
}
