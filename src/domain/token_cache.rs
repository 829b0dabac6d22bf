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
use std::sync::{Arc, RwLock};

use super::claims::AccessClaims;

/// At most this many tokens are remembered (about 1 KiB each); when full,
/// the cache starts over. Only tokens that verified are ever stored, so
/// forged tokens cannot fill it.
const CAPACITY: usize = 4096;

/// A token that verified: its claims and the `kid` of the key that did it.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) claims: AccessClaims,
    pub(crate) kid: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct VerifiedTokens {
    entries: RwLock<HashMap<Box<str>, Arc<Verified>>>,
}

impl VerifiedTokens {
    /// The entry of exactly this token string, if it verified before.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Verified>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(token).cloned()
    }

    pub(crate) fn insert(&self, token: &str, verified: Verified) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(token.into(), Arc::new(verified));
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

    #[test]
    fn the_cache_is_bounded() {
        let cache = VerifiedTokens::default();
        for i in 0..CAPACITY + 10 {
            cache.insert(
                &format!("token {i}"),
                Verified {
                    claims: access(0),
                    kid: None,
                },
            );
        }
        let held = cache.entries.read().unwrap().len();
        assert!(held <= CAPACITY);
        assert!(held > 0);
    }
}
