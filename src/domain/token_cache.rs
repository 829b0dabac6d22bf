//! Access tokens this instance has already verified, so that the next
//! request with the same token costs one hash lookup instead of a signature
//! check and three JSON parses: verification is a large share of what a
//! request that only presents a token costs the server.
//!
//! Only what cannot change for a given token string is remembered: that its
//! signature, `typ`, `iss` and `aud` checked out, and its claims. Its times
//! and its key are checked again at every use by [`Tokens`](super::tokens::Tokens),
//! and revocation is checked by the caller as before.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock, Weak};

use bytes::Bytes;
use keyward_claims::SignatureHash;

use super::claims::AccessClaims;
use super::key_set::{Key, KeySet};

/// At most this many tokens are remembered (about 1 KiB each); when full,
/// the cache starts over. Only tokens that verified are ever stored, so
/// forged tokens cannot fill it.
const CAPACITY: usize = 4096;

/// A token that verified: its claims and the `kid` of the key that did it.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) claims: AccessClaims,
    pub(crate) kid: Option<String>,
    /// The key set that verified it (held weakly: its allocation, hence its
    /// address, stays while this does) and until when its key verifies, so
    /// that a use under the same set checks a time instead of looking the
    /// key up again.
    key_set: Weak<KeySet>,
    key_verify_until: Option<i64>,
    /// `GET /api/me`'s body for this token, rendered at its first use: the
    /// route answers from the claims alone, which cannot change.
    pub(crate) me_body: OnceLock<Bytes>,
}

impl Verified {
    /// A token whose claims `key`, of `key_set`, verified.
    pub(crate) fn new(claims: AccessClaims, key_set: &Arc<KeySet>, key: &Key) -> Self {
        Self {
            claims,
            kid: key.kid.clone(),
            key_set: Arc::downgrade(key_set),
            key_verify_until: key.verify_until,
            me_body: OnceLock::new(),
        }
    }

    /// Whether the key that verified this token still verifies at `now` in
    /// `keys` (the current set).
    pub(crate) fn key_verifies(&self, keys: &Arc<KeySet>, now: i64) -> bool {
        if std::ptr::eq(self.key_set.as_ptr(), Arc::as_ptr(keys)) {
            self.key_verify_until.is_none_or(|until| now <= until)
        } else {
            keys.verifier(self.kid.as_deref(), now).is_some()
        }
    }
}

/// Tokens are hashed by their signature's tail (`SignatureHash`, shared
/// with keyward-verify's cache) and compared whole, as bytes: a request's
/// header is looked up before anything checks that it is text (a token
/// that verified was, and only those are stored).
#[derive(Debug, Default)]
pub(crate) struct VerifiedTokens {
    entries: RwLock<HashMap<Box<[u8]>, Arc<Verified>, SignatureHash>>,
}

impl VerifiedTokens {
    /// The entry of exactly these token bytes, if they verified before.
    pub(crate) fn get(&self, token: &[u8]) -> Option<Arc<Verified>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(token).cloned()
    }

    pub(crate) fn insert(&self, token: &str, verified: Arc<Verified>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(token.as_bytes().into(), verified);
    }

    /// Forgets everything (the keys changed).
    pub(crate) fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::claims::fixtures::access;

    fn verified() -> Verified {
        let keys = Arc::new(KeySet::from_secret(b"a secret"));
        Verified::new(access(0), &keys, keys.verifier(None, 0).unwrap())
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = VerifiedTokens::default();
        for i in 0..CAPACITY + 10 {
            cache.insert(&format!("token {i}"), Arc::new(verified()));
        }
        let held = cache.entries.read().unwrap().len();
        assert!(held <= CAPACITY);
        assert!(held > 0);
    }

    #[test]
    fn a_token_sharing_a_cached_signature_is_not_taken_for_it() {
        let cache = VerifiedTokens::default();
        let verified = || Arc::new(verified());
        let signature = "c2lnbmF0dXJlLW9mLXRoZS1maXJzdC10b2tlbg";
        cache.insert(&format!("aGVhZGVy.Zmlyc3Q.{signature}"), verified());
        assert!(cache
            .get(format!("aGVhZGVy.Zmlyc3Q.{signature}").as_bytes())
            .is_some());
        assert!(cache
            .get(format!("aGVhZGVy.Zm9yZ2Vk.{signature}").as_bytes())
            .is_none());
        // Tokens with the same short tail share a bucket, not an entry.
        cache.insert("a.b.c", verified());
        assert!(cache.get(b"a.b.c").is_some());
        assert!(cache.get(b"x.y.c").is_none());
        assert!(cache.get(b"c").is_none());
    }
}
