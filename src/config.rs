//! Settings: the built-in defaults (`config/default.toml`, compiled in), then
//! an optional file named by `KEYWARD_CONFIG`, then `KEYWARD__SECTION__KEY`
//! environment variables, then `DATABASE_URL`. A bad value is reported as one
//! line naming the key.

use std::fmt;

use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// The longest lifetime a setting may name: ten years, in seconds.
const MAX_DURATION: i64 = 315_360_000;

/// The largest `auth.max_pending_hashes`: each waiting check may hold a
/// blocking thread, and far more than this would only queue longer.
const MAX_PENDING_HASHES: u32 = 65_536;
/// The largest session cap: far beyond any real user's devices.
const MAX_SESSIONS_PER_USER: i64 = 100_000;
/// The longest retention, in days (API.md section 5): a hundred years.
const MAX_RETENTION_DAYS: i64 = 36_500;

/// Every setting keyward reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub cookie: CookieSettings,
    pub cors: CorsSettings,
    pub rate_limit: RateLimitSettings,
    pub retention: RetentionSettings,
    pub revocation: RevocationSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub trust_proxy: bool,
    /// The proxies whose `X-Forwarded-For` entries are believed (CIDRs, or
    /// single addresses), used only with `trust_proxy`. Parsed by
    /// [`Settings::trusted_proxy_nets`].
    pub trusted_proxies: Vec<String>,
    /// The base of the absolute URLs in the discovery document; unset (or
    /// blank): `http://<host>:<port>` as bound.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl ServerSettings {
    /// `server.public_url` without its trailing `/`, if set and not blank.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url
            .as_deref()
            .map(|url| url.trim().trim_end_matches('/'))
            .filter(|url| !url.is_empty())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: Secret,
    pub pool_size: Option<u32>,
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Algorithm {
    HS256,
    EdDSA,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub algorithm: Algorithm,
    pub jwt_secret: Option<Secret>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl_seconds: i64,
    pub refresh_ttl_seconds: i64,
    pub session_max_seconds: i64,
    pub reuse_grace_seconds: i64,
    pub leeway_seconds: i64,
    pub bcrypt_cost: u32,
    /// How many password checks may wait for bcrypt at once; unset means
    /// 16 per core (see [`Settings::max_pending_hashes`]).
    pub max_pending_hashes: Option<u32>,
    pub allow_registration: bool,
    /// At most this many live sessions per user; a login beyond it revokes
    /// the least recently used one. 0: no limit.
    pub max_sessions_per_user: i64,
    /// How long a rotated-in key is published before it signs (the JWKS's
    /// `max-age`).
    pub key_publish_seconds: i64,
}

impl AuthSettings {
    /// The algorithm tokens are signed with: HS256 whenever a secret is
    /// set (API.md section 5: implied by `auth.jwt_secret`), else
    /// `auth.algorithm`.
    pub fn signing_algorithm(&self) -> Algorithm {
        if self.jwt_secret.is_some() {
            Algorithm::HS256
        } else {
            self.algorithm
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CookieSettings {
    pub secure: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CorsSettings {
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub per_ip_per_minute: u32,
    pub refresh_per_session_per_minute: u32,
    pub lockout_threshold: i32,
    pub lockout_seconds: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    pub sessions_days: i64,
    pub events_days: i64,
}

/// How each instance keeps its revocation set current (API.md section 3).
#[derive(Debug, Clone, Deserialize)]
pub struct RevocationSettings {
    /// Besides the notifications, re-read the log this often.
    pub poll_seconds: u64,
    /// Refuse access tokens with `503` once the set could not be confirmed
    /// current for this long; 0 never does.
    pub max_staleness_seconds: u64,
}

/// A value that must never reach a log: `Debug` prints `[redacted]`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A setting that cannot be used; `Display` is the one line start-up prints.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// The layered settings of this process (defaults, file, environment).
    pub fn load() -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::from_env(&env)
    }

    /// The built-in defaults alone, for tests and tools.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::from_env(&[])
    }

    /// Builds settings from an explicit environment, so tests need not touch
    /// the process's own.
    pub fn from_env(env: &[(String, String)]) -> Result<Self, ConfigError> {
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = lookup("KEYWARD_CONFIG") {
            builder = builder.add_source(config::File::with_name(&path).required(true));
        }
        let vars: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("KEYWARD__"))
            .cloned()
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("KEYWARD")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("cors.allowed_origins")
                .with_list_parse_key("server.trusted_proxies")
                .source(Some(vars)),
        );
        if let Some(url) = lookup("DATABASE_URL") {
            builder = builder
                .set_override("database.url", url)
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        let mut settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
        if settings.auth.jwt_secret.is_some() {
            settings.auth.algorithm = Algorithm::HS256;
        }
        Ok(settings)
    }

    /// Whether `server.port` is set by `KEYWARD__SERVER__PORT` or the
    /// `KEYWARD_CONFIG` file, rather than left at the built-in default
    /// (`serve --ephemeral` then picks a free port).
    pub fn port_is_configured(env: &[(String, String)]) -> bool {
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        if lookup("KEYWARD__SERVER__PORT").is_some() {
            return true;
        }
        lookup("KEYWARD_CONFIG").is_some_and(|path| {
            config::Config::builder()
                .add_source(config::File::with_name(&path).required(true))
                .build()
                .is_ok_and(|c| c.get::<u16>("server.port").is_ok())
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
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

    /// `server.trusted_proxies` as networks; a bare address is a network of
    /// that one address.
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.server
            .trusted_proxies
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!(
                            "server.trusted_proxies: {entry:?} is not a CIDR such as 10.0.0.0/8 or an IP address"
                        ))
                    })
            })
            .collect()
    }

    /// How many password checks may wait for bcrypt at once: configured,
    /// or 16 per core.
    pub fn max_pending_hashes(&self) -> usize {
        self.auth.max_pending_hashes.map_or_else(
            || 16 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n as usize,
        )
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

    /// The pool size: configured, or eight connections per core (at least
    /// 16). Refreshes spend most of their time waiting on the commit, and
    /// more transactions in flight share each WAL flush: on 2 cores with 32
    /// refreshing clients the load benchmark measured 1,600-2,400
    /// refreshes/s with 8 connections and 2,600-3,600/s with 16 (runs side
    /// by side; 4 connections gave about 1,600/s even with 8 clients).
    pub fn pool_size(&self) -> u32 {
        self.database.pool_size.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
            (cores * 8).max(16)
        })
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

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::defaults().unwrap();
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.auth.access_ttl_seconds, 900);
        assert_eq!(s.auth.refresh_ttl_seconds, 86400);
        assert_eq!(s.auth.session_max_seconds, 2_592_000);
        assert_eq!(s.auth.reuse_grace_seconds, 10);
        assert_eq!(s.auth.leeway_seconds, 5);
        assert_eq!(s.auth.bcrypt_cost, 12);
        assert_eq!(s.auth.algorithm, Algorithm::EdDSA);
        assert_eq!(s.auth.signing_algorithm(), Algorithm::EdDSA);
        assert_eq!(s.auth.key_publish_seconds, 300);
        assert!(s.auth.jwt_secret.is_none());
        assert!(s.cookie.secure);
        assert!(s.cors.allowed_origins.is_empty());
        assert_eq!(s.auth.max_sessions_per_user, 0);
        assert_eq!(s.revocation.poll_seconds, 2);
        assert_eq!(s.revocation.max_staleness_seconds, 0);
        assert_eq!(s.rate_limit.refresh_per_session_per_minute, 30);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(s.max_pending_hashes(), 16 * cores);
        assert_eq!(
            s.trusted_proxy_nets().unwrap(),
            vec![
                "127.0.0.1/32".parse::<ipnet::IpNet>().unwrap(),
                "::1/128".parse().unwrap()
            ]
        );
    }

    #[test]
    fn trusted_proxies_come_from_a_list_in_the_environment() {
        let s = Settings::from_env(&env(&[(
            "KEYWARD__SERVER__TRUSTED_PROXIES",
            "10.0.0.0/8, 192.0.2.7,2001:db8::/32",
        )]))
        .unwrap();
        let nets: Vec<String> = s
            .trusted_proxy_nets()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
    }

    #[test]
    fn environment_overrides_defaults() {
        let s = Settings::from_env(&env(&[
            ("KEYWARD__AUTH__ACCESS_TTL_SECONDS", "60"),
            (
                "KEYWARD__CORS__ALLOWED_ORIGINS",
                "https://a.example,https://b.example",
            ),
            ("DATABASE_URL", "postgres://x@y/z"),
        ]))
        .unwrap();
        assert_eq!(s.auth.access_ttl_seconds, 60);
        assert_eq!(s.cors.allowed_origins.len(), 2);
        assert_eq!(s.database.url.expose(), "postgres://x@y/z");
    }

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
    fn public_url_is_trimmed_and_blank_means_unset() {
        let s = Settings::from_env(&env(&[(
            "KEYWARD__SERVER__PUBLIC_URL",
            "https://auth.example.com/base/",
        )]))
        .unwrap();
        assert_eq!(s.server.public_url(), Some("https://auth.example.com/base"));
        let s = Settings::from_env(&env(&[("KEYWARD__SERVER__PUBLIC_URL", " ")])).unwrap();
        assert_eq!(s.server.public_url(), None);
        assert_eq!(Settings::defaults().unwrap().server.public_url(), None);
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

    #[test]
    fn a_secret_implies_hs256() {
        let s = Settings::from_env(&env(&[(
            "KEYWARD__AUTH__JWT_SECRET",
            "a-very-secret-value-of-at-least-32-bytes",
        )]))
        .unwrap();
        assert_eq!(s.auth.algorithm, Algorithm::HS256);
        assert_eq!(s.auth.signing_algorithm(), Algorithm::HS256);
    }

    #[test]
    fn a_port_counts_as_configured_from_the_environment_or_the_file() {
        assert!(!Settings::port_is_configured(&env(&[])));
        assert!(Settings::port_is_configured(&env(&[(
            "KEYWARD__SERVER__PORT",
            "9000"
        )])));
        let dir = std::env::temp_dir().join(format!("keyward-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let with_port = dir.join("with_port.toml");
        std::fs::write(&with_port, "[server]\nport = 9000\n").unwrap();
        let without = dir.join("without.toml");
        std::fs::write(&without, "[auth]\nbcrypt_cost = 4\n").unwrap();
        let file = |path: &std::path::Path| env(&[("KEYWARD_CONFIG", path.to_str().unwrap())]);
        assert!(Settings::port_is_configured(&file(&with_port)));
        assert!(!Settings::port_is_configured(&file(&without)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Settings::from_env(&env(&[(
            "KEYWARD__AUTH__JWT_SECRET",
            "a-very-secret-value-of-at-least-32-bytes",
        )]))
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("a-very-secret"), "{shown}");
    }
}
