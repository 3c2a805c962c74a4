//! Data channels through the worker core with real str0m clients on a virtual network: fan-out in order,
//! targeting, the sender's identity stamped by the server, permission, size and rate limits, and a receiver
//! that stops reading.

use std::time::Duration;

use crate::support::data::DataNet;
use chorus_sfu::{DataLimits, DataRejection, Event};

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;

fn trio(limits: DataLimits) -> DataNet {
    DataNet::new(&[("alice", true), ("bob", true), ("carol", true)], limits)
}

fn rejections(net: &DataNet) -> Vec<(DataRejection, u64)> {
    net.take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::DataRejected { reason, count, .. } => Some((reason, count)),
            _ => None,
        })
        .collect()
}

#[test]
fn reliable_messages_reach_everyone_else_in_order_exactly_once() {
    let mut net = trio(DataLimits {
        messages_per_sec: 0,
        ..DataLimits::default()
    });
    for i in 0..300u32 {
        assert!(net.send(ALICE, true, &[], "game", &i.to_be_bytes()));
        if i % 20 == 0 {
            net.run(Duration::from_millis(5));
        }
    }
    net.run_for(Duration::from_millis(500));
    for who in [BOB, CAROL] {
        let got = &net.clients[who].received;
        assert_eq!(got.len(), 300, "client {who} got {} messages", got.len());
        for (i, m) in got.iter().enumerate() {
            assert!(m.reliable);
            assert_eq!(
                m.from.as_deref(),
                Some("alice"),
                "the server stamps the sender"
            );
            assert_eq!(m.topic, "game");
            assert_eq!(m.payload, (i as u32).to_be_bytes(), "in order");
        }
    }
    assert!(
        net.clients[ALICE].received.is_empty(),
        "no echo to the sender"
    );
}

#[test]
fn lossy_messages_are_delivered_on_the_lossy_channel() {
    let mut net = trio(DataLimits::default());
    for i in 0..20u8 {
        assert!(net.send(BOB, false, &[], "cursor", &[i]));
        net.run(Duration::from_millis(10));
    }
    net.run_for(Duration::from_millis(200));
    for who in [ALICE, CAROL] {
        let got = &net.clients[who].received;
        assert_eq!(got.len(), 20, "no loss on a perfect network");
        assert!(got
            .iter()
            .all(|m| !m.reliable && m.from.as_deref() == Some("bob")));
    }
}

#[test]
fn targeted_messages_reach_only_their_targets() {
    let mut net = trio(DataLimits::default());
    assert!(net.send(ALICE, true, &["carol"], "dm", b"psst"));
    assert!(net.send(ALICE, true, &["nobody"], "dm", b"lost"));
    net.run_for(Duration::from_millis(200));
    assert!(net.clients[BOB].received.is_empty(), "bob was not a target");
    let got = &net.clients[CAROL].received;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"psst");
}

#[test]
fn a_participant_without_the_grant_is_refused_and_others_still_reach_it() {
    let mut net = DataNet::new(&[("alice", true), ("viewer", false)], DataLimits::default());
    assert!(net.send(BOB, true, &[], "", b"let me in"));
    net.run_for(Duration::from_millis(100));
    assert!(net.clients[ALICE].received.is_empty());
    assert_eq!(rejections(&net), vec![(DataRejection::Forbidden, 1)]);
    // It still receives.
    assert!(net.send(ALICE, true, &[], "", b"hello viewer"));
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.clients[BOB].received.len(), 1);
}

#[test]
fn oversize_and_malformed_messages_are_refused() {
    let mut net = trio(DataLimits::default());
    assert!(
        net.send(ALICE, false, &[], "", &[0u8; 1300]),
        "over the lossy limit"
    );
    net.run_for(Duration::from_millis(300));
    assert!(net.send_raw(ALICE, true, &[9, 9, 9]), "not an envelope");
    net.run_for(Duration::from_millis(300));
    assert!(
        net.send(ALICE, true, &[], "", &[0u8; 70_000]),
        "over the reliable limit"
    );
    net.run_for(Duration::from_millis(300));
    assert_eq!(
        rejections(&net),
        vec![
            (DataRejection::TooLarge, 1),
            (DataRejection::Malformed, 1),
            (DataRejection::TooLarge, 1)
        ]
    );
    assert!(net.clients[BOB].received.is_empty() && net.clients[CAROL].received.is_empty());
    // A message within the limits still goes through.
    assert!(net.send(ALICE, true, &[], "", &[0u8; 60_000]));
    net.run_for(Duration::from_millis(300));
    assert_eq!(net.clients[BOB].received.len(), 1);
}

#[test]
fn the_rate_limit_refuses_a_flood_and_reports_it_throttled() {
    let mut net = trio(DataLimits {
        messages_per_sec: 50,
        ..DataLimits::default()
    });
    for i in 0..300u32 {
        assert!(net.send(ALICE, true, &[], "", &i.to_be_bytes()));
    }
    net.run_for(Duration::from_millis(300));
    let delivered = net.clients[BOB].received.len();
    assert!(
        (100..=120).contains(&delivered),
        "a burst of 100 plus the refill passes, got {delivered}"
    );
    let reports = rejections(&net);
    assert!(reports
        .iter()
        .all(|(r, _)| *r == DataRejection::RateLimited));
    let refused: u64 = reports.iter().map(|(_, n)| n).sum();
    assert!(
        refused > 0 && reports.len() < 10,
        "{reports:?}: throttled reports"
    );
    assert!(
        refused as usize + delivered <= 300,
        "every message is either delivered or counted as refused"
    );
}

#[test]
fn a_receiver_that_stops_reading_is_disconnected_without_slowing_the_others() {
    let limits = DataLimits {
        messages_per_sec: 0,
        bytes_per_sec: 0,
        receiver_buffer_bytes: 256 * 1024,
        ..DataLimits::default()
    };
    let mut net = trio(limits);
    net.clients[CAROL].online = false;
    let payload = vec![7u8; 8 * 1024];
    let mut sent = 0;
    let mut backlog = None;
    for _ in 0..200 {
        for _ in 0..4 {
            if net.send(ALICE, true, &[], "file", &payload) {
                sent += 1;
            }
        }
        net.run(Duration::from_millis(10));
        for e in net.take_events() {
            if let Event::DataBacklog {
                participant,
                buffer_bytes,
            } = e
            {
                backlog = Some((participant, buffer_bytes));
            }
        }
    }
    net.run_for(Duration::from_millis(500));
    let carol = net.clients[CAROL].key;
    assert_eq!(
        backlog,
        Some((carol, 256 * 1024)),
        "carol was disconnected for her backlog"
    );
    assert_eq!(net.core.participant_count(), 2);
    assert_eq!(
        net.clients[BOB].received.len(),
        sent,
        "bob received everything alice sent, before and after carol stalled"
    );
    assert!(
        sent > 64,
        "alice kept sending well past carol's buffer ({sent})"
    );
}
