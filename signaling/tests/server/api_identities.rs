//! `/v1/identities` against a real server: create, read, scoped tokens, revoke (live participant disconnected,
//! new joins refused), delete, and persistence across a restart on the same data directory.

use std::time::{Duration, Instant};

use crate::support::{self, join_with, left_reason, try_join, Api, TempDir};
use chorus_protocol::{ErrorCode, ServerMessage};
use chorus_signaling::testing::TestServer;
use serde_json::json;

fn token_of(v: &serde_json::Value) -> String {
    v["token"].as_str().expect("token in answer").to_string()
}

#[tokio::test]
async fn identities_are_created_read_and_deleted() {
    let ts = TestServer::start().await.expect("server starts");
    let api = Api::admin(&ts);
    let created = api
        .expect(
            201,
            "POST",
            "/v1/identities",
            Some(json!({"id": "user-1", "name": "Ada", "metadata": "{\"plan\":\"pro\"}"})),
        )
        .await;
    assert_eq!(created["id"], "user-1");
    assert_eq!(created["name"], "Ada");
    assert!(created["createdAt"].as_u64().is_some_and(|t| t > 0));
    let got = api.expect(200, "GET", "/v1/identities/user-1", None).await;
    assert_eq!(got, created);
    api.expect(409, "POST", "/v1/identities", Some(json!({"id": "user-1"})))
        .await;
    // Generated ids, and an empty body is fine.
    let generated = api.expect(201, "POST", "/v1/identities", None).await;
    assert!(generated["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("ID_")));
    let bad = api
        .expect(400, "POST", "/v1/identities", Some(json!({"id": ""})))
        .await;
    assert_eq!(bad["field"], "id");

    api.expect(204, "DELETE", "/v1/identities/user-1", None)
        .await;
    api.expect(404, "GET", "/v1/identities/user-1", None).await;
    api.expect(404, "DELETE", "/v1/identities/user-1", None)
        .await;
    api.expect(404, "POST", "/v1/identities/user-1/revoke", None)
        .await;
}

#[tokio::test]
async fn tokens_carry_scopes_grants_and_bounded_lifetimes() {
    let ts = TestServer::start().await.expect("server starts");
    let api = Api::admin(&ts);
    api.expect(
        201,
        "POST",
        "/v1/identities",
        Some(json!({"id": "bo", "name": "Bo"})),
    )
    .await;
    let issued = api
        .expect(
            201,
            "POST",
            "/v1/identities/bo/tokens",
            Some(
                json!({"room": "lobby", "scopes": ["voip", "chat"], "ttlSecs": 120,
                        "grants": {"canPublish": false}}),
            ),
        )
        .await;
    assert_eq!(
        issued["expiresAt"].as_u64().expect("exp") - issued["issuedAt"].as_u64().expect("iat"),
        120
    );
    let verified = ts
        .keys()
        .verify(&token_of(&issued))
        .expect("a valid access token");
    assert_eq!(verified.identity, "bo");
    assert_eq!(verified.name, "Bo");
    assert_eq!(verified.room, "lobby");
    assert!(!verified.grants.can_publish && verified.grants.can_subscribe);
    assert!(verified.grants.can_chat && !verified.grants.can_publish_data);
    // It joins.
    let (_ws, joined) = join_with(&ts, &token_of(&issued)).await;
    assert_eq!(joined.participant.identity, "bo");

    // Data only: no media grants.
    let data = api
        .expect(
            201,
            "POST",
            "/v1/identities/bo/tokens",
            Some(json!({"room": "lobby", "scopes": ["data"]})),
        )
        .await;
    let g = ts.keys().verify(&token_of(&data)).expect("valid").grants;
    assert!(!g.can_publish && !g.can_subscribe && g.can_publish_data && !g.can_chat);

    for (body, field) in [
        (json!({"room": "lobby", "ttlSecs": 59}), "ttlSecs"),
        (json!({"room": "lobby", "ttlSecs": 86401}), "ttlSecs"),
        (json!({"room": "lobby", "scopes": ["video"]}), "scopes[0]"),
        (json!({"room": "lobby", "scopes": []}), "scopes"),
        (json!({"scopes": ["voip"]}), "room"),
        (
            json!({"room": "lobby", "scopes": ["data"], "grants": {"canPublish": true}}),
            "grants.canPublish",
        ),
    ] {
        let resp = api
            .expect(400, "POST", "/v1/identities/bo/tokens", Some(body.clone()))
            .await;
        assert_eq!(resp["field"], field, "for {body}: {resp}");
    }
    api.expect(
        404,
        "POST",
        "/v1/identities/nobody/tokens",
        Some(json!({"room": "lobby"})),
    )
    .await;
}

#[tokio::test]
async fn revoke_disconnects_live_participants_and_refuses_old_tokens() {
    let ts = TestServer::start().await.expect("server starts");
    let api = Api::admin(&ts);
    api.expect(201, "POST", "/v1/identities", Some(json!({"id": "eve"})))
        .await;
    let old = token_of(
        &api.expect(
            201,
            "POST",
            "/v1/identities/eve/tokens",
            Some(json!({"room": "r"})),
        )
        .await,
    );
    let (mut eve, _) = join_with(&ts, &old).await;
    let (mut other, _) = support::join(&ts, "r", "witness").await;

    let started = Instant::now();
    let revoked = api
        .expect(200, "POST", "/v1/identities/eve/revoke", None)
        .await;
    assert_eq!(revoked["disconnected"], 1, "{revoked}");
    assert_eq!(left_reason(&mut eve).await, "revoked");
    assert!(started.elapsed() < Duration::from_secs(5));
    let gone = support::recv_until(&mut other, |m| {
        matches!(m, ServerMessage::ParticipantLeft { .. })
    })
    .await;
    assert!(matches!(gone, ServerMessage::ParticipantLeft { reason, .. } if reason == "revoked"));

    // The old token no longer joins.
    let (_ws, refused) = try_join(&ts, &old).await;
    assert!(
        matches!(&refused, ServerMessage::Error(e) if e.code == ErrorCode::Unauthorized && e.fatal),
        "{refused:?}"
    );
    // A token issued after the revocation does, even within the same second.
    let fresh = token_of(
        &api.expect(
            201,
            "POST",
            "/v1/identities/eve/tokens",
            Some(json!({"room": "r"})),
        )
        .await,
    );
    join_with(&ts, &fresh).await;

    // Deleting the identity revokes too.
    let (mut again, _) = join_with(&ts, &fresh).await;
    api.expect(204, "DELETE", "/v1/identities/eve", None).await;
    assert_eq!(left_reason(&mut again).await, "revoked");
    let (_ws, refused) = try_join(&ts, &fresh).await;
    assert!(matches!(refused, ServerMessage::Error(_)), "{refused:?}");
}

#[tokio::test]
async fn identities_and_revocations_survive_a_restart() {
    let dir = TempDir::new("identities");
    let key = TestServer::random_key();
    let data_dir = dir.0.clone();
    let ts = TestServer::start_with_key(key.clone(), |s| s.data_dir = Some(data_dir.clone()))
        .await
        .expect("server starts");
    let api = Api::admin(&ts);
    for id in ["kept", "revoked"] {
        api.expect(201, "POST", "/v1/identities", Some(json!({"id": id})))
            .await;
    }
    let old = token_of(
        &api.expect(
            201,
            "POST",
            "/v1/identities/revoked/tokens",
            Some(json!({"room": "r"})),
        )
        .await,
    );
    api.expect(200, "POST", "/v1/identities/revoked/revoke", None)
        .await;
    drop(api);
    let mut ts = ts;
    ts.server.shutdown();
    ts.server.wait().await.expect("stops");
    drop(ts);

    let ts = TestServer::start_with_key(key, |s| s.data_dir = Some(data_dir.clone()))
        .await
        .expect("server restarts");
    let api = Api::admin(&ts);
    api.expect(200, "GET", "/v1/identities/kept", None).await;
    api.expect(409, "POST", "/v1/identities", Some(json!({"id": "kept"})))
        .await;
    let (_ws, refused) = try_join(&ts, &old).await;
    assert!(
        matches!(&refused, ServerMessage::Error(e) if e.code == ErrorCode::Unauthorized),
        "a revoked token stays revoked after a restart: {refused:?}"
    );
    assert!(dir.0.join("chorus.db").exists());
}
