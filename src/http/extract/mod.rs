//! Extractors: what a handler takes from a request, already checked.

pub(crate) mod access;
pub(crate) mod body;
pub(crate) mod client;
pub(crate) mod presented_refresh;
pub(crate) mod service;

pub(crate) use access::{Admin, Authenticated};
pub(crate) use body::Body;
pub(crate) use client::{Client, IdInPath};
pub(crate) use presented_refresh::PresentedRefresh;
pub(crate) use service::ServiceClient;
