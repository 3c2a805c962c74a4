//! The packet path: one publisher RTP packet fanned out to every subscriber of its track (each subscriber's
//! layer choice, forwarder decision, payload type and VP8 rewriting, write), and keyframe requests upstream.

use std::time::Instant;

use str0m::media::KeyframeRequestKind;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor};

use super::WorkerCore;
use crate::api::{MediaKind, ParticipantKey, PcKind, TrackKey};
use crate::forwarder::{DropReason, Forward, SourcePacket};
use crate::keyframe::{is_keyframe_start, VideoCodec};
use crate::layers::LayerMask;
use crate::room::PtInfo;
use crate::selector::Decision;
use crate::vp8::parse_fields;

impl WorkerCore {
    /// Ask the publisher of `track` for a keyframe of `layer` (every live layer if `None`), at most every
    /// 500 ms per layer.
    pub(super) fn request_keyframe(&mut self, now: Instant, track: TrackKey, layer: Option<u8>) {
        let Some(route) = self.tracks.get_mut(&track) else {
            return;
        };
        if route.kind != MediaKind::Video {
            return;
        }
        let layers = match layer {
            Some(l) => 1 << l,
            None => route.layers.alive(now),
        };
        let mid = route.mid;
        let publisher = route.publisher;
        let Some(p) = self.participants.get_mut(&publisher) else {
            return;
        };
        let mut api = p.publisher.rtc().direct_api();
        for l in 0..=route.layers.top() {
            if layers & (1 << l) == 0 || !route.layers.allow_keyframe_request(l, now) {
                continue;
            }
            let rid = route.layers.rid(l).map(str0m::media::Rid::from);
            if let Some(rx) = api.stream_rx_by_mid(mid, rid) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                self.stats.keyframe_requests += 1;
            }
        }
        self.mark_dirty(publisher, PcKind::Publisher);
    }

    /// Fan one publisher packet out to every subscriber of its track.
    pub(super) fn forward(&mut self, now: Instant, pk: ParticipantKey, pkt: RtpPacket) {
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        let pt = pkt.header.payload_type;
        let (mid, rid) = {
            let mut api = p.publisher.rtc().direct_api();
            let Some(rx) = api.stream_rx(&pkt.header.ssrc) else {
                return;
            };
            (rx.mid(), rx.rid())
        };
        p.publisher_ssrcs.learn(now, *pkt.header.ssrc, mid, rid);
        let Some(&track) = p.published.get(&mid) else {
            return;
        };
        let Some(route) = self.tracks.get_mut(&track) else {
            return;
        };
        self.stats.count_in(route.kind, pkt.payload.len());
        if route.muted {
            return;
        }
        if route.kind == MediaKind::Audio {
            route
                .speech
                .on_packet(pkt.timestamp, pkt.header.ext_vals.audio_level);
        }
        let info = match route.pt_info.iter().find(|i| i.pt == *pt) {
            Some(i) => *i,
            None => {
                let rtc = p.publisher.rtc();
                let Some(params) = rtc.codec_config().find(|c| c.pt() == pt).copied() else {
                    return;
                };
                let spec = params.spec();
                let codec = match spec.codec {
                    str0m::format::Codec::Vp8 => VideoCodec::Vp8,
                    str0m::format::Codec::Vp9 => VideoCodec::Vp9,
                    str0m::format::Codec::H264 => VideoCodec::H264,
                    str0m::format::Codec::Av1 => VideoCodec::Av1,
                    _ => VideoCodec::Other,
                };
                let info = PtInfo {
                    pt: *pt,
                    params,
                    codec,
                    clock_rate: spec.clock_rate.get(),
                };
                route.pt_info.push(info);
                info
            }
        };
        let video = route.kind == MediaKind::Video;
        let keyframe = !video || is_keyframe_start(info.codec, &pkt.payload);
        let Some(layer) = route.layers.index_of(rid.as_deref()) else {
            return;
        };
        route.layers.on_packet(layer, pkt.payload.len(), now);
        let alive = route.layers.alive(now);
        let source = SourcePacket {
            ssrc: *pkt.header.ssrc,
            seq: *pkt.seq_no,
            timestamp: pkt.header.timestamp,
            arrival: pkt.timestamp,
            keyframe,
            clock_rate: info.clock_rate,
        };
        let ext = ExtensionValues {
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            video_orientation: pkt.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let vp8_fields = (info.codec == VideoCodec::Vp8)
            .then(|| {
                Vp8Descriptor::parse(&pkt.payload)
                    .ok()
                    .zip(parse_fields(&pkt.payload))
            })
            .flatten();
        // Layers some subscriber needs a keyframe of.
        let mut need_keyframe: LayerMask = 0;
        for i in 0..route.subscribers.len() {
            let sk = route.subscribers[i];
            if !self.connected_subscribers.contains(&sk) {
                continue;
            }
            let Some(sub) = self.participants.get_mut(&sk) else {
                continue;
            };
            let Some(out) = sub.out.get_mut(&track) else {
                continue;
            };
            let Some(out_mid) = out.mid else {
                continue;
            };
            match out.selector.decide(layer, keyframe, alive) {
                Decision::Forward => {}
                Decision::Switch => {
                    out.reset_source();
                    self.stats.layer_switches += 1;
                }
                Decision::Drop { keyframe_for } => {
                    if let Some(l) = keyframe_for {
                        need_keyframe |= 1 << l;
                    }
                    continue;
                }
            }
            let (seq, timestamp) = match out.forwarder.forward(&source) {
                Forward::Send { seq, timestamp } => (seq, timestamp),
                Forward::Drop(DropReason::WaitingForKeyframe) => {
                    need_keyframe |= 1 << layer;
                    continue;
                }
                Forward::Drop(DropReason::BeforeAnchor) => continue,
            };
            let rtc = sub.subscriber.rtc();
            let out_pt = match out.pt_map.iter().find(|(from, _)| *from == pt) {
                Some((_, to)) => *to,
                None => {
                    let to = rtc.codec_config().match_params(info.params).map(|p| p.pt());
                    out.pt_map.push((pt, to));
                    to
                }
            };
            let Some(out_pt) = out_pt else {
                continue;
            };
            let mut write = RtpWrite::new(
                out_pt,
                seq.into(),
                timestamp,
                pkt.timestamp,
                pkt.payload.clone(),
            )
            .marker(pkt.header.marker)
            .nackable(video)
            .ext_vals(ext.clone());
            if let Some((descriptor, fields)) = &vp8_fields {
                let (picture_id, tl0) = out.vp8.rewrite(source.ssrc, fields);
                let mut patch = descriptor.patch();
                if let Some(p) = picture_id {
                    patch = patch.picture_id(p);
                }
                if let Some(t) = tl0 {
                    patch = patch.tl0_pic_idx(t);
                }
                if let Ok(patch) = patch.build() {
                    write = write.vp8_patch(patch);
                }
            }
            let mut api = rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(out_mid, None) else {
                continue;
            };
            // Forwarded media leaves at once, as mediasoup and LiveKit's default send it: str0m's pacer would
            // spread a keyframe burst over tens of milliseconds and costs a timer round per packet. Send-side
            // estimation still runs on transport-wide feedback, and the downlink allocation keeps the chosen
            // layers within it.
            tx.set_unpaced(true);
            tx.write_rtp(write);
            sub.subscriber.note_media_written(*out_pt);
            self.stats.count_forwarded(route.kind, pkt.payload.len());
            // Drained when the caller polls for transmits, with every other copy written to `sub` meanwhile.
            sub.note_copies_written(&mut self.copies_written);
        }
        for l in 0..8 {
            if need_keyframe & (1 << l) != 0 {
                self.request_keyframe(now, track, Some(l));
            }
        }
    }
}
