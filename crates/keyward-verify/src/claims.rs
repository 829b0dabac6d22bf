//! The claims of a keyward access token (API.md section 2), typed: keyward's
//! own (`keyward_claims`), and the user a request was authenticated as.

pub use keyward_claims::AccessClaims;

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
