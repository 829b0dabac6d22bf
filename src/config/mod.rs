//! Every setting keyward reads (`Settings` and its sections), values
//! derived from them, and `Secret`, whose `Debug` hides it. Where the values
//! come from is `load`; the rules they must meet, `validate`.

use std::fmt;

use serde::Deserialize;

mod load;
mod validate;

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
    /// `Settings::trusted_proxy_nets`.
    pub trusted_proxies: Vec<String>,
    /// The base of the absolute URLs in the discovery document; unset (or
    /// blank): `http://<host>:<port>` as bound.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl ServerSettings {
    /// `server.public_url` without its trailing `/`, if set and not blank.
    pub(crate) fn public_url(&self) -> Option<&str> {
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
    /// 16 per core (see `Settings::max_pending_hashes`).
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
    pub(crate) fn signing_algorithm(&self) -> Algorithm {
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
    /// `server.trusted_proxies` as networks; a bare address is a network of
    /// that one address.
    pub(crate) fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
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
    pub(crate) fn max_pending_hashes(&self) -> usize {
        self.auth.max_pending_hashes.map_or_else(
            || 16 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n as usize,
        )
    }

    /// The pool size: configured, or eight connections per core (at least
    /// 16). Refreshes spend most of their time waiting on the commit, and
    /// more transactions in flight share each WAL flush, so more
    /// connections than cores pay off.
    pub(crate) fn pool_size(&self) -> u32 {
        self.database.pool_size.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
            (cores * 8).max(16)
        })
    }
}

/// An environment of these pairs, for tests.
#[cfg(test)]
fn test_env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
