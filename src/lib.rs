//! slack-gitops: Slack identity as code.
//!
//! Who is in which Slack usergroup and channel, who has a Slack account at all, and how
//! far one sync may go, live as YAML in a git repository. This crate validates that YAML,
//! plans the changes against live Slack, and applies merged commits within the limits the
//! repository declares. See `ARCHITECTURE.md` for the map of modules and their invariants.

pub mod apply;
pub mod cli;
pub mod config;
pub mod controller;
pub mod diagnostic;
pub mod emulator;
pub mod export;
pub mod gitops;
pub mod identity;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod render;
pub mod review;
pub mod slack;
pub mod store;
