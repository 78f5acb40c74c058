//! The `slack-gitops` binary: parse arguments, run the command, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use slack_gitops::cli::{self, Cli};

/// mimalloc: parsing a large identity export and reading Slack allocate millions of
/// small strings; glibc's malloc spent a fifth of `validate`'s time at 200,000 people.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sets libgit2's connect and read timeouts ([`git::timeouts`]), which it otherwise
/// leaves unbounded: a remote that accepts and never answers would hold the controller's
/// sync loop (and with it drift ticks and leavers) or `doctor` for good. The one `unsafe`
/// in the project: libgit2's options are plain C globals, and git2 marks their setters
/// unsafe because a write racing a read is undefined. Here no other thread exists yet.
///
/// [`git::timeouts`]: slack_gitops::controller::git::timeouts
#[allow(unsafe_code)]
fn bound_git_connections() {
    let (connect, server) = slack_gitops::controller::git::timeouts();
    let millis = |d: std::time::Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: called first thing in `main`, before any thread that could read libgit2's
    // options exists.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(millis(connect));
        let _ = git2::opts::set_server_timeout_in_milliseconds(millis(server));
    }
}

fn main() -> ExitCode {
    bound_git_connections();
    let cli = Cli::parse();
    cli::init_logging(cli.log_format);
    match cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        // `slack-gitops history ... | head`: the reader has what it wanted.
        Err(error) if cli::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(cli::EXIT_ERROR)
        }
    }
}
