//! Where the settings come from: the built-in defaults
//! (`config/default.toml`, compiled in), then an optional file named by
//! `KEYWARD_CONFIG`, then `KEYWARD__SECTION__KEY` environment variables,
//! then `DATABASE_URL`; the result is checked by `validate`.

use super::{Algorithm, ConfigError, Settings};

const DEFAULTS: &str = include_str!("../../config/default.toml");

impl Settings {
    /// The layered settings of this process (defaults, file, environment).
    pub(crate) fn load() -> Result<Self, ConfigError> {
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
    pub(crate) fn port_is_configured(env: &[(String, String)]) -> bool {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env as env;

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
