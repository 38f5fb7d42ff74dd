//! Extractors that turn a request into checked input, answering bad input with [`Error`].

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::ApiContext;
use crate::error::Error;

/// Like `axum::Json`, but a rejection becomes our JSON error: 415 without a JSON content
/// type, 400 for malformed JSON, 422 for the wrong shape, 413 over the body limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType(
                    "expected Content-Type: application/json".to_owned(),
                ),
                JsonRejection::JsonSyntaxError(e) => Error::BadRequest {
                    code: "malformed_json",
                    message: e.body_text(),
                },
                JsonRejection::JsonDataError(e) => Error::InvalidBody(e.body_text()),
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    Error::PayloadTooLarge
                }
                other => Error::BadRequest {
                    code: "bad_request",
                    message: other.body_text(),
                },
            }),
        }
    }
}

/// The client's address: the TCP peer, or with `TRUST_PROXY=true` the address the reverse
/// proxy appended last to `X-Forwarded-For` (earlier entries are client-controlled).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<ApiContext> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        if ctx.settings.trust_proxy {
            let forwarded = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
                .next_back();
            if let Some(ip) = forwarded {
                return Ok(ClientIp(ip));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(addr)| addr.ip());
        Ok(ClientIp(peer))
    }
}

/// The signed-in user, from `Authorization: Bearer <jwt>`. The token must still count: its
/// user exists, it is of the user's current token generation (no password change since),
/// and it wasn't logged out. All three come from one query per request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: i64,
    pub username: String,
    pub created_at: i64,
    /// The token's id (`jti`), to log this session out.
    pub token_id: String,
    /// The token's expiry (`exp`, Unix seconds): how long a logout must remember it.
    pub token_expires: i64,
    /// The token's generation (`ver`), for tickets issued against it.
    pub token_version: i64,
}

fn bearer(parts: &Parts) -> Option<&str> {
    let header = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
}

impl FromRequestParts<ApiContext> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(Error::Unauthorized)?;
        AuthUser::from_token(ctx, token).await
    }
}

impl AuthUser {
    async fn from_token(ctx: &ApiContext, token: &str) -> Result<Self, Error> {
        let claims = ctx.tokens.verify(token.trim())?;
        let user_id = claims.user_id().ok_or(Error::Unauthorized)?;
        Self::checked(ctx, user_id, claims.ver, claims.jti, claims.exp).await
    }

    /// The user of a token that verified (or of a ticket issued against one), if the token
    /// still counts.
    async fn checked(
        ctx: &ApiContext,
        user_id: i64,
        version: i64,
        jti: String,
        exp: i64,
    ) -> Result<Self, Error> {
        let found = ctx
            .store
            .user_for_token(user_id, &jti)
            .await?
            .ok_or(Error::Unauthorized)?;
        if found.revoked || found.token_version != version {
            return Err(Error::Unauthorized);
        }
        Ok(AuthUser {
            id: found.user.id,
            username: found.user.username,
            created_at: found.user.created_at,
            token_id: jti,
            token_expires: exp,
            token_version: version,
        })
    }
}

/// The signed-in user of a WebSocket request: `Authorization: Bearer <jwt>` (clients that
/// can set headers), or `?ticket=` from `POST /api/v1/ws-ticket` (browsers, which can't).
/// `?token=<jwt>` is refused with a 401 that says to use a ticket: a JWT in a URL ends up
/// in proxy access logs and stays valid for days.
#[derive(Debug, Clone)]
pub struct WsUser(pub AuthUser);

impl FromRequestParts<ApiContext> for WsUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(parts) {
            return Ok(WsUser(AuthUser::from_token(ctx, token).await?));
        }
        let query = parts.uri.query().unwrap_or("");
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        let Some(ticket) = param("ticket") else {
            return Err(if param("token").is_some() {
                Error::TicketRequired
            } else {
                Error::Unauthorized
            });
        };
        let grant = ctx
            .tickets
            .redeem(ticket)
            .await?
            .ok_or(Error::Unauthorized)?;
        // Checked like the token it was issued against: a logout or password change since
        // then makes the ticket worthless too.
        let user = AuthUser::checked(ctx, grant.user_id, grant.ver, grant.jti, grant.exp).await?;
        Ok(WsUser(user))
    }
}

/// The `{id}` of a room route. Anything that isn't a room id is, like an unknown id, a 404.
#[derive(Debug, Clone, Copy)]
pub struct RoomId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for RoomId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::NotFound("room"))?;
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(RoomId)
            .ok_or(Error::NotFound("room"))
    }
}
