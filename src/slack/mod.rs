//! Talking to Slack: the one place that builds HTTP requests to Slack's SCIM and Web APIs.

pub mod client;
pub use crate::model::limits;
pub mod reader;
pub mod wire;
pub mod writer;
