//! One participant as the room sees it: identity, grants, its session, its tracks and subscriptions.

use std::collections::{HashMap, HashSet};

use chorus_protocol::{ParticipantInfo, ServerMessage, TrackInfo};
use chorus_sfu::{ParticipantKey, SubscriptionPreference, TrackKey};

use super::{Outbound, SessionTx};
use crate::auth::Grants;

pub struct Member {
    pub key: ParticipantKey,
    pub sid: String,
    pub identity: String,
    pub name: String,
    pub grants: Grants,
    /// The token's `iat` (revocations compare against it).
    pub issued_at: Option<u64>,
    /// Seconds since the Unix epoch.
    pub joined_at: u64,
    pub auto_subscribe: bool,
    pub resume_token: String,
    /// None while the WebSocket is gone (within the resume window).
    pub session: Option<SessionTx>,
    pub epoch: u64,
    /// Tracks this member publishes, in the order published.
    pub tracks: Vec<TrackKey>,
    /// Tracks whose subscription differs from the default: opt-outs when `auto_subscribe`, opt-ins otherwise.
    pub overrides: HashSet<TrackKey>,
    /// Layer preferences this member set for remote tracks (`updateSubscription`).
    pub prefs: HashMap<TrackKey, SubscriptionPreference>,
    /// The most the server sends this member, set through the API (`maxDownlinkBps`); None: its estimate only.
    pub downlink_cap: Option<u64>,
}

impl Member {
    pub fn send(&self, msg: ServerMessage) {
        if let Some(s) = &self.session {
            let _ = s.send(Outbound::Message(msg));
        }
    }

    /// Send a last message and close the session.
    pub fn close_with(&mut self, msg: ServerMessage) {
        if let Some(s) = self.session.take() {
            let _ = s.send(Outbound::Message(msg));
            let _ = s.send(Outbound::Close);
        }
    }

    pub fn visible(&self) -> bool {
        !self.grants.hidden
    }

    /// Whether this member should receive `track` right now.
    pub fn wants(&self, track: TrackKey) -> bool {
        self.grants.can_subscribe && (self.auto_subscribe != self.overrides.contains(&track))
    }

    /// Record an explicit subscribe/unsubscribe of `track`.
    pub fn set_wants(&mut self, track: TrackKey, subscribe: bool) {
        if subscribe == self.auto_subscribe {
            self.overrides.remove(&track);
        } else {
            self.overrides.insert(track);
        }
    }

    pub fn info(&self, tracks: Vec<TrackInfo>) -> ParticipantInfo {
        ParticipantInfo {
            sid: self.sid.clone(),
            identity: self.identity.clone(),
            name: self.name.clone(),
            tracks,
        }
    }
}
