//! keyward's integration tests: each test has a database of its own and an
//! app started in-process on port 0.

// Not every module uses every helper.
#[allow(dead_code)]
mod helpers;

mod admin;
mod basics;
mod browser;
mod e2e;
mod ephemeral;
mod hardening;
mod keyward_js;
mod logout;
mod operations;
mod readme_example;
mod refresh;
mod revocation;
mod sessions;
mod support;
mod tokens;
