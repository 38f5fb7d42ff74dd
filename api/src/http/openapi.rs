//! The OpenAPI 3 document served at `/api/openapi.json`. Paths come from the handlers'
//! `#[utoipa::path]` attributes via `utoipa-axum`, so the document can't drift from the routes.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "WebCall API", description = "Self-hosted audio calls: auth, rooms, members, chat, DMs."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Registration and sign-in"),
        (name = "rooms", description = "Rooms, membership, roles, presence"),
        (name = "chat", description = "Room chat"),
        (name = "keys", description = "Public keys for end-to-end encrypted DMs"),
        (name = "dm", description = "Direct messages"),
        (name = "agent", description = "The AI agent: summaries, prompts, Telegram"),
        (name = "realtime", description = "WebSockets (protocol: docs/protocol.md)"),
        (name = "ops", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
