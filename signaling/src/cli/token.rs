//! `chorus token`: prints an access token signed with the configured key, or the dev key of the data dir; with
//! `--admin`, a server-API token for the `/v1` REST API.
//!
//! Owns the token subcommand's flags and their parsing (`--ttl`, `--grant`). Token rules live in
//! `chorus_signaling::auth`; where keys come from in `chorus_signaling::config` and `dev_keys`.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;

use chorus_signaling::auth::{now_unix_secs, Grants, KeyStore, TokenRequest};
use chorus_signaling::config::{Config, ConfigArgs};
use chorus_signaling::dev_keys;

/// Shortest and longest `--ttl`.
const TTL_MIN: Duration = Duration::from_secs(1);
const TTL_MAX: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Args)]
pub(super) struct TokenArgs {
    /// Room the token may join
    #[arg(long, required_unless_present = "admin")]
    room: Option<String>,
    /// Participant identity (1-128 characters)
    #[arg(long, required_unless_present = "admin")]
    identity: Option<String>,
    /// Print a server-API token (`Authorization: Bearer` for /v1) with every admin grant instead
    #[arg(long, conflicts_with_all = ["room", "identity", "name", "grants"])]
    admin: bool,
    /// Display name
    #[arg(long)]
    name: Option<String>,
    /// Lifetime, e.g. 30s, 10m, 1h, 2d or 1h30m (1s to 30d)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
    /// Set a grant: canPublish, canSubscribe, canPublishData, roomAdmin or hidden, optionally =true/=false
    /// (repeatable; defaults: the first three true, the others false)
    #[arg(long = "grant", value_name = "GRANT[=BOOL]", value_parser = parse_grant)]
    grants: Vec<GrantSetting>,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Builds the token for `chorus token`. Keys: `--api-key` + `--api-secret`; else the configured keys (`--api-key`
/// alone picks one of them); else the dev key of the data dir, which is never created here.
pub(super) fn token(args: &TokenArgs) -> anyhow::Result<String> {
    let mut config_args = args.config.clone();
    let chosen_key = if config_args.api_secret.is_none() {
        config_args.api_key.take()
    } else {
        None
    };
    let config = Config::load(&config_args)?;
    let keys = if config.keys.is_empty() {
        let dev =
            dev_keys::load(&config.data_dir)?.ok_or_else(|| no_keys_error(&config.data_dir))?;
        eprintln!(
            "using dev key {} from {}",
            dev.api_key.key,
            dev.path.display()
        );
        KeyStore::new(vec![dev.api_key])
            .with_context(|| format!("invalid dev keys in {}", dev.path.display()))?
    } else {
        KeyStore::new(config.keys).context("invalid API keys in the configuration")?
    };
    if let Some(key) = &chosen_key {
        if keys.get(key).is_none() {
            let known: Vec<&str> = keys.key_ids().collect();
            bail!(
                "API key `{key}` is not configured (configured: {}); pass --api-secret with it to use a new key",
                known.join(", ")
            );
        }
    }
    if args.admin {
        return Ok(keys.issue_admin_at(chosen_key.as_deref(), args.ttl, now_unix_secs())?);
    }
    let (Some(room), Some(identity)) = (&args.room, &args.identity) else {
        bail!("--room and --identity are required (or --admin)");
    };
    let mut grants = Grants::default();
    for setting in &args.grants {
        setting.apply(&mut grants);
    }
    let req = TokenRequest {
        api_key: chosen_key,
        identity: identity.clone(),
        name: args.name.clone(),
        room: room.clone(),
        ttl: args.ttl,
        grants,
        not_before: None,
    };
    Ok(keys.issue(&req)?)
}

/// A server-API token with every admin grant, valid for an hour, signed like `chorus token --admin`.
pub(super) fn admin_token(config: &ConfigArgs) -> anyhow::Result<String> {
    token(&TokenArgs {
        room: None,
        identity: None,
        admin: true,
        name: None,
        ttl: Duration::from_secs(3600),
        grants: Vec::new(),
        config: config.clone(),
    })
}

fn no_keys_error(data_dir: &Path) -> anyhow::Error {
    anyhow!(
        "no API key configured and no dev keys in {}; start `chorus` once in dev mode or pass --api-key/--api-secret",
        data_dir.display()
    )
}

/// Parses a token lifetime: one or more `<number><unit>` with unit `s`, `m`, `h` or `d` (`90s`, `1h30m`), 1 s to
/// 30 days.
pub(super) fn parse_ttl(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration `{text}`: use e.g. 30s, 10m, 1h, 2d or 1h30m");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_end = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .map_or(rest.len(), |i| digits + i);
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let unit_secs = match &rest[digits..unit_end] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 24 * 3600,
            _ => return Err(invalid()),
        };
        total = number
            .checked_mul(unit_secs)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(invalid)?;
        rest = &rest[unit_end..];
    }
    let ttl = Duration::from_secs(total);
    if ttl < TTL_MIN || ttl > TTL_MAX {
        return Err(format!("duration `{text}` is out of range: 1s to 30d"));
    }
    Ok(ttl)
}

/// One `--grant NAME[=BOOL]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GrantSetting {
    grant: Grant,
    value: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    CanPublish,
    CanSubscribe,
    CanPublishData,
    RoomAdmin,
    Hidden,
}

impl GrantSetting {
    fn apply(self, grants: &mut Grants) {
        let field = match self.grant {
            Grant::CanPublish => &mut grants.can_publish,
            Grant::CanSubscribe => &mut grants.can_subscribe,
            Grant::CanPublishData => &mut grants.can_publish_data,
            Grant::RoomAdmin => &mut grants.room_admin,
            Grant::Hidden => &mut grants.hidden,
        };
        *field = self.value;
    }
}

/// Parses `canPublish=false`, `hidden`, `room_admin=yes`… (names in camelCase or snake_case, any case).
fn parse_grant(text: &str) -> Result<GrantSetting, String> {
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name.trim(), Some(value.trim())),
        None => (text.trim(), None),
    };
    let normalized: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    let grant = match normalized.as_str() {
        "canpublish" => Grant::CanPublish,
        "cansubscribe" => Grant::CanSubscribe,
        "canpublishdata" => Grant::CanPublishData,
        "roomadmin" => Grant::RoomAdmin,
        "hidden" => Grant::Hidden,
        _ => {
            return Err(format!(
                "unknown grant `{name}`: use canPublish, canSubscribe, canPublishData, roomAdmin or hidden"
            ))
        }
    };
    let value = match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true" | "yes" | "on" | "1") => true,
        Some("false" | "no" | "off" | "0") => false,
        Some(other) => {
            return Err(format!(
                "invalid value `{other}` for grant `{name}`: use true or false"
            ))
        }
    };
    Ok(GrantSetting { grant, value })
}
#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const SECRET: &str = "cli-test-secret-0123456789abcdefghijkl";

    fn token_args(args: &[&str]) -> TokenArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct TestCli {
            #[command(subcommand)]
            command: TestCommand,
        }
        #[derive(clap::Subcommand)]
        enum TestCommand {
            Token(TokenArgs),
        }
        let argv = std::iter::once("chorus").chain(args.iter().copied());
        match TestCli::try_parse_from(argv).expect("parse").command {
            TestCommand::Token(args) => args,
        }
    }

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(label: &str) -> Scratch {
            use rand::distr::{Alphanumeric, SampleString};
            let suffix = Alphanumeric.sample_string(&mut rand::rng(), 8);
            let dir = std::env::temp_dir().join(format!("chorus-cli-{label}-{suffix}"));
            std::fs::create_dir_all(&dir).expect("create scratch dir");
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_ttl("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(2 * 86400)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl(" 1s "), Ok(Duration::from_secs(1)));
        assert_eq!(parse_ttl("30d"), Ok(TTL_MAX));
        for bad in [
            "",
            "0s",
            "31d",
            "1",
            "h",
            "1x",
            "1.5h",
            "-1h",
            "1h 30m",
            "99999999999999999999d",
            "18446744073709551615d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grant_parsing() {
        let mut grants = Grants::default();
        for text in [
            "canPublish=false",
            "hidden",
            "room_admin=yes",
            "CANSUBSCRIBE=0",
        ] {
            parse_grant(text).expect("valid grant").apply(&mut grants);
        }
        assert_eq!(
            grants,
            Grants {
                can_publish: false,
                can_subscribe: false,
                can_publish_data: true,
                room_admin: true,
                hidden: true,
                ..Grants::default()
            }
        );
        assert!(parse_grant("canFly").is_err());
        assert!(parse_grant("hidden=maybe").is_err());
        assert!(parse_grant("").is_err());
    }

    #[test]
    fn token_with_key_flags() {
        let args = token_args(&[
            "token",
            "--room",
            "demo",
            "--identity",
            "alice",
            "--name",
            "Alice",
            "--ttl",
            "10m",
            "--grant",
            "canPublish=false",
            "--api-key",
            "k1",
            "--api-secret",
            SECRET,
            "--data-dir",
            "/nonexistent",
        ]);
        let token = token(&args).expect("token");
        let keys = KeyStore::new(vec![chorus_signaling::auth::ApiKey {
            key: "k1".into(),
            secret: SECRET.into(),
        }])
        .expect("keys");
        let verified = keys.verify(&token).expect("verifies");
        assert_eq!(verified.room, "demo");
        assert_eq!(verified.identity, "alice");
        assert_eq!(verified.name, "Alice");
        assert!(!verified.grants.can_publish);
        assert!(verified.grants.can_subscribe);
        let now = chorus_signaling::auth::now_unix_secs();
        assert!(verified.expires_at >= now + 590 && verified.expires_at <= now + 610);
    }

    #[test]
    fn admin_token_carries_admin_grants() {
        let args = token_args(&[
            "token",
            "--admin",
            "--api-key",
            "k1",
            "--api-secret",
            SECRET,
            "--data-dir",
            "/nonexistent",
        ]);
        let token = token(&args).expect("token");
        let keys = KeyStore::new(vec![chorus_signaling::auth::ApiKey {
            key: "k1".into(),
            secret: SECRET.into(),
        }])
        .expect("keys");
        let admin = keys.verify_admin(&token).expect("verifies");
        assert!(admin.grants.room_create && admin.grants.room_list);
        assert!(admin.grants.room_admin && admin.grants.identity_admin);
        assert_eq!(admin.room, None);
        assert!(
            keys.verify(&token).is_err(),
            "not usable to join a room (no room claim)"
        );
    }

    #[test]
    fn token_from_dev_keys_or_clear_error() {
        let scratch = Scratch::new("token-dev");
        let dir = scratch.0.to_str().expect("utf-8 path");
        let args = token_args(&["token", "--room", "r", "--identity", "i", "--data-dir", dir]);
        let err = token(&args).expect_err("no keys yet");
        let message = format!("{err:#}");
        assert!(
            message.contains("no API key configured and no dev keys in"),
            "{message}"
        );
        assert!(message.contains(dir), "{message}");
        assert!(
            !scratch.0.join(dev_keys::DEV_KEYS_FILE).exists(),
            "`chorus token` never creates dev keys"
        );

        let dev = dev_keys::load_or_create(&scratch.0).expect("dev keys");
        let token = token(&args).expect("token from dev keys");
        let keys = KeyStore::new(vec![dev.api_key]).expect("keys");
        assert_eq!(keys.verify(&token).expect("verifies").room, "r");
    }

    #[test]
    fn token_picks_a_configured_key() {
        let scratch = Scratch::new("token-config");
        let file = scratch.0.join("chorus.toml");
        std::fs::write(
            &file,
            format!(
                "[[keys]]\nkey = \"a\"\nsecret = \"{SECRET}\"\n[[keys]]\nkey = \"b\"\nsecret = \"{SECRET}\"\n"
            ),
        )
        .expect("write");
        let file = file.to_str().expect("utf-8 path");
        let base = ["token", "--room", "r", "--identity", "i", "--config", file];
        let keys =
            KeyStore::new(Config::from_file(Path::new(file)).expect("config").keys).expect("keys");

        let first = token(&token_args(&base)).expect("first key");
        assert_eq!(keys.verify(&first).expect("verifies").api_key, "a");

        let args: Vec<&str> = base.iter().copied().chain(["--api-key", "b"]).collect();
        let second = token(&token_args(&args)).expect("chosen key");
        assert_eq!(keys.verify(&second).expect("verifies").api_key, "b");

        let args: Vec<&str> = base.iter().copied().chain(["--api-key", "zz"]).collect();
        let err = token(&token_args(&args)).expect_err("unknown key");
        assert!(err.to_string().contains("`zz` is not configured"), "{err}");
    }
}
