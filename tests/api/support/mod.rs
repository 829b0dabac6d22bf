//! Support code the tests share, one file per subject.

pub mod client_page;
