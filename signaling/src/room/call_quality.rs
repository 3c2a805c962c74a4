//! Call quality on the signaling side: the worker's measurements turned into the protocol's shapes, the server
//! API's query of one participant's quality, and the log of every participant's session summary that the room
//! reports in `room_finished`.
//!
//! The media worker measures (`chorus_sfu::quality`); this file translates, remembers the summaries the worker
//! sends as participants leave it, and waits for the last of them when the room closes.

use std::collections::HashMap;
use std::time::Duration;

use chorus_protocol::{CallQuality, LinkQuality, QualitySummary};
use chorus_sfu::{Command, ParticipantKey, ParticipantStats};
use serde::Serialize;
use tokio::sync::oneshot;

use super::actor::Room;
use super::admin::AdminError;
use super::events::{ParticipantQuality, ParticipantRef};

/// Most participants a room remembers for `room_finished` (the first ones to join); `participantsTotal` tells
/// whether some are missing.
pub const MAX_FINISHED_PARTICIPANTS: usize = 1000;

/// How long a closing room waits for its worker to report the last summaries.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Rounds to 3 decimals: enough for every field (ms, percent, MOS) and readable JSON.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn percent(fraction: Option<f64>) -> Option<f64> {
    fraction.map(|f| round(f * 100.0))
}

fn link(l: &chorus_sfu::LinkQuality) -> LinkQuality {
    LinkQuality {
        bitrate_bps: l.bitrate_bps,
        loss_percent: percent(l.loss),
        jitter_ms: l.jitter_ms.map(round),
    }
}

/// The protocol shape of a worker's quality report.
pub fn call_quality(r: &chorus_sfu::QualityReport) -> CallQuality {
    CallQuality {
        rtt_ms: r.rtt_ms.map(round),
        jitter_ms: r.jitter_ms.map(round),
        loss_percent: percent(r.loss),
        bitrate_in_bps: r.bitrate_in_bps,
        bitrate_out_bps: r.bitrate_out_bps,
        mos: r.mos.map(round),
        uplink: link(&r.uplink),
        downlink: link(&r.downlink),
    }
}

/// The protocol shape of a worker's session summary.
pub fn quality_summary(s: &chorus_sfu::QualitySummary) -> QualitySummary {
    QualitySummary {
        duration_secs: round(s.duration.as_secs_f64()),
        samples: s.samples,
        mos_mean: s.mos_mean.map(round),
        mos_min: s.mos_min.map(round),
        rtt_mean_ms: s.rtt_mean_ms.map(round),
        rtt_max_ms: s.rtt_max_ms.map(round),
        loss_percent_mean: percent(s.loss_mean),
        loss_percent_max: percent(s.loss_max),
        jitter_mean_ms: s.jitter_mean_ms.map(round),
        jitter_max_ms: s.jitter_max_ms.map(round),
        bytes_in: s.bytes_in,
        bytes_out: s.bytes_out,
    }
}

/// `GET /v1/rooms/{room}/participants/{identity}/stats`: a participant's quality now and over its session.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantQualityReport {
    pub identity: String,
    pub sid: String,
    #[serde(flatten)]
    pub quality: CallQuality,
    pub session: QualitySummary,
}

/// Every participant that joined the room (up to [`MAX_FINISHED_PARTICIPANTS`]) and its session summary once
/// the worker reported it.
#[derive(Debug, Default)]
pub(super) struct QualityLog {
    entries: Vec<ParticipantQuality>,
    index: HashMap<ParticipantKey, usize>,
}

impl QualityLog {
    pub(super) fn joined(&mut self, key: ParticipantKey, participant: ParticipantRef) {
        if self.entries.len() >= MAX_FINISHED_PARTICIPANTS {
            return;
        }
        self.index.insert(key, self.entries.len());
        self.entries.push(ParticipantQuality {
            participant,
            quality: None,
        });
    }

    pub(super) fn record(&mut self, key: ParticipantKey, summary: &chorus_sfu::QualitySummary) {
        if let Some(&i) = self.index.get(&key) {
            self.entries[i].quality = Some(quality_summary(summary));
        }
    }

    /// Every participant in the order they joined; `quality` is `None` where the worker never reported.
    pub(super) fn finish(self) -> Vec<ParticipantQuality> {
        self.entries
    }
}

impl Room {
    /// Answers the server API's quality query from the worker (the reply is sent on the worker thread).
    pub(super) fn query_quality(
        &self,
        identity: &str,
        reply: oneshot::Sender<Result<ParticipantQualityReport, AdminError>>,
    ) {
        let Some(member) = self.members.values().find(|m| m.identity == identity) else {
            let _ = reply.send(Err(AdminError::UnknownParticipant));
            return;
        };
        let (identity, sid) = (member.identity.clone(), member.sid.clone());
        self.worker.send(Command::QueryStats {
            participant: member.key,
            reply: Box::new(move |stats: Option<ParticipantStats>| {
                // A participant the worker does not know (yet) has no measurements: all null.
                let stats = stats.unwrap_or_default();
                let _ = reply.send(Ok(ParticipantQualityReport {
                    identity,
                    sid,
                    quality: call_quality(&stats.quality),
                    session: quality_summary(&stats.session),
                }));
            }),
        });
    }

    /// Release the worker's room, then wait (briefly) until it has reported every participant's summary: the
    /// summaries are queued to this room before the worker calls back.
    pub(super) async fn release_media(&self) {
        let (tx, rx) = oneshot::channel();
        self.worker.send(Command::RemoveRoom {
            room: self.key,
            done: Some(Box::new(move || {
                let _ = tx.send(());
            })),
        });
        // A stopped worker drops the callback: the wait ends at once.
        if tokio::time::timeout(RELEASE_TIMEOUT, rx).await.is_err() {
            tracing::warn!(room = %self.name, "media worker did not release the room in time");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_become_rounded_percent_and_milliseconds() {
        let r = chorus_sfu::QualityReport {
            rtt_ms: Some(12.34567),
            jitter_ms: Some(2.0),
            loss: Some(0.0123456),
            bitrate_in_bps: Some(1000),
            bitrate_out_bps: None,
            mos: Some(4.39999),
            uplink: chorus_sfu::LinkQuality {
                bitrate_bps: Some(1000),
                loss: Some(0.0123456),
                jitter_ms: None,
            },
            downlink: Default::default(),
        };
        let q = call_quality(&r);
        assert_eq!(q.rtt_ms, Some(12.346));
        assert_eq!(q.loss_percent, Some(1.235));
        assert_eq!(q.mos, Some(4.4));
        assert_eq!(q.uplink.loss_percent, Some(1.235));
        assert_eq!((q.bitrate_out_bps, q.downlink.jitter_ms), (None, None));
        let s = quality_summary(&chorus_sfu::QualitySummary {
            duration: Duration::from_millis(61_500),
            samples: 61,
            loss_max: Some(0.5),
            ..Default::default()
        });
        assert_eq!((s.duration_secs, s.samples), (61.5, 61));
        assert_eq!(
            (s.loss_percent_max, s.loss_percent_mean),
            (Some(50.0), None)
        );
    }

    #[test]
    fn the_log_keeps_join_order_and_fills_in_summaries() {
        let mut log = QualityLog::default();
        let who = |n: &str| ParticipantRef {
            sid: format!("PA_{n}"),
            identity: n.into(),
            name: n.into(),
        };
        log.joined(ParticipantKey(1), who("a"));
        log.joined(ParticipantKey(2), who("b"));
        log.record(
            ParticipantKey(2),
            &chorus_sfu::QualitySummary {
                samples: 3,
                ..Default::default()
            },
        );
        // Unknown keys (e.g. past the cap) are ignored.
        log.record(ParticipantKey(9), &Default::default());
        let done = log.finish();
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].participant.identity, "a");
        assert_eq!(done[0].quality, None);
        assert_eq!(done[1].quality.map(|q| q.samples), Some(3));
    }
}
