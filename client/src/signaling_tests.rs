//! The signaling side of [`Client`] against a scripted WebSocket peer on loopback (no Chorus server): the join
//! handshake, a refused join, room events and the participant list, keepalive, `leave`, and joining again
//! after a lost connection.

use std::time::Duration;

use chorus_protocol::{
    ClientMessage, ErrorCode, ErrorMessage, JoinedResponse, ParticipantInfo, RoomInfo,
    ServerMessage, TrackInfo, TrackKind, TrackSource, PROTOCOL_VERSION,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::{Client, ClientError, ClientEvent, ConnectOptions};

type ServerWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

fn participant(sid: &str, identity: &str) -> ParticipantInfo {
    ParticipantInfo {
        sid: sid.into(),
        identity: identity.into(),
        name: String::new(),
        tracks: vec![],
    }
}

fn joined(others: Vec<ParticipantInfo>, ping_interval_secs: u64) -> ServerMessage {
    joined_as("PA_me", others, ping_interval_secs)
}

fn joined_as(sid: &str, others: Vec<ParticipantInfo>, ping_interval_secs: u64) -> ServerMessage {
    ServerMessage::Joined(JoinedResponse {
        protocol: PROTOCOL_VERSION,
        room: RoomInfo {
            name: "r".into(),
            sid: "RM_1".into(),
        },
        participant: participant(sid, "me"),
        participants: others,
        resume_token: "rt".into(),
        resume_window_secs: 10,
        ping_interval_secs,
        ice_servers: vec![],
    })
}

/// Listens on an ephemeral loopback port and runs `script` on the first connection.
async fn fake_server<F, Fut>(script: F) -> String
where
    F: FnOnce(ServerWs) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut script = Some(script);
    fake_server_for(1, move |_, ws| {
        let script = script.take().expect("one connection");
        script(ws)
    })
    .await
}

/// Listens on an ephemeral loopback port and runs `script(n, ws)` on each of the first `connections`
/// connections (`n` from 0), one after the other; later connections are refused.
async fn fake_server_for<F, Fut>(connections: usize, mut script: F) -> String
where
    F: FnMut(usize, ServerWs) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for n in 0..connections {
            let (tcp, _) = listener.accept().await.expect("accept");
            let ws = tokio_tungstenite::accept_async(tcp)
                .await
                .expect("ws accept");
            script(n, ws).await;
        }
    });
    format!("ws://{addr}/rtc")
}

async fn send(ws: &mut ServerWs, msg: &ServerMessage) {
    let text = serde_json::to_string(msg).expect("encode");
    ws.send(Message::text(text)).await.expect("send");
}

/// The next client message that is not a candidate or a ping.
async fn recv(ws: &mut ServerWs) -> ClientMessage {
    loop {
        let frame = ws.next().await.expect("open").expect("frame");
        if let Message::Text(text) = frame {
            let msg: ClientMessage = serde_json::from_str(text.as_str()).expect("client message");
            if !matches!(
                msg,
                ClientMessage::Candidate { .. } | ClientMessage::Ping { .. }
            ) {
                return msg;
            }
        }
    }
}

async fn next_event(client: &Client) -> ClientEvent {
    tokio::time::timeout(Duration::from_secs(10), client.next_event())
        .await
        .expect("event in time")
        .expect("an event")
}

#[tokio::test]
async fn join_events_and_leave() {
    let url = fake_server(|mut ws| async move {
        let join = recv(&mut ws).await;
        assert!(
            matches!(&join, ClientMessage::Join(j) if j.token.as_deref() == Some("tok") && j.auto_subscribe.is_none()),
            "{join:?}"
        );
        send(&mut ws, &joined(vec![participant("PA_bob", "bob")], 1)).await;
        send(&mut ws, &ServerMessage::ParticipantJoined { participant: participant("PA_carol", "carol") }).await;
        let track = TrackInfo {
            sid: "TR_1".into(),
            kind: TrackKind::Audio,
            source: TrackSource::Microphone,
            name: String::new(),
            muted: false,
            ..Default::default()
        };
        send(&mut ws, &ServerMessage::TrackPublished { participant_sid: "PA_carol".into(), track }).await;
        send(&mut ws, &ServerMessage::Error(ErrorMessage::new(ErrorCode::UnknownTrack, "no such track"))).await;
        send(&mut ws, &ServerMessage::ParticipantLeft { participant_sid: "PA_bob".into(), reason: "left".into() }).await;
        // A frame the client does not understand is skipped, not fatal.
        ws.send(Message::text(r#"{"type":"fromTheFuture","x":1}"#)).await.expect("send");
        // Keepalive: the client pings every second; answer one.
        let ping = loop {
            let frame = ws.next().await.expect("open").expect("frame");
            if let Message::Text(text) = frame {
                if let Ok(ClientMessage::Ping { timestamp }) = serde_json::from_str(text.as_str()) {
                    break timestamp;
                }
            }
        };
        send(&mut ws, &ServerMessage::Pong { timestamp: ping }).await;
        assert_eq!(recv(&mut ws).await, ClientMessage::Leave);
        send(&mut ws, &ServerMessage::Left { reason: "left".into() }).await;
        let _ = ws.close(None).await;
    })
    .await;

    let client = Client::connect(&url, "tok", signaling_only())
        .await
        .expect("joined");
    assert_eq!(client.participant_sid(), "PA_me");
    assert_eq!(client.identity(), "me");
    assert_eq!(client.room().name, "r");
    assert_eq!(client.participants().len(), 1);

    assert!(
        matches!(next_event(&client).await, ClientEvent::ParticipantJoined(p) if p.identity == "carol")
    );
    assert!(
        matches!(next_event(&client).await, ClientEvent::TrackPublished { participant_sid, .. } if participant_sid == "PA_carol")
    );
    assert!(matches!(
        next_event(&client).await,
        ClientEvent::Error {
            code: ErrorCode::UnknownTrack,
            fatal: false,
            ..
        }
    ));
    assert!(
        matches!(next_event(&client).await, ClientEvent::ParticipantLeft { participant_sid, .. } if participant_sid == "PA_bob")
    );
    let others = client.participants();
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].identity, "carol");
    assert_eq!(
        others[0].tracks.len(),
        1,
        "trackPublished updates the room view"
    );
    assert!(client.is_connected());

    tokio::time::timeout(Duration::from_secs(10), client.leave())
        .await
        .expect("leave in time");
    assert!(!client.is_connected());
    assert!(matches!(
        next_event(&client).await,
        ClientEvent::Disconnected { .. }
    ));
    assert_eq!(client.next_event().await, None);
    assert!(matches!(
        client.publish_audio().await,
        Err(ClientError::Disconnected(_))
    ));
}

#[tokio::test]
async fn refused_join_is_a_server_error() {
    let url = fake_server(|mut ws| async move {
        let _join = recv(&mut ws).await;
        send(
            &mut ws,
            &ServerMessage::Error(ErrorMessage::new(ErrorCode::Unauthorized, "bad signature")),
        )
        .await;
        let _ = ws.close(None).await;
    })
    .await;
    match Client::connect(&url, "bad", signaling_only()).await {
        Err(ClientError::Server { code, message }) => {
            assert_eq!(code, ErrorCode::Unauthorized);
            assert_eq!(message, "bad signature");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test]
async fn dropped_connection_is_reported_once() {
    let url = fake_server(|mut ws| async move {
        let _join = recv(&mut ws).await;
        send(&mut ws, &joined(vec![], 5)).await;
        // Drop without `left`: the client must notice.
        drop(ws);
    })
    .await;
    let options = ConnectOptions {
        rejoin_window: Duration::ZERO,
        ..signaling_only()
    };
    let client = Client::connect(&url, "tok", options).await.expect("joined");
    assert!(matches!(
        next_event(&client).await,
        ClientEvent::Disconnected { .. }
    ));
    assert_eq!(client.next_event().await, None);
    assert!(!client.is_connected());
}

#[tokio::test]
async fn a_lost_connection_is_joined_again_with_the_room_brought_up_to_date() {
    let url = fake_server_for(2, |n, mut ws| async move {
        let ClientMessage::Join(join) = recv(&mut ws).await else {
            panic!("expected join");
        };
        assert_eq!(join.token.as_deref(), Some("tok"), "same token");
        assert!(join.resume.is_none(), "a fresh join, not a resume");
        if n == 0 {
            send(
                &mut ws,
                &joined_as("PA_1", vec![participant("PA_bob", "bob")], 5),
            )
            .await;
            drop(ws); // the node dies
        } else {
            let others = vec![participant("PA_bob2", "bob")];
            send(&mut ws, &joined_as("PA_2", others, 5)).await;
            assert!(matches!(recv(&mut ws).await, ClientMessage::Leave));
            send(
                &mut ws,
                &ServerMessage::Left {
                    reason: "clientLeave".into(),
                },
            )
            .await;
        }
    })
    .await;
    let client = Client::connect(&url, "tok", signaling_only())
        .await
        .expect("joined");
    assert_eq!(client.participant_sid(), "PA_1");
    assert!(matches!(
        next_event(&client).await,
        ClientEvent::Reconnecting { .. }
    ));
    assert!(
        matches!(next_event(&client).await, ClientEvent::ParticipantLeft { participant_sid, .. } if participant_sid == "PA_bob")
    );
    assert!(
        matches!(next_event(&client).await, ClientEvent::ParticipantJoined(p) if p.sid == "PA_bob2")
    );
    assert!(
        matches!(next_event(&client).await, ClientEvent::Rejoined { participant_sid } if participant_sid == "PA_2")
    );
    assert_eq!(client.participant_sid(), "PA_2");
    assert!(client.is_connected());
    let others = client.participants();
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].sid, "PA_bob2");
    tokio::time::timeout(Duration::from_secs(10), client.leave())
        .await
        .expect("leave in time");
    assert!(matches!(
        next_event(&client).await,
        ClientEvent::Disconnected { .. }
    ));
}

#[tokio::test]
async fn a_refused_rejoin_ends_the_session() {
    let url = fake_server_for(2, |n, mut ws| async move {
        let _join = recv(&mut ws).await;
        if n == 0 {
            send(&mut ws, &joined(vec![], 5)).await;
            drop(ws);
        } else {
            let refused = ErrorMessage::new(ErrorCode::TokenExpired, "token expired");
            send(&mut ws, &ServerMessage::Error(refused)).await;
            let _ = ws.close(None).await;
        }
    })
    .await;
    let client = Client::connect(&url, "tok", signaling_only())
        .await
        .expect("joined");
    assert!(matches!(
        next_event(&client).await,
        ClientEvent::Reconnecting { .. }
    ));
    match next_event(&client).await {
        ClientEvent::Disconnected { reason } => {
            assert!(reason.contains("joining again failed"), "{reason}");
            assert!(reason.contains("token expired"), "{reason}");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(!client.is_connected());
}

#[tokio::test]
async fn a_media_failure_before_media_ever_connected_ends_the_session() {
    // The scripted peer never answers ICE, so neither connection ever connects: joining again would only fail
    // the same way (a firewall, say), so `left {mediaFailed}` ends the session like any other `left`.
    let url = fake_server_for(2, |n, mut ws| async move {
        let _join = recv(&mut ws).await;
        assert_eq!(n, 0, "no second join");
        send(&mut ws, &joined(vec![], 5)).await;
        send(
            &mut ws,
            &ServerMessage::Left {
                reason: "mediaFailed".into(),
            },
        )
        .await;
        let _ = ws.close(None).await;
    })
    .await;
    let client = Client::connect(&url, "tok", signaling_only())
        .await
        .expect("joined");
    match next_event(&client).await {
        ClientEvent::Disconnected { reason } => assert!(reason.contains("mediaFailed"), "{reason}"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(!client.is_connected());
}

#[tokio::test]
async fn nothing_listening_is_a_websocket_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let err = Client::connect(&format!("ws://{addr}/rtc"), "tok", signaling_only())
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, ClientError::WebSocket(_)), "{err:?}");
}

/// These fake servers speak only signaling: no data-channel negotiation at connect.
fn signaling_only() -> ConnectOptions {
    ConnectOptions {
        data: false,
        ..ConnectOptions::default()
    }
}
