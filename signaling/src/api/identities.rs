//! `/v1/identities`: create, read and delete application users, issue them scoped access tokens, revoke their
//! tokens. Needs the `identityAdmin` grant. Identities and revocations live in the store.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{Admin, ApiJson};
use super::revocation;
use crate::auth::{now_unix_secs, AdminGrant, Grants, TokenRequest, MAX_IDENTITY_CHARS};
use crate::server::AppState;
use crate::store::Identity;

/// Token lifetimes the API issues.
pub const TTL_RANGE_SECS: std::ops::RangeInclusive<u64> = 60..=24 * 3600;
pub const DEFAULT_TTL_SECS: u64 = 3600;
const MAX_NAME_CHARS: usize = 256;
const MAX_METADATA_BYTES: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateIdentity {
    /// Chosen by the caller (e.g. its own user id); generated when absent.
    id: Option<String>,
    name: Option<String>,
    metadata: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityBody {
    id: String,
    name: String,
    metadata: String,
    created_at: u64,
}

impl From<Identity> for IdentityBody {
    fn from(i: Identity) -> Self {
        IdentityBody {
            id: i.id,
            name: i.name,
            metadata: i.metadata,
            created_at: i.created_at,
        }
    }
}

/// What an identity token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Join calls: publish and subscribe audio/video.
    Voip,
    /// Chat (for when chat exists).
    Chat,
    /// Data messages.
    Data,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenGrants {
    can_publish: Option<bool>,
    can_subscribe: Option<bool>,
    room_admin: Option<bool>,
    hidden: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssueToken {
    room: String,
    /// Default `["voip"]`.
    scopes: Option<Vec<Scope>>,
    /// Lifetime in seconds, 60 to 86400; default 3600.
    ttl_secs: Option<u64>,
    /// Display name in the room; default the identity's name.
    name: Option<String>,
    #[serde(default)]
    grants: TokenGrants,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedToken {
    token: String,
    identity: String,
    room: String,
    scopes: Vec<Scope>,
    grants: Grants,
    issued_at: u64,
    expires_at: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revoked {
    identity: String,
    revoked_at: u64,
    disconnected: usize,
}

pub fn check_identity_id(id: &str, field: &str) -> ApiResult<()> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_IDENTITY_CHARS {
        return Err(ApiError::invalid(
            field,
            format!("must be 1-{MAX_IDENTITY_CHARS} characters"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn check_name(name: &str, field: &str) -> ApiResult<()> {
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_NAME_CHARS} characters, no control characters"),
        ));
    }
    Ok(())
}

async fn existing(state: &AppState, id: &str) -> ApiResult<Identity> {
    state
        .store
        .identities
        .get_identity(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no identity `{}`", short(id))))
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

pub async fn create(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateIdentity>,
) -> ApiResult<Response> {
    admin.require(AdminGrant::IdentityAdmin, None)?;
    let id = match body.id {
        Some(id) => {
            check_identity_id(&id, "id")?;
            id
        }
        None => crate::ids::sid("ID"),
    };
    let name = body.name.unwrap_or_default();
    check_name(&name, "name")?;
    let metadata = body.metadata.unwrap_or_default();
    if metadata.len() > MAX_METADATA_BYTES {
        return Err(ApiError::invalid(
            "metadata",
            format!("at most {MAX_METADATA_BYTES} bytes"),
        ));
    }
    let identity = Identity {
        id,
        name,
        metadata,
        created_at: now_unix_secs(),
    };
    if !state
        .store
        .identities
        .insert_identity(identity.clone())
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "identity `{}` already exists",
            short(&identity.id)
        )));
    }
    Ok((StatusCode::CREATED, Json(IdentityBody::from(identity))).into_response())
}

pub async fn get(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<IdentityBody>> {
    admin.require(AdminGrant::IdentityAdmin, None)?;
    Ok(Json(existing(&state, &id).await?.into()))
}

pub async fn delete(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    admin.require(AdminGrant::IdentityAdmin, None)?;
    existing(&state, &id).await?;
    revocation::revoke(&state.store, &state.registry, &state.cluster, &id).await?;
    state.store.identities.delete_identity(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Revoked>> {
    admin.require(AdminGrant::IdentityAdmin, None)?;
    existing(&state, &id).await?;
    let (revoked_at, disconnected) =
        revocation::revoke(&state.store, &state.registry, &state.cluster, &id).await?;
    Ok(Json(Revoked {
        identity: id,
        revoked_at,
        disconnected,
    }))
}

/// Grants for `scopes`, then the caller's narrowing/extra grants.
fn token_grants(scopes: &[Scope], requested: &TokenGrants) -> ApiResult<Grants> {
    let voip = scopes.contains(&Scope::Voip);
    let mut grants = Grants {
        can_publish: voip,
        can_subscribe: voip,
        can_publish_data: scopes.contains(&Scope::Data),
        can_chat: scopes.contains(&Scope::Chat),
        ..Grants::default()
    };
    for (field, value, target) in [
        (
            "grants.canPublish",
            requested.can_publish,
            &mut grants.can_publish,
        ),
        (
            "grants.canSubscribe",
            requested.can_subscribe,
            &mut grants.can_subscribe,
        ),
    ] {
        match value {
            Some(true) if !voip => {
                return Err(ApiError::invalid(field, "needs the `voip` scope"));
            }
            Some(v) => *target = v,
            None => {}
        }
    }
    grants.room_admin = requested.room_admin.unwrap_or(false);
    grants.hidden = requested.hidden.unwrap_or(false);
    Ok(grants)
}

pub async fn issue_token(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<IssueToken>,
) -> ApiResult<Response> {
    admin.require(AdminGrant::IdentityAdmin, None)?;
    let identity = existing(&state, &id).await?;
    if body.room.is_empty() || body.room.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "room",
            "must be non-empty, without control characters",
        ));
    }
    let ttl = body.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    if !TTL_RANGE_SECS.contains(&ttl) {
        return Err(ApiError::invalid(
            "ttlSecs",
            format!(
                "must be between {} (1 minute) and {} (24 hours)",
                TTL_RANGE_SECS.start(),
                TTL_RANGE_SECS.end()
            ),
        ));
    }
    let mut scopes = body.scopes.unwrap_or_else(|| vec![Scope::Voip]);
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ApiError::invalid("scopes", "name at least one scope"));
    }
    let grants = token_grants(&scopes, &body.grants)?;
    let name = body.name.unwrap_or(identity.name);
    check_name(&name, "name")?;
    let revoked_at = state.store.revocations.revoked_at(&id).await?;
    let issued_at = revocation::issue_time(now_unix_secs(), revoked_at);
    let req = TokenRequest {
        api_key: Some(admin.0.api_key.clone()),
        identity: id.clone(),
        name: Some(name).filter(|n| !n.is_empty()),
        room: body.room.clone(),
        ttl: Duration::from_secs(ttl),
        grants,
        not_before: None,
    };
    let token = state
        .keys
        .issue_at(&req, issued_at)
        .map_err(|e| ApiError::invalid("room", e.to_string()))?;
    let issued = IssuedToken {
        token,
        identity: id,
        room: body.room,
        scopes,
        grants,
        issued_at,
        expires_at: issued_at + ttl,
    };
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}
