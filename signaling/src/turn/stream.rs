//! TURN over TCP and TLS for a crate that only serves packet connections: [`StreamConn`] accepts stream
//! connections, cuts each byte stream into STUN messages and ChannelData frames (RFC 5766 §11.5: ChannelData is
//! padded to 4 bytes on streams), and presents them as datagrams from the connection's remote address; a send
//! to that address is written back on the same connection.
//!
//! A connection that sends something else, a frame larger than [`MAX_FRAME`], or nothing for a while is closed;
//! it never affects the others. When a connection ends, its allocation is released at once (see [`super::release`]);
//! frames the server still sends to it are dropped, as a UDP send to a departed client would be.
//!
//! The framing functions are `pub` only for the fuzz target `turn_stream_frames` (re-exported as
//! `turn::stream_framing` with feature `testkit`); this module is private.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use webrtc_util::Conn;

use super::release::LastSigned;

/// Largest STUN message or ChannelData frame accepted (the crate reads at most 1500 bytes anyway).
pub const MAX_FRAME: usize = 1600;
/// Connections open at once per listener.
const MAX_CONNECTIONS: usize = 1024;
/// A connection that completes no frame (or no TLS handshake) this long is closed. Browsers send a consent
/// check every few seconds and refresh permissions every few minutes.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Frames queued towards one connection before further ones are dropped (like UDP loss).
const WRITE_QUEUE: usize = 256;

type Peers = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

/// Every connection of one TCP (or TLS) listener, as one packet connection.
pub struct StreamConn {
    local: SocketAddr,
    inbound: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    peers: Peers,
    accept_task: tokio::task::JoinHandle<()>,
}

impl StreamConn {
    /// Starts accepting on `listener`, with TLS when `tls` is given. `secret` signs the request that releases
    /// an ended connection's allocation.
    pub fn start(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        secret: Arc<Vec<u8>>,
    ) -> std::io::Result<Arc<Self>> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(1024);
        let peers: Peers = Arc::default();
        let accept_task = tokio::spawn(accept_loop(listener, tls, tx, Arc::clone(&peers), secret));
        Ok(Arc::new(StreamConn {
            local,
            inbound: tokio::sync::Mutex::new(rx),
            peers,
            accept_task,
        }))
    }
}

impl Drop for StreamConn {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    inbound: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    peers: Peers,
    secret: Arc<Vec<u8>>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "TURN accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (wtx, wrx) = mpsc::channel(WRITE_QUEUE);
        {
            let mut map = peers.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() >= MAX_CONNECTIONS {
                tracing::warn!(%remote, "too many TURN stream connections; refusing one");
                continue;
            }
            map.insert(remote, wtx);
        }
        let _ = stream.set_nodelay(true);
        let inbound = inbound.clone();
        let peers = Arc::clone(&peers);
        let tls = tls.clone();
        let secret = Arc::clone(&secret);
        tokio::spawn(async move {
            let mut last = LastSigned::default();
            let result = match tls {
                None => serve(stream, remote, &inbound, wrx, &mut last).await,
                Some(acceptor) => {
                    match tokio::time::timeout(IDLE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve(s, remote, &inbound, wrx, &mut last).await,
                        Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            peers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&remote);
            match result {
                Ok(()) => tracing::debug!(%remote, "TURN stream closed"),
                Err(e) => tracing::debug!(%remote, error = %e, "TURN stream ended"),
            }
            if let Some(release) = last.release_request(&secret, crate::auth::now_unix_secs()) {
                tracing::debug!(%remote, "releasing the TURN allocation of an ended stream");
                let _ = inbound.send((release, remote)).await;
            }
        });
    }
}

/// Reads frames into `inbound` and writes queued frames, until either side ends.
async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    remote: SocketAddr,
    inbound: &mpsc::Sender<(Vec<u8>, SocketAddr)>,
    mut outbound: mpsc::Receiver<Vec<u8>>,
    last: &mut LastSigned,
) -> Result<(), String> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = async move {
        while let Some(frame) = outbound.recv().await {
            writer.write_all(&frame).await.map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    };
    let read = async move {
        loop {
            let frame = match tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut reader)).await {
                Err(_) => return Err("idle".to_string()),
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => return Err(e),
            };
            last.observe(&frame);
            if inbound.send((frame, remote)).await.is_err() {
                return Ok(());
            }
        }
    };
    tokio::select! {
        r = read => r,
        r = write => r,
    }
}

/// `message` as it goes on a stream: a ChannelData frame padded to a multiple of 4 bytes (RFC 8656 §12.5), a
/// STUN message as it is.
pub fn stream_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = message.to_vec();
    if frame.first().is_some_and(|b| b >> 6 == 1) {
        frame.resize(frame.len().div_ceil(4) * 4, 0);
    }
    frame
}

/// The next STUN message or ChannelData frame (without padding); `None` at a clean end of stream between
/// frames (a stream that ends inside a frame or its header is an error).
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, String> {
    let mut header = [0u8; 4];
    let mut filled = 0;
    while filled < header.len() {
        match r.read(&mut header[filled..]).await {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err("stream ended inside a frame header".into()),
            Ok(n) => filled += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    let (len, padded) = frame_len(header)?;
    let mut frame = vec![0u8; padded];
    frame[..4].copy_from_slice(&header);
    r.read_exact(&mut frame[4..])
        .await
        .map_err(|e| e.to_string())?;
    frame.truncate(len);
    Ok(Some(frame))
}

/// Length of a frame from its first four bytes, and how many bytes it occupies on the stream.
pub fn frame_len(header: [u8; 4]) -> Result<(usize, usize), String> {
    let body = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let (len, padded) = match header[0] >> 6 {
        // STUN: 20-byte header, attributes are already 4-byte aligned.
        0 => (20 + body, 20 + body),
        // ChannelData (channel numbers 0x4000..0x7FFF): 4-byte header, padded on streams.
        1 => (4 + body, 4 + body.div_ceil(4) * 4),
        _ => {
            return Err(format!(
                "not STUN or ChannelData (first byte {:#04x})",
                header[0]
            ))
        }
    };
    if padded > MAX_FRAME {
        return Err(format!("frame of {padded} bytes is too large"));
    }
    if header[0] >> 6 == 0 && body % 4 != 0 {
        return Err("STUN length not a multiple of 4".into());
    }
    Ok((len, padded))
}

#[async_trait]
impl Conn for StreamConn {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(webrtc_util::Error::Other("not supported".into()))
    }

    async fn recv(&self, _buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("not supported".into()))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut rx = self.inbound.lock().await;
        let (frame, from) = rx
            .recv()
            .await
            .ok_or(webrtc_util::Error::ErrClosedListener)?;
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok((n, from))
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("not supported".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        let tx = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&target)
            .cloned();
        let Some(tx) = tx else {
            // The connection ended; like a UDP datagram to a departed client, the frame is lost.
            tracing::trace!(%target, "TURN frame for an ended stream dropped");
            return Ok(buf.len());
        };
        // A full queue drops the frame, as a congested UDP path would.
        let _ = tx.try_send(stream_frame(buf));
        Ok(buf.len())
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// Does nothing: the `turn` crate closes the listener's connection whenever it closes an allocation (fine for
    /// a UDP socket, whose close is a no-op), so stopping here would take every TCP client down with one. The
    /// listener stops when the server drops its last handle (see `Drop`).
    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths() {
        assert_eq!(frame_len([0x00, 0x01, 0x00, 0x08]), Ok((28, 28)));
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x05]), Ok((9, 12)));
        assert!(frame_len([0x00, 0x01, 0x00, 0x06]).is_err());
        assert!(frame_len([0x80, 0, 0, 0]).is_err());
        // A TLS ClientHello on the plain port.
        assert!(frame_len([0x16, 0x03, 0x01, 0x02]).is_err());
        assert!(frame_len([0x40, 0x00, 0xff, 0xff]).is_err());
    }

    #[tokio::test]
    async fn reads_frames_and_rejects_garbage() {
        let mut data: &[u8] = &[
            0x40, 0x00, 0x00, 0x02, 0xaa, 0xbb, 0, 0, // ChannelData with 2 bytes + padding
            0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(
            read_frame(&mut data).await,
            Ok(Some(vec![0x40, 0, 0, 2, 0xaa, 0xbb]))
        );
        assert!(read_frame(&mut data).await.is_err());
        let mut empty: &[u8] = &[];
        assert_eq!(read_frame(&mut empty).await, Ok(None));
        let mut cut: &[u8] = &[0x00, 0x01, 0x00, 0x08, 1, 2];
        assert!(read_frame(&mut cut).await.is_err());
    }

    /// Found by the fuzz target `turn_stream_frames` (input `00 00`: the stream is one byte): a stream that
    /// ended inside a frame header was taken for a clean end between frames.
    #[tokio::test]
    async fn a_stream_ending_inside_a_header_is_an_error() {
        for cut in [&[0x00][..], &[0x40, 0x00, 0x00]] {
            let mut r = cut;
            assert!(read_frame(&mut r).await.is_err(), "{cut:02x?}");
        }
        // A header split across two reads is still read whole.
        let mut split = (&[0x40][..]).chain(&[0x00, 0x00, 0x01, 0xaa, 0, 0, 0][..]);
        assert_eq!(
            read_frame(&mut split).await,
            Ok(Some(vec![0x40, 0, 0, 1, 0xaa]))
        );
        assert_eq!(read_frame(&mut split).await, Ok(None));
    }
}
