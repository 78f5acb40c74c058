//! `import`: adopt an existing org into a config repository.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{EXIT_OK, SlackArgs, emit, environment, runtime};
use crate::adopt::{Options, SplitBy};
use crate::adoption::{ImportOptions, import};
use crate::pipeline;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The config repository: a folder with a `slack-gitops.yaml` naming the org and the
    /// identity source. Mappings are written to `mappings/`, and a starting policy to
    /// `policies/default.yaml` when it has none.
    dir: PathBuf,
    /// How mappings are split into files: by the first word of a handle or channel name
    /// (`eng-backend` -> `mappings/eng.yaml`), by workspace, or into one file.
    #[arg(long, value_enum, default_value_t = SplitArg::Prefix)]
    split_by: SplitArg,
    /// Import only these (repeatable): `@eng*` usergroups by handle, `#eng-*` channels by
    /// name, `eng*` both. Usergroups and channels the repository already maps are
    /// skipped, so an org adopts piece by piece.
    #[arg(long)]
    only: Vec<String>,
    /// Import again what an earlier import wrote: its files (never hand-written ones)
    /// are set aside, their usergroups and channels imported afresh. Without it, a file
    /// is never overwritten: a taken name gets a `-2` (`-3`...) suffix.
    #[arg(long)]
    force: bool,
    /// `text` or `json` (the report, on standard output).
    #[arg(long, default_value = "text")]
    format: String,
    #[command(flatten)]
    slack: SlackArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SplitArg {
    Prefix,
    Workspace,
    One,
}

pub(super) fn run(args: &ImportArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(
        matches!(args.format.as_str(), "text" | "json"),
        "--format must be text or json"
    );
    let connect = pipeline::ConnectOptions {
        every_group: true,
        ..args.slack.connect()
    };
    let connection = pipeline::connect(&args.dir, &connect, &environment)?;
    let options = ImportOptions {
        adopt: Options {
            split_by: match args.split_by {
                SplitArg::Prefix => SplitBy::Prefix,
                SplitArg::Workspace => SplitBy::Workspace,
                SplitArg::One => SplitBy::One,
            },
            only: args.only.clone(),
            taken: Default::default(),
            protect: Vec::new(),
        },
        force: args.force,
    };
    let report = runtime()?.block_on(import(&args.dir, &connection, &options))?;
    let out = match args.format.as_str() {
        "json" => crate::render::adoption::json(&report),
        _ => crate::render::adoption::text(&report),
    };
    emit(&out)?;
    Ok(EXIT_OK)
}
