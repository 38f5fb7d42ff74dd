//! `/api/v1/rooms/{id}/transcript`: the room's stored transcript.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::{AuthUser, RoomId};
use super::{timestamp, ApiContext};
use crate::app::transcription;
use crate::db::SegmentRow;
use crate::error::Result;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(get_transcript))
}

/// One transcribed utterance.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentDto {
    pub id: i64,
    /// The speaker.
    pub user_id: i64,
    pub username: String,
    /// The call participant (connection) that spoke.
    pub participant_id: i64,
    /// Unix milliseconds of the utterance's start and end.
    pub start_ms: i64,
    pub end_ms: i64,
    /// RFC 3339 of `start_ms`.
    pub started_at: String,
    /// Plain text; never render it as HTML.
    pub text: String,
}

impl From<SegmentRow> for SegmentDto {
    fn from(r: SegmentRow) -> Self {
        Self {
            id: r.id,
            user_id: r.user_id,
            username: r.username,
            participant_id: r.participant_id,
            start_ms: r.start_ms,
            end_ms: r.end_ms,
            started_at: timestamp(r.start_ms),
            text: r.text,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptDto {
    pub room_id: i64,
    /// In time order.
    pub segments: Vec<SegmentDto>,
}

/// The room's transcript (members only), in time order.
#[utoipa::path(get, path = "/rooms/{id}/transcript", tag = "rooms", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "Room id")),
    responses(
        (status = 200, description = "The stored segments", body = TranscriptDto),
        (status = 404, description = "No such room, or the caller is not a member", body = ErrorBody),
    ))]
async fn get_transcript(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    RoomId(id): RoomId,
) -> Result<axum::Json<TranscriptDto>> {
    let rows = transcription::transcript(&ctx.store, user.id, id).await?;
    Ok(axum::Json(TranscriptDto {
        room_id: id,
        segments: rows.into_iter().map(SegmentDto::from).collect(),
    }))
}
