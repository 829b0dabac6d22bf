//! keyward: a small, fast authentication server. Users sign in for a pair of
//! JWTs: a short-lived access token verified without the database, and a
//! refresh token whose `jti` rotates in a PostgreSQL `sessions` row.

pub mod cleanup;
pub mod cli;
pub mod clock;
pub(crate) mod clock_sync;
pub mod config;
pub mod db;
pub mod domain;
pub(crate) mod ephemeral;
pub(crate) mod error;
pub mod http;
pub mod listener;
pub mod services;
pub mod startup;
