//! The `slack-gitops` binary: parse arguments, run the command, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use slack_gitops::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(cli.log_format);
    match cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(cli::EXIT_ERROR)
        }
    }
}
