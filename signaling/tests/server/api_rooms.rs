//! `/v1/rooms` against a real server (signaling only; media moderation is in `client/tests/e2e/api_moderation.rs`):
//! create with options, list, get, participant limit, delete, participants, remove, grants, empty timeouts.

use std::time::Duration;

use crate::support::{self, join, left_reason, try_join, Api};
use chorus_protocol::{ErrorCode, ServerMessage};
use chorus_signaling::testing::TestServer;
use serde_json::json;

async fn wait_until_gone(api: &Api, room: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let (status, _) = api.call("GET", &format!("/v1/rooms/{room}"), None).await;
        if status == 404 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn rooms_are_created_listed_read_and_limited() {
    let ts = TestServer::start().await.expect("server starts");
    let api = Api::admin(&ts);
    let room = api
        .expect(
            201,
            "POST",
            "/v1/rooms",
            Some(
                json!({"name": "standup", "maxParticipants": 2, "emptyTimeoutSecs": 300,
                        "metadata": "{\"team\":\"core\"}"}),
            ),
        )
        .await;
    assert_eq!(room["name"], "standup");
    assert!(room["sid"].as_str().is_some_and(|s| s.starts_with("RM_")));
    assert_eq!(room["maxParticipants"], 2);
    assert_eq!(room["emptyTimeoutSecs"], 300);
    assert_eq!(room["metadata"], "{\"team\":\"core\"}");
    assert_eq!(room["numParticipants"], 0);
    api.expect(409, "POST", "/v1/rooms", Some(json!({"name": "standup"})))
        .await;

    let (_a, joined) = join(&ts, "standup", "a").await;
    assert_eq!(
        joined.room.sid, room["sid"],
        "joins land in the created room"
    );
    let (_b, _) = join(&ts, "standup", "b").await;
    let (_ws, refused) = try_join(&ts, &ts.token("standup", "c")).await;
    assert!(
        matches!(&refused, ServerMessage::Error(e) if e.code == ErrorCode::RoomFull && e.fatal),
        "{refused:?}"
    );
    // Rejoining with an identity already inside replaces it, so it is not refused.
    let (_b2, _) = join(&ts, "standup", "b").await;

    // A room created implicitly by a join is listed too.
    let (_z, _) = join(&ts, "implicit", "z").await;
    let list = api.expect(200, "GET", "/v1/rooms", None).await;
    let names: Vec<&str> = list["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["implicit", "standup"]);
    let got = api.expect(200, "GET", "/v1/rooms/standup", None).await;
    assert_eq!(got["numParticipants"], 2);
    api.expect(404, "GET", "/v1/rooms/nope", None).await;
}

#[tokio::test]
async fn participants_are_listed_removed_and_regranted() {
    let ts = TestServer::start().await.expect("server starts");
    let api = Api::admin(&ts);
    let (mut alice, aj) = join(&ts, "r", "alice").await;
    let (mut bob, _) = join(&ts, "r", "bob").await;
    let list = api
        .expect(200, "GET", "/v1/rooms/r/participants", None)
        .await;
    let people = list["participants"].as_array().expect("participants");
    assert_eq!(people.len(), 2);
    let alice_json = api
        .expect(200, "GET", "/v1/rooms/r/participants/alice", None)
        .await;
    assert_eq!(alice_json["sid"], aj.participant.sid.as_str());
    assert_eq!(alice_json["connected"], true);
    assert_eq!(alice_json["grants"]["canPublish"], true);
    assert!(alice_json["joinedAt"].as_u64().is_some_and(|t| t > 0));

    // Grants change mid-call: publishing is refused from then on.
    let updated = api
        .expect(
            200,
            "PATCH",
            "/v1/rooms/r/participants/alice",
            Some(json!({"grants": {"canPublish": false}})),
        )
        .await;
    assert_eq!(updated["grants"]["canPublish"], false);
    assert_eq!(updated["grants"]["canSubscribe"], true);
    support::send(
        &mut alice,
        r#"{"type":"offer","sdp":"v=0","tracks":[{"mid":"0","kind":"audio","source":"microphone"}]}"#,
    )
    .await;
    let reply = support::recv_until(&mut alice, |m| matches!(m, ServerMessage::Error(_))).await;
    assert!(
        matches!(&reply, ServerMessage::Error(e) if e.code == ErrorCode::PermissionDenied),
        "{reply:?}"
    );
    let bad = api
        .expect(
            400,
            "PATCH",
            "/v1/rooms/r/participants/alice",
            Some(json!({"grants": {"hidden": true}})),
        )
        .await;
    assert_eq!(bad["field"], "grants.hidden");
    api.expect(
        404,
        "PATCH",
        "/v1/rooms/r/participants/nobody",
        Some(json!({"grants": {}})),
    )
    .await;
    // A downlink cap is shown on the participant until lifted; nonsense caps and empty updates are refused.
    let capped = api
        .expect(
            200,
            "PATCH",
            "/v1/rooms/r/participants/alice",
            Some(json!({"maxDownlinkBps": 300_000})),
        )
        .await;
    assert_eq!(capped["maxDownlinkBps"], 300_000);
    assert_eq!(capped["grants"]["canPublish"], false, "grants untouched");
    let lifted = api
        .expect(
            200,
            "PATCH",
            "/v1/rooms/r/participants/alice",
            Some(json!({"maxDownlinkBps": 0})),
        )
        .await;
    assert!(lifted.get("maxDownlinkBps").is_none(), "{lifted}");
    for body in [
        json!({"maxDownlinkBps": 10}),
        json!({}),
        json!({"maxDownlinkBps": -1}),
    ] {
        api.expect(400, "PATCH", "/v1/rooms/r/participants/alice", Some(body))
            .await;
    }
    api.expect(
        404,
        "POST",
        "/v1/rooms/r/participants/alice/tracks/TR_nope/mute",
        Some(json!({"muted": true})),
    )
    .await;

    // Removal: the participant is told, the others see it leave.
    api.expect(204, "DELETE", "/v1/rooms/r/participants/bob", None)
        .await;
    assert_eq!(left_reason(&mut bob).await, "removed");
    let gone = support::recv_until(&mut alice, |m| {
        matches!(m, ServerMessage::ParticipantLeft { .. })
    })
    .await;
    assert!(matches!(gone, ServerMessage::ParticipantLeft { reason, .. } if reason == "removed"));
    api.expect(404, "DELETE", "/v1/rooms/r/participants/bob", None)
        .await;
    api.expect(404, "GET", "/v1/rooms/nope/participants", None)
        .await;
}

#[tokio::test]
async fn deleting_a_room_ends_the_call_for_everyone() {
    let ts = TestServer::start().await.expect("server starts");
    let api = Api::admin(&ts);
    let (mut a, _) = join(&ts, "doomed", "a").await;
    let (mut b, _) = join(&ts, "doomed", "b").await;
    api.expect(204, "DELETE", "/v1/rooms/doomed", None).await;
    assert_eq!(left_reason(&mut a).await, "roomClosed");
    assert_eq!(left_reason(&mut b).await, "roomClosed");
    assert!(wait_until_gone(&api, "doomed", Duration::from_secs(2)).await);
    api.expect(404, "DELETE", "/v1/rooms/doomed", None).await;
    // The name is free again: a join opens a new room.
    let (_c, joined) = join(&ts, "doomed", "c").await;
    assert!(joined.participants.is_empty());
}

#[tokio::test]
async fn empty_rooms_close_after_their_timeout() {
    let ts = TestServer::start_with(|s| s.room_empty_timeout = Duration::from_secs(1))
        .await
        .expect("server starts");
    let api = Api::admin(&ts);
    // Created and never joined.
    api.expect(
        201,
        "POST",
        "/v1/rooms",
        Some(json!({"name": "unused", "emptyTimeoutSecs": 1})),
    )
    .await;
    // Created implicitly, then left: still open right after, closed after the timeout.
    let (mut ws, _) = join(&ts, "brief", "x").await;
    support::send(&mut ws, r#"{"type":"leave"}"#).await;
    assert_eq!(left_reason(&mut ws).await, "left");
    api.expect(200, "GET", "/v1/rooms/brief", None).await;
    assert!(wait_until_gone(&api, "brief", Duration::from_secs(5)).await);
    assert!(wait_until_gone(&api, "unused", Duration::from_secs(5)).await);
    // A room someone joins within the timeout stays open.
    api.expect(
        201,
        "POST",
        "/v1/rooms",
        Some(json!({"name": "busy", "emptyTimeoutSecs": 1})),
    )
    .await;
    let (_stay, _) = join(&ts, "busy", "y").await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    api.expect(200, "GET", "/v1/rooms/busy", None).await;
}
