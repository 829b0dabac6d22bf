//! The claims keyward's tokens carry, the `typ` header that tells the two
//! kinds apart, and the time checks every verification makes (against
//! keyward's clock and configured leeway, not jsonwebtoken's 60 s default).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub(crate) const ACCESS_TYP: &str = "at+jwt";
pub(crate) const REFRESH_TYP: &str = "refresh+jwt";

/// The claims of an access token: everything a route needs, so verifying
/// one needs no database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub sid: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// When the user signed in: the session's creation, in whole seconds,
    /// the same for every access token of the session. A token from before
    /// the claim existed reads as 0, so "signed in before T" refuses it.
    #[serde(default)]
    pub auth_time: i64,
    /// Not in the contract's list, but `/api/me` answers "from the token
    /// alone" and must name the user.
    pub username: String,
    pub name: Option<String>,
    pub admin: bool,
}

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
        if self.nbf().is_some_and(|nbf| nbf > now + leeway) {
            return Err(TokenError::Invalid);
        }
        // Saturating: `exp` is the token's, and may be any number.
        if self.exp().saturating_add(leeway) < now {
            return Err(TokenError::Expired);
        }
        Ok(())
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
