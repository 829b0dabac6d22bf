//! Refresh tokens this instance signed and nobody has presented yet.
//! Rotation hands each one out once and the next refresh presents exactly
//! that string, so [`Tokens`](super::tokens::Tokens) can skip its signature
//! check: the bytes it signed carry a valid signature.
//!
//! An entry is small and owns no allocation (the token's SHA-256, the
//! claims that vary, the key set that signed it), and the table is sized
//! once for [`CAPACITY`] entries: a server whose clients sign in and never
//! refresh fills it without its memory growing. A SHA-256 stands for the
//! token because matching it means presenting the very token (a second
//! preimage), and the token itself is a secret the table need not keep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::claims::RefreshClaims;
use super::key_set::{Key, KeySet};

/// At most this many tokens are remembered; when full, the table starts
/// over (a token no longer remembered is verified as any other).
const CAPACITY: usize = 4096;

type TokenDigest = [u8; 32];

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// What a refresh token's claims say beyond this instance's `iss` and
/// `aud` (only tokens carrying those are remembered), and its key.
#[derive(Debug)]
pub(crate) struct Issued {
    sub: Uuid,
    sid: Uuid,
    jti: Uuid,
    iat: i64,
    exp: i64,
    nbf: Option<i64>,
    /// The key set that signed it, held weakly (its allocation, hence its
    /// address, stays while this does), and until when its key verifies.
    key_set: Weak<KeySet>,
    verify_until: Option<i64>,
}

impl Issued {
    pub(crate) fn new(claims: &RefreshClaims, key_set: &Arc<KeySet>, key: &Key) -> Self {
        Self {
            sub: claims.sub,
            sid: claims.sid,
            jti: claims.jti,
            iat: claims.iat,
            exp: claims.exp,
            nbf: claims.nbf,
            key_set: Arc::downgrade(key_set),
            verify_until: key.verify_until,
        }
    }

    /// The token's claims (`iss` and `aud` given back), if `keys` is still
    /// the set that signed it and its key still verifies at `now`; `None`
    /// means "verify it in full", which refuses what should be refused.
    pub(crate) fn claims(
        &self,
        keys: &Arc<KeySet>,
        now: i64,
        iss: &str,
        aud: &str,
    ) -> Option<RefreshClaims> {
        let same_keys = std::ptr::eq(self.key_set.as_ptr(), Arc::as_ptr(keys));
        let key_verifies = self.verify_until.is_none_or(|until| now <= until);
        (same_keys && key_verifies).then(|| RefreshClaims {
            iss: iss.to_owned(),
            aud: aud.to_owned(),
            sub: self.sub,
            sid: self.sid,
            jti: self.jti,
            iat: self.iat,
            exp: self.exp,
            nbf: self.nbf,
        })
    }
}

#[derive(Debug)]
pub(crate) struct IssuedTokens {
    entries: Mutex<HashMap<TokenDigest, Issued>>,
}

impl Default for IssuedTokens {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::with_capacity(CAPACITY)),
        }
    }
}

impl IssuedTokens {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<TokenDigest, Issued>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn remember(&self, token: &str, issued: Issued) {
        let key = digest(token);
        let mut entries = self.entries();
        if entries.len() >= CAPACITY {
            // `clear` keeps the table's allocation.
            entries.clear();
        }
        entries.insert(key, issued);
    }

    /// The entry of exactly this token string, which is then forgotten.
    pub(crate) fn take(&self, token: &str) -> Option<Issued> {
        let key = digest(token);
        self.entries().remove(&key)
    }

    /// Forgets everything (the keys changed).
    pub(crate) fn clear(&self) {
        self.entries().clear();
    }

    /// Whether exactly this token string has an entry.
    #[cfg(test)]
    pub(crate) fn holds(&self, token: &str) -> bool {
        self.entries().contains_key(&digest(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(keys: &Arc<KeySet>) -> Issued {
        let claims = RefreshClaims {
            iss: "keyward".into(),
            aud: "keyward".into(),
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            iat: 0,
            exp: 100,
            nbf: None,
        };
        Issued::new(&claims, keys, keys.verifier(None, 0).unwrap())
    }

    #[test]
    fn the_table_is_bounded_and_keeps_its_allocation() {
        let keys = Arc::new(KeySet::from_secret(b"a secret"));
        let tokens = IssuedTokens::default();
        let allocated = tokens.entries().capacity();
        for i in 0..CAPACITY * 3 {
            tokens.remember(&format!("token {i}"), issued(&keys));
        }
        let entries = tokens.entries();
        assert!(!entries.is_empty() && entries.len() <= CAPACITY);
        assert_eq!(entries.capacity(), allocated);
    }

    #[test]
    fn a_token_is_taken_once_and_only_by_its_exact_string() {
        let keys = Arc::new(KeySet::from_secret(b"a secret"));
        let tokens = IssuedTokens::default();
        tokens.remember("a.b.c", issued(&keys));
        assert!(tokens.take("a.b.d").is_none());
        assert!(tokens.take("x.b.c").is_none());
        assert!(tokens.take("a.b.c").is_some());
        assert!(tokens.take("a.b.c").is_none());
    }

    #[test]
    fn claims_come_back_only_under_the_same_keys() {
        let keys = Arc::new(KeySet::from_secret(b"a secret"));
        let entry = issued(&keys);
        let claims = entry.claims(&keys, 0, "keyward", "keyward").unwrap();
        assert_eq!((claims.sid, claims.jti), (entry.sid, entry.jti));
        let other = Arc::new(KeySet::from_secret(b"a secret"));
        assert!(entry.claims(&other, 0, "keyward", "keyward").is_none());
    }
}
