//! A virtual network of str0m clients that only use data channels: each opens `reliable` and `lossy` on its
//! publisher connection, sends envelopes (`chorus_protocol::data`) and records what it receives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_protocol::data::{IncomingData, OutgoingData};
use chorus_sfu::core::WorkerCore;
use chorus_sfu::{Command, DataLimits, Event, ParticipantKey};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::{Candidate, Event as RtcEvent, Output, Rtc};

use super::{accept_answer, addr, advance, deliver, ROOM};

/// A message as a client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub reliable: bool,
    pub from: Option<String>,
    pub topic: String,
    pub payload: Vec<u8>,
}

pub struct DataClient {
    pub key: ParticipantKey,
    pub rtc: Rtc,
    pub addr: std::net::SocketAddr,
    pub reliable: ChannelId,
    pub lossy: ChannelId,
    pub open: usize,
    pub received: Vec<Received>,
    /// While false, datagrams to and from this client are lost (it has stopped reading).
    pub online: bool,
}

pub struct DataNet {
    pub now: Instant,
    pub core: WorkerCore,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub clients: Vec<DataClient>,
}

impl DataNet {
    /// A room with one client per `(identity, can_publish_data)`, each connected with both channels open.
    pub fn new(members: &[(&str, bool)], limits: DataLimits) -> DataNet {
        let now = Instant::now();
        let server = addr("127.0.0.1:7882");
        let mut core = WorkerCore::new(server);
        core.set_data_limits(limits);
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        core.handle_command(
            now,
            Command::CreateRoom {
                room: ROOM,
                events: Arc::new(move |e| sink.lock().expect("lock").push(e)),
            },
        );
        let mut net = DataNet {
            now,
            core,
            events,
            clients: Vec::new(),
        };
        for (i, (identity, can_publish_data)) in members.iter().enumerate() {
            net.join(i, identity, *can_publish_data);
        }
        // Open on both sides: each client's `ChannelOpen`s, and the server's `DataReady` for both kinds (what
        // the SDKs wait for before reporting the channels open).
        let mut ready = std::collections::HashSet::new();
        for _ in 0..400 {
            for e in net.take_events() {
                if let Event::DataReady { participant, kind } = e {
                    ready.insert((participant, kind));
                }
            }
            if net.clients.iter().all(|c| c.open == 2) && ready.len() == 2 * net.clients.len() {
                return net;
            }
            net.run(Duration::from_millis(5));
        }
        panic!(
            "data channels did not open ({} of them ready on the server)",
            ready.len()
        );
    }

    fn join(&mut self, i: usize, identity: &str, can_publish_data: bool) {
        let key = ParticipantKey(100 + i as u64);
        self.core.handle_command(
            self.now,
            Command::AddParticipant {
                room: ROOM,
                participant: key,
                identity: identity.into(),
                can_publish_data,
            },
        );
        let client_addr = addr(&format!("10.0.1.{}:5000", i + 1));
        let mut rtc = Rtc::builder().build(self.now);
        rtc.add_local_candidate(Candidate::host(client_addr, "udp").expect("candidate"));
        let mut api = rtc.sdp_api();
        let reliable = api.add_channel("reliable".into());
        let lossy = api.add_channel_with_config(ChannelConfig {
            label: "lossy".into(),
            ordered: false,
            reliability: Reliability::MaxRetransmits { retransmits: 0 },
            ..Default::default()
        });
        let (offer, pending) = api.apply().expect("an offer");
        self.core.handle_command(
            self.now,
            Command::PublisherOffer {
                participant: key,
                sdp: offer.to_sdp_string(),
                tracks: Vec::new(),
            },
        );
        let answer = self
            .take_events()
            .into_iter()
            .find_map(|e| match e {
                Event::PublisherAnswer { participant, sdp } if participant == key => Some(sdp),
                _ => None,
            })
            .expect("publisher answer");
        accept_answer(&mut rtc, pending, &answer);
        self.clients.push(DataClient {
            key,
            rtc,
            addr: client_addr,
            reliable,
            lossy,
            open: 0,
            received: Vec::new(),
            online: true,
        });
    }

    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().expect("lock"))
    }

    /// Client `i` sends one envelope; returns whether its channel accepted it.
    pub fn send(
        &mut self,
        i: usize,
        reliable: bool,
        to: &[&str],
        topic: &str,
        payload: &[u8],
    ) -> bool {
        let mut frame = Vec::new();
        OutgoingData {
            text: false,
            topic,
            to: to.to_vec(),
            payload,
        }
        .encode(&mut frame);
        self.send_raw(i, reliable, &frame)
    }

    pub fn send_raw(&mut self, i: usize, reliable: bool, frame: &[u8]) -> bool {
        let c = &mut self.clients[i];
        let id = if reliable { c.reliable } else { c.lossy };
        c.rtc
            .channel(id)
            .expect("channel open")
            .write(true, frame)
            .expect("write")
    }

    fn drain_client(&mut self, i: usize) -> bool {
        let mut moved = false;
        let now = self.now;
        loop {
            let c = &mut self.clients[i];
            match c.rtc.poll_output().expect("client poll") {
                Output::Timeout(_) => return moved,
                Output::Transmit(t) => {
                    moved = true;
                    if c.online {
                        self.core
                            .handle_datagram(now, t.source, t.destination, &t.contents);
                    }
                }
                Output::Event(RtcEvent::ChannelOpen(..)) => c.open += 1,
                Output::Event(RtcEvent::ChannelData(d)) => {
                    let m = IncomingData::decode(&d.data).expect("the SFU sends valid envelopes");
                    c.received.push(Received {
                        reliable: d.id == c.reliable,
                        from: m.from.map(str::to_owned),
                        topic: m.topic.to_owned(),
                        payload: m.payload.to_vec(),
                    });
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Moves every pending datagram, then advances the clock by `step`.
    pub fn run(&mut self, step: Duration) {
        for _ in 0..200 {
            let mut moved = false;
            for i in 0..self.clients.len() {
                moved |= self.drain_client(i);
            }
            while let Some(t) = self.core.poll_transmit() {
                moved = true;
                let i = self
                    .clients
                    .iter()
                    .position(|c| c.addr == t.destination)
                    .expect("the SFU only sends to clients");
                if !self.clients[i].online {
                    continue;
                }
                deliver(&mut self.clients[i].rtc, self.now, &t);
                self.drain_client(i);
            }
            if !moved {
                break;
            }
        }
        self.now += step;
        advance(
            self.now,
            self.clients.iter_mut().map(|c| &mut c.rtc),
            &mut self.core,
        );
    }

    pub fn run_for(&mut self, total: Duration) {
        for _ in 0..total.as_millis() / 5 {
            self.run(Duration::from_millis(5));
        }
    }
}
