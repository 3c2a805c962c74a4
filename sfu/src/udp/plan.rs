//! How a batch of datagrams is cut into system calls when UDP GSO (generic segmentation offload) is on: pure
//! arithmetic on lengths and destinations, no sockets, so it is tested here exhaustively.
//!
//! A **message** is a run of datagrams to one destination that the kernel can cut itself: every datagram but
//! the last exactly `segment` bytes, the last at most that (Linux `UDP_SEGMENT` rules). A **call** is one
//! `sendmmsg` whose messages share one segment size (the control message is per call): a multi-datagram
//! message needs its segment size to be the call's; a single datagram only needs to be no longer than it, as
//! the kernel sends a message no longer than the segment size as one plain datagram.
//!
//! The datagrams must already be grouped by destination (order within a destination kept); messages and calls
//! keep that order, so each destination's datagrams leave in the order they were queued.

use std::net::SocketAddr;
use std::ops::Range;

/// Most datagrams the kernel accepts in one GSO message (`UDP_MAX_SEGMENTS` on Linux ≥ 4.18).
pub const MAX_SEGMENTS: usize = 64;

/// Most bytes in one GSO message (an IP packet's payload limit, less the UDP header).
pub const MAX_MESSAGE_BYTES: usize = 65_000;

/// One datagram to plan: its destination and length.
pub type Datagram = (SocketAddr, usize);

/// A run of datagrams sent as one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Indices into the planned datagrams.
    pub datagrams: Range<usize>,
    /// The length of every datagram but the last.
    pub segment: usize,
}

impl Message {
    pub fn is_run(&self) -> bool {
        self.datagrams.len() > 1
    }
}

/// One `sendmmsg`: consecutive messages and the segment size they share (`None`: no GSO control message,
/// because every message in it is a single datagram).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub messages: Range<usize>,
    pub segment: Option<u16>,
}

/// Cuts `datagrams` (grouped by destination) into messages: maximal runs that GSO can carry.
pub fn messages(datagrams: &[Datagram], out: &mut Vec<Message>) {
    out.clear();
    let mut i = 0;
    while i < datagrams.len() {
        let (dest, segment) = datagrams[i];
        let mut end = i + 1;
        let mut bytes = segment;
        // Extend while the previous datagram was a full segment and the next fits after it.
        while end < datagrams.len()
            && end - i < MAX_SEGMENTS
            && datagrams[end].0 == dest
            && datagrams[end - 1].1 == segment
            && datagrams[end].1 <= segment
            && datagrams[end].1 > 0
            && bytes + datagrams[end].1 <= MAX_MESSAGE_BYTES
        {
            bytes += datagrams[end].1;
            end += 1;
        }
        out.push(Message {
            datagrams: i..end,
            segment,
        });
        i = end;
    }
}

/// Groups `messages` into calls that can share one segment size, keeping their order.
pub fn calls(messages: &[Message], out: &mut Vec<Call>) {
    out.clear();
    let mut start = 0;
    // The call being built: its segment size, and the longest single datagram in it so far.
    let mut segment: Option<usize> = None;
    let mut longest_single = 0;
    for (k, m) in messages.iter().enumerate() {
        let fits = if m.is_run() {
            match segment {
                Some(s) => s == m.segment,
                None => longest_single <= m.segment,
            }
        } else {
            segment.is_none_or(|s| m.segment <= s)
        };
        if !fits {
            out.push(call(start..k, segment));
            start = k;
            segment = None;
            longest_single = 0;
        }
        if m.is_run() {
            segment = Some(m.segment);
        } else {
            longest_single = longest_single.max(m.segment);
        }
    }
    if start < messages.len() {
        out.push(call(start..messages.len(), segment));
    }
}

fn call(messages: Range<usize>, segment: Option<usize>) -> Call {
    Call {
        messages,
        // A run's segment is at most MAX_MESSAGE_BYTES, so it fits a u16.
        segment: segment.map(|s| u16::try_from(s).unwrap_or(u16::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn plan(datagrams: &[Datagram]) -> (Vec<Message>, Vec<Call>) {
        let (mut m, mut c) = (Vec::new(), Vec::new());
        messages(datagrams, &mut m);
        calls(&m, &mut c);
        (m, c)
    }

    fn ranges(m: &[Message]) -> Vec<Range<usize>> {
        m.iter().map(|m| m.datagrams.clone()).collect()
    }

    #[test]
    fn a_frame_to_each_subscriber_is_one_message_each_and_one_call() {
        // Three full packets and a shorter last one, then an audio packet, to two subscribers.
        let mut d = Vec::new();
        for port in [1, 2] {
            d.extend([(at(port), 1100), (at(port), 1100), (at(port), 1100)]);
            d.extend([(at(port), 700), (at(port), 120)]);
        }
        let (m, c) = plan(&d);
        assert_eq!(ranges(&m), vec![0..4, 4..5, 5..9, 9..10]);
        assert_eq!(
            c,
            vec![Call {
                messages: 0..4,
                segment: Some(1100)
            }]
        );
    }

    #[test]
    fn runs_stop_at_a_new_destination_a_longer_datagram_and_after_a_short_one() {
        let d = [
            (at(1), 500),
            (at(2), 500), // new destination
            (at(2), 600), // longer than the segment
            (at(2), 300),
            (at(2), 300), // after a short one: a segment must be full
        ];
        let (m, _) = plan(&d);
        assert_eq!(ranges(&m), vec![0..1, 1..2, 2..4, 4..5]);
        assert_eq!(m[2].segment, 600);
    }

    #[test]
    fn runs_respect_the_segment_and_byte_limits() {
        let d = vec![(at(1), 100); MAX_SEGMENTS + 3];
        let (m, _) = plan(&d);
        assert_eq!(
            ranges(&m),
            vec![0..MAX_SEGMENTS, MAX_SEGMENTS..MAX_SEGMENTS + 3]
        );
        let d = vec![(at(1), 1400); 50];
        let (m, _) = plan(&d);
        let per = MAX_MESSAGE_BYTES / 1400;
        assert_eq!(m[0].datagrams, 0..per);
        assert!(m
            .iter()
            .all(|m| m.datagrams.len() * 1400 <= MAX_MESSAGE_BYTES));
    }

    #[test]
    fn calls_split_where_segment_sizes_disagree() {
        let d = [
            (at(1), 100), // single, 100
            (at(2), 900),
            (at(2), 900),  // run of 900: the call takes 900
            (at(3), 1000), // single longer than 900: new call
            (at(4), 800),
            (at(4), 800), // run of 800 after a single of 1000: new call
            (at(5), 50),
        ];
        let (m, c) = plan(&d);
        assert_eq!(ranges(&m), vec![0..1, 1..3, 3..4, 4..6, 6..7]);
        assert_eq!(
            c,
            vec![
                Call {
                    messages: 0..2,
                    segment: Some(900)
                },
                Call {
                    messages: 2..3,
                    segment: None
                },
                Call {
                    messages: 3..5,
                    segment: Some(800)
                },
            ]
        );
    }

    #[test]
    fn singles_only_need_no_control_message_and_every_datagram_is_planned_once() {
        let d: Vec<Datagram> = (0..40).map(|i| (at(i % 7), 50 + i as usize * 13)).collect();
        let mut sorted = d.clone();
        sorted.sort_by_key(|x| x.0);
        let (m, c) = plan(&sorted);
        let covered: Vec<usize> = m.iter().flat_map(|m| m.datagrams.clone()).collect();
        assert_eq!(covered, (0..40).collect::<Vec<_>>());
        let calls_cover: Vec<usize> = c.iter().flat_map(|c| c.messages.clone()).collect();
        assert_eq!(calls_cover, (0..m.len()).collect::<Vec<_>>());
        for call in &c {
            let runs = m[call.messages.clone()].iter().filter(|m| m.is_run());
            for run in runs {
                assert_eq!(Some(run.segment as u16), call.segment);
            }
            if let Some(s) = call.segment {
                for single in m[call.messages.clone()].iter().filter(|m| !m.is_run()) {
                    assert!(single.segment <= usize::from(s));
                }
            }
        }
        assert!(plan(&[]).0.is_empty() && plan(&[]).1.is_empty());
    }
}
