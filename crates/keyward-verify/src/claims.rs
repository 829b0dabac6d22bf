//! The claims of a keyward access token (API.md section 2), typed.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a verified keyward access token says about its user and session.
///
/// Every field is checked or at least parsed before a value of this type is
/// handed out: a token missing one of the required claims is refused as
/// invalid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The issuer: keyward's `auth.issuer`, as its discovery document names it.
    pub iss: String,
    /// The audience: keyward's `auth.audience`.
    pub aud: String,
    /// The user's id.
    pub sub: Uuid,
    /// The session's id: what a logout or an administrator revokes.
    pub sid: Uuid,
    /// This token's own id.
    pub jti: Uuid,
    /// When the token was issued (Unix seconds).
    pub iat: i64,
    /// When the token expires (Unix seconds); the verifier's leeway applies.
    pub exp: i64,
    /// Not valid before (Unix seconds), when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// When the user signed in (the session's creation, whole Unix seconds):
    /// what a "sign everyone out before T" revocation is compared with.
    pub auth_time: i64,
    /// The user's name at sign-in.
    pub username: String,
    /// The user's display name, if they gave one.
    pub name: Option<String>,
    /// Whether the user was an administrator of keyward when the token was
    /// issued.
    pub admin: bool,
}

/// The user a request was authenticated as: the claims of its verified,
/// unrevoked access token.
///
/// With the `actix` feature it is an actix-web extractor; the `axum`
/// feature's `layer::VerifyLayer` puts it in the
/// request's extensions (read it with axum's `Extension<VerifiedUser>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser(pub AccessClaims);

impl std::ops::Deref for VerifiedUser {
    type Target = AccessClaims;
    fn deref(&self) -> &AccessClaims {
        &self.0
    }
}
