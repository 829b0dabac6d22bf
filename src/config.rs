//! Settings: the built-in defaults (`config/default.toml`, compiled in), then
//! an optional file named by `KEYWARD_CONFIG`, then `KEYWARD__SECTION__KEY`
//! environment variables, then `DATABASE_URL`. A bad value is reported as one
//! line naming the key.

use std::fmt;

use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// The longest lifetime or retention a setting may name: ten years, in
/// seconds (or days, for the retention settings).
const MAX_DURATION: i64 = 315_360_000;

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
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub trust_proxy: bool,
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
    pub allow_registration: bool,
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
    pub lockout_threshold: i32,
    pub lockout_seconds: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    pub sessions_days: i64,
    pub events_days: i64,
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
                .source(Some(vars)),
        );
        if let Some(url) = lookup("DATABASE_URL") {
            builder = builder
                .set_override("database.url", url)
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
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
            ("retention.sessions_days", self.retention.sessions_days),
            ("retention.events_days", self.retention.events_days),
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
        if self.rate_limit.lockout_threshold < 1 {
            return bad("rate_limit.lockout_threshold", "must be at least 1");
        }
        if self.rate_limit.per_ip_per_minute < 1 {
            return bad("rate_limit.per_ip_per_minute", "must be at least 1");
        }
        if self.database.pool_size == Some(0) {
            return bad("database.pool_size", "must be at least 1");
        }
        if self.database.connect_timeout_ms < 1 {
            return bad("database.connect_timeout_ms", "must be at least 1");
        }
        if let Some(secret) = &auth.jwt_secret {
            if auth.algorithm != Algorithm::HS256 {
                return bad(
                    "auth.jwt_secret",
                    "can only be set with auth.algorithm = HS256",
                );
            }
            if secret.expose().len() < 32 {
                return bad("auth.jwt_secret", "must be at least 32 bytes long");
            }
        }
        if self.server.host.trim().is_empty() {
            return bad("server.host", "must not be empty");
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
        assert_eq!(s.auth.algorithm, Algorithm::HS256);
        assert!(s.auth.jwt_secret.is_none());
        assert!(s.cookie.secure);
        assert!(s.cors.allowed_origins.is_empty());
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
        ] {
            let err = Settings::from_env(&env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
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
