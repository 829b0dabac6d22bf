//! Verify keyward access tokens in a resource server,
//! and refuse revoked ones within a second, without a request to keyward per
//! token.
//!
//! A [`Verifier`] starts from keyward's URL and a service's credentials
//! (`keyward services create NAME`). It
//!
//! - reads keyward's discovery document and public keys (JWKS), and fetches
//!   the keys again when a token names one it has not seen (at most once a
//!   second), so a key rotated after it started is accepted;
//! - verifies each access token locally exactly as keyward does: EdDSA
//!   only, header `typ` = `at+jwt`, `iss` from the discovery document,
//!   `aud`, `exp` with a leeway, `nbf`;
//! - follows keyward's revocation feed (server-sent events) on a thread of
//!   its own, reconnecting and resuming by cursor after any failure, and
//!   refuses tokens of revoked sessions, of users signed out by a
//!   "revoke everyone before T", and of revoked signing keys, from memory;
//! - refuses every token with [`VerifyError::FeedStale`] once the feed has
//!   been silent for too long (30 s by default; see [`StalePolicy`]), since
//!   it might have missed a revocation.
//!
//! With the `actix` feature, [`VerifiedUser`] is an actix-web extractor;
//! with the `axum` feature, `layer::VerifyLayer` is a tower layer for
//! axum. Both answer refusals as keyward does: `401` with
//! `{"error": "invalid_token" | "token_expired" | "session_revoked", ...}`
//! and `WWW-Authenticate`, or `503 unavailable` while the feed is stale.
//!
//! # Example
//!
//! ```no_run
//! use keyward_verify::{Verifier, VerifyError};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder("https://auth.example.com", "svc_id", "svc_secret")
//!     .connect()
//!     .await?;
//!
//! let token = "eyJ..."; // from the request's `Authorization: Bearer` header
//! match verifier.verify(token).await {
//!     Ok(claims) => println!("{} ({}) in session {}", claims.username, claims.sub, claims.sid),
//!     Err(VerifyError::Revoked(reason)) => println!("revoked: {reason}"),
//!     Err(other) => println!("refused: {other}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The checks alone, without a keyward to talk to, are [`verify_with_keys`]
//! (here with a token signed by a key made on the spot, as keyward would):
//!
//! ```
//! use keyward_verify::{verify_with_keys, Expectations, KeySet, VerifyError};
//! # use base64::Engine as _;
//! # let seed = [7u8; 32];
//! # let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
//! # let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public.as_bytes());
//! # let jwks = format!(r#"{{"keys": [{{"kty": "OKP", "crv": "Ed25519", "x": "{x}", "kid": "k1", "alg": "EdDSA"}}]}}"#);
//! # let mut pkcs8 = vec![0x30, 0x2e, 2, 1, 0, 0x30, 5, 6, 3, 0x2b, 0x65, 0x70, 4, 0x22, 4, 0x20];
//! # pkcs8.extend_from_slice(&seed);
//! # let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
//! # header.typ = Some("at+jwt".into());
//! # header.kid = Some("k1".into());
//! # let now = 1_800_000_000;
//! # let claims = serde_json::json!({"iss": "keyward", "aud": "keyward",
//! #     "sub": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d", "sid": "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed",
//! #     "jti": "6ec0bd7f-11c0-43da-975e-2a8ad9ebae0b", "iat": now, "exp": now + 900,
//! #     "auth_time": now, "username": "jon", "name": "Jon Doe", "admin": false});
//! # let token = jsonwebtoken::encode(&header, &claims,
//! #     &jsonwebtoken::EncodingKey::from_ed_der(&pkcs8)).unwrap();
//! // `jwks`: the body of keyward's /.well-known/jwks.json.
//! let keys = KeySet::from_jwks(jwks.as_bytes())?;
//! let expect = Expectations {
//!     issuer: "keyward".into(),
//!     audience: "keyward".into(),
//!     leeway_seconds: 5,
//! };
//! let claims = verify_with_keys(&token, &keys, &expect, now).expect("a good token");
//! assert_eq!((claims.username.as_str(), claims.admin), ("jon", false));
//! // 906 seconds later it has expired, leeway included.
//! assert_eq!(verify_with_keys(&token, &keys, &expect, now + 906), Err(VerifyError::Expired));
//! assert_eq!(verify_with_keys("not.a.token", &keys, &expect, now), Err(VerifyError::Invalid));
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! # HTTPS
//!
//! The crate enables no TLS backend of its own. For an `https://` keyward,
//! enable one in your application's dependency on reqwest 0.12 (for
//! instance `reqwest = { version = "0.12", default-features = false,
//! features = ["rustls-tls"] }`): Cargo's feature unification gives it to
//! this crate too.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
mod claims;
mod error;
mod feed;
mod policy;
mod revocations;
mod sse;
mod token;
mod verifier;

#[cfg(feature = "actix")]
mod actix;
#[cfg(feature = "axum")]
pub mod layer;

pub use claims::{AccessClaims, VerifiedUser};
pub use error::{ConnectError, VerifyError};
pub use feed::FeedStatus;
pub use policy::StalePolicy;
pub use revocations::{Reason, Revocation, RevocationSet, Target};
pub use token::{Expectations, KeySet, ACCESS_TYP};
pub use verifier::{Builder, Verifier};

/// Verifies an access token with these keys at `now` (Unix seconds), as
/// [`Verifier::verify`] does but without revocations or fetching: for tests,
/// or for a service that brings its own key distribution.
pub fn verify_with_keys(
    token: &str,
    keys: &KeySet,
    expect: &Expectations,
    now: i64,
) -> Result<AccessClaims, VerifyError> {
    token::verify_local(token, keys, expect, now)
        .map(|(claims, _kid)| claims)
        .map_err(token::Local::into_error)
}

/// The system time in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
