//! The HTTP layer: the route table, the extractors that turn a request into
//! typed inputs, and handlers that call one use case each and shape its
//! answer. The rules live in `services`.

pub(crate) mod browser;
pub mod client_addr;
pub mod cors;
pub(crate) mod doc;
pub(crate) mod edge;
pub(crate) mod extract;
pub(crate) mod handlers;
pub mod metrics;
pub mod rate_limit;
mod routes;
mod state;
pub(crate) mod table;

pub(crate) use routes::{configure, document};
pub use state::AppState;
