//! The set of revoked sessions each instance keeps in memory, so that an
//! access token of a revoked session is refused without a database read.
//!
//! An entry is only needed until the last access token of its session has
//! expired: at most `access_ttl + leeway` after the revocation. Entries past
//! that are dropped, so the set stays as small as the recent revocations.

use std::collections::HashMap;
use std::sync::RwLock;

use uuid::Uuid;

#[derive(Debug, Default)]
pub struct RevokedSessions {
    /// Session id -> unix second after which the entry is no longer needed.
    entries: RwLock<HashMap<Uuid, i64>>,
}

impl RevokedSessions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether access tokens of this session must be refused.
    pub fn contains(&self, session: &Uuid) -> bool {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        // Fast path: the set is empty nearly always.
        !entries.is_empty() && entries.contains_key(session)
    }

    /// Records a revocation, kept until `keep_until` (unix seconds).
    pub fn insert(&self, session: Uuid, keep_until: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let until = entries.entry(session).or_insert(keep_until);
        *until = (*until).max(keep_until);
    }

    pub fn extend(&self, revoked: impl IntoIterator<Item = (Uuid, i64)>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        for (session, keep_until) in revoked {
            let until = entries.entry(session).or_insert(keep_until);
            *until = (*until).max(keep_until);
        }
    }

    /// Drops the entries no longer needed at `now`; returns how many.
    pub fn prune(&self, now: i64) -> usize {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let before = entries.len();
        entries.retain(|_, until| *until >= now);
        before - entries.len()
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_until_their_time_then_pruned() {
        let set = RevokedSessions::new();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        set.insert(a, 100);
        set.extend([(b, 200)]);
        assert!(set.contains(&a) && set.contains(&b));
        assert_eq!(set.prune(150), 1);
        assert!(!set.contains(&a));
        assert!(set.contains(&b));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn a_later_revocation_extends_the_entry() {
        let set = RevokedSessions::new();
        let a = Uuid::new_v4();
        set.insert(a, 200);
        set.insert(a, 100);
        assert_eq!(set.prune(150), 0);
        assert!(set.contains(&a));
    }
}
