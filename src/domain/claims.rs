//! The claims keyward's tokens carry, the `typ` header that tells the two
//! kinds apart, and the time checks every verification makes (against
//! keyward's clock and configured leeway, not jsonwebtoken's 60 s default).
//! The access token's are `keyward_claims`', shared with keyward-verify.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use keyward_claims::AccessClaims;
pub(crate) use keyward_claims::ACCESS_TYP;
pub(crate) const REFRESH_TYP: &str = "refresh+jwt";

/// The claims of a refresh token: only what identifies the session; the
/// user is read from the database at every refresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub sid: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

/// The times both kinds of claims carry.
pub(crate) trait Timed {
    fn iat(&self) -> i64;
    fn exp(&self) -> i64;
    fn nbf(&self) -> Option<i64>;

    /// `nbf` and `exp` against `now` and `leeway` (seconds).
    fn check_times(&self, now: i64, leeway: i64) -> Result<(), TokenError> {
        keyward_claims::check_times(self.exp(), self.nbf(), now, leeway).map_err(|e| match e {
            keyward_claims::TimeError::NotYetValid => TokenError::Invalid,
            keyward_claims::TimeError::Expired => TokenError::Expired,
        })
    }
}

impl Timed for AccessClaims {
    fn iat(&self) -> i64 {
        self.iat
    }
    fn exp(&self) -> i64 {
        self.exp
    }
    fn nbf(&self) -> Option<i64> {
        self.nbf
    }
}

impl Timed for RefreshClaims {
    fn iat(&self) -> i64 {
        self.iat
    }
    fn exp(&self) -> i64 {
        self.exp
    }
    fn nbf(&self) -> Option<i64> {
        self.nbf
    }
}

/// Claims as keyward issues them by default, for tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn access(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "keyward".into(),
            aud: "keyward".into(),
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            iat: now,
            exp: now + 900,
            nbf: None,
            auth_time: now,
            username: "jon".into(),
            name: Some("Jon".into()),
            admin: false,
        }
    }

    pub(crate) fn refresh(now: i64) -> RefreshClaims {
        RefreshClaims {
            iss: "keyward".into(),
            aud: "keyward".into(),
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            iat: now,
            exp: now + 60,
            nbf: None,
        }
    }
}
