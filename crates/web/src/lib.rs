//! The HTTP side of Xiansuo: the push endpoint (`/push/{source}`), the JSON API (`/api/v1`),
//! `/healthz` and the OpenAPI document, plus start-up ([`startup`]).

pub mod access;
mod api;
pub mod audit;
mod auth;
mod console;
mod error;
pub mod export;
mod merging;
mod openapi;
mod push;
pub mod reindex;
mod repr;
// Issue #11: relays and source kinds.
pub mod security;
pub mod sources;
pub mod spool;
// Issue #8: builds the leads of pushes queued in a burst.
pub mod applier;
pub mod startup;
pub mod stats;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;
use xiansuo_push::SourceRules;
use xiansuo_store::Store;

pub use error::ApiError;

/// A source as the running service knows it: its token is resolved (configured or generated).
#[derive(Clone)]
pub struct Source {
    pub name: String,
    /// The token to give the vendor now (printed at start).
    pub token: String,
    pub rules: SourceRules,
    /// Every token it accepts, the addresses it accepts pushes from, its rate limit.
    pub access: Arc<access::SourceAccess>,
    /// Issue #11: the source's decoder (and its secret, for vendors that sign).
    pub kind: sources::SourceKind,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// `spool_dir`: where pushes wait while the database is unavailable.
    pub spool: Option<Arc<spool::Spool>>,
    /// The summary-tag dictionary (`[tags.ID]`), for names and colours.
    pub tags: Arc<xiansuo_domain::TagDictionary>,
    pub sources: Arc<HashMap<String, Source>>,
    pub admin_token: Arc<str>,
    /// Reverse proxies whose X-Forwarded-For names the client (`trusted_proxies`).
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    pub max_body_bytes: usize,
    /// Ids of leads just created, for the console's live inbox (this process's pushes).
    pub new_leads: tokio::sync::broadcast::Sender<i64>,
    pub login_limiter: Arc<security::LoginLimiter>,
    /// Password checks running at once (each holds ~19 MiB while it runs).
    pub password_checks: Arc<tokio::sync::Semaphore>,
    /// Issue #8: wakes the task that builds the leads of queued pushes ([`applier`]).
    pub applier: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// After a push is stored (by the endpoint, the spool's drain or the applier): the console's
    /// live inbox and the outbox's worker hear of the leads it created (no one listening is
    /// fine), and a push queued in a burst wakes the applier.
    pub fn stored(&self, recorded: &xiansuo_store::PushRecorded) {
        for lead in recorded.leads.iter().filter(|l| l.created) {
            let _ = self.new_leads.send(lead.id);
        }
        if recorded.outcome == xiansuo_domain::PushOutcomeKind::Queued {
            self.applier.notify_one();
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/leads", get(api::list_leads))
        .route("/leads/export", get(export::api_export))
        .route("/leads/{id}", get(api::get_lead))
        .route("/leads/{id}/duplicates", get(api::lead_duplicates))
        .route("/leads/{id}/merge", post(api::merge_lead))
        .route("/leads/{id}/unmerge", post(api::unmerge_lead))
        .route("/leads/{id}/dismiss-duplicate", post(api::dismiss_duplicate))
        .route("/exports", get(export::api_exports))
        .route("/stats", get(stats::api_stats))
        .route("/pushes", get(api::list_pushes))
        .route("/audit", get(api::audit_log))
        .route("/pushes/{id}/replay", post(api::replay_push))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .route("/push/{source}", post(push::receive_push))
        .route("/healthz", get(healthz))
        .route("/api/openapi.json", get(openapi::document))
        .nest("/api/v1", api)
        .merge(console::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(security::security_headers))
        .layer(
            // Spans name the path only: query strings can carry push tokens.
            TraceLayer::new_for_http().make_span_with(
                |req: &Request| tracing::info_span!("http", method = %req.method(), path = %req.uri().path()),
            ),
        )
        .with_state(state)
}

async fn healthz(State(app): State<AppState>) -> impl IntoResponse {
    match app.store.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({ "status": "ok" }))),
        Err(e) => {
            // The cause goes to the log; callers of this unauthenticated route learn only the state.
            tracing::error!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({ "status": "unavailable" })))
        }
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!("no such route: {} {} (see /api/openapi.json)", req.method(), req.uri().path()))
}
