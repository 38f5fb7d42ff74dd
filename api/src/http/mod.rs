//! The HTTP application: routes, shared state and the middleware stack.

mod ai;
mod auth;
mod chat;
mod dm;
pub mod error;
pub mod extract;
mod invites;
mod keys;
pub mod middleware;
mod openapi;
mod ops;
mod push;
mod rooms;
mod spa;
mod summaries;
mod telegram;
mod transcripts;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::routing::get;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::config::AppEnv;
use middleware::X_REQUEST_ID;

pub use crate::context::ApiContext;
pub use crate::timestamps::timestamp;

/// A request that takes longer is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A summary waits for the transcriber and a model (with retry and fallback), so it gets
/// longer; its work runs in a task of its own and finishes even if the answer times out.
const SUMMARY_TIMEOUT: Duration = Duration::from_secs(600);

fn timeout(limit: Duration) -> TimeoutLayer {
    TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, limit)
}

/// The OpenAPI document and the API routes it describes, from the same declarations.
pub fn api_routes() -> (Router<ApiContext>, utoipa::openapi::OpenApi) {
    let routes = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest(
            "/api/v1",
            OpenApiRouter::new()
                .merge(auth::router())
                .merge(rooms::router())
                .merge(transcripts::router())
                .merge(ai::router())
                .merge(telegram::router())
                .merge(chat::router())
                .merge(keys::router())
                .merge(dm::router())
                .merge(invites::router())
                .merge(push::router())
                .merge(ws::router())
                .layer(timeout(REQUEST_TIMEOUT))
                // Added after the layer above, so only the long limit applies.
                .merge(summaries::router().layer(timeout(SUMMARY_TIMEOUT))),
        )
        .merge(ops::router().layer(timeout(REQUEST_TIMEOUT)));
    let (router, mut openapi) = routes.split_for_parts();
    utoipa::Modify::modify(&openapi::CommonResponses, &mut openapi);
    (router, openapi)
}

/// The whole application: API, OpenAPI document, static files and middleware.
pub fn app(ctx: ApiContext) -> Router {
    let settings = ctx.settings.clone();
    let (api, openapi) = api_routes();
    let openapi = Arc::new(openapi);
    let static_files = ServeDir::new(&settings.static_dir)
        .append_index_html_on_directories(true)
        .fallback(spa::entry_service(settings.static_dir.join("index.html")));

    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request| {
            let request_id = req.headers().get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            let path = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
            tracing::info_span!("request", request_id, method = %req.method(), path, uri = %req.uri().path())
        })
        .on_request(())
        .on_response(|res: &axum::http::Response<_>, latency: Duration, _span: &Span| {
            tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_secs_f64() * 1000.0, "request finished");
        })
        .on_failure(());

    let hsts = (settings.app_env == AppEnv::Prod).then(|| {
        SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        )
    });
    let cors = (!settings.cors_origins.is_empty()).then(|| {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(settings.cors_origins.clone()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                X_REQUEST_ID.clone(),
            ])
            .expose_headers([X_REQUEST_ID.clone(), header::RETRY_AFTER, header::LINK])
            .max_age(Duration::from_secs(3600))
    });

    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(
            X_REQUEST_ID.clone(),
            MakeRequestUuid,
        ))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .layer(trace)
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(middleware::CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("microphone=(self), camera=(), geolocation=()"),
        ))
        .option_layer(hsts)
        .option_layer(cors)
        .layer(axum::middleware::from_fn(middleware::record_metrics))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(axum::middleware::from_fn(middleware::server_timing))
        // Request timeouts are per route group (`api_routes`): summaries get a longer one.
        .layer(DefaultBodyLimit::max(settings.max_body_bytes));

    Router::new()
        .merge(api)
        .route(
            "/api/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        .fallback_service(
            ServiceBuilder::new()
                .layer(timeout(REQUEST_TIMEOUT))
                .service(static_files),
        )
        .layer(layers)
        // Outermost, so the id check happens before one is generated and logged.
        .layer(axum::middleware::map_request(
            middleware::drop_insane_request_id,
        ))
        .with_state(ctx)
}
