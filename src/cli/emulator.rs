//! `emulator`, and the built-in emulator of the `--emulator` demo: the only code of the
//! product that starts the fake Slack.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_OK, shutdown_signal};
use crate::pipeline;
use slack_emulator as emulator;

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// The seed: workspaces, people, usergroups, channels, IdP groups, apps, tokens.
    #[arg(long)]
    seed: PathBuf,
    /// Where to listen. Loopback by default; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8765")]
    listen: std::net::SocketAddr,
    /// Keep state in this file across restarts (written atomically).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Run every clock (rate limits, Retry-After, delays) this many times faster.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
}

/// `emulator`: serves until Ctrl-C or SIGTERM.
pub(super) fn run(args: &EmulatorArgs) -> anyhow::Result<u8> {
    let (seed, listen, time_scale) = (&args.seed, args.listen, args.time_scale);
    let state = args.state.clone();
    use std::io::Write;
    anyhow::ensure!(
        time_scale.is_finite() && time_scale > 0.0,
        "--time-scale must be a positive number"
    );
    let world = emulator::read_world(seed)?;
    let options = emulator::Options {
        time_scale,
        state_path: state,
        ..emulator::Options::default()
    };
    let emulator = emulator::Emulator::new(world, options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {listen}: {error}"))?;
        let address = listener.local_addr()?;
        println!(
            "slack-gitops emulator listening on http://{address} (Web API: http://{address}/api/, SCIM: http://{address}/scim/v2/)"
        );
        std::io::stdout().flush()?;
        emulator::serve(listener, emulator, shutdown_signal()).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(EXIT_OK)
}

/// Starts the built-in emulator seeded from `seed` (the `--emulator` demo), its clocks
/// scaled like the client's, and points `connect` at it with the seed's own tokens for
/// when the environment has none. Slack is served for as long as the value lives.
pub(super) fn start_built_in(
    seed: &Path,
    runtime: &tokio::runtime::Runtime,
    connect: &mut pipeline::ConnectOptions,
) -> anyhow::Result<emulator::InProcess> {
    use emulator::world::TokenKind;
    let world = emulator::read_world(seed)?;
    connect.fallback = pipeline::Fallback {
        admin: world.token_with(TokenKind::User, "admin"),
        bot: world.token_with(TokenKind::Bot, "channels:read"),
    };
    let options = emulator::Options {
        time_scale: connect.time_scale,
        ..emulator::Options::default()
    };
    let built_in = runtime.block_on(emulator::InProcess::start(world, options))?;
    connect.slack_url = Some(built_in.url.clone());
    Ok(built_in)
}
