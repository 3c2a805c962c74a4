//! Chorus media core: a selective forwarding unit on str0m.
//!
//! The core is sans-IO: [`core::WorkerCore`] is fed `(now, input)` — a datagram, a command, a timeout — and
//! yields transmits and [`Event`]s; it never reads the clock or touches a socket. [`Sfu`] starts one worker thread
//! per configured worker, each owning one UDP socket and every participant of the rooms pinned to it, and drives
//! its core. The signaling side talks to workers only through [`Command`]s and receives [`Event`]s on a per-room
//! sink. This crate knows nothing of HTTP, JSON or tokens.

pub mod allocator;
mod api;
pub mod core;
mod data;
pub mod dynacast;
pub mod estimate_stall;
mod forwarder;
pub mod histogram;
mod io;
pub mod keyframe;
pub mod layers;
mod participant;
mod peer;
pub mod quality;
mod room;
mod router;
pub mod selector;
pub mod speakers;
pub mod ssrc_guard;
mod stats;
mod tcp;
#[cfg(feature = "testkit")]
pub mod testkit;
mod thread_usage;
mod udp;
pub mod vp8;
mod waker;

/// (Feature `testkit`, for `chorus-fuzz`; never part of the server.) The RFC 4571 framing of ICE-TCP
/// connections, otherwise private to the TCP threads (`tcp.rs`).
#[cfg(feature = "testkit")]
pub mod ice_tcp {
    pub use crate::tcp::{frame, read_frame};
}

pub use api::{
    Command, DataKind, DataLimits, DataRejection, Done, Event, EventSink, LimitReason, MediaKind,
    ParticipantKey, ParticipantStats, PcKind, Quality, RoomKey, ServerData, StatsReply,
    SubscriptionPreference, SubscriptionStats, TrackKey, TrackSpec,
};
pub use forwarder::{Forward, Forwarder, SourcePacket};
pub use histogram::{Histogram, WorkerHistograms};
pub use io::{RoomPlacement, Sfu, SfuConfig, SfuError, WorkerHandle};
pub use quality::{LinkQuality, QualityReport, QualitySummary};
pub use stats::{WorkerCounters, WorkerGauges, WorkerStats};
