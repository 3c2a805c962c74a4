//! Reading the server's `/metrics` (Prometheus text format) into the few numbers a load test needs.

use std::collections::HashMap;
use std::time::Instant;

use crate::http::{self, HttpError, HttpUrl};
use crate::workers::{self, WorkerSample};

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

    /// The cumulative buckets of histogram `name` as (upper bound, count), in increasing bound order
    /// (`+Inf` last); empty if the histogram is absent.
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{le=\"");
        let mut buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter_map(|(key, count)| {
                let le = key.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let le = match le {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().ok()?,
                };
                Some((le, *count))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }
}

/// A quantile of the observations a cumulative histogram gained between two scrapes (`before` and `after`
/// from [`Metrics::buckets`]), interpolated linearly within its bucket as Prometheus' `histogram_quantile`
/// does; `None` without observations, or if the quantile falls in the `+Inf` bucket.
pub fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| {
            let was = before
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, n)| *n);
            (le, (n - was).max(0.0))
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in &delta {
        if count >= rank && count > lower.1 {
            if le.is_infinite() {
                return None;
            }
            let within = (rank - lower.1) / (count - lower.1);
            return Some(lower.0 + (le - lower.0) * within);
        }
        lower = (le, count);
    }
    None
}

/// The server's forwarding-latency histogram: receive → the last copy handed to the kernel, per input datagram
/// that was forwarded.
pub const FORWARDING_LATENCY: &str = "chorus_forwarding_latency_seconds";

/// The server's timer-lateness histogram: how long after the earliest due timer a media worker ran its
/// connections' timers.
pub const TIMER_LATENESS: &str = "chorus_media_timer_lateness_seconds";

/// The figures of one scrape a report is built from.
#[derive(Debug, Clone)]
pub struct ServerSample {
    pub at: Instant,
    pub cpu_seconds: Option<f64>,
    /// The media worker threads' share of `cpu_seconds` (servers from 2026-12 on).
    pub media_cpu_seconds: Option<f64>,
    /// Times the media worker threads slept waiting for input.
    pub media_sleeps: Option<f64>,
    pub forwarded_packets: Option<f64>,
    pub video_packets_out: Option<f64>,
    pub audio_packets_out: Option<f64>,
    pub video_bytes_out: Option<f64>,
    pub nacks_received: Option<f64>,
    pub plis_sent: Option<f64>,
    pub rss_bytes: Option<f64>,
    pub participants: Option<f64>,
    /// [`FORWARDING_LATENCY`] as cumulative (upper bound in seconds, count) buckets.
    pub forwarding_latency: Vec<(f64, f64)>,
    /// [`TIMER_LATENESS`] as cumulative buckets (empty from servers before 2026-12-07).
    pub timer_lateness: Vec<(f64, f64)>,
    /// Each media worker's counters (empty from servers before per-worker metrics).
    pub workers: Vec<WorkerSample>,
}

impl ServerSample {
    pub fn from_metrics(at: Instant, m: &Metrics) -> ServerSample {
        ServerSample {
            at,
            cpu_seconds: m.get("process_cpu_seconds_total"),
            media_cpu_seconds: m.get("chorus_media_thread_cpu_seconds_total"),
            media_sleeps: m.get("chorus_media_thread_sleeps_total"),
            forwarded_packets: m.get("chorus_forwarded_packets_total"),
            video_packets_out: m.get("chorus_media_packets_out_total{kind=\"video\"}"),
            audio_packets_out: m.get("chorus_media_packets_out_total{kind=\"audio\"}"),
            video_bytes_out: m.get("chorus_media_bytes_out_total{kind=\"video\"}"),
            nacks_received: m.get("chorus_nacks_received_total"),
            plis_sent: m.get("chorus_plis_sent_total"),
            rss_bytes: m.get("process_resident_memory_bytes"),
            participants: m.get("chorus_participants"),
            forwarding_latency: m.buckets(FORWARDING_LATENCY),
            timer_lateness: m.buckets(TIMER_LATENESS),
            workers: workers::sample(m),
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

    fn histogram(counts: [u64; 4]) -> Vec<(f64, f64)> {
        let text: String = ["0.001", "0.002", "0.005", "+Inf"]
            .iter()
            .zip(counts)
            .map(|(le, n)| format!("lat_bucket{{le=\"{le}\"}} {n}\n"))
            .collect();
        Metrics::parse(&(text + "lat_count 1\nother_bucket{le=\"1\"} 5\n")).buckets("lat")
    }

    #[test]
    fn histogram_buckets_are_read_in_bound_order() {
        let b = histogram([1, 2, 3, 4]);
        assert_eq!(
            b,
            vec![
                (0.001, 1.0),
                (0.002, 2.0),
                (0.005, 3.0),
                (f64::INFINITY, 4.0)
            ]
        );
        assert!(Metrics::parse("x 1\n").buckets("lat").is_empty());
    }

    #[test]
    fn quantiles_of_the_window_interpolate_within_a_bucket() {
        // Before the window: 10 observations ≤ 1 ms. In it: 100 more, 50 ≤ 1 ms and 50 in (1, 2] ms.
        let before = histogram([10, 10, 10, 10]);
        let after = histogram([60, 110, 110, 110]);
        let p50 = bucket_quantile(&before, &after, 0.5).expect("p50");
        assert!((p50 - 0.001).abs() < 1e-12, "{p50}");
        let p99 = bucket_quantile(&before, &after, 0.99).expect("p99");
        assert!((p99 - 0.00198).abs() < 1e-9, "{p99}");
        assert_eq!(
            bucket_quantile(&before, &before, 0.5),
            None,
            "no observations"
        );
        // Past the highest finite bound: unknown.
        let slow = histogram([10, 10, 10, 110]);
        assert_eq!(bucket_quantile(&before, &slow, 0.5), None);
    }
}
