//! keyward's rules, free of HTTP and SQL: usernames, passwords, tokens and
//! the set of revoked sessions.

pub mod bcrypt_threads;
pub mod claims;
pub mod device;
pub mod feed_cursor;
pub mod key_set;
pub mod password;
pub mod revocation;
pub mod revocation_feed;
pub mod service_secret;
pub mod token_cache;
pub mod tokens;
pub mod username;

pub use password::Password;
pub use username::Username;
