//! The claims of a keyward access token (API.md section 2) and the checks
//! that do not depend on the key: its `typ`, its size, the claims
//! jsonwebtoken checks, and its times against the verifier's clock and
//! leeway. keyward and keyward-verify both use these, so a token one accepts
//! the other accepts too.

mod signature_hash;

use jsonwebtoken::{Algorithm, Validation};

use serde::{Deserialize, Serialize};
pub use signature_hash::{SignatureHash, TailHasher};
use uuid::Uuid;

/// The `typ` header of a keyward access token (a refresh token's differs).
pub const ACCESS_TYP: &str = "at+jwt";

/// A token longer than this is refused before any parsing: it bounds the
/// work a hostile token can cause.
pub const MAX_TOKEN_LEN: usize = 4096;

/// What a keyward access token says about its user and session: everything
/// a route needs, so verifying one needs no database.
///
/// Every field is required: a token missing one is refused as invalid.
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
    /// When the user signed in (the session's creation, whole Unix seconds,
    /// the same for every access token of the session): what a "sign
    /// everyone out before T" revocation is compared with.
    pub auth_time: i64,
    /// The user's name at sign-in (not in the contract's list, but
    /// `/api/me` answers from the token alone and must name the user).
    pub username: String,
    /// The user's display name, if they gave one.
    pub name: Option<String>,
    /// Whether the user was an administrator of keyward when the token was
    /// issued.
    pub admin: bool,
}

/// Why a token's times refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeError {
    /// `nbf` is still ahead, beyond the leeway.
    NotYetValid,
    /// `exp` has passed, beyond the leeway.
    Expired,
}

/// What jsonwebtoken checks for a token of `algorithm` (the key's: pinned,
/// never the header's): the signature, `iss`, `aud`, and that `exp`, `iss`,
/// `aud` and `sub` are there. Its own time checks are off (with its 60 s
/// default leeway); [`check_times`] does them with the verifier's.
pub fn validation(algorithm: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = 0;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation
}

/// `nbf` and `exp` against `now` and `leeway` (seconds).
pub fn check_times(exp: i64, nbf: Option<i64>, now: i64, leeway: i64) -> Result<(), TimeError> {
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(TimeError::NotYetValid);
    }
    // Saturating: `exp` is the token's, and may be any number.
    if exp.saturating_add(leeway) < now {
        return Err(TimeError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_honour_the_leeway_on_both_sides() {
        assert_eq!(check_times(100, None, 105, 5), Ok(()));
        assert_eq!(check_times(100, None, 106, 5), Err(TimeError::Expired));
        assert_eq!(check_times(200, Some(105), 100, 5), Ok(()));
        assert_eq!(
            check_times(200, Some(106), 100, 5),
            Err(TimeError::NotYetValid)
        );
        assert_eq!(check_times(i64::MAX, None, 0, 5), Ok(()));
    }
}
