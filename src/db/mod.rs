//! The database: the connection pool, embedded migrations, and one module of
//! small query functions per table. Nothing here knows about HTTP.

pub mod drain;
pub mod ephemeral;
pub mod events;
pub mod keys;
mod migrate;
mod pool;
pub mod retry;
pub mod revocations;
pub mod schema;
pub mod services;
pub mod session_policy;
pub mod sessions;
mod store_error;
pub mod throttle;
pub mod users;

pub use keys::KEYS_CHANNEL;
pub use migrate::{database_exists, prepare_database, url_for_database, MIGRATIONS};
pub use pool::{build_pool, url_with_timeouts, DbConn, DbPool, Manager, STATEMENT_TIMEOUT_MS};
pub use revocations::REVOCATION_CHANNEL;
pub use store_error::StoreError;
