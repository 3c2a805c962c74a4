//! Which worker a new room goes to: the least loaded one, by what the workers host right now.
//!
//! A worker's load is its participants plus its subscriptions (each participant costs timers, RTCP and
//! consent checks; each subscription a copy of every packet of its track), as the worker last published them
//! (at most [`GAUGE_INTERVAL`](super::GAUGE_INTERVAL) old). Ties go to the worker with the fewest rooms placed
//! on it, counted here at once, so that rooms created together (before any of them has participants, and
//! before the gauges catch up) spread round-robin. A room's [`RoomPlacement`] counts it until dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::stats::{WorkerCounters, WorkerGauges};

use super::WorkerHandle;

/// Rooms placed on each worker and not yet released (index = worker index).
#[derive(Debug, Clone)]
pub(super) struct Placements {
    rooms: Arc<[AtomicUsize]>,
}

impl Placements {
    pub(super) fn new(workers: usize) -> Placements {
        Placements {
            rooms: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Picks the least loaded of `workers` (whose counters are `counters`, by index) and counts a room on it.
    pub(super) fn place(
        &self,
        workers: &[WorkerHandle],
        counters: &[WorkerCounters],
    ) -> RoomPlacement {
        let index = least_loaded(
            counters
                .iter()
                .zip(self.rooms.iter())
                .map(|(c, rooms)| (c.gauges(), rooms.load(Ordering::Relaxed))),
        );
        self.rooms[index].fetch_add(1, Ordering::Relaxed);
        RoomPlacement {
            worker: workers[index].clone(),
            index,
            rooms: Arc::clone(&self.rooms),
        }
    }

    #[cfg(test)]
    fn rooms(&self) -> Vec<usize> {
        self.rooms
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .collect()
    }
}

/// The index of the least loaded worker, given each one's gauges and rooms placed; the first on a tie.
fn least_loaded(workers: impl Iterator<Item = (WorkerGauges, usize)>) -> usize {
    workers
        .enumerate()
        .min_by_key(|(_, (gauges, rooms))| (gauges.participants + gauges.tracks_subscribed, *rooms))
        .map_or(0, |(i, _)| i)
}

/// A room's place on a worker: the worker to send its commands to. Counts the room there until dropped.
#[derive(Debug)]
pub struct RoomPlacement {
    worker: WorkerHandle,
    index: usize,
    rooms: Arc<[AtomicUsize]>,
}

impl RoomPlacement {
    /// The worker the room lives on.
    pub fn worker(&self) -> &WorkerHandle {
        &self.worker
    }

    /// That worker's index (its thread is `chorus-media-<index>`).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for RoomPlacement {
    fn drop(&mut self) {
        self.rooms[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Sfu, SfuConfig};

    fn gauges(participants: u64, tracks_subscribed: u64) -> WorkerGauges {
        WorkerGauges {
            participants,
            tracks_subscribed,
            ..WorkerGauges::default()
        }
    }

    #[test]
    fn the_least_loaded_worker_wins() {
        let loads = [gauges(10, 40), gauges(12, 20), gauges(30, 10)];
        assert_eq!(least_loaded(loads.into_iter().map(|g| (g, 0))), 1);
    }

    #[test]
    fn equal_loads_go_to_the_worker_with_fewest_rooms_then_the_first() {
        let at = |rooms: [usize; 3]| least_loaded((0..3).map(|i| (gauges(5, 5), rooms[i])));
        assert_eq!(at([2, 1, 1]), 1);
        assert_eq!(at([0, 0, 0]), 0);
        assert_eq!(at([1, 1, 0]), 2);
    }

    #[test]
    fn no_workers_means_the_first() {
        assert_eq!(least_loaded(std::iter::empty()), 0);
    }

    #[test]
    fn rooms_spread_over_idle_workers_and_count_until_released() {
        let sfu = Sfu::start(&SfuConfig {
            bind_ip: [127, 0, 0, 1].into(),
            port: 0,
            advertised_ip: [127, 0, 0, 1].into(),
            workers: 2,
            data: Default::default(),
            tcp_port: None,
            udp_gso: false,
        })
        .expect("workers start");
        let first = sfu.place_room();
        let second = sfu.place_room();
        let third = sfu.place_room();
        assert_eq!(
            [first.index(), second.index(), third.index()],
            [0, 1, 0],
            "round-robin while nobody has joined"
        );
        assert_eq!(first.worker().index(), 0);
        assert_eq!(second.worker().index(), 1);
        assert_eq!(sfu.placements.rooms(), [2, 1]);
        drop(first);
        drop(third);
        assert_eq!(sfu.placements.rooms(), [0, 1]);
        assert_eq!(sfu.place_room().index(), 0, "the worker left empty");
    }
}
