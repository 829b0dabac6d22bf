//! The database: the connection pool, embedded migrations, and one module of
//! small query functions per table. Nothing here knows about HTTP.

pub(crate) mod drain;
pub(crate) mod ephemeral;
pub(crate) mod event_hours;
pub(crate) mod events;
pub(crate) mod keys;
mod migrate;
mod pool;
pub(crate) mod retry;
pub mod revocations;
pub mod rotation;
pub(crate) mod rotation_queue;
pub mod schema;
pub(crate) mod services;
pub(crate) mod session_policy;
pub mod sessions;
mod store_error;
pub(crate) mod throttle;
pub(crate) mod users;

pub use migrate::{database_exists, prepare_database};
pub(crate) use pool::{build_pool, url_with_timeouts, DbPool};
pub use store_error::StoreError;
