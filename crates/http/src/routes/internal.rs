//! Routes between regions (`/internal/v1`), never for clients: every request
//! must carry the shared region secret (`X-Medislot-Region-Secret`); without
//! a configured secret they do not exist.

use crate::{
    extract::{parse_json, QueryMap},
    problem::{ApiError, ApiResult},
    views::AppointmentView,
    AppState,
};
use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use medislot_app::{ForwardedBooking, RemoteChange};

pub const SECRET_HEADER: &str = "x-medislot-region-secret";

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/heartbeat", get(heartbeat))
        .route("/snapshot", get(snapshot))
        .route("/appointments", post(book))
        .route("/appointments/{id}/change", post(change))
        .layer(axum::middleware::from_fn_with_state(state, authenticate))
}

/// Constant-time comparison of the presented secret with each one we accept
/// (the current one, and the previous one during a rotation).
async fn authenticate(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if s.region_secrets.is_empty() {
        return ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no such route").into_response();
    }
    let given = req.headers().get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    let accepted = s.region_secrets.iter().fold(false, |any, secret| any | super::same_secret(given, secret));
    if !accepted {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Not a peer region",
            "wrong or missing region secret",
        )
        .into_response();
    }
    next.run(req).await
}

async fn heartbeat(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "region": s.app.config().region, "now": s.app.now().to_string() }))
}

/// What this region owns, for the peer named by `peer`: everything, or the
/// doctors changed since `since` (the peer's cursor).
async fn snapshot(State(s): State<AppState>, q: QueryMap) -> ApiResult<Json<medislot_store::RegionSnapshot>> {
    let peer = q.text("peer").ok_or_else(|| ApiError::invalid("peer", "name the asking region"))?;
    let region = s.app.config().region.clone();
    let since = q.instant("since")?;
    let snap = s
        .app
        .store()
        .region_snapshot(&region, &peer, since, s.app.now())
        .await
        .map_err(medislot_app::AppError::from)?;
    Ok(Json(snap))
}

/// An appointment as a peer region reads it back: the public view with its
/// video room, so that the patient's region shows the same link.
#[derive(serde::Serialize)]
struct PeerAppointmentView {
    #[serde(flatten)]
    view: AppointmentView,
    video_room: Option<String>,
}

impl PeerAppointmentView {
    fn new(a: &medislot_store::AppointmentRecord) -> Json<Self> {
        Json(Self { view: AppointmentView::new(a, None), video_room: a.video_room.clone() })
    }
}

/// A booking forwarded by the patient's region: 201 (or a replay), 409 taken.
async fn book(State(s): State<AppState>, body: axum::body::Bytes) -> ApiResult<Response> {
    let req: ForwardedBooking = parse_json(&body)?;
    let out = s.app.book_forwarded(req).await?;
    let status = StatusCode::from_u16(out.status_code).unwrap_or(StatusCode::CREATED);
    Ok((status, PeerAppointmentView::new(&out.appointment)).into_response())
}

/// A cancel or a reschedule asked for by the patient in their region.
async fn change(
    State(s): State<AppState>,
    crate::extract::IdPath(id): crate::extract::IdPath<medislot_domain::AppointmentId>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let req: RemoteChange = parse_json(&body)?;
    let a = s.app.change_forwarded(id, req).await?;
    Ok((StatusCode::OK, PeerAppointmentView::new(&a)).into_response())
}
