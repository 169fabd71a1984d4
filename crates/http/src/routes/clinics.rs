//! Clinics: created by clinic admins, readable by everyone.

use crate::{
    extract::{ApiJson, IdPath, SignedIn},
    problem::ApiResult,
    views::ClinicView,
    AppState,
};
use axum::{extract::State, http::StatusCode, Json};
use medislot_app::{ClinicInput, ClinicRulesInput};
use medislot_domain::ClinicId;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_clinic)).routes(routes!(get_clinic)).routes(routes!(put_rules))
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

/// Set the clinic's rules for its patients (its admins, platform admins):
/// they hold for every change from now on, appointments already booked included.
#[utoipa::path(put, path = "/clinics/{id}/rules", params(("id" = uuid::Uuid, Path)), request_body = ClinicRulesInput,
    security(("bearer" = [])), responses((status = 200, body = ClinicView), (status = 401), (status = 403), (status = 404), (status = 422)))]
async fn put_rules(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<ClinicId>,
    ApiJson(b): ApiJson<ClinicRulesInput>,
) -> ApiResult<Json<ClinicView>> {
    Ok(Json((&s.app.set_clinic_rules(caller.get(), id, b).await?).into()))
}
