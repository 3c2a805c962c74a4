//! The publisher connection: the client adds synthetic tracks, offers, and applies the server's answer.
//!
//! One negotiation at a time (a lock held across offer → `tracksAssigned` → `answer`). Each offer lists every
//! track the connection carries. The signaling loop delivers `tracksAssigned`, `answer`, `publishLayers` and
//! errors here; it never touches the peer connection itself. Each track, with its encodings and synthetic
//! sources, is a `LocalTrack` (`local_track.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chorus_protocol::{AssignedTrack, ClientMessage, ErrorCode, ErrorMessage, PcTarget};
use tokio::sync::oneshot;
use tracing::{debug, warn};
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;

use crate::connection::SignalSender;
use crate::error::ClientError;
use crate::local_track::{LocalTrack, PublishOptions, PublishedTrack};
use crate::media::MediaOptions;
use crate::peer::CandidateGate;

#[derive(Default)]
struct Pending {
    answer: Option<oneshot::Sender<Result<String, ClientError>>>,
    assigned: HashMap<String, String>,
    closed: Option<String>,
}

pub(crate) struct Publisher {
    pc: Arc<RTCPeerConnection>,
    gate: Arc<CandidateGate>,
    signal: SignalSender,
    media: MediaOptions,
    stream_id: String,
    negotiation_timeout: Duration,
    negotiation: tokio::sync::Mutex<()>,
    pending: Mutex<Pending>,
    tracks: Mutex<Vec<LocalTrack>>,
}

impl Publisher {
    pub(crate) fn new(
        pc: Arc<RTCPeerConnection>,
        signal: SignalSender,
        media: MediaOptions,
        stream_id: String,
        negotiation_timeout: Duration,
    ) -> Self {
        let gate = CandidateGate::new(PcTarget::Publisher, signal.clone());
        gate.attach(&pc);
        Publisher {
            pc,
            gate,
            signal,
            media,
            stream_id,
            negotiation_timeout,
            negotiation: tokio::sync::Mutex::new(()),
            pending: Mutex::new(Pending::default()),
            tracks: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn pc(&self) -> &Arc<RTCPeerConnection> {
        &self.pc
    }

    /// Adds a synthetic track, renegotiates, and starts sending once the server has accepted it.
    pub(crate) async fn publish(
        &self,
        opts: PublishOptions,
    ) -> Result<PublishedTrack, ClientError> {
        let _negotiating = self.negotiation.lock().await;
        if let Some(reason) = &self.pending().closed {
            return Err(ClientError::Disconnected(reason.clone()));
        }
        let n = self.tracks().len();
        let local = LocalTrack::add(&self.pc, opts, n, &self.stream_id, &self.media).await?;
        let sender = Arc::clone(&local.sender);
        self.tracks().push(local);

        if let Err(err) = self.negotiate().await {
            self.tracks().retain(|t| !Arc::ptr_eq(&t.sender, &sender));
            let _ = self.pc.remove_track(&sender).await;
            return Err(err);
        }
        let info = {
            let tracks = self.tracks();
            let Some(local) = tracks.iter().find(|t| Arc::ptr_eq(&t.sender, &sender)) else {
                return Err(ClientError::Protocol("published track vanished".into()));
            };
            let info = local.info();
            if info.track_sid.is_empty() {
                return Err(ClientError::Protocol(format!(
                    "server assigned no trackSid to mid {}",
                    info.mid
                )));
            }
            local.start();
            info
        };
        debug!(
            track_sid = %info.track_sid,
            mid = %info.mid,
            kind = ?info.kind,
            layers = info.layers.len(),
            "published"
        );
        Ok(info)
    }

    /// Offers the publisher connection as it is now (e.g. with new data channels) and applies the answer.
    pub(crate) async fn renegotiate(&self) -> Result<(), ClientError> {
        let _negotiating = self.negotiation.lock().await;
        if let Some(reason) = &self.pending().closed {
            return Err(ClientError::Disconnected(reason.clone()));
        }
        self.negotiate().await
    }

    /// Stops sending a track, tells the server, and renegotiates without it.
    pub(crate) async fn unpublish(&self, track_sid: &str) -> Result<(), ClientError> {
        let _negotiating = self.negotiation.lock().await;
        let local = {
            let mut tracks = self.tracks();
            let Some(i) = tracks.iter().position(|t| t.track_sid == track_sid) else {
                return Err(ClientError::UnknownTrack(track_sid.to_owned()));
            };
            tracks.remove(i)
        };
        local.stop();
        self.signal.send(ClientMessage::Unpublish {
            track_sid: track_sid.to_owned(),
        })?;
        self.pc.remove_track(&local.sender).await?;
        self.negotiate().await
    }

    /// Mutes or unmutes a published track: the synthetic source pauses, and the server is told.
    pub(crate) fn set_muted(&self, track_sid: &str, muted: bool) -> Result<(), ClientError> {
        {
            let tracks = self.tracks();
            let Some(local) = tracks.iter().find(|t| t.track_sid == track_sid) else {
                return Err(ClientError::UnknownTrack(track_sid.to_owned()));
            };
            local.set_muted(muted);
        }
        self.signal.send(ClientMessage::Mute {
            track_sid: track_sid.to_owned(),
            muted,
        })
    }

    /// What to publish again after a rejoin: each track's options and whether it is muted.
    pub(crate) fn track_specs(&self) -> Vec<(PublishOptions, bool)> {
        self.tracks()
            .iter()
            .map(|t| (t.opts.clone(), t.is_muted()))
            .collect()
    }

    pub(crate) fn published(&self) -> Vec<PublishedTrack> {
        self.tracks()
            .iter()
            .filter(|t| !t.track_sid.is_empty())
            .map(LocalTrack::info)
            .collect()
    }

    /// Offer → `tracksAssigned` → `answer`, then record the assigned sids. Caller holds `negotiation`.
    async fn negotiate(&self) -> Result<(), ClientError> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        let sdp = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| ClientError::Protocol("no local description after offer".into()))?
            .sdp;
        let tracks = self.tracks().iter().map(LocalTrack::describe).collect();

        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending();
            if let Some(reason) = &pending.closed {
                return Err(ClientError::Disconnected(reason.clone()));
            }
            pending.assigned.clear();
            pending.answer = Some(tx);
        }
        self.signal.send(ClientMessage::Offer { sdp, tracks })?;
        self.gate.open();

        let answer = match tokio::time::timeout(self.negotiation_timeout, rx).await {
            Err(_) => Err(ClientError::Timeout("publisher answer")),
            Ok(Err(_)) => Err(ClientError::Disconnected("signaling ended".into())),
            Ok(Ok(result)) => result,
        };
        let assigned = {
            let mut pending = self.pending();
            pending.answer = None;
            std::mem::take(&mut pending.assigned)
        };
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer?)?)
            .await?;
        for t in self.tracks().iter_mut() {
            if let Some(sid) = assigned.get(&t.mid()) {
                t.track_sid.clone_from(sid);
            }
        }
        Ok(())
    }

    pub(crate) fn on_tracks_assigned(&self, tracks: Vec<AssignedTrack>) {
        let mut pending = self.pending();
        for t in tracks {
            pending.assigned.insert(t.mid, t.track_sid);
        }
    }

    pub(crate) fn on_answer(&self, sdp: String) {
        match self.pending().answer.take() {
            Some(tx) => {
                let _ = tx.send(Ok(sdp));
            }
            None => warn!("publisher answer with no offer outstanding; ignored"),
        }
    }

    /// Dynacast (`publishLayers`): the server asks for only some simulcast layers of one of our tracks, or none.
    pub(crate) fn on_publish_layers(&self, track_sid: &str, enabled: bool, layers: &[String]) {
        match self.tracks().iter().find(|t| t.track_sid == track_sid) {
            Some(t) => {
                debug!(%track_sid, enabled, ?layers, "publishLayers");
                t.set_active_layers(enabled, layers);
            }
            None => debug!(%track_sid, "publishLayers for a track not published here; ignored"),
        }
    }

    /// An error that may be the server refusing the outstanding offer fails that negotiation.
    pub(crate) fn on_server_error(&self, err: &ErrorMessage) {
        let refuses_offer = matches!(
            err.code,
            ErrorCode::PermissionDenied
                | ErrorCode::NegotiationFailed
                | ErrorCode::BadRequest
                | ErrorCode::Internal
        );
        if refuses_offer || err.fatal {
            if let Some(tx) = self.pending().answer.take() {
                let _ = tx.send(Err(err.clone().into()));
            }
        }
    }

    /// The session is over: fail the outstanding negotiation and refuse new ones.
    pub(crate) fn fail_pending(&self, err: ClientError) {
        let mut pending = self.pending();
        pending.closed = Some(err.to_string());
        if let Some(tx) = pending.answer.take() {
            let _ = tx.send(Err(err));
        }
    }

    pub(crate) async fn add_remote_candidate(&self, candidate: String) -> Result<(), ClientError> {
        add_remote_candidate(&self.pc, candidate).await
    }

    /// Stops every synthetic source and closes the connection.
    pub(crate) async fn close(&self) {
        for t in self.tracks().iter() {
            t.stop();
        }
        if let Err(err) = self.pc.close().await {
            debug!(%err, "closing publisher connection");
        }
    }

    fn tracks(&self) -> MutexGuard<'_, Vec<LocalTrack>> {
        self.tracks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Adds a server-sent candidate; an empty one (end of candidates) needs nothing.
pub(crate) async fn add_remote_candidate(
    pc: &RTCPeerConnection,
    candidate: String,
) -> Result<(), ClientError> {
    if candidate.is_empty() {
        return Ok(());
    }
    pc.add_ice_candidate(RTCIceCandidateInit {
        candidate,
        ..Default::default()
    })
    .await?;
    Ok(())
}
