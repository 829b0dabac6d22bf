//! Support code the tests share, one file per subject.

pub mod app;
pub mod browser;
pub mod cli;
pub mod client;
pub mod client_page;
pub mod db;
pub mod proxy;
pub mod services;
pub mod tokens;
