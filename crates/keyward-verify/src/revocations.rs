//! The revocation set a verifier keeps in memory, fed by keyward's
//! revocation feed (API.md section 7): sessions, "everyone who signed in
//! before T", and signing keys, each kept only as long as a token it could
//! refuse may still be unexpired.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use crate::claims::AccessClaims;

/// Why keyward revoked something, as the feed names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The user logged out.
    Logout,
    /// An administrator revoked the session.
    Admin,
    /// The user was banned.
    UserBanned,
    /// A rotated-away refresh token was replayed.
    ReuseDetected,
    /// The user changed their password (every other session ends).
    PasswordChanged,
    /// The user was deleted.
    UserDeleted,
    /// A new sign-in went past `auth.max_sessions_per_user`.
    SessionLimit,
    /// Everyone who signed in before a time was signed out.
    RevokedAll,
    /// A signing key was revoked.
    KeyRevoked,
    /// A reason this version of the library does not know.
    Other(String),
}

impl From<&str> for Reason {
    fn from(s: &str) -> Self {
        match s {
            "logout" => Self::Logout,
            "admin" => Self::Admin,
            "user_banned" => Self::UserBanned,
            "reuse_detected" => Self::ReuseDetected,
            "password_changed" => Self::PasswordChanged,
            "user_deleted" => Self::UserDeleted,
            "session_limit" => Self::SessionLimit,
            "revoked_all" => Self::RevokedAll,
            "key_revoked" => Self::KeyRevoked,
            other => Self::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Logout => "logout",
            Self::Admin => "admin",
            Self::UserBanned => "user_banned",
            Self::ReuseDetected => "reuse_detected",
            Self::PasswordChanged => "password_changed",
            Self::UserDeleted => "user_deleted",
            Self::SessionLimit => "session_limit",
            Self::RevokedAll => "revoked_all",
            Self::KeyRevoked => "key_revoked",
            Self::Other(other) => other,
        })
    }
}

/// What one feed entry revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One session: every access token with this `sid`.
    Session {
        /// The session.
        sid: Uuid,
        /// Its user, when the feed names it.
        sub: Option<Uuid>,
    },
    /// Every access token whose `auth_time` is before this (Unix seconds).
    AuthBefore(i64),
    /// Every token this signing key signed.
    Key(String),
}

/// One entry of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// What it revokes.
    pub target: Target,
    /// When it was revoked (Unix seconds).
    pub at: i64,
    /// Why.
    pub reason: Reason,
}

/// A timestamp as the feed writes it: RFC 3339, or a number of Unix seconds.
/// Fractions are rounded up, so that "before T" never lets T's own second
/// through early.
fn unix_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Float(f64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Int(n) => Ok(n),
        Raw::Float(f) if f.is_finite() => Ok(f.ceil() as i64),
        Raw::Float(_) => Err(serde::de::Error::custom("not a finite time")),
        Raw::Text(s) => {
            let t = chrono::DateTime::parse_from_rfc3339(&s).map_err(serde::de::Error::custom)?;
            let up = i64::from(t.timestamp_subsec_nanos() > 0);
            Ok(t.timestamp() + up)
        }
    }
}

fn optional_unix_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "unix_seconds")] i64);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

impl<'de> Deserialize<'de> for Revocation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            sid: Option<Uuid>,
            sub: Option<Uuid>,
            #[serde(default, deserialize_with = "optional_unix_seconds")]
            auth_before: Option<i64>,
            kid: Option<String>,
            #[serde(deserialize_with = "unix_seconds")]
            at: i64,
            reason: String,
        }
        let raw = Raw::deserialize(d)?;
        let target = match (raw.sid, raw.auth_before, raw.kid) {
            (Some(sid), None, None) => Target::Session { sid, sub: raw.sub },
            (None, Some(before), None) => Target::AuthBefore(before),
            (None, None, Some(kid)) => Target::Key(kid),
            _ => {
                return Err(serde::de::Error::custom(
                    "an entry names exactly one of sid, auth_before, kid",
                ))
            }
        };
        Ok(Self {
            target,
            at: raw.at,
            reason: Reason::from(raw.reason.as_str()),
        })
    }
}

/// A set of revocations, each remembered with the time it was revoked.
#[derive(Debug, Default, Clone)]
pub struct RevocationSet {
    sessions: HashMap<Uuid, (i64, Reason)>,
    /// (auth_before, at, reason): a handful at most, so a list.
    auth_before: Vec<(i64, i64, Reason)>,
    keys: HashMap<String, (i64, Reason)>,
}

impl RevocationSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry (an entry the set already holds changes nothing but
    /// its time, which only moves later).
    pub fn insert(&mut self, entry: Revocation) {
        let keep = |slot: &mut (i64, Reason), at: i64| slot.0 = slot.0.max(at);
        match entry.target {
            Target::Session { sid, .. } => keep(
                self.sessions.entry(sid).or_insert((entry.at, entry.reason)),
                entry.at,
            ),
            Target::Key(kid) => keep(
                self.keys.entry(kid).or_insert((entry.at, entry.reason)),
                entry.at,
            ),
            Target::AuthBefore(before) => {
                match self.auth_before.iter_mut().find(|(b, ..)| *b == before) {
                    Some(slot) => slot.1 = slot.1.max(entry.at),
                    None => self.auth_before.push((before, entry.at, entry.reason)),
                }
            }
        }
    }

    /// Why a token with these claims, signed by the key `kid`, is revoked,
    /// if it is.
    pub fn revokes(&self, claims: &AccessClaims, kid: Option<&str>) -> Option<&Reason> {
        if let Some((_, reason)) = self.sessions.get(&claims.sid) {
            return Some(reason);
        }
        if let Some((_, _, reason)) = self
            .auth_before
            .iter()
            .find(|(before, ..)| claims.auth_time < *before)
        {
            return Some(reason);
        }
        kid.and_then(|kid| self.keys.get(kid))
            .map(|(_, reason)| reason)
    }

    /// Drops the entries revoked before `oldest` (Unix seconds): every token
    /// they could refuse has expired. Returns how many were dropped.
    pub fn prune(&mut self, oldest: i64) -> usize {
        let before = self.len();
        self.sessions.retain(|_, (at, _)| *at >= oldest);
        self.keys.retain(|_, (at, _)| *at >= oldest);
        self.auth_before.retain(|(_, at, _)| *at >= oldest);
        before - self.len()
    }

    /// Moves every entry of `other` into this set.
    pub fn merge(&mut self, other: RevocationSet) {
        for (sid, (at, reason)) in other.sessions {
            let target = Target::Session { sid, sub: None };
            self.insert(Revocation { target, at, reason });
        }
        for (kid, (at, reason)) in other.keys {
            let target = Target::Key(kid);
            self.insert(Revocation { target, at, reason });
        }
        for (before, at, reason) in other.auth_before {
            let target = Target::AuthBefore(before);
            self.insert(Revocation { target, at, reason });
        }
    }

    /// How many entries the set holds.
    pub fn len(&self) -> usize {
        self.sessions.len() + self.keys.len() + self.auth_before.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The set as the feed builds it: a `reset` starts a new set while the old
/// one keeps refusing, until the reset's entries have all arrived (the feed
/// paused, or sent a heartbeat) and the new one replaces it. Refusing from
/// both in between never lets a revoked token through during the swap.
#[derive(Debug, Default)]
pub(crate) struct FeedSet {
    current: RevocationSet,
    incoming: Option<RevocationSet>,
}

impl FeedSet {
    /// `event: reset`: the entries that follow are the whole set.
    pub fn begin_reset(&mut self) {
        if let Some(partial) = self.incoming.take() {
            self.current.merge(partial);
        }
        self.incoming = Some(RevocationSet::new());
    }

    pub fn insert(&mut self, entry: Revocation) {
        self.incoming
            .as_mut()
            .unwrap_or(&mut self.current)
            .insert(entry);
    }

    /// The reset's entries have all arrived: they replace the old set.
    /// Returns whether a reset was completed.
    pub fn settle(&mut self) -> bool {
        match self.incoming.take() {
            Some(new) => {
                self.current = new;
                true
            }
            None => false,
        }
    }

    /// The connection ended during a reset: what arrived joins the old set
    /// (the resumed feed sends the rest).
    pub fn abandon_reset(&mut self) {
        if let Some(partial) = self.incoming.take() {
            self.current.merge(partial);
        }
    }

    pub fn resetting(&self) -> bool {
        self.incoming.is_some()
    }

    pub fn revokes(&self, claims: &AccessClaims, kid: Option<&str>) -> Option<Reason> {
        self.current
            .revokes(claims, kid)
            .or_else(|| self.incoming.as_ref()?.revokes(claims, kid))
            .cloned()
    }

    pub fn prune(&mut self, oldest: i64) -> usize {
        self.current.prune(oldest) + self.incoming.as_mut().map_or(0, |s| s.prune(oldest))
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.incoming.as_ref().map_or(0, RevocationSet::len)
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// Claims of a token of session `sid` signed in at `auth_time`.
    pub(crate) fn claims_of(sid: Uuid, auth_time: i64) -> AccessClaims {
        AccessClaims {
            iss: "keyward".into(),
            aud: "keyward".into(),
            sub: Uuid::new_v4(),
            sid,
            jti: Uuid::new_v4(),
            iat: auth_time,
            exp: auth_time + 900,
            nbf: None,
            auth_time,
            username: "jon".into(),
            name: None,
            admin: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::tests_support::claims_of as claims;

    fn entry(json: &str) -> Revocation {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_three_kinds_of_entry_parse() {
        let sid = Uuid::new_v4();
        let e = entry(&format!(
            r#"{{"sid":"{sid}","sub":"{sid}","at":"2026-12-01T10:00:00.5Z","reason":"logout"}}"#
        ));
        assert_eq!(
            e.target,
            Target::Session {
                sid,
                sub: Some(sid)
            }
        );
        assert_eq!(e.reason, Reason::Logout);
        // Rounded up: 10:00:00.5 is after 10:00:00.
        assert_eq!(e.at, 1_796_119_201);
        let e = entry(r#"{"auth_before":"2026-12-01T10:00:00Z","at":1,"reason":"revoked_all"}"#);
        assert_eq!(e.target, Target::AuthBefore(1_796_119_200));
        let e = entry(r#"{"kid":"k1","at":1,"reason":"key_revoked","extra":true}"#);
        assert_eq!(e.target, Target::Key("k1".into()));
        assert_eq!(e.reason, Reason::KeyRevoked);
        let e = entry(r#"{"kid":"k1","at":1,"reason":"something_new"}"#);
        assert_eq!(e.reason, Reason::Other("something_new".into()));
    }

    #[test]
    fn an_entry_naming_no_or_two_targets_is_refused() {
        for bad in [
            r#"{"at":1,"reason":"logout"}"#,
            r#"{"kid":"k","auth_before":5,"at":1,"reason":"logout"}"#,
            r#"{"kid":"k","reason":"logout"}"#,
            r#"{"kid":"k","at":"yesterday","reason":"logout"}"#,
        ] {
            assert!(serde_json::from_str::<Revocation>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_kind_refuses_its_tokens_only() {
        let (sid, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut set = RevocationSet::new();
        set.insert(Revocation {
            target: Target::Session { sid, sub: None },
            at: 100,
            reason: Reason::Logout,
        });
        assert_eq!(set.revokes(&claims(sid, 50), None), Some(&Reason::Logout));
        assert_eq!(set.revokes(&claims(other, 50), None), None);

        set.insert(Revocation {
            target: Target::AuthBefore(60),
            at: 100,
            reason: Reason::RevokedAll,
        });
        assert_eq!(
            set.revokes(&claims(other, 59), None),
            Some(&Reason::RevokedAll)
        );
        // auth_time equal to auth_before signed in at or after it.
        assert_eq!(set.revokes(&claims(other, 60), None), None);

        set.insert(Revocation {
            target: Target::Key("leaked".into()),
            at: 100,
            reason: Reason::KeyRevoked,
        });
        assert_eq!(
            set.revokes(&claims(other, 70), Some("leaked")),
            Some(&Reason::KeyRevoked)
        );
        assert_eq!(set.revokes(&claims(other, 70), Some("fine")), None);
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn entries_past_the_horizon_are_pruned() {
        let mut set = RevocationSet::new();
        for (i, at) in [10, 20, 30].into_iter().enumerate() {
            set.insert(Revocation {
                target: Target::Key(format!("k{i}")),
                at,
                reason: Reason::KeyRevoked,
            });
        }
        set.insert(Revocation {
            target: Target::AuthBefore(5),
            at: 15,
            reason: Reason::RevokedAll,
        });
        assert_eq!(set.prune(20), 2);
        assert_eq!(set.revokes(&claims(Uuid::new_v4(), 0), Some("k0")), None);
        assert!(set
            .revokes(&claims(Uuid::new_v4(), 0), Some("k1"))
            .is_some());
        assert_eq!(set.len(), 2);
    }

    /// A set that held `old` and is receiving a reset holding `new`.
    fn reset_in_progress() -> (Uuid, Uuid, FeedSet) {
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        let session = |sid| Revocation {
            target: Target::Session { sid, sub: None },
            at: 100,
            reason: Reason::Admin,
        };
        let mut set = FeedSet::default();
        set.insert(session(old));
        set.begin_reset();
        set.insert(session(new));
        (old, new, set)
    }

    #[test]
    fn a_reset_replaces_the_set_but_refuses_from_both_until_settled() {
        let (old, new, mut set) = reset_in_progress();
        assert!(set.resetting());
        assert!(set.revokes(&claims(old, 1), None).is_some());
        assert!(set.revokes(&claims(new, 1), None).is_some());
        assert!(set.settle());
        assert!(!set.settle(), "settling twice does nothing");
        assert_eq!(set.revokes(&claims(old, 1), None), None);
        assert!(set.revokes(&claims(new, 1), None).is_some());
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn a_reset_cut_short_keeps_everything() {
        let (old, new, mut set) = reset_in_progress();
        set.abandon_reset();
        assert!(!set.resetting());
        assert!(set.revokes(&claims(old, 1), None).is_some());
        assert!(set.revokes(&claims(new, 1), None).is_some());
    }
}
