//! `/api/v1/keys`: users' public keys for end-to-end encrypted DMs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::{AuthUser, Json};
use super::{timestamp, ApiContext};
use crate::app::keys;
use crate::db::KeyRow;
use crate::error::{Error, Result};
use crate::ratelimit::Bucket;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(put_key))
        .routes(routes!(get_keys))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PutKeyRequest {
    /// 1-64 characters of `[A-Za-z0-9_.-]`, chosen by the client; never reused for another key.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub key_id: String,
    /// The ECDH P-256 public key as exported by WebCrypto (`kty` EC, `crv` P-256, `x`, `y`).
    /// `x` and `y` must be a point on the curve (422 otherwise), and a private key (`d`) is
    /// refused.
    #[schema(value_type = PublicJwkSchema)]
    pub jwk: serde_json::Value,
}

/// The schema of a public JWK; `PublicJwk::parse` checks it (and the curve point).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PublicJwkSchema {
    #[schema(pattern = r"^EC$")]
    pub kty: String,
    #[schema(pattern = r"^P-256$")]
    pub crv: String,
    /// base64url (unpadded) of the 32-byte x coordinate.
    #[schema(min_length = 43, max_length = 43, pattern = r"^[A-Za-z0-9_-]{43}$")]
    pub x: String,
    /// base64url (unpadded) of the 32-byte y coordinate.
    #[schema(min_length = 43, max_length = 43, pattern = r"^[A-Za-z0-9_-]{43}$")]
    pub y: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyDto {
    pub key_id: String,
    #[schema(value_type = Object)]
    pub jwk: serde_json::Value,
    pub created_at: String,
}

impl TryFrom<KeyRow> for KeyDto {
    type Error = Error;

    fn try_from(row: KeyRow) -> Result<Self> {
        Ok(Self {
            key_id: row.key_id,
            jwk: serde_json::from_str(&row.jwk).map_err(Error::internal)?,
            created_at: timestamp(row.created_at),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserKeysDto {
    pub username: String,
    /// The key to encrypt to now; `null` when the user has published none.
    pub current: Option<KeyDto>,
    /// The user's keys, current first, so messages to recent keys stay decryptable: at most
    /// `E2EE_KEYS_PER_USER` (default 10), older ones are deleted when a new one is published.
    pub keys: Vec<KeyDto>,
}

/// Publish your current public key (rotation: publish a new key id). A user keeps the newest
/// `E2EE_KEYS_PER_USER` keys (default 10); publishing one more deletes the oldest.
#[utoipa::path(put, path = "/keys", tag = "keys", security(("bearer" = [])), request_body = PutKeyRequest,
    responses(
        (status = 201, description = "Published; it is now your current key", body = KeyDto),
        (status = 200, description = "This key id already names this key", body = KeyDto),
        (status = 409, description = "The key id already names another key", body = ErrorBody),
        (status = 422, description = "Bad key id, or the JWK is not a P-256 public key", body = ErrorBody),
        (status = 429, description = "Too many new keys (`RATE_LIMIT_KEYS` per minute); see Retry-After", body = ErrorBody),
    ))]
async fn put_key(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Json(req): Json<PutKeyRequest>,
) -> Result<(StatusCode, axum::Json<KeyDto>)> {
    let (status, row) = match keys::prepare(&ctx.store, user.id, &req.key_id, &req.jwk).await? {
        keys::Publish::Existing(row) => (StatusCode::OK, row),
        keys::Publish::New { key_id, jwk } => {
            // Only a new key costs budget: clients re-send theirs on every start.
            ctx.rate_limit_user(Bucket::KeyPublish, user.id).await?;
            let keep = ctx.settings.caps.keys_per_user;
            let row = keys::publish(&ctx.store, user.id, key_id, jwk, keep).await?;
            (StatusCode::CREATED, row)
        }
    };
    Ok((status, axum::Json(row.try_into()?)))
}

/// A user's public keys (the newest `E2EE_KEYS_PER_USER`).
#[utoipa::path(get, path = "/keys/{username}", tag = "keys", security(("bearer" = [])),
    params(("username" = String, Path, pattern = r"^[A-Za-z0-9_.-]{3,32}$", description = "A username")),
    responses(
        (status = 200, description = "Current key and the earlier ones still kept", body = UserKeysDto),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
async fn get_keys(
    State(ctx): State<ApiContext>,
    _user: AuthUser,
    Path(username): Path<String>,
) -> Result<axum::Json<UserKeysDto>> {
    let limit = ctx.settings.caps.keys_per_user;
    let (user, rows) = keys::of_user(&ctx.store, &username, limit).await?;
    let keys = rows
        .into_iter()
        .map(KeyDto::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(axum::Json(UserKeysDto {
        username: user.username,
        current: keys.first().map(|k| KeyDto {
            key_id: k.key_id.clone(),
            jwk: k.jwk.clone(),
            created_at: k.created_at.clone(),
        }),
        keys,
    }))
}
