//! Signaling over a real WebSocket against an in-process server: joining, errors, events, resume.
//! Media is covered by `client/tests` (Rust peers) and `tests/browser` (Chromium).

use std::time::Duration;

use chorus_protocol::{ErrorCode, ServerMessage};
use chorus_signaling::auth::Grants;
use chorus_signaling::testing::TestServer;
use futures_util::SinkExt;
use tokio::net::TcpStream;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{join, recv, recv_until, send, Ws};

async fn connect(url: &str) -> Ws {
    connect_async(url).await.expect("websocket connects").0
}

fn error_code(msg: &ServerMessage) -> Option<ErrorCode> {
    match msg {
        ServerMessage::Error(e) => Some(e.code),
        _ => None,
    }
}

#[tokio::test]
async fn join_reports_the_room_and_others_see_joins_and_leaves() {
    let ts = TestServer::start().await.expect("server starts");
    let (mut alice, aj) = join(&ts, "r1", "alice").await;
    assert_eq!(aj.room.name, "r1");
    assert_eq!(aj.participant.identity, "alice");
    assert!(aj.participants.is_empty());
    assert_eq!(aj.resume_window_secs, 10);

    let (mut bob, bj) = join(&ts, "r1", "bob").await;
    assert_eq!(bj.participants.len(), 1);
    assert_eq!(bj.participants[0].identity, "alice");
    let joined = recv_until(&mut alice, |m| {
        matches!(m, ServerMessage::ParticipantJoined { .. })
    })
    .await;
    assert!(
        matches!(joined, ServerMessage::ParticipantJoined { participant } if participant.identity == "bob")
    );

    send(&mut bob, r#"{"type":"leave"}"#).await;
    let left = recv_until(&mut bob, |m| matches!(m, ServerMessage::Left { .. })).await;
    assert!(matches!(left, ServerMessage::Left { reason } if reason == "left"));
    let gone = recv_until(&mut alice, |m| {
        matches!(m, ServerMessage::ParticipantLeft { .. })
    })
    .await;
    assert!(
        matches!(gone, ServerMessage::ParticipantLeft { participant_sid, .. } if participant_sid == bj.participant.sid)
    );
}

#[tokio::test]
async fn token_in_query_string_works() {
    let ts = TestServer::start().await.expect("server starts");
    let token = ts.token("q", "carol");
    let mut ws = connect(&format!("{}?access_token={token}&room=q", ts.ws_url())).await;
    send(&mut ws, r#"{"type":"join"}"#).await;
    assert!(matches!(
        recv(&mut ws).await,
        Some(ServerMessage::Joined(_))
    ));
}

#[tokio::test]
async fn bad_tokens_get_a_fatal_error_and_a_closed_connection_while_others_carry_on() {
    let ts = TestServer::start().await.expect("server starts");
    let (mut alice, _) = join(&ts, "r2", "alice").await;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let key = ts.api_key();
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key.secret.as_bytes()),
        )
        .expect("sign")
    };
    let expired = sign(serde_json::json!({
        "iss": key.key, "sub": "old", "room": "r2", "exp": now - 600, "nbf": now - 1200
    }));
    let early = sign(serde_json::json!({
        "iss": key.key, "sub": "early", "room": "r2", "exp": now + 7200, "nbf": now + 3600
    }));
    let cases = [
        ("garbage".to_string(), ErrorCode::Unauthorized, None),
        (
            format!("{}x", ts.token("r2", "mallory")),
            ErrorCode::Unauthorized,
            None,
        ),
        (
            ts.token("other-room", "eve"),
            ErrorCode::WrongRoom,
            Some("r2"),
        ),
    ];
    for (token, code, room) in cases {
        let url = match room {
            Some(r) => format!("{}?room={r}", ts.ws_url()),
            None => ts.ws_url(),
        };
        let mut ws = connect(&url).await;
        send(&mut ws, &format!(r#"{{"type":"join","token":"{token}"}}"#)).await;
        let msg = recv(&mut ws).await.expect("an error message");
        assert_eq!(error_code(&msg), Some(code), "{msg:?}");
        assert!(matches!(&msg, ServerMessage::Error(e) if e.fatal && !e.message.is_empty()));
        assert!(
            recv(&mut ws).await.is_none(),
            "connection closed after fatal error"
        );
    }
    // Expired and not-yet-valid tokens are refused with their own codes.
    for (token, code) in [
        (expired, ErrorCode::TokenExpired),
        (early, ErrorCode::TokenNotYetValid),
    ] {
        let mut ws = connect(&ts.ws_url()).await;
        send(&mut ws, &format!(r#"{{"type":"join","token":"{token}"}}"#)).await;
        let msg = recv(&mut ws).await.expect("an error message");
        assert_eq!(error_code(&msg), Some(code), "{msg:?}");
        assert!(
            recv(&mut ws).await.is_none(),
            "connection closed after fatal error"
        );
    }

    // Alice noticed nothing and is still served.
    send(&mut alice, r#"{"type":"ping","timestamp":42}"#).await;
    let pong = recv(&mut alice).await;
    assert_eq!(pong, Some(ServerMessage::Pong { timestamp: 42 }));
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_connection_stays_open() {
    let ts = TestServer::start().await.expect("server starts");
    let mut ws = connect(&ts.ws_url()).await;
    send(&mut ws, r#"{"type":"offer","sdp":"v=0"}"#).await;
    assert_eq!(
        error_code(&recv(&mut ws).await.expect("reply")),
        Some(ErrorCode::NotJoined)
    );

    let (mut ws, _) = join(&ts, "r3", "dave").await;
    let oversized = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70 * 1024));
    let cases: [(&str, ErrorCode); 5] = [
        ("{not json", ErrorCode::BadRequest),
        (r#"{"type":"warp"}"#, ErrorCode::UnknownMessage),
        (r#"{"type":"mute","trackSid":5}"#, ErrorCode::BadRequest),
        (r#"{"type":"join"}"#, ErrorCode::AlreadyJoined),
        (&oversized, ErrorCode::MessageTooLarge),
    ];
    for (text, code) in cases {
        send(&mut ws, text).await;
        let msg = recv(&mut ws).await.expect("reply");
        assert_eq!(error_code(&msg), Some(code), "for {:.40}: {msg:?}", text);
    }
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("send");
    assert_eq!(
        error_code(&recv(&mut ws).await.expect("reply")),
        Some(ErrorCode::BadRequest)
    );
    send(
        &mut ws,
        r#"{"type":"mute","trackSid":"TR_nope","muted":true}"#,
    )
    .await;
    assert_eq!(
        error_code(&recv(&mut ws).await.expect("reply")),
        Some(ErrorCode::UnknownTrack)
    );
    send(
        &mut ws,
        r#"{"type":"offer","sdp":"this is not sdp","tracks":[]}"#,
    )
    .await;
    let msg = recv_until(&mut ws, |m| {
        error_code(m).is_some() || matches!(m, ServerMessage::Answer { .. })
    })
    .await;
    assert_eq!(
        error_code(&msg),
        Some(ErrorCode::NegotiationFailed),
        "{msg:?}"
    );
    // Still alive.
    send(&mut ws, r#"{"type":"ping","timestamp":7}"#).await;
    assert_eq!(
        recv(&mut ws).await,
        Some(ServerMessage::Pong { timestamp: 7 })
    );
    // A message just under the limit is read whole, though the server reads its WebSockets 8 KiB at a time.
    let large = format!(
        r#"{{"type":"ping","timestamp":8,"pad":"{}"}}"#,
        "y".repeat(60 * 1024)
    );
    send(&mut ws, &large).await;
    assert_eq!(
        recv(&mut ws).await,
        Some(ServerMessage::Pong { timestamp: 8 })
    );
}

#[tokio::test]
async fn publishing_without_the_grant_is_refused() {
    let ts = TestServer::start().await.expect("server starts");
    let token = ts.token_with(
        "r4",
        "viewer",
        Grants {
            can_publish: false,
            ..Grants::default()
        },
    );
    let mut ws = connect(&ts.ws_url()).await;
    send(&mut ws, &format!(r#"{{"type":"join","token":"{token}"}}"#)).await;
    assert!(matches!(
        recv(&mut ws).await,
        Some(ServerMessage::Joined(_))
    ));
    send(
        &mut ws,
        r#"{"type":"offer","sdp":"v=0","tracks":[{"mid":"0","kind":"audio","source":"microphone"}]}"#,
    )
    .await;
    assert_eq!(
        error_code(&recv(&mut ws).await.expect("reply")),
        Some(ErrorCode::PermissionDenied)
    );
}

#[tokio::test]
async fn a_dropped_connection_resumes_without_others_seeing_a_leave() {
    let ts = TestServer::start().await.expect("server starts");
    let (mut alice, _) = join(&ts, "r5", "alice").await;
    let (bob, bj) = join(&ts, "r5", "bob").await;
    recv_until(&mut alice, |m| {
        matches!(m, ServerMessage::ParticipantJoined { .. })
    })
    .await;

    drop(bob); // the TCP connection just goes away
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut bob2 = connect(&ts.ws_url()).await;
    let token = ts.token("r5", "bob");
    let join = format!(
        r#"{{"type":"join","token":"{token}","resume":{{"participantSid":"{}","resumeToken":"{}"}}}}"#,
        bj.participant.sid, bj.resume_token
    );
    send(&mut bob2, &join).await;
    match recv(&mut bob2).await {
        Some(ServerMessage::Resumed(r)) => {
            assert_eq!(r.participant.sid, bj.participant.sid);
            assert_eq!(r.participants.len(), 1);
        }
        other => panic!("expected resumed, got {other:?}"),
    }
    // Alice saw no leave: the next thing she gets is the pong.
    send(&mut alice, r#"{"type":"ping","timestamp":1}"#).await;
    assert_eq!(
        recv(&mut alice).await,
        Some(ServerMessage::Pong { timestamp: 1 })
    );

    // A wrong resume token is refused.
    let mut eve = connect(&ts.ws_url()).await;
    let bad = format!(
        r#"{{"type":"join","token":"{token}","resume":{{"participantSid":"{}","resumeToken":"wrong"}}}}"#,
        bj.participant.sid
    );
    send(&mut eve, &bad).await;
    assert_eq!(
        error_code(&recv(&mut eve).await.expect("reply")),
        Some(ErrorCode::ResumeFailed)
    );
}

#[tokio::test]
async fn a_dropped_connection_that_does_not_resume_leaves_after_the_window() {
    let ts = TestServer::start_with(|s| s.resume_window = Duration::from_secs(1))
        .await
        .expect("server starts");
    let (mut alice, _) = join(&ts, "r6", "alice").await;
    let (bob, bj) = join(&ts, "r6", "bob").await;
    recv_until(&mut alice, |m| {
        matches!(m, ServerMessage::ParticipantJoined { .. })
    })
    .await;
    drop(bob);
    let left = recv_until(&mut alice, |m| {
        matches!(m, ServerMessage::ParticipantLeft { .. })
    })
    .await;
    assert!(
        matches!(left, ServerMessage::ParticipantLeft { participant_sid, reason } if participant_sid == bj.participant.sid && reason == "disconnected")
    );
}

#[tokio::test]
async fn joining_twice_with_one_identity_replaces_the_first() {
    let ts = TestServer::start().await.expect("server starts");
    let (mut first, _) = join(&ts, "r7", "zoe").await;
    let (_second, sj) = join(&ts, "r7", "zoe").await;
    assert!(
        sj.participants.is_empty(),
        "the old zoe is gone: {:?}",
        sj.participants
    );
    let msg = recv_until(&mut first, |m| matches!(m, ServerMessage::Left { .. })).await;
    assert!(matches!(msg, ServerMessage::Left { reason } if reason == "duplicateIdentity"));
}

#[tokio::test]
async fn healthz_answers() {
    let ts = TestServer::start().await.expect("server starts");
    let addr = ts.server.http_addr;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // No dev endpoint when keys are configured.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /dev/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
}

/// A log writer the test can read back.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_sessions_log_lines_carry_its_room_and_identity() {
    // A subscriber for this thread only, not the process: the other modules' tests run in parallel in this
    // binary and must neither log into this buffer nor find a global subscriber taken. This test's runtime is
    // current-thread, so the server's tasks (the session that logs `joined`) run on this thread and log here.
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter("chorus_signaling=debug")
        .with_writer(move || writer.clone())
        .finish();
    let _scoped = tracing::subscriber::set_default(subscriber);
    let ts = TestServer::start().await.expect("server starts");
    let (_ws, _) = join(&ts, "logged-room", "logged-alice").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&logs.0.lock().expect("log buffer")).into_owned();
        let found = text.lines().any(|line| {
            line.contains(r#""message":"joined""#)
                && line.contains(r#""identity":"logged-alice""#)
                && line.contains(r#""room":"logged-room""#)
        });
        if found {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `joined` line with the session's room and identity in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
