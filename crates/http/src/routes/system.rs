//! Liveness and readiness, at the top level.

use crate::{problem::ApiError, AppState};
use axum::{extract::State, http::StatusCode, routing::get, Json, Router};

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// The process is alive.
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// The node can serve: its database answers.
async fn readyz(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    match s.app.ready().await {
        Ok(()) => Ok(Json(serde_json::json!({"status": "ready", "database": s.app.store().backend()}))),
        Err(e) => {
            let mut err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", e.to_string());
            err.retry_after = Some(2);
            Err(err)
        }
    }
}

/// Prometheus metrics: OpenMetrics when the scraper asks for it (as Prometheus
/// does), otherwise the Prometheus text format 0.0.4.
/// Operators only: the internal address, the ops token or a platform admin.
async fn metrics(
    State(s): State<AppState>,
    _: crate::extract::Operator,
    headers: axum::http::HeaderMap,
) -> impl axum::response::IntoResponse {
    use medislot_app::metrics::Exposition;
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Exposition::negotiate(accept);
    (
        [(axum::http::header::CONTENT_TYPE, format.content_type()), (axum::http::header::VARY, "Accept")],
        s.app.render_metrics(format),
    )
}
