//! The pure core of slack-gitops: what a config repository says, what Slack and the
//! identity provider hold, the plan between them, the guardrails' verdict, and how each
//! is rendered.
//!
//! Nothing here does I/O: file contents in, `(Desired, Vec<Diagnostic>)` out;
//! `Desired + Directory + Live` in, `Plan` out. The package's dependencies are data
//! crates only, and its `clippy.toml` disallows file system, environment, clock and
//! process calls, so the compiler and clippy hold it to that. The I/O shell (Slack,
//! identity, git, the store, apply, the controller) is the `slack-gitops` package.

pub mod adopt;
pub mod config;
pub mod diagnostic;
pub mod model;
pub mod plan;
pub mod policy;
pub mod rego;
pub mod render;
pub mod review;
