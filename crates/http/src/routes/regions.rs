//! This region and its links to the others.

use crate::{problem::ApiResult, AppState};
use axum::{extract::State, Json};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(regions))
}

/// This region, its peers with their link state (up, suspect, down), how old
/// each peer's replica here is, and the bookings waiting for their home region.
#[utoipa::path(get, path = "/regions", responses((status = 200, description = "region, peers, forwarding queue")))]
async fn regions(State(s): State<AppState>) -> ApiResult<Json<medislot_app::RegionsView>> {
    Ok(Json(s.app.regions().await?))
}
