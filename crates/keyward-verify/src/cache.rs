//! Tokens this verifier has already verified, by their exact string, so
//! that the next request with the same token costs a hash lookup instead of
//! an EdDSA signature check and three JSON parses (as keyward itself does in
//! its `token_cache`).
//!
//! Only what cannot change for a given token string is remembered: that its
//! signature, `typ`, `iss` and `aud` checked out, its claims and the `kid`
//! that signed it. The caller checks at every use that the key is still
//! published, the times (an entry is never served past its `exp` and the
//! leeway) and the revocation set.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use keyward_claims::SignatureHash;

use crate::claims::AccessClaims;

/// At most this many tokens are held (about 1 KiB each). When full, the
/// expired ones are dropped, and if that is not enough, all of them. Only
/// tokens that verified are stored, so forged ones cannot fill it.
pub(crate) const CAPACITY: usize = 10_000;

/// A token that verified: its claims and the key that signed it.
#[derive(Debug)]
pub(crate) struct Verified {
    /// Shared with every request it verifies (`VerifiedUser`), not copied.
    pub(crate) claims: Arc<AccessClaims>,
    pub(crate) kid: String,
}

#[derive(Debug, Default)]
pub(crate) struct VerifiedTokens {
    entries: RwLock<HashMap<Box<str>, Arc<Verified>, SignatureHash>>,
}

impl VerifiedTokens {
    /// The entry of exactly this token string, if it verified before.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Verified>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(token).cloned()
    }

    /// Remembers a verified token; `expired` says whether an entry has
    /// expired, for making room.
    pub(crate) fn insert(
        &self,
        token: &str,
        verified: Verified,
        expired: impl Fn(&AccessClaims) -> bool,
    ) -> Arc<Verified> {
        let verified = Arc::new(verified);
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, v| !expired(&v.claims));
            // Still full of live tokens: start over rather than track ages.
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token.into(), verified.clone());
        verified
    }

    /// Forgets everything (the keys changed).
    pub(crate) fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocations::tests_support::claims_of;

    fn verified(exp: i64) -> Verified {
        let mut claims = claims_of(uuid::Uuid::new_v4(), 0);
        claims.exp = exp;
        Verified {
            claims: Arc::new(claims),
            kid: "k1".into(),
        }
    }

    #[test]
    fn a_token_is_found_by_its_exact_string_only() {
        let cache = VerifiedTokens::default();
        let token = format!("{}.sig-tail-shared", "a".repeat(500));
        cache.insert(&token, verified(100), |_| false);
        assert!(cache.get(&token).is_some());
        // Same signature tail, other token: not the same entry.
        let other = format!("{}.sig-tail-shared", "b".repeat(500));
        assert!(cache.get(&other).is_none());
        assert!(cache.get(&token[1..]).is_none());
        cache.clear();
        assert!(cache.get(&token).is_none());
    }

    #[test]
    fn when_full_the_expired_go_first_and_it_stays_bounded() {
        let cache = VerifiedTokens::default();
        for i in 0..CAPACITY {
            // Every other one has expired by time 50.
            let exp = if i % 2 == 0 { 10 } else { 100 };
            cache.insert(&format!("token {i}"), verified(exp), |_| false);
        }
        assert_eq!(cache.len(), CAPACITY);
        cache.insert("new", verified(100), |c| c.exp < 50);
        assert_eq!(cache.len(), CAPACITY / 2 + 1);
        assert!(cache.get("token 1").is_some(), "a live token was kept");
        assert!(cache.get("token 0").is_none());
        for i in 0..CAPACITY {
            cache.insert(&format!("live {i}"), verified(100), |c| c.exp < 50);
        }
        assert!(cache.len() <= CAPACITY);
        assert!(cache.get(&format!("live {}", CAPACITY - 1)).is_some());
    }
}
