//! Doctors: profiles, verification, schedules, time off, free slots and search.

use crate::{
    extract::{ApiJson, Caller, IdPath, IfMatch, QueryMap},
    problem::{ApiError, ApiResult},
    views::{DoctorView, SearchHitView, SlotJson},
    AppState,
};
use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use medislot_app::{DoctorInput, DoctorPatch, SearchParams, TimeOffInput, Verification};
use medislot_domain::{schedule::ScheduleInput, DoctorId};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search, create_doctor))
        .routes(routes!(get_doctor, patch_doctor))
        .routes(routes!(verify))
        .routes(routes!(membership))
        .routes(routes!(put_schedule))
        .routes(routes!(time_off))
        .routes(routes!(slots))
}

fn doctor_response(status: StatusCode, d: &medislot_store::DoctorRecord) -> Response {
    let mut resp = (status, Json(DoctorView::from(d))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", d.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct DoctorBody {
    clinic_id: String,
    /// The doctor's account (clinic admins attaching a doctor); defaults to the calling doctor.
    user_id: Option<String>,
    name: String,
    specialties: Vec<String>,
    languages: Vec<String>,
    /// in_person | online
    modes: Vec<String>,
    licence_number: String,
    bio: Option<String>,
}

/// Create a doctor profile (the doctor themselves, or an admin of the clinic). Starts `pending`.
#[utoipa::path(post, path = "/doctors", request_body = DoctorBody, security(("bearer" = [])),
    responses((status = 201, body = DoctorView), (status = 403), (status = 409), (status = 422)))]
async fn create_doctor(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<DoctorInput>,
) -> ApiResult<Response> {
    let d = s.app.create_doctor(caller.get(), b).await?;
    Ok(doctor_response(StatusCode::CREATED, &d))
}

/// A doctor's profile and schedule (verified doctors are public).
#[utoipa::path(get, path = "/doctors/{id}", params(("id" = String, Path)), responses((status = 200, body = DoctorView), (status = 404)))]
async fn get_doctor(State(s): State<AppState>, caller: Caller, IdPath(id): IdPath<DoctorId>) -> ApiResult<Response> {
    let d = s.app.doctor(caller.get(), id).await?;
    Ok(doctor_response(StatusCode::OK, &d))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct DoctorPatchBody {
    name: Option<String>,
    specialties: Option<Vec<String>>,
    languages: Option<Vec<String>>,
    modes: Option<Vec<String>>,
    licence_number: Option<String>,
    bio: Option<String>,
}

/// Update a doctor's profile (the doctor, their clinic's admins, platform admins). Honours If-Match.
#[utoipa::path(patch, path = "/doctors/{id}", params(("id" = String, Path)), request_body = DoctorPatchBody, security(("bearer" = [])),
    responses((status = 200, body = DoctorView), (status = 403), (status = 404), (status = 412), (status = 422)))]
async fn patch_doctor(
    State(s): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<DoctorId>,
    IfMatch(v): IfMatch,
    ApiJson(b): ApiJson<DoctorPatch>,
) -> ApiResult<Response> {
    let d = s.app.update_doctor(caller.get(), id, b, v).await?;
    Ok(doctor_response(StatusCode::OK, &d))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct VerificationBody {
    /// verified | rejected | suspended
    decision: String,
    /// Required when rejecting or suspending.
    reason: Option<String>,
}

/// Platform admins approve or reject a doctor, with a reason.
#[utoipa::path(post, path = "/doctors/{id}/verification", params(("id" = String, Path)), request_body = VerificationBody, security(("bearer" = [])),
    responses((status = 200, body = DoctorView), (status = 403), (status = 404), (status = 422)))]
async fn verify(
    State(s): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<DoctorId>,
    ApiJson(b): ApiJson<Verification>,
) -> ApiResult<Response> {
    let d = s.app.verify_doctor(caller.get(), id, b).await?;
    Ok(doctor_response(StatusCode::OK, &d))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MembershipBody {
    /// accept | decline
    decision: String,
}

/// The other side answers: a clinic admin accepts or declines a doctor's request
/// to join the clinic; an invited doctor accepts or declines the clinic's invitation.
#[utoipa::path(post, path = "/doctors/{id}/membership", params(("id" = String, Path)), request_body = MembershipBody, security(("bearer" = [])),
    responses((status = 200, body = DoctorView), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
async fn membership(
    State(s): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<DoctorId>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let actor = caller.get().ok_or(medislot_app::AppError::Unauthenticated)?;
    let b: MembershipBody = crate::extract::parse_json(&body)?;
    let d = s.app.decide_membership(Some(actor), id, &b.decision).await?;
    Ok(doctor_response(StatusCode::OK, &d))
}

/// Replace the weekly availability (clinic-local wall times), extra hours, horizon and notice.
/// Existing appointments are never cancelled or overlapped by a new schedule.
#[utoipa::path(put, path = "/doctors/{id}/schedule", params(("id" = String, Path)), request_body(content = Object, description = "{weekly: [{weekday, start: \"09:00\", end, mode, slot_minutes, buffer_minutes}], extra: [{date, start, end, mode, slot_minutes}], horizon_days, min_notice_minutes}"),
    security(("bearer" = [])), responses((status = 200, body = DoctorView), (status = 403), (status = 404), (status = 422)))]
async fn put_schedule(
    State(s): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<DoctorId>,
    ApiJson(b): ApiJson<ScheduleInput>,
) -> ApiResult<Response> {
    let d = s.app.put_schedule(caller.get(), id, b).await?;
    Ok(doctor_response(StatusCode::OK, &d))
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
struct TimeOffBody {
    start: String,
    end: String,
    reason: Option<String>,
}

/// Block time (holidays, training): no slots are offered inside it.
#[utoipa::path(post, path = "/doctors/{id}/time-off", params(("id" = String, Path)), request_body = TimeOffBody, security(("bearer" = [])),
    responses((status = 201, body = TimeOffBody), (status = 403), (status = 404), (status = 422)))]
async fn time_off(
    State(s): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<DoctorId>,
    ApiJson(b): ApiJson<TimeOffInput>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let t = s.app.add_time_off(caller.get(), id, b).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            serde_json::json!({"id": t.id, "doctor_id": t.doctor_id, "start": t.interval.start.to_string(), "end": t.interval.end.to_string(), "reason": t.reason}),
        ),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
struct SlotsView {
    doctor_id: String,
    time_zone: String,
    from: String,
    to: String,
    slots: Vec<SlotJson>,
    /// The doctor's clinic's home region.
    region: String,
    /// For a doctor homed in another region: as of when this region's copy of
    /// their busy times is (availability may have changed since).
    #[serde(skip_serializing_if = "Option::is_none")]
    as_of: Option<String>,
}

/// Free slots with their ids, in `[from, to)` (default: the next 7 days; at most 92 days).
#[utoipa::path(get, path = "/doctors/{id}/slots",
    params(("id" = String, Path), ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("mode" = Option<String>, Query)),
    responses((status = 200, body = SlotsView), (status = 404), (status = 422)))]
async fn slots(
    State(s): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<DoctorId>,
    q: QueryMap,
) -> ApiResult<Json<SlotsView>> {
    let from = q.instant("from")?;
    let to = q.instant("to")?;
    let mode = q.text("mode");
    let list = s.app.slots(caller.get(), id, from, to, mode.as_deref()).await?;
    Ok(Json(SlotsView {
        doctor_id: list.doctor.id.to_string(),
        time_zone: list.clinic.time_zone.as_str().into(),
        from: list.window.start.to_string(),
        to: list.window.end.to_string(),
        slots: list.slots.iter().map(Into::into).collect(),
        as_of: s.app.replica_as_of(&list.clinic.region).await?.map(|t| t.to_string()),
        region: list.clinic.region,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct SearchView {
    items: Vec<SearchHitView>,
    page: u32,
    per_page: u32,
    total: u64,
    /// The window searched for free slots.
    available_from: String,
    available_to: String,
}

/// Search verified doctors; each hit carries its next free slot. Sorted by soonest slot, then distance.
#[utoipa::path(get, path = "/doctors",
    params(("specialty" = Option<String>, Query), ("near" = Option<String>, Query, description = "LAT,LON"), ("radius_km" = Option<f64>, Query),
           ("mode" = Option<String>, Query), ("language" = Option<String>, Query), ("available_from" = Option<String>, Query),
           ("available_to" = Option<String>, Query), ("page" = Option<u32>, Query), ("per_page" = Option<u32>, Query)),
    responses((status = 200, body = SearchView), (status = 422)))]
async fn search(State(s): State<AppState>, q: QueryMap) -> ApiResult<Json<SearchView>> {
    let (page, per_page) = q.page()?;
    let params = SearchParams {
        specialty: q.text("specialty"),
        near: q.text("near"),
        radius_km: q.parse::<f64>("radius_km", "a number of kilometres")?,
        mode: q.text("mode"),
        language: q.text("language"),
        available_from: q.instant("available_from")?,
        available_to: q.instant("available_to")?,
        page,
        per_page,
    };
    let result = s.app.search(params).await.map_err(ApiError::from)?;
    let replicas = s.app.replica_times().await?;
    Ok(Json(SearchView {
        items: result.items.iter().map(|h| SearchHitView::new(h, &replicas)).collect(),
        page: result.page,
        per_page: result.per_page,
        total: result.total as u64,
        available_from: result.window.start.to_string(),
        available_to: result.window.end.to_string(),
    }))
}
