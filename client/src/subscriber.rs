//! The subscriber connection: the server offers, the client answers, and every remote track gets a reader task
//! that counts its RTP packets and bytes (the latency of Chorus-stamped frames, and for video the size of each
//! VP8 keyframe, which names the simulcast layer) into [`RemoteTracks`], and
//! an RTCP reader: webrtc-rs runs incoming RTCP through its interceptors only when someone reads it, and the
//! receiver-report interceptor needs the server's sender reports to fill in LSR/DLSR, from which the server
//! measures the round-trip time.
//!
//! Offers are handled one at a time, in arrival order, by the signaling loop.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chorus_protocol::{ClientMessage, PcTarget, SubscribedTrack, TrackKind};
use tracing::{debug, trace};
use webrtc::api::media_engine::MIME_TYPE_VP8;
use webrtc::ice_transport::ice_connection_state::RTCIceConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver;
use webrtc::track::track_remote::TrackRemote;

use crate::connection::SignalSender;
use crate::error::ClientError;
use crate::events::{ClientEvent, EventSink};
use crate::media::find_stamp;
use crate::peer::CandidateGate;
use crate::stats::{ReceivedPacket, RemoteTracks};
use crate::vp8;

/// Longest wait for the ICE agent to start before applying a renegotiation offer anyway.
const ICE_START_WAIT: Duration = Duration::from_secs(5);
/// Longest wait for webrtc-rs to open the receive streams of a renegotiation before answering anyway.
pub(crate) const RECEIVERS_WAIT: Duration = Duration::from_secs(3);

pub(crate) struct Subscriber {
    pc: Arc<RTCPeerConnection>,
    gate: Arc<CandidateGate>,
    signal: SignalSender,
    remote: Arc<RemoteTracks>,
}

impl Subscriber {
    pub(crate) fn new(pc: Arc<RTCPeerConnection>, signal: SignalSender, events: EventSink) -> Self {
        let gate = CandidateGate::new(PcTarget::Subscriber, signal.clone());
        gate.attach(&pc);
        let remote = Arc::new(RemoteTracks::default());
        let on_track_remote = Arc::clone(&remote);
        pc.on_track(Box::new(move |track, receiver, transceiver| {
            let remote = Arc::clone(&on_track_remote);
            let events = events.clone();
            Box::pin(async move {
                let mid = transceiver.mid().map(|m| m.to_string()).unwrap_or_default();
                let kind = match track.kind() {
                    RTPCodecType::Audio => TrackKind::Audio,
                    _ => TrackKind::Video,
                };
                if let Some(t) = remote.assignment(&mid) {
                    debug!(%mid, track_sid = %t.track_sid, ?kind, "remote track started");
                    events.emit(ClientEvent::TrackSubscribed {
                        participant_sid: t.participant_sid,
                        track_sid: t.track_sid,
                        mid: mid.clone(),
                    });
                } else {
                    debug!(%mid, ?kind, "media on a mid the server did not describe");
                }
                tokio::spawn(read_rtcp(receiver, mid.clone()));
                tokio::spawn(read_rtp(track, mid, kind, remote));
            })
        }));
        Subscriber {
            pc,
            gate,
            signal,
            remote,
        }
    }

    pub(crate) fn pc(&self) -> &Arc<RTCPeerConnection> {
        &self.pc
    }

    pub(crate) fn remote(&self) -> &Arc<RemoteTracks> {
        &self.remote
    }

    /// Applies a server offer and sends the answer.
    pub(crate) async fn handle_offer(
        &self,
        sdp: String,
        tracks: Vec<SubscribedTrack>,
    ) -> Result<(), ClientError> {
        self.remote.set_assignments(tracks);
        let renegotiation = self.pc.remote_description().await.is_some();
        if renegotiation {
            self.wait_for_ice_start().await;
        }
        let offer = RTCSessionDescription::offer(sdp)?;
        let sending_mids = sending_mids(&offer);
        self.pc.set_remote_description(offer).await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        if renegotiation {
            wait_for_receive_streams(&self.pc, &sending_mids, RECEIVERS_WAIT).await;
        }
        let sdp = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| ClientError::Protocol("no local description after answer".into()))?
            .sdp;
        self.signal.send(ClientMessage::Answer { sdp })?;
        self.gate.open();
        Ok(())
    }

    /// webrtc-rs hands the remote ICE credentials to its agent asynchronously after the first answer; an offer
    /// applied before that looks like an ICE restart (the agent's remote credentials are still empty), which
    /// fails ("ICE Agent can not be restarted when gathering") or answers with new credentials the server
    /// refuses. A server that renegotiates right after the first answer hits this, so wait (bounded) until
    /// the agent has started checking.
    async fn wait_for_ice_start(&self) {
        let deadline = tokio::time::Instant::now() + ICE_START_WAIT;
        while self.pc.ice_connection_state() == RTCIceConnectionState::New
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub(crate) async fn add_remote_candidate(&self, candidate: String) -> Result<(), ClientError> {
        crate::publisher::add_remote_candidate(&self.pc, candidate).await
    }

    pub(crate) async fn close(&self) {
        if let Err(err) = self.pc.close().await {
            debug!(%err, "closing subscriber connection");
        }
    }
}

/// The mids of `offer`'s media sections that the server sends on (`sendonly`, with their SSRCs declared).
fn sending_mids(offer: &RTCSessionDescription) -> Vec<String> {
    let Ok(parsed) = offer.unmarshal() else {
        return Vec::new();
    };
    parsed
        .media_descriptions
        .iter()
        .filter(|m| m.attribute("sendonly").is_some() && m.attribute("ssrc").is_some())
        .filter_map(|m| m.attribute("mid").flatten().map(str::to_owned))
        .collect()
}

/// Reads (and drops) the RTCP of one receiver until it closes, so that the interceptors see it.
async fn read_rtcp(receiver: Arc<RTCRtpReceiver>, mid: String) {
    while let Ok((packets, _)) = receiver.read_rtcp().await {
        trace!(%mid, count = packets.len(), "rtcp from the server");
    }
    trace!(%mid, "rtcp reader ends");
}

/// Counts every RTP packet of one remote track until it ends (the connection closes or the track stops).
async fn read_rtp(
    track: Arc<TrackRemote>,
    mid: String,
    kind: TrackKind,
    remote: Arc<RemoteTracks>,
) {
    let is_vp8 = kind == TrackKind::Video
        && track
            .codec()
            .capability
            .mime_type
            .eq_ignore_ascii_case(MIME_TYPE_VP8);
    loop {
        let packet = match track.read_rtp().await {
            Ok((packet, _)) => packet,
            Err(err) => {
                trace!(%mid, %err, "remote track reader ends");
                return;
            }
        };
        let stamp = find_stamp(&packet.payload).map(|(seq, sent)| {
            let latency = SystemTime::now().duration_since(sent).unwrap_or_default();
            (seq, latency)
        });
        let keyframe = if is_vp8 {
            vp8::keyframe_size(&packet.payload)
        } else {
            None
        };
        remote.record(
            &mid,
            kind,
            ReceivedPacket {
                seq: packet.header.sequence_number,
                payload_len: packet.payload.len(),
                stamp,
                keyframe,
            },
        );
    }
}

/// webrtc-rs opens the receive streams of a renegotiation's new tracks in an operation it queues behind
/// `set_local_description`. The remote starts sending as soon as it has the answer, and a packet that arrives
/// before the stream is open is taken for an undeclared SSRC: webrtc-rs probes that stream for a MID and RID,
/// taking every other packet from the real track meanwhile, finds no RID on a plain track, and closes the
/// stream, which silently ends the real track (seen in CI: audio stopped after nine packets). So an answer
/// waits (at most `limit`) until every mid the offer sends on has a receiving track.
pub(crate) async fn wait_for_receive_streams(
    pc: &RTCPeerConnection,
    mids: &[String],
    limit: Duration,
) {
    let start = tokio::time::Instant::now();
    let deadline = start + limit;
    loop {
        let mut waiting = None;
        for t in pc.get_transceivers().await {
            let Some(mid) = t.mid() else { continue };
            if !mids.iter().any(|m| m.as_str() == mid.as_str()) {
                continue;
            }
            let receiving = t
                .receiver()
                .await
                .tracks()
                .await
                .iter()
                .any(|r| r.ssrc() != 0);
            if !receiving {
                waiting = Some(mid);
                break;
            }
        }
        let Some(mid) = waiting else {
            debug!(?mids, waited = ?start.elapsed(), "receive streams open");
            return;
        };
        if tokio::time::Instant::now() >= deadline {
            debug!(%mid, "answering before webrtc-rs opened this mid's receive stream");
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
