//! The tracks this client sends: what to publish ([`PublishOptions`]), and per track one webrtc-rs sender with
//! one encoding — a webrtc-rs local track fed by its own synthetic source (audio: a sample track; video: an RTP
//! track that `pacer.rs` packetizes and paces for) — per simulcast layer (a single encoding without simulcast). Owns the sources' controls: mute, dynacast (`publishLayers`), keyframe requests
//! read from RTCP, and what each has sent ([`PublishedTrack`]).
//!
//! Negotiation and signaling are `publisher.rs`'s job; nothing here sends a message to the server.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chorus_protocol::{PublishTrack, TrackKind, TrackSource};
use tokio::sync::watch;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::{RTCRtpTransceiver, RTCRtpTransceiverInit};
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
use webrtc::track::track_local::TrackLocal;

use crate::error::ClientError;
use crate::media::{self, MediaOptions, SourceControl};
use crate::simulcast::{check_layers, SimulcastLayer};

/// What to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOptions {
    pub kind: TrackKind,
    pub source: TrackSource,
    pub name: String,
    /// Video only: send these simulcast layers (lowest first, 2 to 4), each its own encoding with its own
    /// bitrate and resolution; empty (the default) sends one encoding shaped by [`MediaOptions`]. Frame rate
    /// and keyframe interval come from [`MediaOptions`] for every layer.
    pub simulcast: Vec<SimulcastLayer>,
}

impl PublishOptions {
    /// A microphone-like Opus track named "microphone".
    pub fn audio() -> Self {
        PublishOptions {
            kind: TrackKind::Audio,
            source: TrackSource::Microphone,
            name: "microphone".into(),
            simulcast: Vec::new(),
        }
    }

    /// A camera-like VP8 track named "camera", one encoding.
    pub fn video() -> Self {
        PublishOptions {
            kind: TrackKind::Video,
            source: TrackSource::Camera,
            name: "camera".into(),
            simulcast: Vec::new(),
        }
    }

    /// A camera-like VP8 track named "camera" in the default simulcast layers ([`SimulcastLayer::defaults`]:
    /// `q` 320×180 at 150 kbit/s, `h` 640×360 at 500 kbit/s, `f` 1280×720 at 1.7 Mbit/s).
    pub fn simulcast_video() -> Self {
        PublishOptions {
            simulcast: SimulcastLayer::defaults(),
            ..PublishOptions::video()
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
    /// Frames and bytes sent, all layers together.
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Each simulcast layer, lowest first (empty for a track sent as one encoding).
    pub layers: Vec<PublishedLayer>,
}

/// One simulcast layer of a published track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedLayer {
    pub rid: String,
    pub width: u16,
    pub height: u16,
    /// The bitrate it is shaped to.
    pub bitrate_bps: u32,
    /// False while the server's dynacast has asked for it to stop (`publishLayers`).
    pub active: bool,
    pub frames_sent: u64,
    pub bytes_sent: u64,
}

/// One encoding: its rid (simulcast only), its webrtc-rs track, its source's controls and shape.
struct Encoding {
    layer: Option<SimulcastLayer>,
    track: EncodingTrack,
    ctl: Arc<SourceControl>,
    media: MediaOptions,
}

/// The webrtc-rs track an encoding's source writes to.
#[derive(Clone)]
enum EncodingTrack {
    /// Audio frames, packetized by webrtc-rs.
    Audio(Arc<TrackLocalStaticSample>),
    /// Video packets, packetized and paced by `pacer.rs`.
    Video(Arc<TrackLocalStaticRTP>),
}

impl EncodingTrack {
    fn new(
        kind: TrackKind,
        codec: RTCRtpCodecCapability,
        id: String,
        rid: Option<String>,
        stream_id: String,
    ) -> Self {
        match (kind, rid) {
            (TrackKind::Audio, None) => {
                EncodingTrack::Audio(Arc::new(TrackLocalStaticSample::new(codec, id, stream_id)))
            }
            (TrackKind::Audio, Some(rid)) => EncodingTrack::Audio(Arc::new(
                TrackLocalStaticSample::new_with_rid(codec, id, rid, stream_id),
            )),
            (TrackKind::Video, None) => {
                EncodingTrack::Video(Arc::new(TrackLocalStaticRTP::new(codec, id, stream_id)))
            }
            (TrackKind::Video, Some(rid)) => EncodingTrack::Video(Arc::new(
                TrackLocalStaticRTP::new_with_rid(codec, id, rid, stream_id),
            )),
        }
    }

    fn as_local(&self) -> Arc<dyn TrackLocal + Send + Sync> {
        match self {
            EncodingTrack::Audio(t) => Arc::clone(t) as _,
            EncodingTrack::Video(t) => Arc::clone(t) as _,
        }
    }
}

/// A track on the publisher connection: its sender, encodings, and the sid the server gave it.
pub(crate) struct LocalTrack {
    pub(crate) opts: PublishOptions,
    pub(crate) track_sid: String,
    transceiver: Arc<RTCRtpTransceiver>,
    pub(crate) sender: Arc<RTCRtpSender>,
    encodings: Vec<Encoding>,
    stop: watch::Sender<bool>,
}

impl LocalTrack {
    /// Adds a send-only transceiver for `opts` to `pc`, with one encoding per simulcast layer (added before the
    /// offer is created, as webrtc-rs requires), and starts reading its RTCP. Nothing is sent until
    /// [`LocalTrack::start`]. `n` numbers the track ids of this connection.
    pub(crate) async fn add(
        pc: &RTCPeerConnection,
        opts: PublishOptions,
        n: usize,
        stream_id: &str,
        media: &MediaOptions,
    ) -> Result<LocalTrack, ClientError> {
        if !opts.simulcast.is_empty() && opts.kind != TrackKind::Video {
            return Err(ClientError::InvalidOptions(
                "simulcast is for video tracks only".into(),
            ));
        }
        check_layers(&opts.simulcast).map_err(ClientError::InvalidOptions)?;
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
        let encodings: Vec<Encoding> = if opts.simulcast.is_empty() {
            vec![Encoding {
                layer: None,
                track: EncodingTrack::new(opts.kind, codec, id, None, stream_id.to_owned()),
                ctl: Arc::default(),
                media: media.clone(),
            }]
        } else {
            opts.simulcast
                .iter()
                .map(|layer| Encoding {
                    track: EncodingTrack::new(
                        opts.kind,
                        codec.clone(),
                        id.clone(),
                        Some(layer.rid.clone()),
                        stream_id.to_owned(),
                    ),
                    ctl: Arc::default(),
                    media: MediaOptions {
                        video_bitrate_bps: layer.bitrate_bps,
                        video_width: layer.width,
                        video_height: layer.height,
                        ..media.clone()
                    },
                    layer: Some(layer.clone()),
                })
                .collect()
        };
        let as_local = |e: &Encoding| e.track.as_local();
        let transceiver = pc
            .add_transceiver_from_track(
                as_local(&encodings[0]),
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    send_encodings: vec![],
                }),
            )
            .await?;
        let sender = transceiver.sender().await;
        for e in &encodings[1..] {
            if let Err(err) = sender.add_encoding(as_local(e)).await {
                let _ = pc.remove_track(&sender).await;
                return Err(err.into());
            }
        }
        for e in &encodings {
            let rid = e.layer.as_ref().map(|l| l.rid.clone());
            tokio::spawn(read_rtcp(Arc::clone(&sender), rid, Arc::clone(&e.ctl)));
        }
        let (stop, _) = watch::channel(false);
        Ok(LocalTrack {
            opts,
            track_sid: String::new(),
            transceiver,
            sender,
            encodings,
            stop,
        })
    }

    /// Starts every encoding's synthetic source (once the server has accepted the track).
    pub(crate) fn start(&self) {
        for e in &self.encodings {
            let (ctl, stop) = (Arc::clone(&e.ctl), self.stop.subscribe());
            match e.track.clone() {
                EncodingTrack::Audio(track) => tokio::spawn(media::run_audio(track, ctl, stop)),
                EncodingTrack::Video(track) => {
                    tokio::spawn(media::run_video(track, ctl, e.media.clone(), stop))
                }
            };
        }
    }

    /// Stops every source for good.
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub(crate) fn mid(&self) -> String {
        self.transceiver
            .mid()
            .map(|m| m.to_string())
            .unwrap_or_default()
    }

    pub(crate) fn is_muted(&self) -> bool {
        self.encodings[0].ctl.muted.load(Ordering::Relaxed)
    }

    /// Pauses (or resumes) every layer's source.
    pub(crate) fn set_muted(&self, muted: bool) {
        for e in &self.encodings {
            e.ctl.muted.store(muted, Ordering::Relaxed);
        }
    }

    /// Dynacast: send only the simulcast layers in `rids` (every layer if it is empty), or none unless
    /// `enabled`. A track sent as one encoding ignores it and keeps sending, as it always did.
    pub(crate) fn set_active_layers(&self, enabled: bool, rids: &[String]) {
        for e in &self.encodings {
            let Some(layer) = &e.layer else { continue };
            let active = enabled && (rids.is_empty() || rids.contains(&layer.rid));
            e.ctl.paused.store(!active, Ordering::Relaxed);
        }
    }

    /// How the track is described alongside an offer: simulcast `rid`s lowest first and the top layer's size.
    pub(crate) fn describe(&self) -> PublishTrack {
        let top = self.opts.simulcast.last();
        PublishTrack {
            mid: self.mid(),
            kind: self.opts.kind,
            source: self.opts.source,
            name: self.opts.name.clone(),
            muted: self.is_muted(),
            layers: self.opts.simulcast.iter().map(|l| l.rid.clone()).collect(),
            width: top.map(|l| u32::from(l.width)),
            height: top.map(|l| u32::from(l.height)),
        }
    }

    pub(crate) fn info(&self) -> PublishedTrack {
        let sent = |e: &Encoding| {
            (
                e.ctl.frames_sent.load(Ordering::Relaxed),
                e.ctl.bytes_sent.load(Ordering::Relaxed),
            )
        };
        let layers: Vec<PublishedLayer> = self
            .encodings
            .iter()
            .filter_map(|e| {
                let layer = e.layer.as_ref()?;
                let (frames_sent, bytes_sent) = sent(e);
                Some(PublishedLayer {
                    rid: layer.rid.clone(),
                    width: layer.width,
                    height: layer.height,
                    bitrate_bps: layer.bitrate_bps,
                    active: !e.ctl.paused.load(Ordering::Relaxed),
                    frames_sent,
                    bytes_sent,
                })
            })
            .collect();
        let (frames_sent, bytes_sent) = self
            .encodings
            .iter()
            .map(sent)
            .fold((0, 0), |(f, b), (ef, eb)| (f + ef, b + eb));
        PublishedTrack {
            track_sid: self.track_sid.clone(),
            mid: self.mid(),
            kind: self.opts.kind,
            source: self.opts.source,
            name: self.opts.name.clone(),
            muted: self.is_muted(),
            frames_sent,
            bytes_sent,
            layers,
        }
    }
}

/// Reads RTCP for one encoding (`rid`, or the only one): lets the interceptors (NACK responder, reports) see it,
/// and turns PLI/FIR into a keyframe request for that encoding's source. webrtc-rs hands each encoding the
/// RTCP about its own SSRC, so a keyframe request for one layer reaches that layer only. Ends when the sender
/// stops.
async fn read_rtcp(sender: Arc<RTCRtpSender>, rid: Option<String>, ctl: Arc<SourceControl>) {
    loop {
        let read = match &rid {
            Some(rid) => sender.read_rtcp_simulcast(rid).await,
            None => sender.read_rtcp().await,
        };
        let Ok((packets, _)) = read else { return };
        for p in packets {
            let any = p.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                ctl.keyframe_requested.store(true, Ordering::Relaxed);
            }
        }
    }
}
