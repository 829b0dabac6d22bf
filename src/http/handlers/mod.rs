//! The handlers, one module per part of the contract. Each reads its typed
//! inputs from extractors, calls one use case, and shapes the answer.

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod ephemeral;
pub(crate) mod feed;
pub(crate) mod introspection;
pub(crate) mod policy;
pub(crate) mod register;
pub(crate) mod service;
pub(crate) mod web_app;
