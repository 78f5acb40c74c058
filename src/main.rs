//! The `slack-gitops` binary: parse arguments, run the command, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use slack_gitops::cli::{self, Cli};

/// mimalloc: parsing a large identity export and reading Slack allocate millions of
/// small strings; glibc's malloc spent a fifth of `validate`'s time at 200,000 people.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
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
