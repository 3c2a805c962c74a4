//! Each media worker's share of a run, from the server's per-worker metrics (`chorus_worker_*{worker="i"}`,
//! servers from 2026-12-07 on): how the forwarded packets and the media CPU split between the worker threads,
//! which is how a run shows that rooms spread over the workers and that each carries its share at the same cost.

use serde::Serialize;

use crate::scrape::Metrics;

/// One worker's counters at one scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerSample {
    pub forwarded_packets: f64,
    pub cpu_seconds: f64,
}

/// Every worker's counters at one scrape, by index (empty from servers without per-worker metrics).
pub fn sample(m: &Metrics) -> Vec<WorkerSample> {
    (0..)
        .map_while(|i| {
            let get = |name: &str| m.get(&format!("{name}{{worker=\"{i}\"}}"));
            Some(WorkerSample {
                forwarded_packets: get("chorus_worker_forwarded_packets_total")?,
                cpu_seconds: get("chorus_worker_cpu_seconds_total")?,
            })
        })
        .collect()
}

/// One worker's share of the measurement window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerFigures {
    pub forwarded_packets: u64,
    /// This worker's part of all forwarded packets (0–1).
    pub forwarded_share: f64,
    pub cpu_seconds: f64,
    /// Its thread's CPU per packet it forwarded; `null` if it forwarded none.
    pub cpu_us_per_forwarded_packet: Option<f64>,
}

/// Each worker's figures between two scrapes; empty unless both list the same workers.
pub fn figures(before: &[WorkerSample], after: &[WorkerSample]) -> Vec<WorkerFigures> {
    if before.len() != after.len() {
        return Vec::new();
    }
    let deltas: Vec<(u64, f64)> = before
        .iter()
        .zip(after)
        .map(|(b, a)| {
            (
                (a.forwarded_packets - b.forwarded_packets).max(0.0) as u64,
                (a.cpu_seconds - b.cpu_seconds).max(0.0),
            )
        })
        .collect();
    let total: u64 = deltas.iter().map(|(p, _)| p).sum();
    deltas
        .into_iter()
        .map(|(packets, cpu)| WorkerFigures {
            forwarded_packets: packets,
            forwarded_share: if total > 0 {
                packets as f64 / total as f64
            } else {
                0.0
            },
            cpu_seconds: cpu,
            cpu_us_per_forwarded_packet: (packets > 0).then(|| cpu * 1e6 / packets as f64),
        })
        .collect()
}

/// `0: 50.2 % of copies, 1.31 CPU s, 13.1 µs/packet · 1: …` for the text report.
pub fn summary(workers: &[WorkerFigures]) -> String {
    workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let per_packet = w
                .cpu_us_per_forwarded_packet
                .map_or("n/a".to_string(), |us| format!("{us:.1} µs/packet"));
            format!(
                "{i}: {:.1} % of copies, {:.2} CPU s, {per_packet}",
                w.forwarded_share * 100.0,
                w.cpu_seconds
            )
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_worker_in_order_until_one_is_missing() {
        let m = Metrics::parse(
            "chorus_worker_forwarded_packets_total{worker=\"0\"} 100\n\
             chorus_worker_cpu_seconds_total{worker=\"0\"} 0.5\n\
             chorus_worker_forwarded_packets_total{worker=\"1\"} 300\n\
             chorus_worker_cpu_seconds_total{worker=\"1\"} 1.5\n\
             chorus_worker_forwarded_packets_total{worker=\"2\"} 7\n",
        );
        assert_eq!(
            sample(&m),
            [
                WorkerSample {
                    forwarded_packets: 100.0,
                    cpu_seconds: 0.5
                },
                WorkerSample {
                    forwarded_packets: 300.0,
                    cpu_seconds: 1.5
                }
            ]
        );
        assert!(sample(&Metrics::parse("chorus_rooms 1\n")).is_empty());
    }

    #[test]
    fn splits_the_window_between_workers() {
        let at = |p0: f64, c0: f64, p1: f64, c1: f64| {
            vec![
                WorkerSample {
                    forwarded_packets: p0,
                    cpu_seconds: c0,
                },
                WorkerSample {
                    forwarded_packets: p1,
                    cpu_seconds: c1,
                },
            ]
        };
        let f = figures(&at(100.0, 1.0, 0.0, 0.0), &at(400.0, 1.3, 100.0, 0.25));
        assert_eq!(f[0].forwarded_packets, 300);
        assert!((f[0].forwarded_share - 0.75).abs() < 1e-9);
        let per_packet = f[0].cpu_us_per_forwarded_packet.expect("packets forwarded");
        assert!((per_packet - 1000.0).abs() < 1e-6);
        assert!((f[1].forwarded_share - 0.25).abs() < 1e-9);
        assert!(summary(&f)
            .starts_with("0: 75.0 % of copies, 0.30 CPU s, 1000.0 µs/packet · 1: 25.0 %"));
        let idle = figures(&at(0.0, 0.0, 0.0, 0.0), &at(0.0, 0.1, 0.0, 0.0));
        assert_eq!(idle[0].cpu_us_per_forwarded_packet, None);
        assert_eq!(idle[0].forwarded_share, 0.0);
        assert!(figures(&at(0.0, 0.0, 0.0, 0.0), &[]).is_empty());
    }
}
