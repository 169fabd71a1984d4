//! A doctor's visit types: read by anyone who may see the doctor, set (the
//! whole list at once) by the doctor's side.

use crate::{
    extract::{ApiJson, Caller, IdPath, IfMatch, SignedIn},
    problem::ApiResult,
    AppState,
};
use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    Json,
};
use medislot_domain::{visit_type::VisitTypesInput, DoctorId, VisitType};
use medislot_store::DoctorRecord;
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_visit_types, put_visit_types))
}

#[derive(Serialize, utoipa::ToSchema)]
struct VisitTypesView {
    /// In the order patients are offered them: code, name, duration_minutes,
    /// modes, bookable_by, questions, and any min_notice_minutes or
    /// horizon_days of their own.
    #[schema(value_type = Vec<Object>)]
    visit_types: Vec<VisitType>,
    /// The doctor's version (the ETag); send it in If-Match to change them safely.
    version: i64,
}

fn respond(d: &DoctorRecord) -> Response {
    let mut resp = Json(VisitTypesView { visit_types: d.visit_types.clone(), version: d.version }).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", d.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// The doctor's visit types (empty: patients book the schedule's own slots).
#[utoipa::path(get, path = "/doctors/{id}/visit-types", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = VisitTypesView), (status = 404)))]
async fn get_visit_types(
    State(s): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<DoctorId>,
) -> ApiResult<Response> {
    Ok(respond(&s.app.visit_types(caller.get(), id).await?))
}

/// Replace the doctor's visit types (the doctor and their clinic's admins).
/// Each names the modes it is offered in, among the doctor's; slots are then
/// listed per visit type. Honours If-Match.
#[utoipa::path(put, path = "/doctors/{id}/visit-types", params(("id" = uuid::Uuid, Path)),
    request_body = VisitTypesInput, security(("bearer" = [])),
    responses((status = 200, body = VisitTypesView), (status = 401), (status = 403), (status = 404), (status = 412), (status = 422)))]
async fn put_visit_types(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<DoctorId>,
    IfMatch(v): IfMatch,
    ApiJson(b): ApiJson<VisitTypesInput>,
) -> ApiResult<Response> {
    Ok(respond(&s.app.set_visit_types(caller.get(), id, &b, v).await?))
}
