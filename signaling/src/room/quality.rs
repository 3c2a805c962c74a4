//! Simulcast on the signaling side: subscribers' layer preferences (kept per member so they survive
//! resubscription), pauses for bandwidth, dynacast instructions to publishers, and `getStats` (with the call
//! quality of `call_quality.rs`).
//!
//! The media worker decides layers; this file only translates between protocol messages and worker
//! commands/events, and checks what clients send.

use chorus_protocol::{
    ErrorCode, ErrorMessage, LayerReason, ParticipantStats as StatsMsg, ServerMessage,
    SubscriptionStats as SubscriptionStatsMsg, VideoQuality,
};
use chorus_sfu::{
    Command, LimitReason, ParticipantKey, ParticipantStats, Quality, SubscriptionPreference,
    TrackKey,
};

use super::actor::Room;
use super::Outbound;

/// Largest rendered size a subscriber may report, in pixels per side.
const MAX_RENDER_SIDE: u32 = 16_384;

/// What a client sent in `updateSubscription`, before validation.
pub struct PreferenceRequest {
    pub track_sids: Vec<String>,
    pub quality: Option<VideoQuality>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub pinned: bool,
}

fn to_preference(req: &PreferenceRequest) -> Result<SubscriptionPreference, String> {
    let max_size = match (req.width, req.height) {
        (None, None) => None,
        (Some(w), Some(h))
            if (1..=MAX_RENDER_SIDE).contains(&w) && (1..=MAX_RENDER_SIDE).contains(&h) =>
        {
            Some((w, h))
        }
        (Some(_), Some(_)) => return Err(format!("width and height must be 1-{MAX_RENDER_SIDE}")),
        _ => return Err("width and height go together".into()),
    };
    Ok(SubscriptionPreference {
        quality: req.quality.map(|q| match q {
            VideoQuality::Low => Quality::Low,
            VideoQuality::Medium => Quality::Medium,
            VideoQuality::High => Quality::High,
        }),
        max_size,
        pinned: req.pinned,
    })
}

fn reason_msg(r: LimitReason) -> LayerReason {
    match r {
        LimitReason::Requested => LayerReason::Requested,
        LimitReason::Bandwidth => LayerReason::Bandwidth,
        LimitReason::Unavailable => LayerReason::Unavailable,
    }
}

impl Room {
    /// Start or stop forwarding `track` to `sub`, with the member's stored preference for it.
    pub(super) fn send_subscribed(&self, sub: ParticipantKey, track: TrackKey, on: bool) {
        self.worker.send(Command::SetSubscribed {
            subscriber: sub,
            track,
            subscribed: on,
        });
        let pref = self.members.get(&sub).and_then(|m| m.prefs.get(&track));
        if let (true, Some(pref)) = (on, pref) {
            self.worker.send(Command::SetPreference {
                subscriber: sub,
                track,
                preference: *pref,
            });
        }
    }

    pub(super) fn update_subscription(&mut self, key: ParticipantKey, req: PreferenceRequest) {
        let Some(member) = self.members.get_mut(&key) else {
            return;
        };
        let pref = match to_preference(&req) {
            Ok(p) => p,
            Err(e) => {
                member.send(ServerMessage::Error(ErrorMessage::new(
                    ErrorCode::BadRequest,
                    format!("updateSubscription: {e}"),
                )));
                return;
            }
        };
        let mut unknown = Vec::new();
        for sid in &req.track_sids {
            let found = self
                .tracks
                .iter()
                .find(|(_, t)| &t.sid == sid && t.owner != key)
                .map(|(k, _)| *k);
            let Some(track) = found else {
                unknown.push(sid.clone());
                continue;
            };
            member.prefs.insert(track, pref);
            self.worker.send(Command::SetPreference {
                subscriber: key,
                track,
                preference: pref,
            });
        }
        if !unknown.is_empty() {
            member.send(ServerMessage::Error(ErrorMessage::new(
                ErrorCode::UnknownTrack,
                format!("no such remote tracks in this room: {}", unknown.join(", ")),
            )));
        }
    }

    /// The worker paused or resumed a subscription for bandwidth.
    pub(super) fn stream_paused(&self, sub: ParticipantKey, track: TrackKey, paused: bool) {
        let (Some(member), Some(t)) = (self.members.get(&sub), self.tracks.get(&track)) else {
            return;
        };
        member.send(ServerMessage::StreamState {
            track_sid: t.sid.clone(),
            paused,
            reason: LayerReason::Bandwidth,
        });
    }

    /// Dynacast: tell a publisher which layers of its track anyone receives.
    pub(super) fn publish_layers(
        &self,
        publisher: ParticipantKey,
        track: TrackKey,
        enabled: bool,
        layers: Vec<String>,
    ) {
        let (Some(member), Some(t)) = (self.members.get(&publisher), self.tracks.get(&track))
        else {
            return;
        };
        member.send(ServerMessage::PublishLayers {
            track_sid: t.sid.clone(),
            enabled,
            layers,
        });
    }

    /// Answer `getStats` from the worker; the reply goes straight to the member's session.
    pub(super) fn get_stats(&self, key: ParticipantKey) {
        let Some(session) = self.members.get(&key).and_then(|m| m.session.clone()) else {
            return;
        };
        let sids: Vec<(TrackKey, String)> = self
            .tracks
            .iter()
            .map(|(k, t)| (*k, t.sid.clone()))
            .collect();
        self.worker.send(Command::QueryStats {
            participant: key,
            reply: Box::new(move |stats: Option<ParticipantStats>| {
                let quality = stats
                    .as_ref()
                    .map(|s| super::call_quality::call_quality(&s.quality));
                let stats = stats.unwrap_or_default();
                let subscriptions = stats
                    .subscriptions
                    .into_iter()
                    .filter_map(|s| {
                        let sid = sids.iter().find(|(k, _)| *k == s.track)?.1.clone();
                        Some(SubscriptionStatsMsg {
                            track_sid: sid,
                            current_layer: s.current_layer,
                            target_layer: s.target_layer,
                            wanted_layer: s.wanted_layer,
                            reason: reason_msg(s.reason),
                            paused: s.paused,
                            layer_switches: s.layer_switches,
                        })
                    })
                    .collect();
                let _ = session.send(Outbound::Message(ServerMessage::Stats(StatsMsg {
                    estimate_bps: stats.estimate_bps,
                    subscriptions,
                    quality,
                })));
            }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(width: Option<u32>, height: Option<u32>) -> PreferenceRequest {
        PreferenceRequest {
            track_sids: vec![],
            quality: Some(VideoQuality::Low),
            width,
            height,
            pinned: true,
        }
    }

    #[test]
    fn preferences_are_validated() {
        let p = to_preference(&req(Some(320), Some(180))).expect("valid");
        assert_eq!(p.max_size, Some((320, 180)));
        assert_eq!(p.quality, Some(Quality::Low));
        assert!(p.pinned);
        assert!(to_preference(&req(None, None))
            .expect("valid")
            .max_size
            .is_none());
        assert!(to_preference(&req(Some(320), None)).is_err());
        assert!(to_preference(&req(Some(0), Some(10))).is_err());
        assert!(to_preference(&req(Some(100_000), Some(10))).is_err());
    }
}
