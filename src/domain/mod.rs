//! keyward's rules, free of HTTP and SQL: usernames, passwords, tokens and
//! the set of revoked sessions.

pub(crate) mod bcrypt_threads;
pub(crate) mod claims;
pub(crate) mod device;
pub(crate) mod ed25519_keys;
pub(crate) mod feed_cursor;
pub(crate) mod issued_tokens;
pub(crate) mod key_set;
pub(crate) mod password;
pub(crate) mod revocation;
pub(crate) mod revocation_feed;
pub(crate) mod service_secret;
pub(crate) mod token_cache;
pub(crate) mod tokens;
pub(crate) mod username;

pub use password::Password;
pub(crate) use username::Username;
