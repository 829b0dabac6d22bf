//! The per-client-IP limit on login and register (`rate_limit.per_ip_per_minute`),
//! and the per-session limit on refreshes
//! (`rate_limit.refresh_per_session_per_minute`).
//!
//! A token bucket per client, in this instance's memory: each client may
//! burst up to the per-minute budget, which refills evenly over the minute,
//! so there is no window edge at which twice the budget gets through. The
//! map is bounded: full buckets carry no information and are pruned, and
//! when it is full of live buckets a new client is let through uncounted
//! (logged) rather than refused, because the per-username lockout in the
//! database still holds and refusing would lock everyone out. The limit is
//! per instance by design; the lockout is the one all instances share.
//! The same buckets, keyed by session id, limit refreshes: a session that
//! loops refreshing would otherwise write a row version and an event row per
//! rotation, as fast as the database takes them.
//!
//! IPv6 clients are counted per /64, the block a single host usually holds,
//! so that rotating addresses inside it does not multiply the budget.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::RateLimitSettings;
use crate::error::{ApiError, ErrorCode};

/// How many clients are tracked at most.
const MAX_CLIENTS: usize = 100_000;

/// Full buckets are swept out every this many checks.
const PRUNE_EVERY: u32 = 4096;

/// Who is counted: an IPv4 address, an IPv6 /64, or the raw text of an
/// address that did not parse (a forwarded header, say).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    V4(u32),
    V6Prefix(u64),
    Other(String),
    Unknown,
}

impl ClientKey {
    fn of(ip: Option<&str>) -> Self {
        let Some(ip) = ip else {
            return Self::Unknown;
        };
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => Self::V4(u32::from(v4)),
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(u32::from(v4)),
                None => Self::V6Prefix((u128::from(v6) >> 64) as u64),
            },
            Err(_) => Self::Other(ip.chars().take(64).collect()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// Microseconds since the epoch of the last refill.
    at_us: i64,
}

struct Buckets<K> {
    map: HashMap<K, Bucket>,
    checks: u32,
    /// When a full map was last swept, so that a flood of new clients does
    /// not make every check walk the whole map.
    swept_full_at_us: i64,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allowed,
    /// Refused; a token will be back in this many whole seconds.
    Limited {
        retry_after: u64,
    },
}

/// Token buckets keyed by client (or by session).
pub(crate) struct RateLimiter<K = ClientKey> {
    enabled: bool,
    capacity: f64,
    per_us: f64,
    max_clients: usize,
    buckets: Mutex<Buckets<K>>,
}

impl RateLimiter<ClientKey> {
    pub(crate) fn new(settings: &RateLimitSettings) -> Self {
        Self::with_capacity(settings, MAX_CLIENTS)
    }

    fn with_capacity(settings: &RateLimitSettings, max_clients: usize) -> Self {
        Self::build(settings.enabled, settings.per_ip_per_minute, max_clients)
    }

    /// Takes one token for `ip` at `now`, or says how long to wait.
    pub(crate) fn check(&self, ip: Option<&str>, now: DateTime<Utc>) -> Decision {
        if !self.enabled {
            return Decision::Allowed;
        }
        self.check_key(ClientKey::of(ip), now)
    }

    /// Gives back the token an attempt took, for attempts that count only
    /// when they fail (a service's credentials: see `service_client`).
    pub(crate) fn refund(&self, ip: Option<&str>) {
        if !self.enabled {
            return;
        }
        let key = ClientKey::of(ip);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = buckets.map.get_mut(&key) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.capacity);
        }
    }
}

impl RateLimiter<Uuid> {
    /// `rate_limit.refresh_per_session_per_minute`, keyed by session id.
    pub(crate) fn per_session(settings: &RateLimitSettings) -> Self {
        Self::build(
            settings.enabled,
            settings.refresh_per_session_per_minute,
            MAX_CLIENTS,
        )
    }
}

impl<K: Hash + Eq> RateLimiter<K> {
    fn build(enabled: bool, per_minute: u32, max_clients: usize) -> Self {
        let capacity = f64::from(per_minute.max(1));
        Self {
            enabled,
            capacity,
            per_us: capacity / 60_000_000.0,
            max_clients,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                checks: 0,
                swept_full_at_us: i64::MIN,
            }),
        }
    }

    /// Takes one token for `key` at `now`, or says how long to wait.
    pub(crate) fn check_key(&self, key: K, now: DateTime<Utc>) -> Decision {
        if !self.enabled {
            return Decision::Allowed;
        }
        let now_us = now.timestamp_micros();
        // A panic elsewhere while holding the lock leaves the counts usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets.checks = buckets.checks.wrapping_add(1);
        if buckets.checks % PRUNE_EVERY == 0 {
            self.prune(&mut buckets.map, now_us);
        }
        if !buckets.map.contains_key(&key) && buckets.map.len() >= self.max_clients {
            if now_us.saturating_sub(buckets.swept_full_at_us) < 1_000_000 {
                return Decision::Allowed;
            }
            buckets.swept_full_at_us = now_us;
            self.prune(&mut buckets.map, now_us);
            if buckets.map.len() >= self.max_clients {
                log::warn!(
                    "rate limiter holds {} keys; new ones go uncounted for a second",
                    buckets.map.len()
                );
                return Decision::Allowed;
            }
        }
        let full = Bucket {
            tokens: self.capacity,
            at_us: now_us,
        };
        let bucket = buckets.map.entry(key).or_insert(full);
        // A clock that went back refills nothing.
        let elapsed = now_us.saturating_sub(bucket.at_us).max(0) as f64;
        bucket.tokens = (bucket.tokens + elapsed * self.per_us).min(self.capacity);
        bucket.at_us = bucket.at_us.max(now_us);
        // The epsilon keeps float rounding from refusing a client that waited
        // exactly the `Retry-After` it was given.
        if bucket.tokens >= 1.0 - 1e-9 {
            bucket.tokens = (bucket.tokens - 1.0).max(0.0);
            Decision::Allowed
        } else {
            let wait_us = (1.0 - bucket.tokens) / self.per_us;
            Decision::Limited {
                retry_after: (wait_us / 1_000_000.0).ceil().max(1.0) as u64,
            }
        }
    }

    /// Forgets the buckets that have refilled: they hold nothing a new one
    /// would not.
    fn prune(&self, map: &mut HashMap<K, Bucket>, now_us: i64) {
        map.retain(|_, b| {
            let elapsed = now_us.saturating_sub(b.at_us).max(0) as f64;
            b.tokens + elapsed * self.per_us < self.capacity
        });
    }

    /// How many clients are tracked now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}

/// Takes one of `ip`'s tokens from `limiter`, or answers `429 rate_limited`
/// with `Retry-After`.
pub(crate) fn count_attempt(
    limiter: &RateLimiter,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    match limiter.check(ip, now) {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => Err(ApiError::new(
            ErrorCode::RateLimited,
            "Too many attempts from this address; try again later.",
        )
        .with_retry_after(retry_after)),
    }
}

/// Counts a refresh of `session`; `429 rate_limited` with `Retry-After`
/// when the session has spent its budget. Called once the refresh token's
/// signature is verified, so that only a holder of the session's tokens
/// spends its budget.
pub(crate) fn check_session(
    limiter: &RateLimiter<Uuid>,
    session: Uuid,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    match limiter.check_key(session, now) {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => Err(ApiError::new(
            ErrorCode::RateLimited,
            "This session is refreshing too often; try again later.",
        )
        .with_retry_after(retry_after)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn settings(per_minute: u32, enabled: bool) -> RateLimitSettings {
        RateLimitSettings {
            enabled,
            per_ip_per_minute: per_minute,
            refresh_per_session_per_minute: per_minute,
            lockout_threshold: 5,
            lockout_seconds: 60,
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn the_budget_is_spent_then_refills_evenly() {
        let limiter = RateLimiter::new(&settings(3, true));
        let ip = Some("203.0.113.7");
        for _ in 0..3 {
            assert_eq!(limiter.check(ip, t0()), Decision::Allowed);
        }
        // One token comes back every 20 s.
        assert_eq!(
            limiter.check(ip, t0()),
            Decision::Limited { retry_after: 20 }
        );
        assert_eq!(
            limiter.check(ip, t0() + TimeDelta::seconds(15)),
            Decision::Limited { retry_after: 5 }
        );
        assert_eq!(
            limiter.check(ip, t0() + TimeDelta::seconds(20)),
            Decision::Allowed
        );
        // Another client has its own budget.
        assert_eq!(limiter.check(Some("203.0.113.8"), t0()), Decision::Allowed);
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_v4_as_v4() {
        let limiter = RateLimiter::new(&settings(1, true));
        assert_eq!(limiter.check(Some("2001:db8::1"), t0()), Decision::Allowed);
        assert!(matches!(
            limiter.check(Some("2001:db8::ffff:2"), t0()),
            Decision::Limited { .. }
        ));
        assert_eq!(
            limiter.check(Some("2001:db8:0:1::1"), t0()),
            Decision::Allowed
        );
        assert_eq!(limiter.check(Some("192.0.2.1"), t0()), Decision::Allowed);
        assert!(matches!(
            limiter.check(Some("::ffff:192.0.2.1"), t0()),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn a_refund_gives_the_token_back() {
        let limiter = RateLimiter::new(&settings(1, true));
        let ip = Some("203.0.113.9");
        assert_eq!(limiter.check(ip, t0()), Decision::Allowed);
        limiter.refund(ip);
        assert_eq!(limiter.check(ip, t0()), Decision::Allowed);
        assert!(matches!(limiter.check(ip, t0()), Decision::Limited { .. }));
        // Never beyond the budget.
        limiter.refund(ip);
        limiter.refund(ip);
        assert_eq!(limiter.check(ip, t0()), Decision::Allowed);
        assert!(matches!(limiter.check(ip, t0()), Decision::Limited { .. }));
    }

    #[test]
    fn sessions_have_budgets_of_their_own() {
        let limiter = RateLimiter::per_session(&settings(2, true));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(limiter.check_key(a, t0()), Decision::Allowed);
        assert_eq!(limiter.check_key(a, t0()), Decision::Allowed);
        assert_eq!(
            limiter.check_key(a, t0()),
            Decision::Limited { retry_after: 30 }
        );
        assert_eq!(limiter.check_key(b, t0()), Decision::Allowed);
        let off = RateLimiter::per_session(&settings(1, false));
        for _ in 0..5 {
            assert_eq!(off.check_key(a, t0()), Decision::Allowed);
        }
    }

    #[test]
    fn disabled_allows_everything() {
        let limiter = RateLimiter::new(&settings(1, false));
        for _ in 0..10 {
            assert_eq!(limiter.check(Some("192.0.2.1"), t0()), Decision::Allowed);
        }
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn the_map_stays_bounded() {
        let limiter = RateLimiter::with_capacity(&settings(2, true), 100);
        for i in 0..1000u32 {
            let ip = std::net::Ipv4Addr::from(i).to_string();
            assert_eq!(limiter.check(Some(&ip), t0()), Decision::Allowed);
        }
        assert!(limiter.tracked() <= 100, "{}", limiter.tracked());
        // A minute later every bucket has refilled and is pruned.
        limiter.check(Some("198.51.100.1"), t0() + TimeDelta::seconds(61));
        for _ in 0..PRUNE_EVERY {
            limiter.check(Some("198.51.100.1"), t0() + TimeDelta::seconds(61));
        }
        assert!(limiter.tracked() <= 2, "{}", limiter.tracked());
    }
}
