//! Passwords: 8 to 128 characters of any Unicode, every byte counting.
//!
//! bcrypt ignores every byte past the 72nd, so a password is first reduced
//! with HMAC-SHA-384 and base64 (64 ASCII characters), as OWASP's password
//! storage guidance describes, and that is what bcrypt hashes.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha384;

/// The HMAC key of the reduction. It is not a secret (a pepper would be a
/// key kept outside the database); it only makes the reduction keyward's own.
const PREHASH_KEY: &[u8] = b"keyward password prehash v1";

#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl Password {
    pub(crate) const MIN_CHARS: usize = 8;
    pub(crate) const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str, field: &'static str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(format!("{field} must be 8 to 128 characters long"));
        }
        Ok(Self(raw.to_string()))
    }

    /// The bcrypt hash of this password at `cost`.
    /// Computed on a bcrypt thread (see `bcrypt_threads`).
    pub fn hash(&self, cost: u32) -> Result<String, bcrypt::BcryptError> {
        let reduced = prehash(&self.0);
        super::bcrypt_threads::run(move || bcrypt::hash(reduced, cost)).unwrap_or(Err(
            bcrypt::BcryptError::InvalidHash("the bcrypt thread stopped"),
        ))
    }
}

fn prehash(password: &str) -> String {
    // new_from_slice only fails for key lengths HMAC cannot take; any works.
    let mut mac = <Hmac<Sha384> as Mac>::new_from_slice(PREHASH_KEY)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `candidate` matches `hash`. A malformed hash never matches.
/// Computed on a bcrypt thread (see `bcrypt_threads`).
pub(crate) fn verify(candidate: &str, hash: &str) -> bool {
    let (reduced, hash) = (prehash(candidate), hash.to_string());
    super::bcrypt_threads::run(move || bcrypt::verify(reduced, &hash).unwrap_or(false))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_counts_past_the_72nd() {
        let long = "é".repeat(100); // 200 bytes
        let hash = Password::parse(&long, "password").unwrap().hash(4).unwrap();
        assert!(verify(&long, &hash));
        assert!(
            !verify(&"é".repeat(36), &hash),
            "the first 72 bytes alone must fail"
        );
        assert!(!verify(&"é".repeat(99), &hash));
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        assert!(Password::parse("short7!", "password").is_err());
        assert!(Password::parse("8bytes!!", "password").is_ok());
        assert!(Password::parse(&"é".repeat(128), "password").is_ok());
        assert!(Password::parse(&"a".repeat(129), "password").is_err());
    }

    #[test]
    fn a_malformed_hash_never_matches() {
        assert!(!verify("anything", "not a bcrypt hash"));
    }

    #[test]
    fn debug_hides_the_password() {
        let p = Password::parse("hunter2-hunter2", "password").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
