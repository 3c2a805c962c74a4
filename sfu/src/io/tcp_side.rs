//! A media worker's ICE-TCP side: the frames `tcp.rs` reads from its connections, fed to the core as
//! datagrams of protocol TCP, and each connection's writer queue for what the core sends back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use str0m::net::Protocol;

use crate::core::WorkerCore;
use crate::tcp::TcpInput;

/// A worker's ICE-TCP side: the advertised TCP address, the frames from `tcp.rs`, and each connection's writer.
pub(super) struct TcpSide {
    local: SocketAddr,
    inputs: Receiver<TcpInput>,
    pub(super) writers: HashMap<SocketAddr, mpsc::SyncSender<Vec<u8>>>,
}

impl TcpSide {
    pub(super) fn new(local: SocketAddr, inputs: Receiver<TcpInput>) -> Self {
        TcpSide {
            local,
            inputs,
            writers: HashMap::new(),
        }
    }

    /// Feed every waiting frame to the core.
    pub(super) fn drain(&mut self, core: &mut WorkerCore) {
        while let Ok(input) = self.inputs.try_recv() {
            match input {
                TcpInput::Opened { remote, writer } => {
                    self.writers.insert(remote, writer);
                }
                TcpInput::Frame { remote, data } => {
                    core.stats.bytes_in += data.len() as u64;
                    core.handle_datagram_via(
                        Instant::now(),
                        Protocol::Tcp,
                        remote,
                        self.local,
                        &data,
                    );
                }
                TcpInput::Closed { remote } => {
                    self.writers.remove(&remote);
                }
            }
        }
    }
}
