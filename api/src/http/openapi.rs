//! The OpenAPI 3 document served at `/api/openapi.json`. Paths come from the handlers'
//! `#[utoipa::path]` attributes via `utoipa-axum`, so the document can't drift from the routes.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
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
        (name = "push", description = "WebPush: the VAPID key and your browsers' subscriptions"),
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

/// The statuses that extractors and middleware answer, added to every operation they apply
/// to so the handlers' `responses(...)` need only list their own. Applied to the finished
/// document (after the routes are merged in), not through `ApiDoc`'s modifiers, which run
/// before any path exists.
pub struct CommonResponses;

impl CommonResponses {
    /// A bearer-secured operation: `AuthUser` refuses a missing, malformed, expired or
    /// forged token, or one whose user no longer exists.
    const BEARER: &'static [(&'static str, &'static str)] = &[(
        "401",
        "Missing, malformed or expired bearer token, or its user no longer exists",
    )];
    /// A JSON request body: the `Json` extractor's rejections and the body limit.
    const JSON_BODY: &'static [(&'static str, &'static str)] = &[
        ("400", "Malformed JSON (`malformed_json`)"),
        (
            "413",
            "The body is larger than `MAX_BODY_BYTES` (`payload_too_large`)",
        ),
        (
            "415",
            "No `Content-Type: application/json` (`unsupported_media_type`)",
        ),
        (
            "422",
            "The body is not of the request's shape (`invalid_body`), or a field fails validation (`validation_failed`, `field` names it)",
        ),
    ];
    /// Query parameters: axum's `Query` refuses one that isn't of its type (an id that is not
    /// an `i64`, say) before the handler runs.
    const QUERY: &'static [(&'static str, &'static str)] = &[(
        "400",
        "A query parameter is not of its type (`bad_request`)",
    )];
    /// Every API route may fail on the database (logged, never echoed).
    const API: &'static [(&'static str, &'static str)] = &[(
        "500",
        "Internal error (`internal_error`; details are logged, not sent)",
    )];
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            let is_api = path.starts_with("/api/");
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add_responses(op, Self::BEARER);
                }
                let has_query = op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Query);
                // The WebSocket routes read `?token=` by hand: nothing refuses it.
                if has_query && !path.ends_with("/ws") {
                    add_responses(op, Self::QUERY);
                }
                if op.request_body.is_some() {
                    add_responses(op, Self::JSON_BODY);
                }
                if is_api {
                    add_responses(op, Self::API);
                }
            }
        }
    }
}

/// Adds each `(status, description)` answered with an [`ErrorBody`](super::error::ErrorBody),
/// unless the operation already documents that status itself.
fn add_responses(op: &mut Operation, statuses: &[(&str, &str)]) {
    for (status, description) in statuses {
        op.responses
            .responses
            .entry((*status).to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(*description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build()
                    .into()
            });
    }
}
