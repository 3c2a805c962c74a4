//! Config precedence (file < env < flags), defaults, validation and dev mode.

use std::sync::Mutex;

use clap::Parser;

use super::*;
use crate::dev_keys::temp_dir::TempDir;

const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

/// Clap reads `CHORUS_*` from the process environment: tests that parse flags take this lock.
static ENV_LOCK: Mutex<()> = Mutex::new(());

#[derive(Parser)]
struct TestCli {
    #[command(flatten)]
    args: ServerArgs,
}

fn parse(flags: &[&str]) -> ServerArgs {
    TestCli::try_parse_from(std::iter::once("chorus").chain(flags.iter().copied()))
        .expect("flags parse")
        .args
}

fn keyed(config: Config) -> Config {
    Config {
        keys: vec![ApiKey {
            key: "k".into(),
            secret: SECRET.into(),
        }],
        ..config
    }
}

#[test]
fn defaults() {
    let config = Config::default();
    assert_eq!(config.http_port, 7880);
    assert_eq!(config.rtc_port, 7882);
    assert_eq!(config.data_dir, PathBuf::from("./.chorus"));
    assert_eq!(config.max_message_bytes, 65536);
    assert_eq!(config.resume_window_secs, 10);
    assert_eq!(config.ping_interval_secs, 5);
    assert_eq!(config.log, "info");
    assert!(config.is_dev_mode());
    assert_eq!(Config::from_toml_str("").expect("empty file"), config);
}

#[test]
fn sample_config_parses() {
    let sample = include_str!("../../../config/chorus.sample.toml");
    let config = Config::from_toml_str(sample).expect("sample parses");
    assert_eq!(config.http_port, DEFAULT_HTTP_PORT);
    assert_eq!(config.rtc_port, DEFAULT_RTC_PORT);
    assert_eq!(config.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
    assert_eq!(config.log, DEFAULT_LOG);
}

#[test]
fn unknown_and_mistyped_keys_are_errors() {
    let err = Config::from_toml_str("http_prot = 1").expect_err("typo");
    assert!(err.to_string().contains("http_prot"), "{err}");
    assert!(Config::from_toml_str("http_port = \"x\"").is_err());
    assert!(Config::from_toml_str("http_bind = \"not-an-ip\"").is_err());
    assert!(Config::from_toml_str("[[keys]]\nkey = \"k\"").is_err());
}

#[test]
fn file_then_flags_then_env() {
    let _env = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("config-precedence");
    let file = dir.path().join("chorus.toml");
    std::fs::write(
        &file,
        "http_port = 9000\nrtc_port = 20000\nping_interval_secs = 7\nlog = \"debug\"\n\
         [[keys]]\nkey = \"file-key\"\nsecret = \"file-secret-0123456789abcdef0123456789\"\n",
    )
    .expect("write");
    let file_arg = file.to_str().expect("utf-8 path");

    // File only.
    let config = Config::from_server_args(&parse(&["--config", file_arg])).expect("load");
    assert_eq!(config.http_port, 9000);
    assert_eq!(config.rtc_port, 20000);
    assert_eq!(config.ping_interval_secs, 7);
    assert_eq!(config.resume_window_secs, DEFAULT_RESUME_WINDOW_SECS);
    assert_eq!(config.keys.len(), 1);

    // Flags beat the file.
    let config = Config::from_server_args(&parse(&[
        "--config",
        file_arg,
        "--http-port",
        "9100",
        "--log",
        "warn",
        "--udp-gso",
        "false",
        "--api-key",
        "flag-key",
        "--api-secret",
        SECRET,
    ]))
    .expect("load");
    assert_eq!(config.http_port, 9100);
    assert_eq!(config.rtc_port, 20000);
    assert_eq!(config.log, "warn");
    assert!(!config.udp_gso);
    let ids: Vec<&str> = config.keys.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(
        ids,
        ["flag-key", "file-key"],
        "the flag key signs by default"
    );

    // Env beats the file, a flag beats env.
    std::env::set_var("CHORUS_PING_INTERVAL_SECS", "9");
    std::env::set_var("CHORUS_CONFIG", file_arg);
    let from_env = Config::from_server_args(&parse(&[]));
    let flag_over_env = Config::from_server_args(&parse(&["--ping-interval-secs", "11"]));
    std::env::remove_var("CHORUS_PING_INTERVAL_SECS");
    std::env::remove_var("CHORUS_CONFIG");
    let from_env = from_env.expect("load");
    assert_eq!(from_env.ping_interval_secs, 9);
    assert_eq!(from_env.http_port, 9000, "CHORUS_CONFIG names the file");
    assert_eq!(flag_over_env.expect("load").ping_interval_secs, 11);
}

#[test]
fn api_key_flags_come_in_pairs() {
    let _env = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    assert!(Config::from_server_args(&parse(&["--api-key", "k"])).is_err());
    assert!(Config::from_server_args(&parse(&["--api-secret", SECRET])).is_err());
    let config = Config::from_server_args(&parse(&["--api-key", "k", "--api-secret", SECRET]))
        .expect("pair");
    assert!(!config.is_dev_mode());
}

#[test]
fn bad_flags_are_errors_not_panics() {
    let _env = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for flags in [
        &["--http-port", "70000"][..],
        &["--http-bind", "localhost"],
        &["--workers", "-1"],
        &["--no-such-flag"],
    ] {
        let with_argv0 = std::iter::once("chorus").chain(flags.iter().copied());
        assert!(TestCli::try_parse_from(with_argv0).is_err(), "{flags:?}");
    }
    let missing = parse(&["--config", "/nonexistent/chorus.toml"]);
    let err = Config::from_server_args(&missing).expect_err("missing file");
    assert!(
        format!("{err:#}").contains("/nonexistent/chorus.toml"),
        "{err:#}"
    );
}

#[test]
fn settings_with_keys() {
    let config = keyed(Config {
        workers: Some(3),
        node_ip: Some("192.0.2.7".parse().expect("ip")),
        ..Config::default()
    });
    let (settings, dev) = config.into_settings().expect("settings");
    assert!(dev.is_none());
    assert!(!settings.dev_mode);
    assert_eq!(settings.http_addr, "0.0.0.0:7880".parse().expect("addr"));
    assert_eq!(settings.sfu.bind_ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(settings.sfu.port, 7882);
    assert_eq!(settings.sfu.workers, 3);
    assert!(settings.sfu.udp_gso, "GSO is on by default");
    assert_eq!(
        settings.sfu.advertised_ip,
        "192.0.2.7".parse::<IpAddr>().expect("ip")
    );
    assert_eq!(settings.max_message_bytes, 65536);
    assert_eq!(settings.resume_window, Duration::from_secs(10));
    assert_eq!(settings.ping_interval, Duration::from_secs(5));
    assert_eq!(settings.keys.first().map(|k| k.key.as_str()), Some("k"));
}

#[test]
fn node_ip_defaults() {
    // Unset, with keys and a wildcard bind: loopback (and a warning).
    let (settings, _) = keyed(Config::default()).into_settings().expect("settings");
    assert_eq!(settings.sfu.advertised_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    // Unset, with a specific bind: that address.
    let bind: IpAddr = "10.1.2.3".parse().expect("ip");
    let config = keyed(Config {
        rtc_bind: Some(bind),
        ..Config::default()
    });
    assert_eq!(
        config
            .into_settings()
            .expect("settings")
            .0
            .sfu
            .advertised_ip,
        bind
    );
    // An unspecified address cannot be advertised.
    let config = keyed(Config {
        node_ip: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ..Config::default()
    });
    assert!(config.into_settings().is_err());
}

#[test]
fn dev_mode_uses_dev_keys_and_loopback() {
    let dir = TempDir::new("config-dev");
    let config = Config {
        data_dir: dir.path().join("data"),
        workers: Some(2),
        ..Config::default()
    };
    let (settings, dev) = config.clone().into_settings().expect("dev settings");
    let dev = dev.expect("dev keys");
    assert!(dev.created);
    assert!(settings.dev_mode);
    assert_eq!(settings.http_addr, "127.0.0.1:7880".parse().expect("addr"));
    assert_eq!(settings.sfu.bind_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(settings.sfu.advertised_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(settings.keys.first(), Some(&dev.api_key));

    // Same data dir, same keys.
    let (again, dev_again) = config.clone().into_settings().expect("dev settings");
    assert_eq!(dev_again.expect("dev keys").api_key, dev.api_key);
    assert_eq!(again.keys.first(), Some(&dev.api_key));

    // Public addresses are refused in dev mode.
    for config in [
        Config {
            http_bind: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            ..config.clone()
        },
        Config {
            rtc_bind: Some("10.0.0.1".parse().expect("ip")),
            ..config.clone()
        },
        Config {
            node_ip: Some("10.0.0.1".parse().expect("ip")),
            ..config.clone()
        },
    ] {
        let err = config.into_settings().expect_err("public bind in dev mode");
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}

#[test]
fn dev_mode_corrupt_keys_are_an_error() {
    let dir = TempDir::new("config-dev-corrupt");
    std::fs::write(dir.path().join(dev_keys::DEV_KEYS_FILE), "{").expect("write");
    let config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let err = config.into_settings().expect_err("corrupt dev keys");
    assert!(format!("{err:#}").contains("corrupt"), "{err:#}");
}

#[test]
fn out_of_range_values_are_errors() {
    let bad = [
        Config {
            workers: Some(0),
            ..Config::default()
        },
        Config {
            rtc_port: 65535,
            workers: Some(2),
            ..Config::default()
        },
        Config {
            max_message_bytes: 100,
            ..Config::default()
        },
        Config {
            max_message_bytes: 2 * 1024 * 1024,
            ..Config::default()
        },
        Config {
            ping_interval_secs: 0,
            ..Config::default()
        },
        Config {
            resume_window_secs: 100_000,
            ..Config::default()
        },
    ];
    for config in bad {
        let shown = format!("{config:?}");
        assert!(keyed(config).into_settings().is_err(), "{shown}");
    }
    let short = Config {
        keys: vec![ApiKey {
            key: "k".into(),
            secret: "short".into(),
        }],
        ..Config::default()
    };
    let err = short.into_settings().expect_err("short secret");
    assert!(format!("{err:#}").contains("too short"), "{err:#}");
}

#[test]
fn chat_settings_from_file_and_flags_with_bounds() {
    let config = Config::from_toml_str("chat_history_size = 5\nchat_rate_burst = 2").expect("toml");
    assert_eq!(config.chat_history_size, 5);
    assert_eq!(config.chat_max_text_bytes, DEFAULT_CHAT_MAX_TEXT_BYTES);
    let mut config = keyed(config);
    config.apply_server_args(&ServerArgs {
        chat_max_text_bytes: Some(100),
        chat_rate_per_minute: Some(0),
        ..ServerArgs::default()
    });
    let (settings, _) = config.into_settings().expect("settings");
    assert_eq!(
        settings.chat,
        ChatSettings {
            history_size: 5,
            max_text_bytes: 100,
            rate_per_minute: 0,
            rate_burst: 2,
        }
    );
    for bad in [
        "chat_history_size = 10001",
        "chat_max_text_bytes = 0",
        "chat_max_text_bytes = 40000",
        "chat_rate_burst = 0",
        "chat_rate_per_minute = 60001",
    ] {
        let config = keyed(Config::from_toml_str(bad).expect("toml"));
        assert!(config.into_settings().is_err(), "{bad} is refused");
    }
    let _env = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(
        parse(&["--chat-history-size", "7"]).chat_history_size,
        Some(7)
    );
}

#[test]
fn turn_section_is_validated() {
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let sample = include_str!("../../../config/chorus.sample.toml");
    let config = Config::from_toml_str(sample).expect("sample parses");
    assert_eq!(config.rtc_tcp_port, DEFAULT_RTC_TCP_PORT);
    let turn = config
        .turn
        .clone()
        .into_settings(ip, ip)
        .expect("sample turn");
    assert!(turn.enabled);
    assert_eq!(turn.udp_addr.port(), 3478);
    assert_eq!(turn.credential_ttl.as_secs(), 300);

    let bad = Config::from_toml_str("[turn]\nallow_peers = [\"10.0.0.0/33\"]").expect("parses");
    let err = bad.turn.into_settings(ip, ip).expect_err("malformed CIDR");
    assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
    let half_tls = Config::from_toml_str("[turn]\ntls_port = 5349").expect("parses");
    assert!(half_tls.turn.into_settings(ip, ip).is_err());
    let short = Config::from_toml_str("[turn]\nsecret = \"short\"").expect("parses");
    assert!(short.turn.into_settings(ip, ip).is_err());
    let ext = Config::from_toml_str("[[turn.external]]\nurls = [\"http://x\"]").expect("parses");
    assert!(ext.turn.into_settings(ip, ip).is_err());
}

#[test]
fn cluster_section_and_flags() {
    let _env = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut config = keyed(
        Config::from_toml_str("node_ip = \"10.0.0.5\"\n[cluster]\nnode_capacity = 50\n")
            .expect("toml"),
    );
    config.apply_server_args(&parse(&[
        "--redis-url",
        "redis://:pw@redis:6379/0",
        "--node-id",
        "chorus-0",
        "--drain-timeout-secs",
        "600",
    ]));
    let (settings, _) = config.clone().into_settings().expect("valid");
    let c = settings.cluster;
    assert_eq!(c.redis_url.as_deref(), Some("redis://:pw@redis:6379/0"));
    assert_eq!(c.node_id, "chorus-0");
    assert_eq!(
        c.node_url.as_deref(),
        Some("http://10.0.0.5:7880"),
        "default URL"
    );
    assert_eq!(c.capacity, 50);
    assert_eq!(c.drain_timeout, Duration::from_secs(600));

    let bad = |tweak: &dyn Fn(&mut Config)| {
        let mut c = config.clone();
        tweak(&mut c);
        c.into_settings()
            .map(|_| ())
            .expect_err("refused")
            .to_string()
    };
    let e = bad(&|c| c.cluster.redis_url = Some("http://user:secretpw@x".into()));
    assert!(e.contains("redis://"), "{e}");
    assert!(
        !e.contains("pw"),
        "the URL's password stays out of messages: {e}"
    );
    assert!(bad(&|c| c.cluster.node_id = Some("a b".into())).contains("node_id"));
    assert!(bad(&|c| c.cluster.node_url = Some("ftp://x".into())).contains("node_url"));
    assert!(bad(&|c| c.cluster.node_capacity = 0).contains("node_capacity"));
    let e = bad(&|c| {
        c.keys.clear();
        c.node_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    });
    assert!(
        e.contains("redis_url"),
        "dev mode cannot join a cluster: {e}"
    );
}
