//! The claims of a keyward access token (API.md section 2), typed: keyward's
//! own (`keyward_claims`), and the user a request was authenticated as.

use std::sync::Arc;

pub use keyward_claims::AccessClaims;

/// The user a request was authenticated as: the claims of its verified,
/// unrevoked access token, shared with the verifier's cache (a request costs
/// a reference count, not a copy of the claims' strings; read them through
/// `Deref`, or `Arc::unwrap_or_clone(user.0)` for claims of one's own).
///
/// With the `actix` feature it is an actix-web extractor; the `axum`
/// feature's `layer::VerifyLayer` puts it in the
/// request's extensions (read it with axum's `Extension<VerifiedUser>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser(pub Arc<AccessClaims>);

impl std::ops::Deref for VerifiedUser {
    type Target = AccessClaims;
    fn deref(&self) -> &AccessClaims {
        &self.0
    }
}
