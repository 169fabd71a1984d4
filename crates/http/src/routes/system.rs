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

/// Prometheus metrics, OpenMetrics text format.
/// Operators only: the internal address, the ops token or a platform admin.
async fn metrics(State(s): State<AppState>, _: crate::extract::Operator) -> impl axum::response::IntoResponse {
    let body = s.app.render_metrics();
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
}
