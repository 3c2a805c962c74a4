//! The `[webhooks]` section of the configuration: endpoints, the private-address policy, retries.

use std::time::Duration;

use anyhow::ensure;
use serde::Deserialize;

use crate::webhooks::WebhookSettings;

/// Webhook endpoints and delivery policy. Every field has a default; no URLs means no webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Endpoints that receive every event (CloudEvents JSON, signed). Default: none.
    pub urls: Vec<String>,
    /// Allow endpoints on loopback, private, link-local or metadata addresses. Default false.
    pub allow_private_urls: bool,
    /// Attempts per event before it is dead-lettered (1-100). Default 10.
    pub max_attempts: u32,
    /// First retry delay in milliseconds, doubling per attempt (10 ms-1 h). Default 1000.
    pub initial_backoff_ms: u64,
    /// Longest retry delay in seconds (1 s-1 day). Default 300.
    pub max_backoff_secs: u64,
    /// Per-request timeout in seconds (1-120). Default 10.
    pub timeout_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        let d = WebhookSettings::default();
        WebhookConfig {
            urls: Vec::new(),
            allow_private_urls: false,
            max_attempts: d.max_attempts,
            initial_backoff_ms: d.initial_backoff.as_millis() as u64,
            max_backoff_secs: d.max_backoff.as_secs(),
            timeout_secs: d.request_timeout.as_secs(),
        }
    }
}

impl WebhookConfig {
    pub fn into_settings(self) -> anyhow::Result<WebhookSettings> {
        ensure!(
            (1..=100).contains(&self.max_attempts),
            "webhooks.max_attempts must be between 1 and 100, not {}",
            self.max_attempts
        );
        ensure!(
            (10..=3_600_000).contains(&self.initial_backoff_ms),
            "webhooks.initial_backoff_ms must be between 10 and 3600000, not {}",
            self.initial_backoff_ms
        );
        ensure!(
            (1..=86_400).contains(&self.max_backoff_secs),
            "webhooks.max_backoff_secs must be between 1 and 86400, not {}",
            self.max_backoff_secs
        );
        ensure!(
            (1..=120).contains(&self.timeout_secs),
            "webhooks.timeout_secs must be between 1 and 120, not {}",
            self.timeout_secs
        );
        let settings = WebhookSettings {
            urls: self.urls,
            allow_private_urls: self.allow_private_urls,
            max_attempts: self.max_attempts,
            initial_backoff: Duration::from_millis(self.initial_backoff_ms),
            max_backoff: Duration::from_secs(self.max_backoff_secs),
            request_timeout: Duration::from_secs(self.timeout_secs),
        };
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_urls_need_the_flag() {
        let config = WebhookConfig {
            urls: vec!["http://127.0.0.1:9000/hook".into()],
            ..WebhookConfig::default()
        };
        let err = config
            .clone()
            .into_settings()
            .expect_err("loopback refused");
        assert!(err.to_string().contains("allow_private_urls"), "{err}");
        let allowed = WebhookConfig {
            allow_private_urls: true,
            ..config
        };
        assert_eq!(allowed.into_settings().expect("allowed").urls.len(), 1);
    }

    #[test]
    fn ranges_are_checked() {
        for bad in [
            WebhookConfig {
                max_attempts: 0,
                ..WebhookConfig::default()
            },
            WebhookConfig {
                initial_backoff_ms: 1,
                ..WebhookConfig::default()
            },
            WebhookConfig {
                timeout_secs: 0,
                ..WebhookConfig::default()
            },
        ] {
            assert!(bad.into_settings().is_err());
        }
        let parsed: WebhookConfig =
            toml::from_str("urls = [\"https://example.com/h\"]\nmax_attempts = 3").expect("toml");
        assert_eq!(parsed.max_attempts, 3);
        assert_eq!(parsed.timeout_secs, 10);
    }
}
