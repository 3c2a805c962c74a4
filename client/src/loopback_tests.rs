//! In-process checks of the client's WebRTC side without a Chorus server: a plain webrtc-rs peer plays the
//! server (ICE candidates in its SDP, like the real ICE-lite server) and the messages the client would put on
//! the WebSocket are read from a channel. Proves the ICE settings (loopback, UDP4, no mDNS), the codecs in the
//! offer, and the publish / subscribe flows end to end over loopback UDP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_protocol::{AssignedTrack, ClientMessage, PublishTrack, SubscribedTrack, TrackKind};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
use webrtc::track::track_local::TrackLocal;

use crate::connection::SignalSender;
use crate::events::{ClientEvent, EventSink};
use crate::local_track::PublishOptions;
use crate::media::{self, MediaOptions, SourceControl};
use crate::peer::{build_api, new_peer_connection};
use crate::publisher::Publisher;
use crate::subscriber::{wait_for_receive_streams, Subscriber, RECEIVERS_WAIT};

pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// The local description once ICE gathering is complete, so that it carries every candidate.
pub(crate) async fn complete_local_sdp(pc: &RTCPeerConnection) -> String {
    let mut done = pc.gathering_complete_promise().await;
    let _ = tokio::time::timeout(DEADLINE, done.recv()).await;
    pc.local_description().await.expect("local description").sdp
}

/// `RUST_LOG=debug` shows the client's and webrtc-rs's logs for a failing test.
pub(crate) fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub(crate) async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts RTP packets per kind arriving at `pc`.
pub(crate) fn count_incoming(pc: &RTCPeerConnection) -> Arc<Mutex<HashMap<TrackKind, u64>>> {
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let c = Arc::clone(&counts);
    pc.on_track(Box::new(move |track, _, _| {
        let c = Arc::clone(&c);
        let kind = match track.kind() {
            RTPCodecType::Audio => TrackKind::Audio,
            _ => TrackKind::Video,
        };
        // webrtc-rs runs on_track handlers one at a time: read in a task of its own.
        tokio::spawn(async move {
            while track.read_rtp().await.is_ok() {
                *c.lock().expect("lock").entry(kind).or_insert(0) += 1;
            }
        });
        Box::pin(async {})
    }));
    counts
}

pub(crate) fn count(counts: &Mutex<HashMap<TrackKind, u64>>, kind: TrackKind) -> u64 {
    counts
        .lock()
        .expect("lock")
        .get(&kind)
        .copied()
        .unwrap_or(0)
}

/// What the fake server of [`answer_offers`] saw: every offer (SDP and track descriptions) and every
/// trickled local candidate.
#[derive(Default)]
pub(crate) struct FakeServerLog {
    pub offers: Vec<(String, Vec<PublishTrack>)>,
    pub candidates: Vec<String>,
}

/// Plays the server for `publisher` with the webrtc-rs peer `server`: answers every offer, assigns
/// `TR_<mid>`, applies trickled candidates, takes `mute`; any other message fails the test.
pub(crate) fn answer_offers(
    publisher: Arc<Publisher>,
    server: Arc<RTCPeerConnection>,
    mut outbox: UnboundedReceiver<ClientMessage>,
) -> (JoinHandle<()>, Arc<Mutex<FakeServerLog>>) {
    let log = Arc::new(Mutex::new(FakeServerLog::default()));
    let pump = {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            while let Some(msg) = outbox.recv().await {
                match msg {
                    ClientMessage::Offer { sdp, tracks } => {
                        log.lock()
                            .expect("lock")
                            .offers
                            .push((sdp.clone(), tracks.clone()));
                        let renegotiation = server.remote_description().await.is_some();
                        let offer = RTCSessionDescription::offer(sdp).expect("offer");
                        server
                            .set_remote_description(offer)
                            .await
                            .expect("set offer");
                        let answer = server.create_answer(None).await.expect("answer");
                        server
                            .set_local_description(answer)
                            .await
                            .expect("set answer");
                        if renegotiation {
                            // As a real receiver must (`subscriber.rs`): media sent before webrtc-rs opened a
                            // new track's receive stream can end that track.
                            let mids: Vec<String> = tracks.iter().map(|t| t.mid.clone()).collect();
                            wait_for_receive_streams(&server, &mids, RECEIVERS_WAIT).await;
                        }
                        let sdp = complete_local_sdp(&server).await;
                        publisher.on_tracks_assigned(
                            tracks
                                .iter()
                                .map(|t| AssignedTrack {
                                    mid: t.mid.clone(),
                                    track_sid: format!("TR_{}", t.mid),
                                })
                                .collect(),
                        );
                        publisher.on_answer(sdp);
                    }
                    ClientMessage::Candidate { candidate, .. } => {
                        log.lock().expect("lock").candidates.push(candidate.clone());
                        if !candidate.is_empty() {
                            let init = RTCIceCandidateInit {
                                candidate,
                                ..Default::default()
                            };
                            server.add_ice_candidate(init).await.expect("add candidate");
                        }
                    }
                    // The real server tells the room; there is nothing to answer.
                    ClientMessage::Mute { .. } => {}
                    other => panic!("unexpected message {other:?}"),
                }
            }
        })
    };
    (pump, log)
}

/// A publisher whose offers the fake server (a plain webrtc-rs peer) answers: the publisher, the server's
/// connection, the task answering offers and its log.
pub(crate) async fn loopback_publisher() -> (
    Arc<Publisher>,
    Arc<RTCPeerConnection>,
    JoinHandle<()>,
    Arc<Mutex<FakeServerLog>>,
) {
    init_logs();
    let api = build_api(chorus_protocol::PcTarget::Publisher).expect("api");
    let server = new_peer_connection(&api, &[]).await.expect("server pc");
    let (signal, outbox) = SignalSender::test_pair();
    let pc = new_peer_connection(&api, &[]).await.expect("client pc");
    let publisher = Arc::new(Publisher::new(
        pc,
        signal,
        MediaOptions::default(),
        "stream".into(),
        DEADLINE,
    ));
    let (pump, log) = answer_offers(Arc::clone(&publisher), Arc::clone(&server), outbox);
    (publisher, server, pump, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_offers_and_sends_media_over_loopback() {
    let (publisher, server, pump, log) = loopback_publisher().await;
    // Tracks arrive only once something is published.
    let received = count_incoming(&server);

    let audio = tokio::time::timeout(DEADLINE, publisher.publish(PublishOptions::audio()))
        .await
        .expect("audio publish in time")
        .expect("audio published");
    let video = tokio::time::timeout(DEADLINE, publisher.publish(PublishOptions::video()))
        .await
        .expect("video publish in time")
        .expect("video published");
    assert_eq!(
        (audio.kind, video.kind),
        (TrackKind::Audio, TrackKind::Video)
    );
    assert_eq!(audio.track_sid, format!("TR_{}", audio.mid));
    assert_eq!(video.track_sid, format!("TR_{}", video.mid));
    assert_ne!(audio.mid, video.mid);

    {
        let log = log.lock().expect("lock");
        let offers = &log.offers;
        assert_eq!(offers.len(), 2, "one offer per publish");
        assert_eq!(offers[0].1.len(), 1);
        assert_eq!(offers[1].1.len(), 2, "each offer lists every track");
        assert!(
            offers[1]
                .1
                .iter()
                .all(|t| t.layers.is_empty() && t.width.is_none()),
            "one encoding: no layers described: {:?}",
            offers[1].1
        );
        let sdp = &offers[1].0;
        assert!(sdp.contains("opus/48000/2"), "opus offered:\n{sdp}");
        assert!(sdp.contains("VP8/90000"), "VP8 offered:\n{sdp}");
        assert!(!sdp.contains("a=simulcast"), "no simulcast:\n{sdp}");
        assert!(
            sdp.contains("a=sendonly"),
            "publisher tracks are sendonly:\n{sdp}"
        );
        assert!(
            sdp.contains("urn:ietf:params:rtp-hdrext:sdes:mid"),
            "mid extension:\n{sdp}"
        );
    }

    wait_for("media at the fake server", || {
        let (a, v) = (
            count(&received, TrackKind::Audio),
            count(&received, TrackKind::Video),
        );
        tracing::debug!(audio = a, video = v, "fake server received");
        a > 20 && v > 50
    })
    .await;
    {
        let log = log.lock().expect("lock");
        let candidates = &log.candidates;
        assert!(
            candidates
                .iter()
                .any(|c| c.contains(" 127.0.0.1 ") && c.starts_with("candidate:")),
            "a loopback candidate was trickled: {candidates:?}"
        );
        assert!(
            candidates
                .iter()
                .all(|c| !c.contains(".local") && !c.contains(" tcp ")),
            "no mDNS or TCP candidates: {candidates:?}"
        );
    }
    let published = publisher.published();
    assert_eq!(published.len(), 2);
    assert!(published
        .iter()
        .all(|t| t.frames_sent > 0 && t.bytes_sent > 0 && t.layers.is_empty()));

    // Muting pauses the source.
    publisher.set_muted(&video.track_sid, true).expect("mute");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let frozen = publisher.published()[1].frames_sent;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        publisher.published()[1].frames_sent,
        frozen,
        "muted video sends nothing"
    );
    assert!(publisher.set_muted("TR_nope", true).is_err());

    publisher.close().await;
    let _ = server.close().await;
    pump.abort();
}

/// A source track of the fake server, of the type its synthetic source writes to.
enum SourceTrack {
    Audio(Arc<TrackLocalStaticSample>),
    Video(Arc<TrackLocalStaticRTP>),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_answers_and_counts_media_per_track() {
    init_logs();
    let api = build_api(chorus_protocol::PcTarget::Publisher).expect("api");
    let server = new_peer_connection(&api, &[]).await.expect("server pc");

    let (signal, mut outbox) = SignalSender::test_pair();
    let (events, mut event_rx) = EventSink::new(16, vec![]);
    let pc = new_peer_connection(&api, &[]).await.expect("client pc");
    let subscriber = Subscriber::new(pc, signal, events);

    // The fake server publishes one audio and one video track to the subscriber.
    let mut sources = Vec::new();
    for (kind, mime, rate, channels) in [
        (TrackKind::Audio, "audio/opus", 48_000, 2),
        (TrackKind::Video, "video/VP8", 90_000, 0),
    ] {
        let codec = RTCRtpCodecCapability {
            mime_type: mime.into(),
            clock_rate: rate,
            channels,
            ..Default::default()
        };
        let (id, stream) = (format!("{kind:?}"), "PA_remote".to_owned());
        // Audio as webrtc-rs packetizes samples; video through the client's own pacer, as the client sends it.
        let track: SourceTrack = match kind {
            TrackKind::Audio => {
                SourceTrack::Audio(Arc::new(TrackLocalStaticSample::new(codec, id, stream)))
            }
            TrackKind::Video => {
                SourceTrack::Video(Arc::new(TrackLocalStaticRTP::new(codec, id, stream)))
            }
        };
        let local: Arc<dyn TrackLocal + Send + Sync> = match &track {
            SourceTrack::Audio(t) => Arc::clone(t) as _,
            SourceTrack::Video(t) => Arc::clone(t) as _,
        };
        let transceiver = server
            .add_transceiver_from_track(
                local,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    send_encodings: vec![],
                }),
            )
            .await
            .expect("server track");
        sources.push((kind, track, transceiver));
    }
    let offer = server.create_offer(None).await.expect("offer");
    server
        .set_local_description(offer)
        .await
        .expect("set offer");
    let sdp = complete_local_sdp(&server).await;
    let tracks: Vec<SubscribedTrack> = sources
        .iter()
        .map(|(kind, _, t)| SubscribedTrack {
            mid: t.mid().expect("mid").to_string(),
            track_sid: format!("TR_{kind:?}"),
            participant_sid: "PA_remote".into(),
        })
        .collect();
    subscriber
        .handle_offer(sdp, tracks)
        .await
        .expect("answered");

    let pump = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            while let Some(msg) = outbox.recv().await {
                match msg {
                    ClientMessage::Answer { sdp } => {
                        let answer = RTCSessionDescription::answer(sdp).expect("answer");
                        server
                            .set_remote_description(answer)
                            .await
                            .expect("set answer");
                    }
                    ClientMessage::Candidate { candidate, .. } if !candidate.is_empty() => {
                        let init = RTCIceCandidateInit {
                            candidate,
                            ..Default::default()
                        };
                        server.add_ice_candidate(init).await.expect("add candidate");
                    }
                    ClientMessage::Candidate { .. } => {}
                    other => panic!("unexpected message {other:?}"),
                }
            }
        })
    };

    let (stop, stop_rx) = watch::channel(false);
    for (_, track, _) in &sources {
        let ctl = Arc::new(SourceControl::default());
        match track {
            SourceTrack::Audio(track) => {
                tokio::spawn(media::run_audio(Arc::clone(track), ctl, stop_rx.clone()));
            }
            SourceTrack::Video(track) => {
                let opts = MediaOptions::default();
                tokio::spawn(media::run_video(
                    Arc::clone(track),
                    ctl,
                    opts,
                    stop_rx.clone(),
                ));
            }
        }
    }

    let remote = Arc::clone(subscriber.remote());
    let get = |sid: &str| remote.snapshot().into_iter().find(|s| s.track_sid == sid);
    wait_for("media counted per track", || {
        let audio = get("TR_Audio").map_or(0, |s| s.packets);
        let video = get("TR_Video").map_or(0, |s| s.packets);
        audio > 20 && video > 50
    })
    .await;
    let audio = get("TR_Audio").expect("audio stats");
    let video = get("TR_Video").expect("video stats");
    assert_eq!(
        (audio.kind, video.kind),
        (TrackKind::Audio, TrackKind::Video)
    );
    assert_eq!(audio.participant_sid, "PA_remote");
    assert!(
        audio.stamped_frames > 0 && video.stamped_frames > 0,
        "stamps found"
    );
    assert!(video.bytes > audio.bytes, "video outweighs audio");
    assert!(video.latency_mean().expect("latency") < Duration::from_secs(5));

    let mut subscribed = Vec::new();
    while let Ok(event) = event_rx.try_recv() {
        if let ClientEvent::TrackSubscribed { track_sid, .. } = event {
            subscribed.push(track_sid);
        }
    }
    subscribed.sort();
    assert_eq!(subscribed, ["TR_Audio", "TR_Video"]);

    let _ = stop.send(true);
    subscriber.close().await;
    let _ = server.close().await;
    pump.abort();
}
