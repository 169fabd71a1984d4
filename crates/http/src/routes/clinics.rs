//! Clinics: created by clinic admins, readable by everyone.

use crate::{
    extract::{ApiJson, IdPath, SignedIn},
    problem::ApiResult,
    views::ClinicView,
    AppState,
};
use axum::{extract::State, http::StatusCode, Json};
use medislot_app::ClinicInput;
use medislot_domain::ClinicId;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_clinic)).routes(routes!(get_clinic))
}

/// Create a clinic (clinic admins, platform admins); the creator administers it.
#[utoipa::path(post, path = "/clinics", request_body = ClinicInput, security(("bearer" = [])),
    responses((status = 201, body = ClinicView), (status = 403), (status = 422)))]
async fn create_clinic(
    State(s): State<AppState>,
    caller: SignedIn,
    ApiJson(b): ApiJson<ClinicInput>,
) -> ApiResult<(StatusCode, Json<ClinicView>)> {
    let c = s.app.create_clinic(caller.get(), b).await?;
    Ok((StatusCode::CREATED, Json((&c).into())))
}

/// A clinic (public directory data).
#[utoipa::path(get, path = "/clinics/{id}", params(("id" = uuid::Uuid, Path)), responses((status = 200, body = ClinicView), (status = 404)))]
async fn get_clinic(State(s): State<AppState>, IdPath(id): IdPath<ClinicId>) -> ApiResult<Json<ClinicView>> {
    Ok(Json((&s.app.clinic(id).await?).into()))
}
