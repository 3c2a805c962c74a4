//! Sharing one subscriber's downlink estimate among the tracks it receives: a pure function.
//!
//! Audio is served first and never paused. Video tracks then get their lowest live layer in priority order
//! (screen share, then pinned, then the rest); a track that cannot get even that is paused. What is left is
//! handed out one layer step at a time, round-robin in priority order, so tracks of equal priority degrade
//! evenly instead of one starving the others. No track goes above the layer its subscriber wants.

use crate::layers::{LayerMask, MAX_LAYERS};

/// One subscribed track as the allocator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Higher is served first.
    pub priority: u8,
    pub audio: bool,
    /// The highest layer the subscriber wants.
    pub wanted: u8,
    /// The live layers; empty while nothing has arrived yet.
    pub alive: LayerMask,
    /// Bits per second of each layer.
    pub bitrates: [u64; MAX_LAYERS],
}

/// The allocator's answer for one track: the highest layer it may receive, or `None` (paused).
pub type Allowance = Option<u8>;

/// Split `budget_bps` among `demands`; the answer is in the same order. Tracks with no live layer yet keep
/// their wish (nothing can be measured, and nothing flows to pay for).
pub fn allocate(budget_bps: u64, demands: &[Demand]) -> Vec<Allowance> {
    let mut out: Vec<Allowance> = vec![None; demands.len()];
    let mut left = budget_bps;
    for (i, d) in demands.iter().enumerate() {
        if d.audio {
            left = left.saturating_sub(d.bitrates[0]);
            out[i] = Some(d.wanted);
        } else if d.alive == 0 {
            out[i] = Some(d.wanted);
        }
    }
    let mut video: Vec<usize> = (0..demands.len())
        .filter(|&i| !demands[i].audio && demands[i].alive != 0)
        .collect();
    // Stable: equal priorities keep their order.
    video.sort_by_key(|&i| std::cmp::Reverse(demands[i].priority));

    // Everyone's lowest live layer first.
    let mut level: Vec<Option<u8>> = vec![None; demands.len()];
    for &i in &video {
        let d = &demands[i];
        let Some(lowest) = lowest_alive(d.alive) else {
            continue;
        };
        let cost = d.bitrates[usize::from(lowest)];
        if cost <= left {
            left -= cost;
            level[i] = Some(lowest);
        }
    }
    // Then one step up at a time, round-robin by priority.
    loop {
        let mut stepped = false;
        for &i in &video {
            let d = &demands[i];
            let Some(cur) = level[i] else {
                continue;
            };
            let Some(next) = next_alive(d.alive, cur).filter(|&n| n <= d.wanted) else {
                continue;
            };
            let extra = d.bitrates[usize::from(next)].saturating_sub(d.bitrates[usize::from(cur)]);
            if extra <= left {
                left -= extra;
                level[i] = Some(next);
                stepped = true;
            }
        }
        if !stepped {
            break;
        }
    }
    for &i in &video {
        out[i] = level[i].map(|l| {
            // The wish may lie in a gap between live layers: allow up to it, not just the live layer below.
            if next_alive(demands[i].alive, l).is_none() {
                demands[i].wanted.max(l)
            } else {
                l
            }
        });
    }
    out
}

fn lowest_alive(alive: LayerMask) -> Option<u8> {
    (0..MAX_LAYERS as u8).find(|l| alive & (1 << l) != 0)
}

fn next_alive(alive: LayerMask, above: u8) -> Option<u8> {
    (above + 1..MAX_LAYERS as u8).find(|l| alive & (1 << l) != 0)
}

/// The bits per second a set of allowances costs (what the subscriber would receive).
pub fn cost(demands: &[Demand], allowances: &[Allowance]) -> u64 {
    demands
        .iter()
        .zip(allowances)
        .map(|(d, a)| match a {
            Some(cap) => (0..=(*cap).min(d.wanted).min(MAX_LAYERS as u8 - 1))
                .rev()
                .find(|l| d.alive & (1 << l) != 0)
                .map_or(0, |l| d.bitrates[usize::from(l)]),
            None => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const QHF: [u64; MAX_LAYERS] = [150_000, 500_000, 1_700_000, 0];

    fn video(priority: u8) -> Demand {
        Demand {
            priority,
            audio: false,
            wanted: 2,
            alive: 0b111,
            bitrates: QHF,
        }
    }

    fn audio() -> Demand {
        Demand {
            priority: 0,
            audio: true,
            wanted: 0,
            alive: 0b1,
            bitrates: [40_000, 0, 0, 0],
        }
    }

    #[test]
    fn plenty_of_bandwidth_gives_everyone_what_they_want() {
        let d = [video(1), video(1), audio()];
        assert_eq!(allocate(10_000_000, &d), vec![Some(2), Some(2), Some(0)]);
    }

    #[test]
    fn a_tight_budget_serves_screen_share_first_and_pauses_the_rest() {
        // Screen share (priority 2), a pinned camera (1), another camera (0), audio; 900 kbit/s.
        let d = [video(0), video(2), video(1), audio()];
        let a = allocate(900_000, &d);
        // Audio 40k first; lowest layers 3×150k = 450k; left 410k: screen steps to h (+350k); 60k left.
        assert_eq!(a, vec![Some(0), Some(1), Some(0), Some(0)]);
        assert!(cost(&d, &a) <= 900_000);
        // 350 kbit/s: audio, then the screen share's and the pinned camera's lowest layers; the last is paused.
        let a = allocate(350_000, &d);
        assert_eq!(a, vec![None, Some(0), Some(0), Some(0)]);
    }

    #[test]
    fn equal_priorities_degrade_evenly() {
        let d = [video(1), video(1)];
        // 1.5 Mbit/s: both at h (2 × 500k), not one at f and the other at q.
        assert_eq!(allocate(1_500_000, &d), vec![Some(1), Some(1)]);
    }

    #[test]
    fn audio_is_never_paused_for_video() {
        let d = [video(2), audio()];
        assert_eq!(allocate(10_000, &d), vec![None, Some(0)]);
    }

    #[test]
    fn nothing_above_the_wish_and_only_live_layers() {
        let mut low = video(1);
        low.wanted = 0;
        let mut top_missing = video(1);
        top_missing.alive = 0b011;
        let a = allocate(10_000_000, &[low, top_missing]);
        assert_eq!(a, vec![Some(0), Some(2)]);
    }

    #[test]
    fn tracks_not_flowing_yet_keep_their_wish() {
        let mut idle = video(1);
        idle.alive = 0;
        assert_eq!(allocate(0, &[idle]), vec![Some(2)]);
    }
}
