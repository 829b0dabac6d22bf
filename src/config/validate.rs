//! The rules each setting must meet; a broken one is reported as one line
//! naming its key.

use super::{ConfigError, Settings};

/// The longest lifetime a setting may name: ten years, in seconds.
const MAX_DURATION: i64 = 315_360_000;

/// The largest `auth.max_pending_hashes`: each waiting check may hold a
/// blocking thread, and far more than this would only queue longer.
const MAX_PENDING_HASHES: u32 = 65_536;
/// The largest session cap: far beyond any real user's devices.
const MAX_SESSIONS_PER_USER: i64 = 100_000;
/// The longest retention, in days (API.md section 5): a hundred years.
const MAX_RETENTION_DAYS: i64 = 36_500;

impl Settings {
    /// Every rule; the first one broken is the error.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        let bad = |key: &str, rule: &str| Err(ConfigError(format!("{key} {rule}")));
        if !(4..=31).contains(&auth.bcrypt_cost) {
            return bad("auth.bcrypt_cost", "must be between 4 and 31");
        }
        for (key, value) in [
            ("auth.access_ttl_seconds", auth.access_ttl_seconds),
            ("auth.refresh_ttl_seconds", auth.refresh_ttl_seconds),
            ("auth.session_max_seconds", auth.session_max_seconds),
            (
                "rate_limit.lockout_seconds",
                self.rate_limit.lockout_seconds,
            ),
        ] {
            if value < 1 {
                return bad(key, "must be at least 1");
            }
            // Far beyond any sensible lifetime, and far from where adding
            // it to a timestamp could overflow.
            if value > MAX_DURATION {
                return bad(key, "must be at most 315360000 (ten years)");
            }
        }
        for (key, value) in [
            ("auth.reuse_grace_seconds", auth.reuse_grace_seconds),
            ("auth.leeway_seconds", auth.leeway_seconds),
        ] {
            if !(0..=86_400).contains(&value) {
                return bad(key, "must be between 0 and 86400");
            }
        }
        if !(0..=MAX_SESSIONS_PER_USER).contains(&auth.max_sessions_per_user) {
            return bad(
                "auth.max_sessions_per_user",
                "must be between 0 (no limit) and 100000",
            );
        }
        if self.rate_limit.lockout_threshold < 1 {
            return bad("rate_limit.lockout_threshold", "must be at least 1");
        }
        if self.rate_limit.per_ip_per_minute < 1 {
            return bad("rate_limit.per_ip_per_minute", "must be at least 1");
        }
        if self.rate_limit.refresh_per_session_per_minute < 1 {
            return bad(
                "rate_limit.refresh_per_session_per_minute",
                "must be at least 1",
            );
        }
        if !matches!(auth.max_pending_hashes, None | Some(1..=MAX_PENDING_HASHES)) {
            return bad("auth.max_pending_hashes", "must be between 1 and 65536");
        }
        self.trusted_proxy_nets()?;
        if self.database.pool_size == Some(0) {
            return bad("database.pool_size", "must be at least 1");
        }
        if self.database.connect_timeout_ms < 1 {
            return bad("database.connect_timeout_ms", "must be at least 1");
        }
        if !(0..=86_400).contains(&auth.key_publish_seconds) {
            return bad("auth.key_publish_seconds", "must be between 0 and 86400");
        }
        self.validate_retention()?;
        if let Some(secret) = &auth.jwt_secret {
            if secret.expose().len() < 32 {
                return bad("auth.jwt_secret", "must be at least 32 bytes long");
            }
        }
        if let Some(url) = self.server.public_url() {
            if !is_base_url(url) {
                return bad(
                    "server.public_url",
                    "must be an absolute http:// or https:// URL without query or fragment",
                );
            }
        }
        if self.server.host.trim().is_empty() {
            return bad("server.host", "must not be empty");
        }
        let revocation = &self.revocation;
        if !(1..=3600).contains(&revocation.poll_seconds) {
            return bad("revocation.poll_seconds", "must be between 1 and 3600");
        }
        // The set is confirmed at each re-read: a bound no longer than the
        // interval between two would fail closed between every two reads.
        if revocation.max_staleness_seconds != 0
            && !(revocation.poll_seconds + 1..=86_400).contains(&revocation.max_staleness_seconds)
        {
            return bad(
                "revocation.max_staleness_seconds",
                "must be 0 (never) or more than revocation.poll_seconds, at most 86400",
            );
        }
        Ok(())
    }

    /// Retention may not end before the revocation horizon: the listener's
    /// catch-up after a restart re-reads revocations that recent from the
    /// rows the cleanup keeps, so a shorter retention would let revoked
    /// access tokens work again. Nor may it leave the dates chrono can
    /// count.
    fn validate_retention(&self) -> Result<(), ConfigError> {
        let horizon = self.auth.access_ttl_seconds + self.auth.leeway_seconds;
        let min_days = ((horizon + 86_399) / 86_400).max(1);
        for (key, days) in [
            ("retention.sessions_days", self.retention.sessions_days),
            ("retention.events_days", self.retention.events_days),
        ] {
            if days < min_days {
                return Err(ConfigError(format!(
                    "{key} must be at least {min_days} (the revocation horizon, \
                     auth.access_ttl_seconds + auth.leeway_seconds, in days rounded up)"
                )));
            }
            if days > MAX_RETENTION_DAYS {
                return Err(ConfigError(format!(
                    "{key} must be at most {MAX_RETENTION_DAYS}"
                )));
            }
        }
        Ok(())
    }
}

/// `http(s)://host[:port][/path]`, nothing else: the discovery document
/// appends paths to it.
fn is_base_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or_default();
    !host.is_empty()
        && !host.contains('@')
        && !rest.contains(['?', '#'])
        && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env as env;

    #[test]
    fn a_bad_value_names_its_key() {
        for (key, value, named) in [
            ("KEYWARD__AUTH__BCRYPT_COST", "3", "auth.bcrypt_cost"),
            (
                "KEYWARD__AUTH__ACCESS_TTL_SECONDS",
                "0",
                "auth.access_ttl_seconds",
            ),
            ("KEYWARD__AUTH__LEEWAY_SECONDS", "-1", "auth.leeway_seconds"),
            (
                "KEYWARD__AUTH__REFRESH_TTL_SECONDS",
                "1000000000000000000",
                "auth.refresh_ttl_seconds",
            ),
            ("KEYWARD__SERVER__PORT", "70000", "port"),
            ("KEYWARD__AUTH__JWT_SECRET", "short", "auth.jwt_secret"),
            ("KEYWARD__AUTH__ALGORITHM", "RS256", "algorithm"),
            (
                "KEYWARD__AUTH__MAX_SESSIONS_PER_USER",
                "-1",
                "auth.max_sessions_per_user",
            ),
            (
                "KEYWARD__REVOCATION__POLL_SECONDS",
                "0",
                "revocation.poll_seconds",
            ),
            (
                "KEYWARD__REVOCATION__MAX_STALENESS_SECONDS",
                "2",
                "revocation.max_staleness_seconds",
            ),
            (
                "KEYWARD__SERVER__PUBLIC_URL",
                "auth.example.com",
                "server.public_url",
            ),
            (
                "KEYWARD__SERVER__PUBLIC_URL",
                "https://auth.example.com/?x=1",
                "server.public_url",
            ),
            (
                "KEYWARD__SERVER__TRUSTED_PROXIES",
                "10.0.0.0/8,not-a-net",
                "server.trusted_proxies",
            ),
            (
                "KEYWARD__SERVER__TRUSTED_PROXIES",
                "10.0.0.0/33",
                "server.trusted_proxies",
            ),
            (
                "KEYWARD__AUTH__MAX_PENDING_HASHES",
                "0",
                "auth.max_pending_hashes",
            ),
            (
                "KEYWARD__RATE_LIMIT__REFRESH_PER_SESSION_PER_MINUTE",
                "0",
                "rate_limit.refresh_per_session_per_minute",
            ),
        ] {
            let err = Settings::from_env(&env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn retention_covers_the_revocation_horizon_and_stays_countable() {
        for (pairs, named) in [
            (
                vec![
                    ("KEYWARD__AUTH__ACCESS_TTL_SECONDS", "172800"),
                    ("KEYWARD__RETENTION__SESSIONS_DAYS", "2"),
                ],
                "retention.sessions_days must be at least 3",
            ),
            (
                vec![("KEYWARD__RETENTION__EVENTS_DAYS", "0")],
                "retention.events_days must be at least 1",
            ),
            (
                vec![("KEYWARD__RETENTION__SESSIONS_DAYS", "36501")],
                "retention.sessions_days must be at most 36500",
            ),
            (
                vec![("KEYWARD__RETENTION__EVENTS_DAYS", "315360000")],
                "retention.events_days must be at most 36500",
            ),
            (
                vec![("KEYWARD__AUTH__KEY_PUBLISH_SECONDS", "-1")],
                "auth.key_publish_seconds",
            ),
        ] {
            let err = Settings::from_env(&env(&pairs)).unwrap_err().to_string();
            assert!(err.contains(named), "{pairs:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        let s = Settings::from_env(&env(&[
            ("KEYWARD__AUTH__ACCESS_TTL_SECONDS", "172800"),
            ("KEYWARD__RETENTION__SESSIONS_DAYS", "3"),
            ("KEYWARD__RETENTION__EVENTS_DAYS", "36500"),
        ]))
        .unwrap();
        assert_eq!(s.retention.events_days, 36_500);
    }
}
