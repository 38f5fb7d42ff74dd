//! `/api/v1/push/*`: the VAPID public key and the browser's push subscriptions.

use axum::extract::{Path, State};
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
use crate::db::{now_millis, PushSession, PushSubscriptionInfo, PushSubscriptionRow};
use crate::domain::ValidationError;
use crate::error::{Error, Result};
use crate::push::vapid::decode_b64url;
use crate::push::{EgressError, EgressPolicy};
use crate::timestamps::timestamp;

/// Push services' endpoints are well under this.
const MAX_ENDPOINT: usize = 2048;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(vapid_key))
        .routes(routes!(subscribe, unsubscribe, list_subscriptions))
        .routes(routes!(remove_subscription))
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
    /// The push service's URL: https on port 443 (with `APP_ENV=dev` also http and other
    /// ports), with a host and no credentials, at most 2048 characters. A host that is a
    /// loopback, private or link-local address is refused here; a name is checked when a
    /// push is sent (it must resolve to a public address).
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

/// One of your push subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionDto {
    /// Its id, for `DELETE /push/subscriptions/{id}`.
    pub id: i64,
    /// The push service it goes through (the endpoint's origin; the full endpoint is a
    /// capability and is not listed).
    pub push_service: String,
    /// When it was saved (RFC 3339).
    pub created_at: String,
    /// Saved by the session making this request.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionsDto {
    /// Oldest first. Only subscriptions whose session still counts: those of a session that
    /// signed out, expired or was ended by a password change are gone.
    pub subscriptions: Vec<SubscriptionDto>,
}

/// The server's VAPID public key (needed before subscribing).
#[utoipa::path(get, path = "/push/vapid-key", tag = "push",
    responses((status = 200, description = "The key", body = VapidKeyDto)))]
async fn vapid_key(State(ctx): State<ApiContext>) -> axum::Json<VapidKeyDto> {
    axum::Json(VapidKeyDto {
        public_key: ctx.push.public_key().to_owned(),
    })
}

/// What this server's push worker may contact.
fn egress_policy(ctx: &ApiContext) -> EgressPolicy {
    EgressPolicy {
        allow_private: ctx.settings.push.allow_private,
        production: ctx.settings.app_env == AppEnv::Prod,
    }
}

fn validate(req: SubscriptionRequest, policy: EgressPolicy) -> Result<PushSubscriptionRow> {
    let endpoint = req.endpoint.trim().to_owned();
    let bad_endpoint = |why: &str| Error::from(ValidationError::new("endpoint", why));
    if endpoint.len() > MAX_ENDPOINT {
        return Err(bad_endpoint("is longer than 2048 characters"));
    }
    let url = reqwest::Url::parse(&endpoint).map_err(|_| bad_endpoint("is not a URL"))?;
    policy.check_url(&url).map_err(|why| match why {
        EgressError::Scheme => bad_endpoint("must be an https URL"),
        why => bad_endpoint(&why.to_string()),
    })?;
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
/// have no tab open). The subscription belongs to this session: it ends when the session
/// does (sign-out, a password change elsewhere, expiry). Subscribing the same endpoint
/// again replaces it (and moves it to this session); past 10 subscriptions the oldest is
/// dropped.
#[utoipa::path(post, path = "/push/subscriptions", tag = "push", security(("bearer" = [])),
    request_body = SubscriptionRequest,
    responses(
        (status = 201, description = "Subscribed"),
        (status = 422, description = "A malformed subscription, or an endpoint this server won't contact: not https on port 443 (APP_ENV=prod), or a loopback, private or link-local address", body = ErrorBody),
    ))]
async fn subscribe(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Json(req): Json<SubscriptionRequest>,
) -> Result<StatusCode> {
    let row = validate(req, egress_policy(&ctx))?;
    let session = PushSession {
        token_id: user.token_id.clone(),
        token_version: user.token_version,
        expires_at: user.token_expires.saturating_mul(1000),
    };
    ctx.store
        .save_push_subscription(user.id, &row, &session, now_millis())
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

/// Your push subscriptions (every browser of every live session of yours).
#[utoipa::path(get, path = "/push/subscriptions", tag = "push", security(("bearer" = [])),
    responses((status = 200, description = "Your subscriptions", body = SubscriptionsDto)))]
async fn list_subscriptions(
    State(ctx): State<ApiContext>,
    user: AuthUser,
) -> Result<axum::Json<SubscriptionsDto>> {
    let rows = ctx
        .store
        .list_push_subscriptions(user.id, now_millis())
        .await?;
    let subscriptions = rows
        .into_iter()
        .map(|row| subscription_dto(row, &user.token_id))
        .collect();
    Ok(axum::Json(SubscriptionsDto { subscriptions }))
}

fn subscription_dto(row: PushSubscriptionInfo, token_id: &str) -> SubscriptionDto {
    let push_service = reqwest::Url::parse(&row.endpoint)
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_default();
    SubscriptionDto {
        id: row.id,
        push_service,
        created_at: timestamp(row.created_at),
        current: row.token_id == token_id,
    }
}

/// Remove one of your push subscriptions (any session's, e.g. a lost device's).
#[utoipa::path(delete, path = "/push/subscriptions/{id}", tag = "push", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The subscription's id, from `GET /push/subscriptions`")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "You have no subscription with this id", body = ErrorBody),
    ))]
async fn remove_subscription(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    // Anything that isn't an id is, like an unknown id, a 404.
    let id: i64 = id.parse().map_err(|_| Error::NotFound("subscription"))?;
    if ctx
        .store
        .delete_push_subscription_by_id(user.id, id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("subscription"))
    }
}
