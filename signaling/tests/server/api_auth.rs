//! Server-API authentication and request hygiene against a real server: 401/403/400/413/415/404 with JSON bodies,
//! and the OpenAPI document matching the routes the server answers.

use crate::support::Api;
use chorus_signaling::auth::{now_unix_secs, Grants, TokenRequest};
use chorus_signaling::testing::TestServer;
use serde_json::{json, Value};

fn sign(ts: &TestServer, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(ts.api_key().secret.as_bytes()),
    )
    .expect("sign")
}

fn assert_error(json: &Value, code: &str) {
    assert_eq!(json["code"], code, "{json}");
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
}

#[tokio::test]
async fn missing_invalid_and_expired_tokens_get_401() {
    let ts = TestServer::start().await.expect("server starts");
    let now = now_unix_secs();
    let key = ts.api_key().key.clone();
    let expired = sign(
        &ts,
        json!({"iss": key, "sub": "admin", "exp": now - 600, "grants": {"roomList": true}}),
    );
    let forged = {
        let mut t = ts.admin_token();
        t.push('x');
        t
    };
    for (token, code) in [
        (None, "unauthorized"),
        (Some("not-a-jwt".to_string()), "unauthorized"),
        (Some(forged), "unauthorized"),
        (Some(expired), "token_expired"),
    ] {
        let api = Api::with_token(&ts, token);
        let (status, body) = api.call("GET", "/v1/rooms", None).await;
        assert_eq!(status, 401, "{body}");
        assert_error(&body, code);
    }
    // Not a bearer scheme.
    let resp = Api::admin(&ts)
        .raw(reqwest::Method::GET, "/v1/rooms")
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn valid_tokens_without_the_grant_get_403() {
    let ts = TestServer::start().await.expect("server starts");
    let now = now_unix_secs();
    let key = ts.api_key().key.clone();
    let list_only = sign(
        &ts,
        json!({"iss": key, "sub": "ops", "exp": now + 600, "grants": {"roomList": true}}),
    );
    let api = Api::with_token(&ts, Some(list_only));
    api.expect(200, "GET", "/v1/rooms", None).await;
    let body = api
        .expect(403, "POST", "/v1/rooms", Some(json!({"name": "x"})))
        .await;
    assert_error(&body, "forbidden");
    assert!(body["message"]
        .as_str()
        .unwrap_or("")
        .contains("roomCreate"));
    let body = api
        .expect(403, "POST", "/v1/identities", Some(json!({})))
        .await;
    assert_error(&body, "forbidden");

    // A participant token with roomAdmin manages its own room only.
    let mut req = TokenRequest::new("moderator", "own");
    req.grants = Grants {
        room_admin: true,
        ..Grants::default()
    };
    let moderator = ts.keys().issue(&req).expect("token");
    let admin = Api::admin(&ts);
    for room in ["own", "other"] {
        admin
            .expect(201, "POST", "/v1/rooms", Some(json!({"name": room})))
            .await;
    }
    let api = Api::with_token(&ts, Some(moderator));
    api.expect(200, "GET", "/v1/rooms/own", None).await;
    api.expect(403, "GET", "/v1/rooms/other", None).await;
    api.expect(403, "GET", "/v1/rooms", None).await;
}

#[tokio::test]
async fn bad_bodies_get_400_naming_the_field_and_big_ones_413() {
    let ts = TestServer::start().await.expect("server starts");
    let api = Api::admin(&ts);
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": 7}), "name"),
        (json!({"name": ""}), "name"),
        (
            json!({"name": "r", "maxParticipants": -1}),
            "maxParticipants",
        ),
        (
            json!({"name": "r", "maxParticipants": 20000}),
            "maxParticipants",
        ),
        (
            json!({"name": "r", "emptyTimeoutSecs": 0}),
            "emptyTimeoutSecs",
        ),
        (json!({"name": "r", "colour": "blue"}), "colour"),
    ] {
        let resp = api
            .expect(400, "POST", "/v1/rooms", Some(body.clone()))
            .await;
        assert_error(&resp, "invalid_field");
        assert_eq!(resp["field"], field, "for {body}: {resp}");
    }
    // Not JSON at all.
    let resp = api
        .raw(reqwest::Method::POST, "/v1/rooms")
        .bearer_auth(api.token.as_deref().unwrap_or_default())
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_error(&body, "bad_request");
    // Too big.
    let huge = json!({"name": "r", "metadata": "x".repeat(200 * 1024)});
    let (status, body) = api.call("POST", "/v1/rooms", Some(huge)).await;
    assert_eq!(status, 413, "{body}");
    assert_error(&body, "payload_too_large");
    // Not JSON by content type.
    let resp = api
        .raw(reqwest::Method::POST, "/v1/rooms")
        .bearer_auth(api.token.as_deref().unwrap_or_default())
        .header("content-type", "text/plain")
        .body("name=r")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 415);
    // Authentication is checked before the body.
    let anonymous = Api::with_token(&ts, None);
    let (status, _) = anonymous.call("POST", "/v1/rooms", Some(json!({}))).await;
    assert_eq!(status, 401);
    // Unknown endpoints answer JSON 404s.
    let (status, body) = api.call("GET", "/v1/nothing/here", None).await;
    assert_eq!(status, 404);
    assert_error(&body, "not_found");
}

#[tokio::test]
async fn openapi_document_lists_every_route_the_server_answers() {
    let ts = TestServer::start().await.expect("server starts");
    let anonymous = Api::with_token(&ts, None);
    let doc = anonymous.expect(200, "GET", "/v1/openapi.json", None).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        for method in item.as_object().expect("operations").keys() {
            if path == "/v1/openapi.json" {
                continue;
            }
            let concrete = path
                .replace("{id}", "someone")
                .replace("{room}", "some-room")
                .replace("{identity}", "someone")
                .replace("{track}", "TR_x");
            let (status, body) = anonymous
                .call(&method.to_uppercase(), &concrete, None)
                .await;
            // The route exists (not 404/405) and is protected.
            assert_eq!(status, 401, "{method} {path}: {body}");
            checked += 1;
        }
    }
    assert!(checked >= 14, "only {checked} operations documented");
    // And an undocumented method on a documented path is not served.
    let (status, _) = anonymous.call("PUT", "/v1/rooms", None).await;
    assert_eq!(status, 405);
}
