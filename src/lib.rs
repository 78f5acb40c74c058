//! slack-gitops: Slack identity as code.
//!
//! Who is in which Slack usergroup and channel, who has a Slack account at all, and how
//! far one sync may go, live as YAML in a git repository. This crate validates that YAML,
//! plans the changes against live Slack, and applies merged commits within the limits the
//! repository declares. See `ARCHITECTURE.md` for the map of modules and their invariants.

// The pure core is its own package; its modules are re-exported here so that the shell
// names them as it always has (`crate::plan`, `slack_gitops::config`).
pub use slack_gitops_core::{adopt, config, diagnostic, model, plan, policy, rego, render, review};

pub mod adoption;
pub mod apply;
pub mod cli;
pub mod clock;
pub mod controller;
pub mod doctor;
pub mod export;
pub mod gitops;
pub mod identity;
pub mod mirror;
pub mod pipeline;
pub mod slack;
pub mod store;
pub mod tls;
