//! Renderings for people and machines. Pure: data in, text out, byte-identical for the
//! same input. Whether to use colour is a parameter, never a look at the terminal.

pub mod adoption;
pub mod diagnostics;
pub mod plan;
pub mod review;

/// The output formats the commands share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For terminals: cargo-style snippets, colour on a TTY.
    Text,
    /// GitHub Actions workflow commands: annotations on the PR's lines.
    Github,
    /// A versioned JSON document, for machines.
    Json,
}
