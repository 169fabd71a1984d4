//! This region and its links to the others.

use crate::{problem::ApiResult, AppState};
use axum::{extract::State, Json};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(regions))
}

/// This region, its peers with their link state (up, suspect, down), how old
/// each peer's replica here is, and the bookings waiting for their home region.
/// Operators only: the internal address, the ops token or a platform admin.
#[utoipa::path(get, path = "/regions", security(("bearer" = [])),
    responses((status = 200, description = "region, peers, forwarding queue"), (status = 401)))]
async fn regions(State(s): State<AppState>, _: crate::extract::Operator) -> ApiResult<Json<medislot_app::RegionsView>> {
    Ok(Json(s.app.regions().await?))
}
