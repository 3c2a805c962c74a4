//! Reading the server's `/metrics` (Prometheus text format) into the few numbers a load test needs.

use std::collections::HashMap;
use std::time::Instant;

use crate::http::{self, HttpError, HttpUrl};

/// Every sample of one scrape, keyed by `name` or `name{labels}` exactly as written by the server.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    samples: HashMap<String, f64>,
}

impl Metrics {
    /// Parses the text format; lines that are not `key value [timestamp]` are skipped.
    pub fn parse(text: &str) -> Metrics {
        let mut samples = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => match v.parse() {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            samples.insert(key.to_owned(), value);
        }
        Metrics { samples }
    }

    /// The sample called `key` (`name` or `name{label="value"}`).
    pub fn get(&self, key: &str) -> Option<f64> {
        self.samples.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// The figures of one scrape a report is built from.
#[derive(Debug, Clone, Copy)]
pub struct ServerSample {
    pub at: Instant,
    pub cpu_seconds: Option<f64>,
    pub forwarded_packets: Option<f64>,
    pub video_packets_out: Option<f64>,
    pub audio_packets_out: Option<f64>,
    pub video_bytes_out: Option<f64>,
    pub nacks_received: Option<f64>,
    pub plis_sent: Option<f64>,
    pub rss_bytes: Option<f64>,
    pub participants: Option<f64>,
}

impl ServerSample {
    pub fn from_metrics(at: Instant, m: &Metrics) -> ServerSample {
        ServerSample {
            at,
            cpu_seconds: m.get("process_cpu_seconds_total"),
            forwarded_packets: m.get("chorus_forwarded_packets_total"),
            video_packets_out: m.get("chorus_media_packets_out_total{kind=\"video\"}"),
            audio_packets_out: m.get("chorus_media_packets_out_total{kind=\"audio\"}"),
            video_bytes_out: m.get("chorus_media_bytes_out_total{kind=\"video\"}"),
            nacks_received: m.get("chorus_nacks_received_total"),
            plis_sent: m.get("chorus_plis_sent_total"),
            rss_bytes: m.get("process_resident_memory_bytes"),
            participants: m.get("chorus_participants"),
        }
    }
}

/// GETs and parses `url`.
pub async fn scrape(url: &HttpUrl) -> Result<Metrics, HttpError> {
    Ok(Metrics::parse(&http::get(url).await?))
}

/// Scrapes `url` into a [`ServerSample`].
pub async fn sample(url: &HttpUrl) -> Result<ServerSample, HttpError> {
    let m = scrape(url).await?;
    Ok(ServerSample::from_metrics(Instant::now(), &m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_text_format() {
        let text = "# HELP chorus_forwarded_packets_total RTP packets.\n\
                    # TYPE chorus_forwarded_packets_total counter\n\
                    chorus_forwarded_packets_total 1234\n\
                    chorus_media_packets_out_total{kind=\"video\"} 1000 1700000000\n\
                    process_cpu_seconds_total 1.25\n\
                    garbage\n\
                    bad_value x\n\
                    h_bucket{le=\"+Inf\"} +Inf\n";
        let m = Metrics::parse(text);
        assert_eq!(m.len(), 4);
        let s = ServerSample::from_metrics(Instant::now(), &m);
        assert_eq!(s.forwarded_packets, Some(1234.0));
        assert_eq!(s.video_packets_out, Some(1000.0));
        assert_eq!(s.cpu_seconds, Some(1.25));
        assert_eq!(s.audio_packets_out, None);
        assert_eq!(m.get("h_bucket{le=\"+Inf\"}"), Some(f64::INFINITY));
    }
}
