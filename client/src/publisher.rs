//! The publisher connection: the client adds synthetic tracks, offers, and applies the server's answer.
//!
//! One negotiation at a time (a lock held across offer → `tracksAssigned` → `answer`). Each offer lists every
//! track the connection carries. The signaling loop delivers `tracksAssigned`, `answer` and errors here; it never
//! touches the peer connection itself.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chorus_protocol::{
    AssignedTrack, ClientMessage, ErrorCode, ErrorMessage, PcTarget, PublishTrack, TrackKind,
    TrackSource,
};
use tokio::sync::{oneshot, watch};
use tracing::{debug, warn};
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::{RTCRtpTransceiver, RTCRtpTransceiverInit};
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
use webrtc::track::track_local::TrackLocal;

use crate::connection::SignalSender;
use crate::error::ClientError;
use crate::media::{self, MediaOptions, SourceControl};
use crate::peer::CandidateGate;

/// What to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOptions {
    pub kind: TrackKind,
    pub source: TrackSource,
    pub name: String,
}

impl PublishOptions {
    /// A microphone-like Opus track named "microphone".
    pub fn audio() -> Self {
        PublishOptions {
            kind: TrackKind::Audio,
            source: TrackSource::Microphone,
            name: "microphone".into(),
        }
    }

    /// A camera-like VP8 track named "camera".
    pub fn video() -> Self {
        PublishOptions {
            kind: TrackKind::Video,
            source: TrackSource::Camera,
            name: "camera".into(),
        }
    }
}

/// One of this client's published tracks, with what it has sent so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedTrack {
    pub track_sid: String,
    pub mid: String,
    pub kind: TrackKind,
    pub source: TrackSource,
    pub name: String,
    pub muted: bool,
    pub frames_sent: u64,
    pub bytes_sent: u64,
}

struct LocalTrack {
    opts: PublishOptions,
    track_sid: String,
    transceiver: Arc<RTCRtpTransceiver>,
    sender: Arc<RTCRtpSender>,
    ctl: Arc<SourceControl>,
    stop: watch::Sender<bool>,
}

impl LocalTrack {
    fn mid(&self) -> String {
        self.transceiver
            .mid()
            .map(|m| m.to_string())
            .unwrap_or_default()
    }

    fn info(&self) -> PublishedTrack {
        PublishedTrack {
            track_sid: self.track_sid.clone(),
            mid: self.mid(),
            kind: self.opts.kind,
            source: self.opts.source,
            name: self.opts.name.clone(),
            muted: self.ctl.muted.load(Ordering::Relaxed),
            frames_sent: self.ctl.frames_sent.load(Ordering::Relaxed),
            bytes_sent: self.ctl.bytes_sent.load(Ordering::Relaxed),
        }
    }
}

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
        let (codec, id) = match opts.kind {
            TrackKind::Audio => (
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                    rtcp_feedback: vec![],
                },
                format!("audio-{n}"),
            ),
            TrackKind::Video => (
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_VP8.to_owned(),
                    clock_rate: 90_000,
                    ..Default::default()
                },
                format!("video-{n}"),
            ),
        };
        let track = Arc::new(TrackLocalStaticSample::new(
            codec,
            id,
            self.stream_id.clone(),
        ));
        let transceiver = self
            .pc
            .add_transceiver_from_track(
                Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    send_encodings: vec![],
                }),
            )
            .await?;
        let sender = transceiver.sender().await;
        let ctl = Arc::new(SourceControl::default());
        tokio::spawn(read_rtcp(Arc::clone(&sender), Arc::clone(&ctl)));
        let (stop, stop_rx) = watch::channel(false);
        self.tracks().push(LocalTrack {
            opts: opts.clone(),
            track_sid: String::new(),
            transceiver: Arc::clone(&transceiver),
            sender: Arc::clone(&sender),
            ctl: Arc::clone(&ctl),
            stop,
        });

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
            local.info()
        };
        if info.track_sid.is_empty() {
            return Err(ClientError::Protocol(format!(
                "server assigned no trackSid to mid {}",
                info.mid
            )));
        }
        match opts.kind {
            TrackKind::Audio => tokio::spawn(media::run_audio(track, ctl, stop_rx)),
            TrackKind::Video => {
                tokio::spawn(media::run_video(track, ctl, self.media.clone(), stop_rx))
            }
        };
        debug!(track_sid = %info.track_sid, mid = %info.mid, kind = ?info.kind, "published");
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
        let _ = local.stop.send(true);
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
            local.ctl.muted.store(muted, Ordering::Relaxed);
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
            .map(|t| (t.opts.clone(), t.ctl.muted.load(Ordering::Relaxed)))
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
        let tracks = self
            .tracks()
            .iter()
            .map(|t| PublishTrack {
                mid: t.mid(),
                kind: t.opts.kind,
                source: t.opts.source,
                name: t.opts.name.clone(),
                muted: t.ctl.muted.load(Ordering::Relaxed),
                ..Default::default()
            })
            .collect();

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
            let _ = t.stop.send(true);
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

/// Reads RTCP for one sender: lets the interceptors (NACK responder, reports) see it, and turns PLI/FIR into a
/// keyframe request for the synthetic source. Ends when the sender stops.
async fn read_rtcp(sender: Arc<RTCRtpSender>, ctl: Arc<SourceControl>) {
    while let Ok((packets, _)) = sender.read_rtcp().await {
        for p in packets {
            let any = p.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                ctl.keyframe_requested.store(true, Ordering::Relaxed);
            }
        }
    }
}
