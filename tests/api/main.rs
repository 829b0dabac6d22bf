//! keyward's integration tests: each test has a database of its own and an
//! app started in-process on port 0.

mod admin;
mod basics;
mod browser;
mod client_address;
mod clocks;
mod convergence;
mod deadlocks;
mod e2e;
mod ephemeral;
mod exits;
mod failover;
mod floods;
mod hardening;
mod introspection;
mod keys;
mod keyward_js;
mod lockout;
mod logout;
mod operations;
mod readme_example;
mod refresh;
mod resource_server;
mod revocation;
mod revocation_feed;
mod revoke_all;
mod services;
mod session_policy;
mod sessions;
mod stats;
mod support;
mod tokens;
