//! The embedded TURN server's metric families: live allocations, refusals, and the traffic its relays carry
//! (label `direction`: `to_peer` from clients out to the SFU or an allowed peer, `from_peer` back to them).

use prometheus::{IntCounterVec, Opts};

use super::{Builder, Snapshot};
use crate::turn::RelayedTraffic;

pub(super) fn register(b: &Builder, snap: &Snapshot) -> prometheus::Result<()> {
    let t = &snap.turn;
    b.gauge(
        "chorus_turn_allocations",
        "Relay allocations alive on the embedded TURN server.",
        t.allocations,
    )?;
    b.counter(
        "chorus_turn_quota_refusals_total",
        "TURN allocations refused because the participant had reached its allocation quota.",
        t.quota_refusals,
    )?;
    b.counter(
        "chorus_turn_auth_refusals_total",
        "TURN requests refused for bad, forged or expired credentials.",
        t.auth_refusals,
    )?;
    let by_direction = |name: &str, help: &str, value: fn(&RelayedTraffic) -> u64| {
        let c = IntCounterVec::new(Opts::new(name, help), &["direction"])?;
        c.with_label_values(&["to_peer"])
            .inc_by(value(&t.relayed_to_peers));
        c.with_label_values(&["from_peer"])
            .inc_by(value(&t.relayed_from_peers));
        b.registry.register(Box::new(c))
    };
    by_direction(
        "chorus_turn_relayed_packets_total",
        "Packets the embedded TURN server relayed between clients and peers.",
        |r| r.packets,
    )?;
    by_direction(
        "chorus_turn_relayed_bytes_total",
        "Payload bytes the embedded TURN server relayed between clients and peers (UDP payloads, no TURN framing).",
        |r| r.bytes,
    )?;
    b.counter(
        "chorus_turn_relay_sends_refused_total",
        "Relay sends to a peer the relay policy refuses (nothing is sent).",
        t.relay_sends_refused,
    )?;
    Ok(())
}
