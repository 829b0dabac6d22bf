//! keyward's integration tests: each test has a database of its own and an
//! app started in-process on port 0.

// A panic in a test or in its setup is that test failing, with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod basics;
mod browser;
mod cleanup;
mod client_address;
mod clocks;
mod convergence;
mod deadlocks;
mod e2e;
mod ephemeral;
mod exits;
mod failover;
mod floods;
mod hostile_input;
mod introspection;
mod keys;
mod keyward_js;
mod lockout;
mod log_secrets;
mod logout;
mod operations;
mod outage;
mod per_ip_limit;
mod readme_example;
mod refresh;
mod resource_server;
mod revocation;
mod revocation_feed;
mod revoke_all;
mod rotation_queue;
mod services;
mod session_policy;
mod sessions;
mod stats;
mod support;
mod tokens;
