//! `/api/v1/auth/*`: register, login, me, logout, password change, account deletion.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::{AuthUser, ClientIp, Json};
use super::{timestamp, ApiContext};
use crate::app::accounts::{self, Session};
use crate::db::UserRow;
use crate::error::Result;
use crate::ratelimit::Bucket;
use signaling::sessions::Ending;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(me, delete_me))
        .routes(routes!(logout))
        .routes(routes!(change_password))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3-32 characters of `[A-Za-z0-9_.-]`, unique regardless of case.
    #[schema(min_length = 3, max_length = 32, pattern = r"^[A-Za-z0-9_.-]{3,32}$")]
    pub username: String,
    /// At least 8 characters, at most 72 bytes (bcrypt reads no further), no NUL, not a
    /// well-known password and not the username.
    #[schema(min_length = 8, max_length = 72, pattern = r"^[^\u0000]{8,72}$")]
    pub password: String,
    /// The server's registration secret (printed at first start, or `REGISTRATION_SECRET`).
    pub registration_secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// The same rules as at registration.
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteAccountRequest {
    /// The account's password, once more.
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: i64,
    pub username: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<UserRow> for UserDto {
    fn from(user: UserRow) -> Self {
        Self {
            id: user.id,
            username: user.username,
            created_at: timestamp(user.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDto {
    /// A JWT to send as `Authorization: Bearer <token>`.
    pub token: String,
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    pub user: UserDto,
}

fn session_dto(ctx: &ApiContext, session: Session) -> SessionDto {
    SessionDto {
        token: session.token,
        token_type: "Bearer",
        expires_in: ctx.settings.jwt_ttl.as_secs(),
        user: session.user.into(),
    }
}

/// Create an account (requires the registration secret).
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered and signed in", body = SessionDto),
        (status = 403, description = "Wrong registration secret", body = ErrorBody),
        (status = 409, description = "Username taken", body = ErrorBody),
        (status = 422, description = "Invalid username or weak password; `field` names which", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
        (status = 503, description = "The shared rate limiter (Redis) is down; see Retry-After", body = ErrorBody),
    ))]
async fn register(
    State(ctx): State<ApiContext>,
    ClientIp(ip): ClientIp,
    Json(req): Json<RegisterRequest>,
) -> Result<(StatusCode, axum::Json<SessionDto>)> {
    ctx.rate_limit(Bucket::Register, ip).await?;
    let session = accounts::register(
        &ctx.store,
        &ctx.passwords,
        &ctx.tokens,
        &ctx.registration_secret,
        &req.username,
        &req.password,
        &req.registration_secret,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(session_dto(&ctx, session))))
}

/// Sign in.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = SessionDto),
        (status = 401, description = "Wrong username or password (same answer for both; a password over 72 bytes is always wrong)", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address or on this account; see Retry-After", body = ErrorBody),
        (status = 503, description = "The shared rate limiter (Redis) is down; see Retry-After", body = ErrorBody),
    ))]
async fn login(
    State(ctx): State<ApiContext>,
    ClientIp(ip): ClientIp,
    Json(req): Json<LoginRequest>,
) -> Result<axum::Json<SessionDto>> {
    ctx.rate_limit(Bucket::Login, ip).await?;
    // Per account too, so guesses spread over many addresses still meet a limit.
    ctx.rate_limit_account(&req.username).await?;
    let session = accounts::login(
        &ctx.store,
        &ctx.passwords,
        &ctx.tokens,
        &req.username,
        &req.password,
    )
    .await?;
    Ok(axum::Json(session_dto(&ctx, session)))
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The user the token belongs to", body = UserDto),
        (status = 401, description = "Missing, expired or forged token", body = ErrorBody),
    ))]
async fn me(user: AuthUser) -> axum::Json<UserDto> {
    axum::Json(UserDto {
        id: user.id,
        username: user.username,
        created_at: timestamp(user.created_at),
    })
}

/// Delete the signed-in account (the password once more). Rooms it owned with other members
/// pass to the longest-standing moderator, else member; rooms it owned alone are deleted.
/// Every token of the user stops working at once.
#[utoipa::path(delete, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or bad token, or wrong password", body = ErrorBody),
        (status = 422, description = "Malformed body", body = ErrorBody),
        (status = 429, description = "Too many password attempts on this account; see Retry-After", body = ErrorBody),
        (status = 503, description = "The shared rate limiter (Redis) is down; see Retry-After", body = ErrorBody),
    ))]
async fn delete_me(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Json(req): Json<DeleteAccountRequest>,
) -> Result<StatusCode> {
    ctx.rate_limit_account(&user.username).await?;
    accounts::delete_account(&ctx.store, &ctx.passwords, &ctx.hub, user.id, &req.password).await?;
    close_sockets(&ctx, user.id, Ending::All).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Closes the sockets of ended sessions on every node (close code 4005): a revoked token
/// must not keep a call or a DM feed running.
async fn close_sockets(ctx: &ApiContext, user_id: i64, ending: Ending) {
    if let Err(err) = ctx.hub.end_sessions(user_id, ending).await {
        tracing::warn!(user_id, error = %err, "other nodes were not told to close the ended sessions' sockets");
    }
}

/// Sign out: the presented token stops working (other sessions go on).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Missing, expired, forged or already signed-out token", body = ErrorBody),
    ))]
async fn logout(State(ctx): State<ApiContext>, user: AuthUser) -> Result<StatusCode> {
    accounts::logout(&ctx.store, user.id, &user.token_id, user.token_expires).await?;
    close_sockets(&ctx, user.id, Ending::One(user.token_id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Change the password. Every other session of the user ends; the answer is a new session.
#[utoipa::path(post, path = "/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; use the new token from now on", body = SessionDto),
        (status = 401, description = "Missing or bad token, or wrong current password", body = ErrorBody),
        (status = 422, description = "Weak new password (`field`: `new_password`) or malformed body", body = ErrorBody),
        (status = 429, description = "Too many password attempts on this account; see Retry-After", body = ErrorBody),
        (status = 503, description = "The shared rate limiter (Redis) is down; see Retry-After", body = ErrorBody),
    ))]
async fn change_password(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Json(req): Json<ChangePasswordRequest>,
) -> Result<axum::Json<SessionDto>> {
    // The current password is a guess like a login's: it draws from the account's budget.
    ctx.rate_limit_account(&user.username).await?;
    let row = UserRow {
        id: user.id,
        username: user.username,
        created_at: user.created_at,
    };
    let user_id = user.id;
    let session = accounts::change_password(
        &ctx.store,
        &ctx.passwords,
        &ctx.tokens,
        row,
        &user.token_id,
        &req.current_password,
        &req.new_password,
    )
    .await?;
    // The caller's own sockets go on (its tab switches to the new token); every other
    // session's close.
    close_sockets(&ctx, user_id, Ending::AllBut(user.token_id)).await;
    Ok(axum::Json(session_dto(&ctx, session)))
}
