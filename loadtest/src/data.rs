//! Data-channel load: data-only participants send stamped messages at a fixed rate on the reliable and/or lossy
//! channel; every participant counts what arrives, giving a delivery ratio and send-to-receive latency per
//! channel kind ([`DataFigures`]).
//!
//! A message's payload starts with its send time (µs since this process started, so sender and receiver read
//! the same clock) and carries the topic [`TOPIC`]; anything else on the channels is ignored.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chorus_client::{Client, LatencyHistogram, SendOptions};
use serde::Serialize;
use tokio::sync::watch;

/// The topic of load-test messages.
pub const TOPIC: &str = "loadtest";
/// A payload holds at least the send time.
pub const MIN_MESSAGE_BYTES: usize = 8;

/// Which channels the data participants use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    Reliable,
    Lossy,
    /// Alternate message by message.
    Both,
}

/// What each data participant sends.
#[derive(Debug, Clone, Copy)]
pub struct DataLoad {
    pub messages_per_sec: u32,
    pub bytes: usize,
    pub channels: Channels,
}

/// Counters of one channel kind, shared by every sender and receiver task.
#[derive(Debug, Default)]
struct KindTally {
    sent: AtomicU64,
    send_errors: AtomicU64,
    received: AtomicU64,
    latency: Mutex<LatencyHistogram>,
}

/// Counters of the whole run: index 0 reliable, 1 lossy.
#[derive(Debug, Default)]
pub struct DataTally {
    kinds: [KindTally; 2],
}

/// One channel kind's figures, in the report.
#[derive(Debug, Clone, Serialize)]
pub struct KindFigures {
    pub sent: u64,
    /// Deliveries expected: each message to every other participant of its room.
    pub expected: u64,
    pub received: u64,
    pub delivery_ratio: Option<f64>,
    pub send_errors: u64,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
}

/// The data part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct DataFigures {
    pub participants_per_room: usize,
    pub messages_per_sec: u32,
    pub message_bytes: usize,
    pub channels: Channels,
    pub reliable: Option<KindFigures>,
    pub lossy: Option<KindFigures>,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn stamp() -> u64 {
    epoch().elapsed().as_micros() as u64
}

fn kind_index(reliable: bool) -> usize {
    if reliable {
        0
    } else {
        1
    }
}

impl DataTally {
    /// Counts what `client` receives until the session ends.
    pub fn spawn_receiver(self: &Arc<Self>, client: Arc<Client>) {
        let tally = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(m) = client.next_data().await {
                if m.topic != TOPIC || m.payload.len() < MIN_MESSAGE_BYTES {
                    continue;
                }
                let mut sent = [0u8; 8];
                sent.copy_from_slice(&m.payload[..8]);
                let latency = stamp().saturating_sub(u64::from_be_bytes(sent));
                let k = &tally.kinds[kind_index(m.reliable)];
                k.received.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut h) = k.latency.lock() {
                    h.record(Duration::from_micros(latency));
                }
            }
        });
    }

    /// Sends `load` from `client` until `stop` turns true.
    pub fn spawn_sender(
        self: &Arc<Self>,
        client: Arc<Client>,
        load: DataLoad,
        mut stop: watch::Receiver<bool>,
    ) {
        let tally = Arc::clone(self);
        tokio::spawn(async move {
            let period = Duration::from_secs_f64(1.0 / f64::from(load.messages_per_sec.max(1)));
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut payload = vec![0u8; load.bytes.max(MIN_MESSAGE_BYTES)];
            let mut n = 0u64;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let reliable = match load.channels {
                    Channels::Reliable => true,
                    Channels::Lossy => false,
                    Channels::Both => n.is_multiple_of(2),
                };
                n += 1;
                payload[..8].copy_from_slice(&stamp().to_be_bytes());
                let options = SendOptions {
                    reliable,
                    topic: TOPIC.into(),
                    ..SendOptions::default()
                };
                let k = &tally.kinds[kind_index(reliable)];
                match client.send_data(&payload, &options).await {
                    Ok(()) => k.sent.fetch_add(1, Ordering::Relaxed),
                    Err(_) => k.send_errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }

    /// Messages received so far (both kinds), for progress lines.
    pub fn received(&self) -> u64 {
        self.kinds
            .iter()
            .map(|k| k.received.load(Ordering::Relaxed))
            .sum()
    }

    /// The figures, given how many others receive each message (room size − 1).
    pub fn figures(
        &self,
        load: DataLoad,
        per_room: usize,
        receivers_per_message: u64,
    ) -> DataFigures {
        let kind = |i: usize| {
            let k = &self.kinds[i];
            let sent = k.sent.load(Ordering::Relaxed);
            let expected = sent * receivers_per_message;
            let received = k.received.load(Ordering::Relaxed);
            let latency = k.latency.lock().map(|h| h.clone()).unwrap_or_default();
            let ms = |q: f64| latency.quantile(q).map(|d| d.as_secs_f64() * 1e3);
            KindFigures {
                sent,
                expected,
                received,
                delivery_ratio: (expected > 0).then(|| received as f64 / expected as f64),
                send_errors: k.send_errors.load(Ordering::Relaxed),
                latency_ms_p50: ms(0.5),
                latency_ms_p99: ms(0.99),
            }
        };
        let uses = |reliable: bool| match load.channels {
            Channels::Both => true,
            Channels::Reliable => reliable,
            Channels::Lossy => !reliable,
        };
        DataFigures {
            participants_per_room: per_room,
            messages_per_sec: load.messages_per_sec,
            message_bytes: load.bytes,
            channels: load.channels,
            reliable: uses(true).then(|| kind(0)),
            lossy: uses(false).then(|| kind(1)),
        }
    }
}
