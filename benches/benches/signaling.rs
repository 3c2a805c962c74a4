//! Parsing client signaling messages (`chorus_protocol::parse_client_message`): the size check and serde JSON
//! into the tagged enum, for a keepalive, a trickled candidate and a publisher offer with a realistic SDP.

use std::hint::black_box;

use chorus_protocol::{parse_client_message, DEFAULT_MAX_MESSAGE_BYTES};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn offer_json() -> String {
    let mut sdp =
        String::from("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    for (mid, kind) in [("0", "audio"), ("1", "video")] {
        sdp += &format!("m={kind} 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101\r\nc=IN IP4 0.0.0.0\r\n");
        sdp += &format!("a=mid:{mid}\r\na=sendonly\r\na=rtcp-mux\r\n");
        for pt in 96..=101 {
            sdp += &format!("a=rtpmap:{pt} VP8/90000\r\na=rtcp-fb:{pt} nack pli\r\n");
        }
        sdp += "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n";
        sdp += "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n";
    }
    let sdp = sdp.replace('\r', "\\r").replace('\n', "\\n");
    format!(
        r#"{{"type":"offer","sdp":"{sdp}","tracks":[{{"mid":"0","kind":"audio","source":"microphone","name":"mic"}},{{"mid":"1","kind":"video","source":"camera","name":"cam","layers":["q","h","f"]}}]}}"#
    )
}

fn signaling(c: &mut Criterion) {
    let messages = [
        ("ping", r#"{"type":"ping","timestamp":1700000000000}"#.to_string()),
        (
            "candidate",
            r#"{"type":"candidate","target":"publisher","candidate":"candidate:842163049 1 udp 1677729535 127.0.0.1 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag abcd"}"#.to_string(),
        ),
        ("offer", offer_json()),
    ];
    let mut group = c.benchmark_group("parse_client_message");
    for (name, text) in &messages {
        assert!(
            parse_client_message(text, DEFAULT_MAX_MESSAGE_BYTES).is_ok(),
            "{name} parses"
        );
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| parse_client_message(black_box(text), DEFAULT_MAX_MESSAGE_BYTES))
        });
    }
    group.finish();
}

criterion_group!(benches, signaling);
criterion_main!(benches);
