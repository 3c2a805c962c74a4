//! One load test from start to finish: join every participant (publishers publish), wait until media flows
//! (and, with `--subscriber-quality`, until subscribers receive the layer they asked for), measure a window
//! with progress lines, leave, and build the [`Report`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_client::{Client, ConnectOptions, LatencyHistogram, PublishOptions, VideoQuality};
use futures_util::stream::{self, StreamExt};

use crate::config::Config;
use crate::data::DataTally;
use crate::layers::{self, LayerConfig, SentBySize};
use crate::report::{self, Received, Report, ReportConfig, Snapshot};
use crate::scrape::{self, ServerSample};
use crate::tokens::{TokenError, Tokens};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error("no participant could join; first error: {0}")]
    NobodyJoined(String),
    #[error("cannot write {path}: {source}")]
    WriteJson {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where progress lines go (stdout for the CLI, a test's log in tests).
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// What a participant does in the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Publisher,
    Subscriber,
    /// No media at all; sends data messages.
    Data,
}

struct Participant {
    client: Arc<Client>,
    room: usize,
    role: Role,
    /// The simulcast quality it asks for (`None`: the server's default, the best).
    quality: Option<VideoQuality>,
}

/// Runs the whole test and returns its report (also written to `config.json`, if set).
pub async fn run(config: &Config, progress: Progress<'_>) -> Result<Report, RunError> {
    let ttl = config.duration + config.settle_timeout + Duration::from_secs(600);
    let tokens = Tokens::new(&config.tokens, config.http.as_ref(), ttl).await?;
    let mut before_join = None;
    if let Some(url) = &config.metrics {
        match scrape::sample(url).await {
            Ok(s) => before_join = Some(s),
            Err(e) => progress(&format!("warning: {e}; server CPU figures will be missing")),
        }
    }

    let started = Instant::now();
    let (participants, join_times, first_error) = join_all(config, &tokens, progress).await;
    if participants.is_empty() {
        return Err(RunError::NobodyJoined(first_error.unwrap_or_default()));
    }
    progress(&format!(
        "joined {}/{} in {:.1} s",
        participants.len(),
        config.participants(),
        started.elapsed().as_secs_f64()
    ));
    settle(config, &participants, progress).await;
    let asking: Vec<_> = participants
        .iter()
        .filter_map(|p| Some((&*p.client, p.quality?)))
        .collect();
    layers::settle_layers(config, &asking, progress).await;

    let tally = Arc::new(DataTally::default());
    let (stop_data, data_stopped) = tokio::sync::watch::channel(false);
    if config.data_participants > 0 {
        // Everyone's channels open first, so no message goes out before all its receivers can get it.
        let opening = participants
            .iter()
            .map(|p| p.client.wait_data_open(config.settle_timeout));
        let failed = futures_util::future::join_all(opening)
            .await
            .into_iter()
            .filter(|r| r.is_err())
            .count();
        if failed > 0 {
            progress(&format!(
                "warning: {failed} participants' data channels did not open"
            ));
        }
        for p in &participants {
            tally.spawn_receiver(Arc::clone(&p.client));
            if p.role == Role::Data {
                tally.spawn_sender(Arc::clone(&p.client), config.data, data_stopped.clone());
            }
        }
    }

    let before = snapshot(&participants);
    let sent_before = sent_by_size(config, &participants);
    let server_before = sample(config).await;
    let window_start = Instant::now();
    let mut last = (window_start, before.clone(), server_before.clone());
    let end = window_start + config.duration;
    while Instant::now() < end {
        let next = (Instant::now() + config.progress_interval).min(end);
        tokio::time::sleep_until(next.into()).await;
        let now_snap = snapshot(&participants);
        let server_now = sample(config).await;
        progress(
            &(progress_line(
                window_start.elapsed(),
                &participants,
                (&last.1, &now_snap),
                last.0.elapsed(),
                last.2.as_ref().zip(server_now.as_ref()),
            ) + &data_progress(config, &tally)),
        );
        last = (Instant::now(), now_snap, server_now);
    }
    let after = snapshot(&participants);
    let sent_after = sent_by_size(config, &participants);
    let server_after = sample(config).await;
    let window = window_start.elapsed();
    let _ = stop_data.send(true);
    if config.data_participants > 0 {
        // Messages still on their way when the senders stopped.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let mut received = Received::default();
    for (b, a) in before.iter().zip(&after) {
        received.add(b, a);
    }
    let (rss_before_join, rss_per_participant) = report::memory_per_participant(
        before_join.as_ref(),
        server_before.as_ref(),
        participants.len(),
    );
    let server = server_before
        .as_ref()
        .zip(server_after.as_ref())
        .and_then(|(b, a)| report::server_figures(b, a));
    let sent = layers::sent_since(&sent_before, &sent_after);
    let publisher_count = publishers(&participants).count();
    leave_all(participants).await;

    let mut report = Report::new(
        ReportConfig {
            url: config.ws_url.clone(),
            rooms: config.rooms,
            publishers_per_room: config.publishers,
            subscribers_per_room: config.subscribers,
            duration_secs: config.duration.as_secs_f64(),
            audio: config.audio,
            simulcast: !config.simulcast.is_empty(),
            video_bitrate_bps: config.video_bitrate,
            simulcast_layers: config.simulcast.iter().map(LayerConfig::from).collect(),
            pacing_factor: config.pacing_factor,
            subscriber_quality: config.subscriber_quality.name().to_owned(),
        },
        config.participants(),
        &join_times,
        window,
        &received,
        server,
    );
    report.video_layers = layers::layer_figures(
        &layers::layer_specs(config),
        &received.video_layers,
        &sent,
        publisher_count,
        window,
    );
    report.server_rss_bytes_before_join = rss_before_join;
    report.server_rss_bytes_per_participant = rss_per_participant;
    if config.data_participants > 0 {
        let others = config.per_room().saturating_sub(1) as u64;
        report.data = Some(tally.figures(config.data, config.data_participants, others));
    }
    if let Some(path) = &config.json {
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, json + "\n").map_err(|source| RunError::WriteJson {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(report)
}

/// Joins everyone, `join_concurrency` at a time, publishers of each room first.
async fn join_all(
    config: &Config,
    tokens: &Tokens,
    progress: Progress<'_>,
) -> (Vec<Participant>, LatencyHistogram, Option<String>) {
    let mut specs = Vec::new();
    for room in 0..config.rooms {
        specs.extend((0..config.publishers).map(|i| (room, Role::Publisher, i)));
        specs.extend((0..config.subscribers).map(|i| (room, Role::Subscriber, i)));
        specs.extend((0..config.data_participants).map(|i| (room, Role::Data, i)));
    }
    let results: Vec<_> = stream::iter(specs)
        .map(|(room, role, i)| join_one(config, tokens, room, role, i))
        .buffer_unordered(config.join_concurrency)
        .collect()
        .await;
    let mut participants = Vec::new();
    let mut join_times = LatencyHistogram::default();
    let mut first_error = None;
    let mut failures = 0;
    for result in results {
        match result {
            Ok((p, took)) => {
                join_times.record(took);
                participants.push(p);
            }
            Err(e) => {
                failures += 1;
                if failures <= 5 {
                    progress(&format!("join failed: {e}"));
                }
                first_error.get_or_insert(e);
            }
        }
    }
    (participants, join_times, first_error)
}

async fn join_one(
    config: &Config,
    tokens: &Tokens,
    room: usize,
    role: Role,
    i: usize,
) -> Result<(Participant, Duration), String> {
    let room_name = format!("{}-{room}", config.room_prefix);
    let prefix = match role {
        Role::Publisher => "pub",
        Role::Subscriber => "sub",
        Role::Data => "data",
    };
    let identity = format!("{prefix}{i}");
    let token = tokens
        .token(&room_name, &identity)
        .await
        .map_err(|e| e.to_string())?;
    let options = ConnectOptions {
        media: config.media_options(),
        // Data-only participants (game clients) take no media.
        auto_subscribe: role != Role::Data,
        ..ConnectOptions::default()
    };
    let start = Instant::now();
    let client = Client::connect(&config.ws_url, &token, options)
        .await
        .map_err(|e| format!("{room_name}/{identity}: {e}"))?;
    let took = start.elapsed();
    if role == Role::Publisher {
        let video = PublishOptions {
            simulcast: config.simulcast.clone(),
            ..PublishOptions::video()
        };
        client
            .publish(video)
            .await
            .map_err(|e| format!("{room_name}/{identity} publishing video: {e}"))?;
        if config.audio {
            client
                .publish_audio()
                .await
                .map_err(|e| format!("{room_name}/{identity} publishing audio: {e}"))?;
        }
    }
    Ok((
        Participant {
            client: Arc::new(client),
            room,
            role,
            quality: match role {
                Role::Subscriber => config.subscriber_quality.for_subscriber(i),
                _ => None,
            },
        },
        took,
    ))
}

/// Waits (up to `settle_timeout`) until every participant receives every remote track it should.
async fn settle(config: &Config, participants: &[Participant], progress: Progress<'_>) {
    let mut publishers_in = HashMap::<usize, u64>::new();
    for p in participants.iter().filter(|p| p.role == Role::Publisher) {
        *publishers_in.entry(p.room).or_default() += 1;
    }
    let kinds = if config.audio { 2 } else { 1 };
    let wanted = |p: &Participant| {
        if p.role == Role::Data {
            return 0;
        }
        let pubs = publishers_in.get(&p.room).copied().unwrap_or(0);
        (pubs - u64::from(p.role == Role::Publisher)) * kinds
    };
    let total: u64 = participants.iter().map(wanted).sum();
    let deadline = Instant::now() + config.settle_timeout;
    loop {
        let flowing: u64 = participants
            .iter()
            .map(|p| {
                let n = p.client.received().iter().filter(|t| t.packets > 0).count() as u64;
                n.min(wanted(p))
            })
            .sum();
        if flowing >= total {
            progress(&format!("media flows on all {total} streams"));
            return;
        }
        if Instant::now() >= deadline {
            progress(&format!(
                "warning: only {flowing} of {total} streams flow after {:?}; measuring anyway",
                config.settle_timeout
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The publishers' clients.
fn publishers(participants: &[Participant]) -> impl Iterator<Item = &Client> {
    participants
        .iter()
        .filter(|p| p.role == Role::Publisher)
        .map(|p| &*p.client)
}

fn sent_by_size(config: &Config, participants: &[Participant]) -> SentBySize {
    let m = config.media_options();
    layers::sent_by_size(publishers(participants), (m.video_width, m.video_height))
}

fn snapshot(participants: &[Participant]) -> Vec<Snapshot> {
    participants
        .iter()
        .map(|p| {
            p.client
                .received()
                .into_iter()
                .map(|t| (t.track_sid.clone(), t))
                .collect()
        })
        .collect()
}

async fn sample(config: &Config) -> Option<ServerSample> {
    scrape::sample(config.metrics.as_ref()?).await.ok()
}

fn progress_line(
    elapsed: Duration,
    participants: &[Participant],
    (before, after): (&[Snapshot], &[Snapshot]),
    interval: Duration,
    server: Option<(&ServerSample, &ServerSample)>,
) -> String {
    let mut received = Received::default();
    for (b, a) in before.iter().zip(after) {
        received.add(b, a);
    }
    let secs = interval.as_secs_f64().max(1e-9);
    let connected = participants
        .iter()
        .filter(|p| p.client.is_connected())
        .count();
    let mut line = format!(
        "[{:>5.1}s] {connected}/{} connected | rx {:.2} Mbit/s, {} video streams | lost {} | latency p50 {}",
        elapsed.as_secs_f64(),
        participants.len(),
        (received.video_bytes + received.audio_bytes) as f64 * 8.0 / secs / 1e6,
        received.video_streams,
        received.lost(),
        received
            .latency
            .quantile(0.5)
            .map_or("n/a".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3)),
    );
    if let Some(s) = server.and_then(|(b, a)| report::server_figures(b, a)) {
        line += &format!(
            " | server {:.2} cores, {:.0} fwd pkt/s",
            s.cpu_cores, s.forwarded_packets_per_sec
        );
        if s.forwarded_packets > 0 {
            line += &format!(
                ", {:.1} µs/pkt",
                s.cpu_seconds * 1e6 / s.forwarded_packets as f64
            );
        }
    }
    line
}

async fn leave_all(participants: Vec<Participant>) {
    let leaving = participants.iter().map(|p| p.client.leave());
    futures_util::future::join_all(leaving).await;
    drop(participants);
}

/// The data part of a progress line (empty without data load).
fn data_progress(config: &Config, tally: &DataTally) -> String {
    if config.data_participants == 0 {
        return String::new();
    }
    format!(" | data rx {} msgs", tally.received())
}
