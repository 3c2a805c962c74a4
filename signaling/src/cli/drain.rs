//! `chorus drain`: tells a running node to take no new rooms (`POST /v1/node/drain`, signed with the configured
//! API key like `chorus token --admin`) and, with `--wait`, waits until its last room has closed. Kubernetes runs
//! it as the pod's preStop hook.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;

use chorus_signaling::config::ConfigArgs;

/// How often `--wait` asks the node how many rooms it still has.
const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub(super) struct DrainArgs {
    /// The node's HTTP URL
    #[arg(
        long,
        value_name = "URL",
        env = "CHORUS_DRAIN_URL",
        default_value = "http://127.0.0.1:7880"
    )]
    url: String,
    /// Wait until the node hosts no room (its calls have ended)
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this long, e.g. 30m (the node keeps draining) [default: no limit]
    #[arg(long, value_name = "DURATION", value_parser = super::token::parse_ttl, requires = "wait")]
    timeout: Option<Duration>,
    #[command(flatten)]
    config: ConfigArgs,
}

/// What `/v1/node` answers (the fields this command reads).
#[derive(Debug, Deserialize)]
struct NodeState {
    id: String,
    draining: bool,
    rooms: u64,
}

pub(super) fn drain(args: &DrainArgs) -> anyhow::Result<()> {
    let token = super::token::admin_token(&args.config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(args, &token))
}

async fn run(args: &DrainArgs, token: &str) -> anyhow::Result<()> {
    chorus_signaling::tls::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build an HTTP client")?;
    let base = args.url.trim_end_matches('/');
    let state: NodeState = call(http.post(format!("{base}/v1/node/drain")), token).await?;
    println!(
        "node {} is draining ({}): {} room{} open",
        state.id,
        if state.draining { "no new rooms" } else { "?" },
        state.rooms,
        if state.rooms == 1 { "" } else { "s" }
    );
    if !args.wait {
        return Ok(());
    }
    let started = Instant::now();
    let mut rooms = state.rooms;
    while rooms > 0 {
        if args.timeout.is_some_and(|t| started.elapsed() >= t) {
            bail!(
                "{rooms} room(s) still open after {:?}; the node keeps draining",
                started.elapsed()
            );
        }
        tokio::time::sleep(POLL).await;
        let now: NodeState = call(http.get(format!("{base}/v1/node")), token).await?;
        if now.rooms != rooms {
            println!(
                "{} room{} open",
                now.rooms,
                if now.rooms == 1 { "" } else { "s" }
            );
        }
        rooms = now.rooms;
    }
    println!("node {} hosts no rooms", state.id);
    Ok(())
}

async fn call(request: reqwest::RequestBuilder, token: &str) -> anyhow::Result<NodeState> {
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .context("cannot reach the node")?;
    let status = response.status();
    let body = response
        .text()
        .await
        .context("cannot read the node's answer")?;
    if !status.is_success() {
        bail!("the node answered {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("unexpected answer from the node: {body}"))
}
