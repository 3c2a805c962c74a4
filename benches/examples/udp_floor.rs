//! The kernel's floor for the SFU's send pattern on this machine: one `sendmmsg` per "input packet", carrying
//! one datagram to each of N receivers, the receivers blocked in `recv` on another core (as the load tester's
//! subscribers are). Prints the sending thread's CPU time per datagram, which is what the server pays in the
//! kernel per forwarded copy on loopback (there, the sender's system call also runs the receive-side
//! delivery and the receiver's wake-up). No SRTP, no str0m: plain UDP.
//!
//! ```text
//! cargo run --release -p chorus-benches --example udp_floor -- [receivers] [batches/s] [seconds] [bytes] [run]
//! ```
//! Defaults: 50 receivers, 118 batches/s (the 1×50 load test's input rate), 10 s, 1,000 bytes, runs of 1. The
//! sender is pinned to CPU 0 and the receivers to CPU 1. `batches/s` 0 sends back to back. `run` datagrams go
//! to each receiver per batch, back to back; with `UDP_FLOOR_GSO=1` each run is one GSO message. With
//! `UDP_FLOOR_NO_READ=1` the receivers never read (no wake-ups; the kernel drops what overflows).

use std::io::IoSlice;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};

#[path = "support/threads.rs"]
mod threads;
use threads::{pin, thread_cpu};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::io::Result<()> {
    let receivers = arg(1, 50).max(1) as usize;
    let rate = arg(2, 118);
    let seconds = arg(3, 10);
    let bytes = arg(4, 1000) as usize;
    let runs = arg(5, 1).max(1) as usize;
    // With UDP_FLOOR_GSO set, each receiver's run goes as one message cut by the kernel (UDP GSO).
    let gso = std::env::var_os("UDP_FLOOR_GSO").is_some();

    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let mut addrs = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..receivers {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        addrs.push(SockaddrStorage::from(socket.local_addr()?));
        let (stop, received) = (Arc::clone(&stop), Arc::clone(&received));
        threads.push(std::thread::spawn(move || {
            pin(1);
            let mut buf = [0u8; 2048];
            let read = std::env::var_os("UDP_FLOOR_NO_READ").is_none();
            while !stop.load(Ordering::Relaxed) {
                if !read {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                if socket.recv(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    pin(0);
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let payload = vec![0x80u8; bytes];
    let run_payload = vec![0x80u8; bytes * runs];
    let segment = bytes as u16;
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(receivers * runs, None);
    let mut gso_headers =
        MultiHeaders::<SockaddrStorage>::preallocate(receivers, Some(nix::cmsg_space!(u16)));
    let interval = (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64));
    let start = Instant::now();
    let cpu_start = thread_cpu();
    let mut sent = 0u64;
    let mut next = start;
    while start.elapsed() < Duration::from_secs(seconds) {
        if gso {
            let slices: Vec<[IoSlice<'_>; 1]> = (0..receivers)
                .map(|_| [IoSlice::new(&run_payload)])
                .collect();
            let addresses: Vec<Option<SockaddrStorage>> = addrs.iter().map(|a| Some(*a)).collect();
            let cmsgs = [ControlMessage::UdpGsoSegments(&segment)];
            let results = sendmmsg(
                sender.as_raw_fd(),
                &mut gso_headers,
                &slices,
                &addresses,
                cmsgs,
                MsgFlags::empty(),
            );
            sent += results.map(|r| (r.count() * runs) as u64).unwrap_or(0);
        } else {
            let slices: Vec<[IoSlice<'_>; 1]> = (0..receivers * runs)
                .map(|_| [IoSlice::new(&payload)])
                .collect();
            let addresses: Vec<Option<SockaddrStorage>> = addrs
                .iter()
                .flat_map(|a| std::iter::repeat_n(Some(*a), runs))
                .collect();
            let results = sendmmsg(
                sender.as_raw_fd(),
                &mut headers,
                &slices,
                &addresses,
                [],
                MsgFlags::empty(),
            );
            sent += results.map(|r| r.count() as u64).unwrap_or(0);
        }
        if let Some(interval) = interval {
            next += interval;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    let cpu = thread_cpu() - cpu_start;
    let wall = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    println!(
        "{receivers} receivers, {} batches/s, {bytes} B: sent {sent} in {:.1} s, received {}; \
         sender CPU {:.3} s = {:.2} us per datagram",
        if rate == 0 {
            "max".to_string()
        } else {
            rate.to_string()
        },
        wall.as_secs_f64(),
        received.load(Ordering::Relaxed),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / sent.max(1) as f64,
    );
    Ok(())
}
