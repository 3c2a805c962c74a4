//! How the client's two `RTCPeerConnection`s are built, and trickling their local ICE candidates.
//!
//! Codecs: webrtc-rs defaults (Opus, G722, PCMU/PCMA, VP8, VP9, H264, …) plus the `mid`/`rid` header extensions
//! an SFU routes by. Interceptors: webrtc-rs defaults (NACK, RTCP sender/receiver reports, TWCC receiver) on the
//! publisher connection; on the subscriber connection NACK and RTCP reports every [`SUBSCRIBER_REPORT_INTERVAL`],
//! and no TWCC feedback. Why: webrtc-rs sends its ICE keepalive (a STUN binding request, which the server's
//! ICE-lite agent needs at least every 15 s as consent) only when the connection has sent nothing for 2 s. A
//! subscriber connection receiving media sends TWCC feedback every 100 ms and receiver reports every second, so
//! with the defaults it never sends a binding request and the server drops it after 15 s. Without TWCC feedback
//! the server also does not limit a bot's downlink by bandwidth estimation — which suits bots: webrtc-rs stamps
//! arrivals when its interceptor task runs, so on a busy host its feedback would show queueing that is not on
//! the network and collapse the server's estimate.
//! ICE: loopback candidates allowed, UDP over IPv4 only, no mDNS — a dev server listens on 127.0.0.1 and the
//! host may have no other interface. No global state: every client builds its own `API`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_protocol::{ClientMessage, IceServer, PcTarget};
use webrtc::api::interceptor_registry::configure_nack;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::interceptor::report::receiver::ReceiverReport;
use webrtc::interceptor::report::sender::SenderReport;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::policy::bundle_policy::RTCBundlePolicy;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpHeaderExtensionCapability, RTPCodecType};

use crate::connection::SignalSender;

/// RTP header extensions registered for both kinds, on top of the codecs' defaults.
const HEADER_EXTENSIONS: &[&str] = &[
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
];

/// Receiver reports on the subscriber connection: rarer than webrtc-rs's keepalive interval (2 s), so that its
/// ICE keepalive (consent) goes out between them.
const SUBSCRIBER_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Builds a webrtc-rs `API` for one of the two connections, with Chorus's codec, interceptor and ICE choices.
pub(crate) fn build_api(target: PcTarget) -> Result<API, webrtc::Error> {
    let mut media = MediaEngine::default();
    media.register_default_codecs()?;
    for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
        for uri in HEADER_EXTENSIONS {
            media.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: (*uri).to_owned(),
                },
                kind,
                None,
            )?;
        }
    }
    let registry = match target {
        PcTarget::Publisher => register_default_interceptors(Registry::new(), &mut media)?,
        PcTarget::Subscriber => {
            let mut registry = configure_nack(Registry::new(), &mut media);
            registry.add(Box::new(
                ReceiverReport::builder().with_interval(SUBSCRIBER_REPORT_INTERVAL),
            ));
            registry.add(Box::new(SenderReport::builder()));
            registry
        }
    };

    let mut settings = SettingEngine::default();
    settings.set_include_loopback_candidate(true);
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);

    Ok(APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build())
}

/// A new peer connection using the server's ICE servers (none for a plain host-candidate setup).
pub(crate) async fn new_peer_connection(
    api: &API,
    ice_servers: &[IceServer],
) -> Result<Arc<RTCPeerConnection>, webrtc::Error> {
    let config = RTCConfiguration {
        ice_servers: ice_servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            })
            .collect(),
        bundle_policy: RTCBundlePolicy::MaxBundle,
        ..Default::default()
    };
    Ok(Arc::new(api.new_peer_connection(config).await?))
}

/// Logs connection-state changes of `pc` at debug level (`name` tells the two connections apart), and sets
/// `connected` once it connects.
pub(crate) fn watch_state(pc: &RTCPeerConnection, name: &'static str, connected: Arc<AtomicBool>) {
    pc.on_peer_connection_state_change(Box::new(move |state| {
        tracing::debug!(pc = name, %state, "peer connection state");
        if state == RTCPeerConnectionState::Connected {
            connected.store(true, Ordering::Relaxed);
        }
        Box::pin(async {})
    }));
}

/// Sends a peer connection's local candidates as `candidate` messages, holding them back until the description
/// they belong to has been sent (the server cannot use a candidate for a connection it has not seen yet).
pub(crate) struct CandidateGate {
    target: PcTarget,
    signal: SignalSender,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    open: bool,
    held: Vec<String>,
}

impl CandidateGate {
    pub(crate) fn new(target: PcTarget, signal: SignalSender) -> Arc<Self> {
        Arc::new(CandidateGate {
            target,
            signal,
            state: Mutex::new(GateState::default()),
        })
    }

    /// Installs the `on_ice_candidate` handler on `pc` (the handler holds the gate, not the connection).
    pub(crate) fn attach(self: &Arc<Self>, pc: &RTCPeerConnection) {
        let gate = Arc::clone(self);
        pc.on_ice_candidate(Box::new(move |candidate| {
            let gate = Arc::clone(&gate);
            Box::pin(async move {
                let line = match candidate.map(|c| c.to_json()) {
                    // `None` means gathering finished: an empty candidate says so.
                    None => String::new(),
                    Some(Ok(init)) => init.candidate,
                    Some(Err(err)) => {
                        tracing::debug!(%err, "skipping unserializable local candidate");
                        return;
                    }
                };
                gate.offer(line);
            })
        }));
    }

    fn offer(&self, candidate: String) {
        let mut state = self.lock();
        if state.open {
            self.send(candidate);
        } else {
            state.held.push(candidate);
        }
    }

    /// The description has been sent: release held candidates and send later ones at once.
    pub(crate) fn open(&self) {
        let mut state = self.lock();
        state.open = true;
        for candidate in std::mem::take(&mut state.held) {
            self.send(candidate);
        }
    }

    fn send(&self, candidate: String) {
        tracing::debug!(target_pc = ?self.target, %candidate, "local candidate");
        let _ = self.signal.send(ClientMessage::Candidate {
            target: self.target,
            candidate,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
