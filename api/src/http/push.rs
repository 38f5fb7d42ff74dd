//! `/api/v1/push/*`: the VAPID public key and the browser's push subscriptions.

use axum::extract::State;
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::{AuthUser, Json};
use super::ApiContext;
use crate::config::AppEnv;
use crate::db::{now_millis, PushSubscriptionRow};
use crate::domain::ValidationError;
use crate::error::{Error, Result};
use crate::push::vapid::decode_b64url;

/// Push services' endpoints are well under this.
const MAX_ENDPOINT: usize = 2048;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(vapid_key))
        .routes(routes!(subscribe, unsubscribe))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VapidKeyDto {
    /// base64url of the uncompressed P-256 point: `applicationServerKey` for
    /// `pushManager.subscribe`.
    pub public_key: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SubscriptionKeys {
    /// base64url of the browser's P-256 public key (65 bytes).
    pub p256dh: String,
    /// base64url of the 16-byte auth secret.
    pub auth: String,
}

/// The browser's `PushSubscription.toJSON()`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SubscriptionRequest {
    /// The push service's URL: https (or http with `APP_ENV=dev`), with a host and no
    /// credentials, at most 2048 characters.
    #[schema(max_length = 2048, pattern = r"^https?://[^\s/?#@]+([/?#][^\s]*)?$")]
    pub endpoint: String,
    /// Accepted as browsers send it, not used: the push service's 404/410 says when a
    /// subscription ends.
    #[serde(default, rename = "expirationTime")]
    #[allow(dead_code)]
    pub expiration_time: Option<f64>,
    pub keys: SubscriptionKeys,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UnsubscribeRequest {
    pub endpoint: String,
}

/// The server's VAPID public key (needed before subscribing).
#[utoipa::path(get, path = "/push/vapid-key", tag = "push",
    responses((status = 200, description = "The key", body = VapidKeyDto)))]
async fn vapid_key(State(ctx): State<ApiContext>) -> axum::Json<VapidKeyDto> {
    axum::Json(VapidKeyDto {
        public_key: ctx.push.public_key().to_owned(),
    })
}

fn validate(req: SubscriptionRequest, env: AppEnv) -> Result<PushSubscriptionRow> {
    let endpoint = req.endpoint.trim().to_owned();
    let bad_endpoint = |why: &str| Error::from(ValidationError::new("endpoint", why));
    if endpoint.len() > MAX_ENDPOINT {
        return Err(bad_endpoint("is longer than 2048 characters"));
    }
    let url = reqwest::Url::parse(&endpoint).map_err(|_| bad_endpoint("is not a URL"))?;
    match (url.scheme(), env) {
        ("https", _) | ("http", AppEnv::Dev) => {}
        ("http", AppEnv::Prod) => return Err(bad_endpoint("must be https")),
        _ => return Err(bad_endpoint("must be an https URL")),
    }
    if url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad_endpoint("must name a host and carry no credentials"));
    }
    let p256dh = decode_b64url(&req.keys.p256dh)
        .filter(|k| p256::PublicKey::from_sec1_bytes(k).is_ok() && k.len() == 65)
        .ok_or_else(|| {
            ValidationError::new(
                "keys.p256dh",
                "is not a base64url P-256 public key (65 bytes)",
            )
        })?;
    let auth = decode_b64url(&req.keys.auth)
        .filter(|a| a.len() == 16)
        .ok_or_else(|| ValidationError::new("keys.auth", "is not a base64url 16-byte secret"))?;
    Ok(PushSubscriptionRow {
        endpoint,
        p256dh: URL_SAFE_NO_PAD.encode(p256dh),
        auth: URL_SAFE_NO_PAD.encode(auth),
    })
}

/// Subscribe this browser to notifications (invites, and DMs and room messages while you
/// have no tab open). Subscribing the same endpoint again replaces it.
#[utoipa::path(post, path = "/push/subscriptions", tag = "push", security(("bearer" = [])),
    request_body = SubscriptionRequest,
    responses(
        (status = 201, description = "Subscribed"),
        (status = 422, description = "A malformed subscription, or an endpoint that is not https (APP_ENV=prod)", body = ErrorBody),
    ))]
async fn subscribe(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Json(req): Json<SubscriptionRequest>,
) -> Result<StatusCode> {
    let row = validate(req, ctx.settings.app_env)?;
    ctx.store
        .save_push_subscription(user.id, &row, now_millis())
        .await?;
    tracing::info!(user_id = user.id, "push subscription saved");
    Ok(StatusCode::CREATED)
}

/// Unsubscribe this browser.
#[utoipa::path(delete, path = "/push/subscriptions", tag = "push", security(("bearer" = [])),
    request_body = UnsubscribeRequest,
    responses(
        (status = 204, description = "Unsubscribed"),
        (status = 404, description = "You have no subscription with this endpoint", body = ErrorBody),
    ))]
async fn unsubscribe(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Json(req): Json<UnsubscribeRequest>,
) -> Result<StatusCode> {
    if ctx
        .store
        .delete_push_subscription(user.id, req.endpoint.trim())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("subscription"))
    }
}
