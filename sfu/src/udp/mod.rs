//! A worker's UDP socket I/O in batches: `recv.rs` takes what arrived with one `recvmmsg`, `send.rs` sends a
//! batch grouped by destination with `sendmmsg` and UDP GSO, `plan.rs` cuts a batch into GSO messages and calls.

mod plan;
mod recv;
mod send;

pub use recv::{wait_readable, UdpRecvBatch, RECV_BATCH};
pub use send::UdpBatch;
