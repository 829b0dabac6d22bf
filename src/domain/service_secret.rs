//! Service credentials (API.md section 7): a `client_id` that names a
//! service and a `client_secret` of 256 random bits, of which only a keyed
//! hash is kept.
//!
//! Why HMAC-SHA-256 and not bcrypt: a password needs a slow hash because
//! people choose guessable ones; a secret of 256 random bits cannot be
//! guessed, so a fast one-way function protects it as well, and a check
//! costs a microsecond instead of a quarter of a second on every
//! introspection. The key is not a secret (like the password prehash's): it
//! makes the hash keyward's own; the `client_id` in the message binds each
//! hash to its service, so two rows' hashes can never be swapped.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const HASH_KEY: &[u8] = b"keyward service secret v1";

/// Random bytes in a secret: 256 bits.
const SECRET_BYTES: usize = 32;

/// Random bytes in a client id: enough never to collide.
const CLIENT_ID_BYTES: usize = 16;

/// The longest credential value looked at; ours are 43 and 26 characters.
pub(crate) const MAX_CREDENTIAL_LEN: usize = 128;

/// A stored secret's hash.
pub(crate) type SecretHash = [u8; 32];

/// A service's names and secret, as `services create` prints them once.
#[derive(Clone, PartialEq, Eq)]
pub struct NewCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for NewCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

impl NewCredentials {
    /// Fresh credentials from the operating system's random source. Both
    /// are base64url (`A-Z a-z 0-9 - _`), which form encoding leaves as they
    /// are, so a client that form-encodes them for HTTP Basic (RFC 6749
    /// 2.3.1) sends the very same bytes; the id starts with `kw_` so that it
    /// reads as one.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut secret)?;
        let mut id = [0u8; CLIENT_ID_BYTES];
        getrandom::fill(&mut id)?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        Ok(Self {
            client_id: format!("kw_{}", b64.encode(id)),
            client_secret: b64.encode(secret),
        })
    }

    pub(crate) fn hash(&self) -> SecretHash {
        hash_secret(&self.client_id, &self.client_secret)
    }
}

/// A service's name: 1 to 64 characters of `A-Z a-z 0-9 _ . -`, unique
/// without regard to case (as usernames are), so that `services delete`
/// can never pick the wrong one of two look-alikes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceName(String);

impl ServiceName {
    pub(crate) const MAX: usize = 64;

    pub(crate) fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > Self::MAX {
            return Err("a service name must be 1 to 64 characters long");
        }
        if !raw.bytes().all(super::username::is_name_byte) {
            return Err("a service name may only contain letters A-Z, digits, '_', '.' and '-'");
        }
        Ok(Self(raw.to_string()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

fn mac(client_id: &str, client_secret: &str) -> Hmac<Sha256> {
    // new_from_slice only fails for key lengths HMAC cannot take; any works.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(HASH_KEY)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    // The id's length first, so that no other (id, secret) split of the same
    // bytes gives the same message.
    mac.update(&(client_id.len() as u64).to_be_bytes());
    mac.update(client_id.as_bytes());
    mac.update(client_secret.as_bytes());
    mac
}

/// The hash stored for a secret.
pub(crate) fn hash_secret(client_id: &str, client_secret: &str) -> SecretHash {
    mac(client_id, client_secret).finalize().into_bytes().into()
}

/// Whether `client_secret` is the one `stored` was made from, compared in
/// constant time (`hmac`'s `verify_slice` uses `subtle`).
pub(crate) fn secret_matches(client_id: &str, client_secret: &str, stored: &[u8]) -> bool {
    mac(client_id, client_secret).verify_slice(stored).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_credentials_are_long_random_and_verify() {
        let a = NewCredentials::generate().unwrap();
        let b = NewCredentials::generate().unwrap();
        assert_eq!(a.client_secret.len(), 43, "256 bits in base64url");
        assert!(a.client_id.starts_with("kw_"));
        assert_ne!(a.client_secret, b.client_secret);
        assert_ne!(a.client_id, b.client_id);
        let alphabet = |s: &str| {
            s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        };
        assert!(alphabet(&a.client_secret) && alphabet(&a.client_id));
        assert!(secret_matches(&a.client_id, &a.client_secret, &a.hash()));
    }

    #[test]
    fn a_wrong_secret_or_another_id_does_not_verify() {
        let a = NewCredentials::generate().unwrap();
        let stored = a.hash();
        let mut wrong = a.client_secret.clone();
        wrong.pop();
        assert!(!secret_matches(&a.client_id, &wrong, &stored));
        assert!(!secret_matches("kw_other", &a.client_secret, &stored));
        assert!(!secret_matches(&a.client_id, "", &stored));
        // A shorter or empty stored value never matches.
        assert!(!secret_matches(
            &a.client_id,
            &a.client_secret,
            &stored[..16]
        ));
        assert!(!secret_matches(&a.client_id, &a.client_secret, &[]));
    }

    #[test]
    fn the_split_between_id_and_secret_counts() {
        assert_ne!(hash_secret("ab", "c"), hash_secret("a", "bc"));
    }

    #[test]
    fn service_names_follow_the_username_alphabet() {
        assert!(ServiceName::parse("billing-api.v2").is_ok());
        assert!(ServiceName::parse("a").is_ok());
        for bad in ["", "has space", "ünï", "a:b", &"x".repeat(65)] {
            assert!(ServiceName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let a = NewCredentials::generate().unwrap();
        assert!(!format!("{a:?}").contains(&a.client_secret));
    }
}
