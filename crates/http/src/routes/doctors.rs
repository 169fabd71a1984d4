//! Doctors: profiles, verification, schedules, time off, free slots and search.

use crate::{
    extract::{ApiJson, Caller, IdPath, IfMatch, QueryMap, SignedIn},
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
use medislot_domain::{schedule::ScheduleInput, DoctorId, Mode};
use serde::Serialize;
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

/// Create a doctor profile (the doctor themselves, or an admin of the clinic). Starts `pending`.
#[utoipa::path(post, path = "/doctors", request_body = DoctorInput, security(("bearer" = [])),
    responses((status = 201, body = DoctorView), (status = 403), (status = 409), (status = 422)))]
async fn create_doctor(
    State(s): State<AppState>,
    caller: SignedIn,
    ApiJson(b): ApiJson<DoctorInput>,
) -> ApiResult<Response> {
    let d = s.app.create_doctor(caller.get(), b).await?;
    Ok(doctor_response(StatusCode::CREATED, &d))
}

/// A doctor's profile and schedule (verified doctors are public).
#[utoipa::path(get, path = "/doctors/{id}", params(("id" = uuid::Uuid, Path)), responses((status = 200, body = DoctorView), (status = 404)))]
async fn get_doctor(State(s): State<AppState>, caller: Caller, IdPath(id): IdPath<DoctorId>) -> ApiResult<Response> {
    let d = s.app.doctor(caller.get(), id).await?;
    Ok(doctor_response(StatusCode::OK, &d))
}

/// Update a doctor's profile (the doctor, their clinic's admins, platform admins). Honours If-Match.
#[utoipa::path(patch, path = "/doctors/{id}", params(("id" = uuid::Uuid, Path)), request_body = DoctorPatch, security(("bearer" = [])),
    responses((status = 200, body = DoctorView), (status = 403), (status = 404), (status = 409, description = "the licence number belongs to another doctor"), (status = 412), (status = 422)))]
async fn patch_doctor(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<DoctorId>,
    IfMatch(v): IfMatch,
    ApiJson(b): ApiJson<DoctorPatch>,
) -> ApiResult<Response> {
    let d = s.app.update_doctor(caller.get(), id, b, v).await?;
    Ok(doctor_response(StatusCode::OK, &d))
}

/// Platform admins approve or reject a doctor, with a reason.
#[utoipa::path(post, path = "/doctors/{id}/verification", params(("id" = uuid::Uuid, Path)), request_body = Verification, security(("bearer" = [])),
    responses((status = 200, body = DoctorView), (status = 403), (status = 404), (status = 422)))]
async fn verify(
    State(s): State<AppState>,
    caller: SignedIn,
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
    #[schema(schema_with = membership_decision)]
    decision: String,
}

fn membership_decision() -> utoipa::openapi::Object {
    medislot_domain::schemas::one_of(&medislot_app::MEMBERSHIP_DECISIONS.map(|(name, _)| name), false)
}

/// The other side answers: a clinic admin accepts or declines a doctor's request
/// to join the clinic; an invited doctor accepts or declines the clinic's invitation.
#[utoipa::path(post, path = "/doctors/{id}/membership", params(("id" = uuid::Uuid, Path)), request_body = MembershipBody, security(("bearer" = [])),
    responses((status = 200, body = DoctorView), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
async fn membership(
    State(s): State<AppState>,
    caller: SignedIn,
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
#[utoipa::path(put, path = "/doctors/{id}/schedule", params(("id" = uuid::Uuid, Path)), request_body = ScheduleInput,
    security(("bearer" = [])), responses((status = 200, body = DoctorView), (status = 403), (status = 404), (status = 422)))]
async fn put_schedule(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<DoctorId>,
    ApiJson(b): ApiJson<ScheduleInput>,
) -> ApiResult<Response> {
    let d = s.app.put_schedule(caller.get(), id, b).await?;
    Ok(doctor_response(StatusCode::OK, &d))
}

/// A block of time off, as stored.
#[derive(Serialize, utoipa::ToSchema)]
struct TimeOffView {
    id: uuid::Uuid,
    #[schema(value_type = uuid::Uuid)]
    doctor_id: DoctorId,
    start: String,
    end: String,
    reason: String,
}

/// Block time (holidays, training): no slots are offered inside it.
#[utoipa::path(post, path = "/doctors/{id}/time-off", params(("id" = uuid::Uuid, Path)), request_body = TimeOffInput, security(("bearer" = [])),
    responses((status = 201, body = TimeOffView), (status = 403), (status = 404), (status = 422)))]
async fn time_off(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<DoctorId>,
    ApiJson(b): ApiJson<TimeOffInput>,
) -> ApiResult<(StatusCode, Json<TimeOffView>)> {
    let t = s.app.add_time_off(caller.get(), id, b).await?;
    let view = TimeOffView {
        id: t.id,
        doctor_id: t.doctor_id,
        start: t.interval.start.to_string(),
        end: t.interval.end.to_string(),
        reason: t.reason,
    };
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Serialize, utoipa::ToSchema)]
struct SlotsView {
    doctor_id: String,
    time_zone: String,
    from: String,
    to: String,
    slots: Vec<SlotJson>,
    /// The clinic's rule, to know before booking: how many hours before the
    /// start patients can no longer cancel or move online (0: until it starts).
    cancel_cutoff_hours: i64,
    /// The clinic's no-show rule: after this many no-shows there within
    /// `noshow_period_days`, a patient's booking is a request it confirms (0: none).
    noshow_limit: i64,
    noshow_period_days: i64,
    /// The doctor's clinic's home region.
    region: String,
    /// For a doctor homed in another region: as of when this region's copy of
    /// their busy times is (availability may have changed since); for one of
    /// this region's, read from a read replica: as of when its data is.
    #[serde(skip_serializing_if = "Option::is_none")]
    as_of: Option<String>,
}

/// Free slots with their ids, in `[from, to)` (default: the next 7 days; at most 92 days).
#[utoipa::path(get, path = "/doctors/{id}/slots",
    params(("id" = uuid::Uuid, Path), ("from" = Option<String>, Query, pattern = r"^2[01][0-9]{2}-[01][0-9]-[0-3][0-9]([Tt][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-][0-2][0-9]:[0-5][0-9]))?$", description = "an RFC 3339 instant or a date"), ("to" = Option<String>, Query, pattern = r"^2[01][0-9]{2}-[01][0-9]-[0-3][0-9]([Tt][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-][0-2][0-9]:[0-5][0-9]))?$", description = "an RFC 3339 instant or a date"), ("mode" = Option<Mode>, Query),
        ("visit_type" = Option<String>, Query, pattern = r"^[a-z0-9][a-z0-9-]{1,39}$", description = "a visit type's code (default: the doctor's first one patients may book)")),
    responses((status = 200, body = SlotsView), (status = 403), (status = 404), (status = 422)))]
async fn slots(
    State(s): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath<DoctorId>,
    q: QueryMap,
) -> ApiResult<Json<SlotsView>> {
    let from = q.instant("from")?;
    let to = q.instant("to")?;
    let mode = q.text("mode");
    let visit_type = q.text("visit_type");
    let list = s.app.slots(caller.get(), id, from, to, mode.as_deref(), visit_type.as_deref()).await?;
    Ok(Json(SlotsView {
        doctor_id: list.doctor.id.to_string(),
        time_zone: list.clinic.time_zone.as_str().into(),
        from: list.window.start.to_string(),
        to: list.window.end.to_string(),
        slots: list.slots.iter().map(Into::into).collect(),
        cancel_cutoff_hours: list.rules.cutoff_hours(),
        noshow_limit: list.clinic.rules.noshow_limit,
        noshow_period_days: list.clinic.rules.noshow_period_days,
        as_of: s.app.replica_as_of(&list.clinic.region).await?.or(list.as_of).map(|t| t.to_string()),
        region: list.clinic.region,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum TotalRelation {
    Eq,
    Gte,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SearchView {
    items: Vec<SearchHitView>,
    page: u32,
    per_page: u32,
    /// How many doctors match: exactly, or at least (see `total_relation`).
    total: u64,
    /// `eq`: `total` is exact; `gte`: at least `total` match (a broad search
    /// at scale is counted only up to 1000).
    total_relation: TotalRelation,
    /// The window searched for free slots.
    available_from: String,
    available_to: String,
    /// Pass as `cursor` for the next page (keyset: cheap however deep, and
    /// stable while free times change); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Search verified doctors; each hit carries its next free slot. Sorted by soonest slot, then distance.
#[utoipa::path(get, path = "/doctors",
    params(("specialty" = Option<String>, Query, pattern = r"^[A-Za-z0-9][A-Za-z0-9 _-]{1,39}$"), ("near" = Option<String>, Query, description = "LAT,LON in degrees", pattern = r"^-?[0-9]{1,2}(\.[0-9]+)?,-?[0-9]{1,3}(\.[0-9]+)?$"),
           ("radius_km" = Option<f64>, Query, description = "with near; default 25", exclusive_minimum = 0, maximum = 1000),
           ("mode" = Option<Mode>, Query), ("language" = Option<String>, Query, pattern = r"^[A-Za-z0-9][A-Za-z0-9 _-]{1,39}$"),
           ("available_from" = Option<String>, Query, pattern = r"^2[01][0-9]{2}-[01][0-9]-[0-3][0-9]([Tt][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-][0-2][0-9]:[0-5][0-9]))?$"), ("available_to" = Option<String>, Query, pattern = r"^2[01][0-9]{2}-[01][0-9]-[0-3][0-9]([Tt][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-][0-2][0-9]:[0-5][0-9]))?$"), ("page" = Option<u32>, Query, minimum = 1, maximum = 10000), ("per_page" = Option<u32>, Query, minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "a previous page's next_cursor; the page after it (instead of page)", pattern = r"^[A-Za-z0-9_-]{1,2048}$")),
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
        cursor: q.text("cursor"),
    };
    let result = s.app.search(params).await.map_err(ApiError::from)?;
    let mut replicas = s.app.replica_times().await?;
    if let Some(as_of) = result.as_of {
        // Read from this region's read replica: its own doctors are as of then.
        replicas.insert(s.app.config().region.clone(), as_of);
    }
    Ok(Json(SearchView {
        items: result.items.iter().map(|h| SearchHitView::new(h, &replicas)).collect(),
        page: result.page,
        per_page: result.per_page,
        total: result.total as u64,
        total_relation: if result.total_is_lower_bound { TotalRelation::Gte } else { TotalRelation::Eq },
        available_from: result.window.start.to_string(),
        available_to: result.window.end.to_string(),
        next_cursor: result.next_cursor,
    }))
}
