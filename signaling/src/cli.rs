//! The `chorus` command line: `chorus [serve] [flags]` runs the server, `chorus token …` prints an access token.
//!
//! Owns argument parsing, logging set-up, the dev-mode banner and exit codes. Configuration rules live in
//! `chorus_signaling::config`, token rules in `chorus_signaling::auth`; the server itself in `server`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};

use chorus_signaling::config::{Config, LogFormat, ServerArgs};
use chorus_signaling::dev_keys::DevKeys;

mod drain;
mod token;

use drain::{drain, DrainArgs};
use token::{token, TokenArgs};

/// How long open connections may delay exit after Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Chorus: a WebRTC selective forwarding unit.
///
/// Without a subcommand, runs the server (`chorus serve`). With no API key configured it starts in dev mode and
/// prints a key, a secret and a demo URL.
#[derive(Debug, Parser)]
#[command(name = "chorus", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServerArgs,
}

// Parsed once per process: the size of the `serve` flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default)
    Serve(ServerArgs),
    /// Print an access token (JWT) for a room and identity, signed with the configured or dev API key
    Token(TokenArgs),
    /// Tell a running node to take no new rooms (its calls go on); --wait until they have ended
    Drain(DrainArgs),
}

/// Runs the command line and returns the process exit code: 0 on success, 1 on errors, 2 on usage errors.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with success; usage errors to stderr.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Token(args)) => token(&args).map(|token| println!("{token}")),
        Some(Command::Drain(args)) => drain(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let config = Config::from_server_args(&args)?;
    init_tracing(&config.log, config.log_format)?;
    let (settings, dev) = config.into_settings()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run(settings, dev));
    // Do not hang on tasks that ignore shutdown.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn run(
    settings: chorus_signaling::server::ServerSettings,
    dev: Option<DevKeys>,
) -> anyhow::Result<()> {
    let keys = settings.keys.len();
    let drain_timeout = settings.cluster.drain_timeout;
    let server = chorus_signaling::server::start(settings).await?;
    match &dev {
        Some(dev) => print!("{}", dev_banner(dev, server.http_addr)),
        None => tracing::info!(
            "Chorus listening on http://{} ({keys} API key{})",
            server.http_addr,
            if keys == 1 { "" } else { "s" }
        ),
    }
    let mut server = server;
    tokio::select! {
        result = server.wait() => {
            // The HTTP server only ends by itself on a fatal error.
            return result.context("the HTTP server stopped");
        }
        signal = tokio::signal::ctrl_c() => {
            signal.context("cannot listen for Ctrl-C")?;
            tracing::info!("Ctrl-C received, shutting down (Ctrl-C again to quit at once)");
        }
        () = terminated() => {
            if !drain_timeout.is_zero() {
                tracing::info!(
                    "SIGTERM received: draining (no new rooms) for up to {drain_timeout:?} while calls end"
                );
                tokio::select! {
                    _ = chorus_signaling::node::drain(&server.state, drain_timeout) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            tracing::info!("shutting down");
        }
    }
    server.shutdown();
    tokio::select! {
        result = tokio::time::timeout(SHUTDOWN_GRACE, server.wait()) => match result {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
                Ok(())
            }
        },
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Resolves on SIGTERM (how Docker and Kubernetes stop a container); never elsewhere.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}

/// Logging: `RUST_LOG` if set, else the configured filter; text or JSON lines.
fn init_tracing(log: &str, format: LogFormat) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => {
            EnvFilter::try_new(&env).with_context(|| format!("invalid RUST_LOG `{env}`"))?
        }
        _ => EnvFilter::try_new(log).with_context(|| format!("invalid log filter `{log}`"))?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    }
    .map_err(|e| anyhow!("cannot set up logging: {e}"))
}

fn dev_banner(dev: &DevKeys, http_addr: SocketAddr) -> String {
    let origin = format!("http://{http_addr}");
    let stored = if dev.created {
        "generated now and stored in"
    } else {
        "stored in"
    };
    format!(
        "\n\
         ================================ Chorus dev mode ================================\n\
         No API keys are configured, so Chorus uses dev keys and listens on loopback only.\n\
         \n\
         \x20 API key:    {key}\n\
         \x20 API secret: {secret}\n\
         \x20 Demo:       {origin}/?room=demo&identity=alice\n\
         \n\
         Dev keys are {stored} {path}; delete that file for new ones.\n\
         More tokens: chorus token --room demo --identity bob\n\
         For production, configure API keys (`keys` in a config file, or --api-key/--api-secret).\n\
         =================================================================================\n\n",
        key = dev.api_key.key,
        secret = dev.api_key.secret,
        path = dev.path.display(),
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use chorus_signaling::auth::ApiKey;

    use super::*;

    const SECRET: &str = "cli-test-secret-0123456789abcdefghijkl";

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("chorus").chain(args.iter().copied()))
    }

    #[test]
    fn no_subcommand_means_serve() {
        let parsed = cli(&["--http-port", "9999"]).expect("parse");
        assert!(parsed.command.is_none());
        assert_eq!(parsed.serve.http_port, Some(9999));
        let parsed = cli(&["serve", "--workers", "2"]).expect("parse");
        assert!(matches!(parsed.command, Some(Command::Serve(ref a)) if a.workers == Some(2)));
        assert!(cli(&[]).expect("parse").command.is_none());
    }

    #[test]
    fn log_format_flag() {
        let parsed = cli(&["--log-format", "json"]).expect("parse");
        assert_eq!(parsed.serve.log_format, Some(LogFormat::Json));
        assert!(cli(&["--log-format", "xml"]).is_err());
        let config = Config::from_toml_str("log_format = \"json\"").expect("toml");
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(Config::from_toml_str("log_format = \"xml\"").is_err());
    }

    #[test]
    fn usage_errors() {
        assert!(
            cli(&["token", "--room", "r"]).is_err(),
            "identity is required"
        );
        assert!(
            cli(&["token", "--identity", "i"]).is_err(),
            "room is required"
        );
        assert!(cli(&[
            "token",
            "--room",
            "r",
            "--identity",
            "i",
            "--ttl",
            "forever"
        ])
        .is_err());
        assert!(cli(&["token", "--room", "r", "--identity", "i", "--grant", "x"]).is_err());
        assert!(cli(&[
            "--http-port",
            "1",
            "token",
            "--room",
            "r",
            "--identity",
            "i"
        ])
        .is_err());
        assert!(cli(&["--bogus"]).is_err());
        assert!(cli(&["frobnicate"]).is_err());
    }

    #[test]
    fn banner_shows_key_secret_and_demo_url() {
        let dev = DevKeys {
            api_key: ApiKey {
                key: "dev-abc".into(),
                secret: SECRET.into(),
            },
            path: PathBuf::from("/data/dev-keys.json"),
            created: true,
        };
        let banner = dev_banner(&dev, "127.0.0.1:7999".parse().expect("addr"));
        assert!(banner.contains("dev-abc"), "{banner}");
        assert!(banner.contains(SECRET), "{banner}");
        assert!(
            banner.contains("http://127.0.0.1:7999/?room=demo&identity=alice"),
            "{banner}"
        );
        assert!(banner.contains("/data/dev-keys.json"), "{banner}");
    }
}
