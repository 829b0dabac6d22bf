//! The revocations each instance keeps in memory, so that a revoked access
//! token is refused without a database read. Three kinds of entry, as the
//! `revocations` table holds them: one session (`sid`), everyone who signed
//! in before a time (`auth_before`, against the token's `auth_time`), and
//! one signing key (`kid`).
//!
//! An entry is only needed until the last access token it refuses has
//! expired: at most `access_ttl + leeway` after the revocation (a revoked
//! session, or one revoked by an `auth_before` cut-off, gets no new access
//! tokens). Entries past that are dropped, so the set stays as small as the
//! recent revocations.
//!
//! Every request with an access token asks [`RevokedSessions::refuses`]:
//! while the set is empty (nearly always) that is one atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use uuid::Uuid;

/// The feed's name (API.md section 7) for a session revocation's internal
/// reason, as `sessions.revoked_reason` and the events keep it.
pub(crate) fn feed_reason(internal: &str) -> &str {
    match internal {
        "revoked_by_user" => "logout",
        "admin_revoked" => "admin",
        other => other,
    }
}

#[derive(Debug, Default)]
struct Entries {
    /// Session id -> unix second after which the entry is no longer needed.
    sessions: HashMap<Uuid, i64>,
    /// (auth_before, keep until), unix seconds: few, so a list.
    auth_before: Vec<(i64, i64)>,
    /// Signing key id -> keep until.
    kids: HashMap<String, i64>,
}

impl Entries {
    fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.auth_before.is_empty() && self.kids.is_empty()
    }

    fn len(&self) -> usize {
        self.sessions.len() + self.auth_before.len() + self.kids.len()
    }
}

#[derive(Debug, Default)]
pub struct RevokedSessions {
    entries: RwLock<Entries>,
    /// Whether `entries` holds anything: the hot path's only cost while the
    /// set is empty. Written under the write lock.
    any: AtomicBool,
}

fn keep_longer<K: std::hash::Hash + Eq>(map: &mut HashMap<K, i64>, key: K, keep_until: i64) {
    let until = map.entry(key).or_insert(keep_until);
    *until = (*until).max(keep_until);
}

impl RevokedSessions {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Whether an access token of session `sid`, signed in at `auth_time`
    /// and signed by `kid`, must be refused.
    pub(crate) fn refuses(&self, sid: &Uuid, auth_time: i64, kid: Option<&str>) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.sessions.contains_key(sid)
            || entries
                .auth_before
                .iter()
                .any(|&(before, _)| auth_time < before)
            || kid.is_some_and(|kid| entries.kids.contains_key(kid))
    }

    /// Whether access tokens of this session must be refused (its own
    /// entry only; [`refuses`](Self::refuses) checks every kind).
    pub fn contains(&self, session: &Uuid) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.sessions.contains_key(session)
    }

    fn write(&self, change: impl FnOnce(&mut Entries)) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        change(&mut entries);
        self.any.store(!entries.is_empty(), Ordering::Release);
    }

    /// Records a revoked session, kept until `keep_until` (unix seconds).
    pub(crate) fn insert(&self, session: Uuid, keep_until: i64) {
        self.write(|e| keep_longer(&mut e.sessions, session, keep_until));
    }

    pub(crate) fn extend(&self, revoked: impl IntoIterator<Item = (Uuid, i64)>) {
        self.write(|e| {
            for (session, keep_until) in revoked {
                keep_longer(&mut e.sessions, session, keep_until);
            }
        });
    }

    /// Refuses every access token whose `auth_time` is before `auth_before`.
    pub(crate) fn insert_auth_before(&self, auth_before: i64, keep_until: i64) {
        self.write(
            |e| match e.auth_before.iter_mut().find(|(b, _)| *b == auth_before) {
                Some((_, until)) => *until = (*until).max(keep_until),
                None => e.auth_before.push((auth_before, keep_until)),
            },
        );
    }

    /// Refuses every access token signed by `kid`.
    pub(crate) fn insert_kid(&self, kid: &str, keep_until: i64) {
        self.write(|e| keep_longer(&mut e.kids, kid.to_string(), keep_until));
    }

    /// Drops the entries no longer needed at `now`; returns how many.
    pub(crate) fn prune(&self, now: i64) -> usize {
        let mut dropped = 0;
        self.write(|e| {
            let before = e.len();
            e.sessions.retain(|_, until| *until >= now);
            e.auth_before.retain(|(_, until)| *until >= now);
            e.kids.retain(|_, until| *until >= now);
            dropped = before - e.len();
        });
        dropped
    }

    /// How many entries (of all kinds) the set holds.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
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

    #[test]
    fn an_auth_before_entry_refuses_only_earlier_sign_ins() {
        let set = RevokedSessions::new();
        let sid = Uuid::new_v4();
        assert!(!set.refuses(&sid, 99, None));
        set.insert_auth_before(100, 500);
        assert!(set.refuses(&sid, 99, None));
        assert!(!set.refuses(&sid, 100, None));
        assert!(!set.contains(&sid));
        assert_eq!(set.prune(501), 1);
        assert!(!set.refuses(&sid, 99, None));
        assert!(set.is_empty());
    }

    #[test]
    fn a_kid_entry_refuses_only_that_keys_tokens() {
        let set = RevokedSessions::new();
        let sid = Uuid::new_v4();
        set.insert_kid("k1", 500);
        assert!(set.refuses(&sid, 0, Some("k1")));
        assert!(!set.refuses(&sid, 0, Some("k2")));
        assert!(!set.refuses(&sid, 0, None));
        set.insert(sid, 500);
        assert!(set.refuses(&sid, 0, None));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn internal_reasons_map_to_the_feeds_names() {
        assert_eq!(feed_reason("revoked_by_user"), "logout");
        assert_eq!(feed_reason("admin_revoked"), "admin");
        assert_eq!(feed_reason("user_banned"), "user_banned");
        assert_eq!(feed_reason("reuse_detected"), "reuse_detected");
    }
}
