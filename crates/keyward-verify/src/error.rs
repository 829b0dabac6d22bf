//! Why a token was refused, why a verifier could not start, and how a
//! refusal reads over HTTP (the same codes keyward itself answers with).

use crate::revocations::Reason;

/// Why [`Verifier::verify`](crate::Verifier::verify) refused a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No token was presented (the web integrations only).
    #[error("no access token was presented")]
    Missing,
    /// Malformed, badly signed, of another algorithm or `typ`, for another
    /// issuer or audience, signed by an unknown key, or not yet valid.
    #[error("the access token is not valid")]
    Invalid,
    /// Past its `exp`, beyond the leeway.
    #[error("the access token has expired")]
    Expired,
    /// Its session, its sign-in time or its signing key was revoked.
    #[error("the access token was revoked ({0})")]
    Revoked(Reason),
    /// The revocation feed has not been heard from for longer than the
    /// [`StalePolicy`](crate::StalePolicy) allows, so a revocation may have
    /// been missed.
    #[error("the revocation feed has not been heard from for too long")]
    FeedStale,
    /// The token names a key this verifier does not know and keyward's key
    /// set could not be fetched to learn it.
    #[error("keyward's keys could not be fetched")]
    KeysUnavailable,
}

/// The HTTP answer to a refusal, as keyward words its own.
#[cfg_attr(not(any(feature = "actix", feature = "axum")), allow(dead_code))]
pub(crate) struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
    /// `WWW-Authenticate` for a 401 (RFC 6750), `Retry-After` for a 503.
    pub header: (&'static str, &'static str),
}

#[cfg_attr(not(any(feature = "actix", feature = "axum")), allow(dead_code))]
impl VerifyError {
    pub(crate) fn refusal(&self) -> Refusal {
        const BEARER: &str = "Bearer realm=\"keyward\"";
        const BEARER_INVALID: &str = "Bearer realm=\"keyward\", error=\"invalid_token\"";
        let unauthorized = |code, message| Refusal {
            status: 401,
            code,
            message,
            header: ("www-authenticate", BEARER_INVALID),
        };
        match self {
            Self::Missing => Refusal {
                status: 401,
                code: "invalid_token",
                message: "This route needs a Bearer access token.",
                header: ("www-authenticate", BEARER),
            },
            Self::Invalid => unauthorized("invalid_token", "The access token is not valid."),
            Self::Expired => unauthorized("token_expired", "The access token has expired."),
            Self::Revoked(_) => unauthorized("session_revoked", "The session has been revoked."),
            Self::FeedStale | Self::KeysUnavailable => Refusal {
                status: 503,
                code: "unavailable",
                message: "Tokens cannot be verified right now; try again shortly.",
                header: ("retry-after", "1"),
            },
        }
    }

    /// The JSON body: `{"error": code, "message": sentence}`.
    pub(crate) fn body(&self) -> String {
        let refusal = self.refusal();
        serde_json::json!({"error": refusal.code, "message": refusal.message}).to_string()
    }
}

/// Why [`Builder::connect`](crate::Builder::connect) could not start a
/// verifier.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The issuer URL, or an endpoint the discovery document names, is not
    /// a URL.
    #[error("not a URL: {0}")]
    BadUrl(String),
    /// A request to keyward failed (connection refused, timeout, a status
    /// other than 200, a body that is not the expected JSON).
    #[error("{what}: {detail}")]
    Fetch {
        /// What was being fetched.
        what: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The discovery document does not offer EdDSA: keyward signs with an
    /// HMAC secret (`auth.jwt_secret`), which no other service can verify
    /// without holding the secret itself.
    #[error(
        "keyward does not sign with EdDSA (it offers {0:?}); set it to auth.algorithm = \"EdDSA\""
    )]
    UnsupportedAlgorithm(Vec<String>),
    /// keyward refused the service credentials (`401 invalid_client`).
    #[error("keyward refused the service credentials (invalid_client)")]
    InvalidClient,
    /// The revocation feed did not deliver the current set in time.
    #[error("the revocation feed did not deliver the current set within {0:?}")]
    FeedTimeout(std::time::Duration),
}

/// The token of an `Authorization: Bearer` header: `Missing` without the
/// header, `Invalid` for another scheme or an empty token.
#[cfg_attr(not(any(feature = "actix", feature = "axum")), allow(dead_code))]
pub(crate) fn bearer_token(header: Option<&[u8]>) -> Result<&str, VerifyError> {
    let value = header.ok_or(VerifyError::Missing)?;
    let value = std::str::from_utf8(value).map_err(|_| VerifyError::Invalid)?;
    let (scheme, token) = value.split_once(' ').ok_or(VerifyError::Invalid)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(VerifyError::Invalid);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_from_the_header() {
        assert_eq!(bearer_token(Some(b"Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some(b"bearer  abc ")), Ok("abc"));
        assert_eq!(bearer_token(None), Err(VerifyError::Missing));
        for bad in [&b"Basic abc"[..], b"Bearer", b"Bearer  ", b"\xff\xfe"] {
            assert_eq!(bearer_token(Some(bad)), Err(VerifyError::Invalid));
        }
    }

    #[test]
    fn refusals_read_as_keyward_s_own() {
        let revoked = VerifyError::Revoked(Reason::Logout);
        assert_eq!(revoked.refusal().status, 401);
        let body: serde_json::Value = serde_json::from_str(&revoked.body()).unwrap();
        assert_eq!(body["error"], "session_revoked");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        let stale = VerifyError::FeedStale.refusal();
        assert_eq!(
            (stale.status, stale.code, stale.header.0),
            (503, "unavailable", "retry-after")
        );
        let missing = VerifyError::Missing.refusal();
        assert_eq!(missing.header.1, "Bearer realm=\"keyward\"");
        assert_eq!(VerifyError::Expired.refusal().code, "token_expired");
    }
}
