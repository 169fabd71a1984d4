//! Holds and appointments: book (idempotent), read (ETag), list (scoped),
//! reschedule and cancel (If-Match), and the agenda actions.

use crate::{
    extract::{parse_json, ApiJson, IdPath, IdempotencyKey, IfMatch, QueryMap, RequiredIfMatch, SignedIn},
    problem::{ApiError, ApiResult},
    views::{AppointmentView, AuditView, Page},
    AppState,
};
use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use medislot_app::{AppError, AppointmentFilter, BookRequest, Mark};
use medislot_domain::{AppointmentId, AppointmentStatus, DoctorId};
use medislot_store::AppointmentRecord;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(hold))
        .routes(routes!(book, list))
        .routes(routes!(get_appointment))
        .routes(routes!(audit))
        .routes(routes!(reschedule))
        .routes(routes!(cancel))
        .routes(routes!(arrived))
        .routes(routes!(fulfilled))
        .routes(routes!(noshow))
        .routes(routes!(accept))
        .routes(routes!(decline))
}

/// An appointment with its ETag (the version), its clinic's zone and, for
/// its parties, its video link.
async fn respond(s: &AppState, caller: &SignedIn, status: StatusCode, a: &AppointmentRecord) -> ApiResult<Response> {
    let doctors = s.app.doctors_with_clinics([a.doctor_id]).await?;
    let mut links = s.app.video_links(&caller.0, std::slice::from_ref(a), &doctors).await?;
    let zone = doctors.get(&a.doctor_id).map(|(_, c)| &c.time_zone);
    let view = AppointmentView::new(a, zone).with_video(links.remove(&a.id));
    let mut resp = (status, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", a.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED {
        if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/appointments/{}", a.id)) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
    }
    Ok(resp)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    #[schema(schema_with = medislot_domain::schemas::slot_id)]
    slot_id: String,
    /// in_person | online; defaults to the slot's mode.
    #[schema(schema_with = medislot_domain::schemas::mode_or_null)]
    mode: Option<String>,
}

/// Hold a slot for a few minutes while the patient confirms; confirm with POST /appointments.
#[utoipa::path(post, path = "/holds", request_body = HoldBody, security(("bearer" = [])),
    responses((status = 201, body = AppointmentView), (status = 409, description = "slot taken, with alternatives"), (status = 422)))]
async fn hold(State(s): State<AppState>, caller: SignedIn, ApiJson(b): ApiJson<HoldBody>) -> ApiResult<Response> {
    let a = s.app.hold(caller.get(), &b.slot_id, b.mode.as_deref()).await?;
    respond(&s, &caller, StatusCode::CREATED, &a).await
}

/// Book a slot. Send an `Idempotency-Key` header: a retry returns the first answer and never books twice.
#[utoipa::path(post, path = "/appointments", request_body = BookRequest, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = AppointmentView), (status = 202, body = AppointmentView, description = "a request the clinic accepts or declines (its no-show rule): status pending, awaiting clinic"),
               (status = 403, description = "a visit type this patient may not book online"),
               (status = 409, description = "slot taken, with up to 5 alternatives"),
               (status = 422, description = "invalid field, or Idempotency-Key reused with another body")))]
async fn book(
    State(s): State<AppState>,
    caller: SignedIn,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(b): ApiJson<BookRequest>,
) -> ApiResult<Response> {
    let out = s.app.book(caller.get(), b, key.as_deref()).await?;
    let status = StatusCode::from_u16(out.status_code).unwrap_or(StatusCode::CREATED);
    let mut resp = respond(&s, &caller, status, &out.appointment).await?;
    if out.replayed {
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// The caller's appointments: a patient's own, a doctor's agenda, a clinic's (clinic admins), all (admins).
#[utoipa::path(get, path = "/appointments", security(("bearer" = [])),
    params(("status" = Option<AppointmentStatus>, Query), ("doctor_id" = Option<uuid::Uuid>, Query), ("from" = Option<String>, Query, pattern = r"^2[01][0-9]{2}-[01][0-9]-[0-3][0-9]([Tt][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-][0-2][0-9]:[0-5][0-9]))?$", description = "an RFC 3339 instant or a date"), ("to" = Option<String>, Query, pattern = r"^2[01][0-9]{2}-[01][0-9]-[0-3][0-9]([Tt][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-][0-2][0-9]:[0-5][0-9]))?$", description = "an RFC 3339 instant or a date"),
           ("page" = Option<u32>, Query, minimum = 1, maximum = 100000), ("per_page" = Option<u32>, Query, minimum = 1, maximum = 200)),
    responses((status = 200, body = Page<AppointmentView>), (status = 401), (status = 422)))]
async fn list(State(s): State<AppState>, caller: SignedIn, q: QueryMap) -> ApiResult<Json<Page<AppointmentView>>> {
    let (page, per_page) = q.page()?;
    let f = AppointmentFilter {
        status: q.text("status"),
        doctor_id: q.parse::<DoctorId>("doctor_id", "a doctor id (UUID)")?,
        from: q.instant("from")?,
        to: q.instant("to")?,
        page,
        per_page,
    };
    let (items, total) = s.app.appointments(caller.get(), f).await?;
    let doctors = s.app.doctors_with_clinics(items.iter().map(|a| a.doctor_id).collect::<Vec<DoctorId>>()).await?;
    let mut links = s.app.video_links(&caller.0, &items, &doctors).await?;
    let view = |a: &AppointmentRecord| {
        AppointmentView::new(a, doctors.get(&a.doctor_id).map(|(_, c)| &c.time_zone)).with_video(links.remove(&a.id))
    };
    Ok(Json(Page { items: items.iter().map(view).collect(), page, per_page, total }))
}

/// One appointment, with its version as ETag.
#[utoipa::path(get, path = "/appointments/{id}", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = AppointmentView), (status = 404)))]
async fn get_appointment(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<AppointmentId>,
) -> ApiResult<Response> {
    let a = s.app.appointment(caller.get(), id).await?;
    respond(&s, &caller, StatusCode::OK, &a).await
}

/// The appointment's audit trail: who changed what, when, from which state to which.
#[utoipa::path(get, path = "/appointments/{id}/audit", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = Vec<AuditView>), (status = 404)))]
async fn audit(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<AppointmentId>,
) -> ApiResult<Json<Vec<AuditView>>> {
    let rows = s.app.audit(caller.get(), id).await?;
    Ok(Json(rows.iter().map(Into::into).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RescheduleBody {
    #[schema(schema_with = medislot_domain::schemas::slot_id)]
    slot_id: String,
}

/// Move to another slot of the same doctor, atomically. `If-Match` with the ETag: 412 when stale.
#[utoipa::path(post, path = "/appointments/{id}/reschedule", params(("id" = uuid::Uuid, Path), ("If-Match" = String, Header, description = "the ETag last read, or *", pattern = r#"^(\*|(W/)?"?[+-]?[0-9]{1,18}"?)$"#)),
    request_body = RescheduleBody, security(("bearer" = [])),
    responses((status = 200, body = AppointmentView), (status = 401), (status = 404), (status = 409), (status = 412), (status = 422), (status = 428)))]
async fn reschedule(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<AppointmentId>,
    if_match: RequiredIfMatch,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let actor = caller.get().ok_or(AppError::Unauthenticated)?;
    let v = if_match.version()?;
    let b: RescheduleBody = parse_json(&body)?;
    let a = s.app.reschedule(Some(actor), id, &b.slot_id, v).await?;
    respond(&s, &caller, StatusCode::OK, &a).await
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    #[schema(max_length = 1000)]
    reason: Option<String>,
}

/// Cancel (patients before the start; doctors and clinics any active appointment, with a reason).
#[utoipa::path(post, path = "/appointments/{id}/cancel", params(("id" = uuid::Uuid, Path), ("If-Match" = String, Header, description = "the ETag last read, or *", pattern = r#"^(\*|(W/)?"?[+-]?[0-9]{1,18}"?)$"#)),
    request_body = Option<CancelBody>, security(("bearer" = [])),
    responses((status = 200, body = AppointmentView), (status = 401), (status = 404), (status = 409), (status = 412), (status = 428)))]
async fn cancel(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<AppointmentId>,
    if_match: RequiredIfMatch,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let caller_ok = caller.get().ok_or(AppError::Unauthenticated)?;
    let v = if_match.version()?;
    let reason = optional_reason(&body)?;
    let a = s.app.cancel(Some(caller_ok), id, reason, v).await?;
    respond(&s, &caller, StatusCode::OK, &a).await
}

/// The reason of an optional `{reason}` body: an empty POST (or a JSON
/// `null`) gives none.
fn optional_reason(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(parse_json::<Option<CancelBody>>(body)?.and_then(|b| b.reason))
}

async fn mark(s: AppState, caller: SignedIn, id: AppointmentId, m: Mark, v: Option<i64>) -> ApiResult<Response> {
    let a = s.app.mark(caller.get(), id, m, v).await?;
    respond(&s, &caller, StatusCode::OK, &a).await
}

/// The patient has arrived (doctor, clinic).
#[utoipa::path(post, path = "/appointments/{id}/arrived", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = AppointmentView), (status = 403), (status = 404), (status = 409), (status = 412)))]
async fn arrived(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<AppointmentId>,
    IfMatch(v): IfMatch,
) -> ApiResult<Response> {
    mark(s, caller, id, Mark::Arrived, v).await
}

/// The appointment took place (doctor, clinic).
#[utoipa::path(post, path = "/appointments/{id}/fulfilled", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = AppointmentView), (status = 403), (status = 404), (status = 409), (status = 412)))]
async fn fulfilled(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<AppointmentId>,
    IfMatch(v): IfMatch,
) -> ApiResult<Response> {
    mark(s, caller, id, Mark::Fulfilled, v).await
}

/// The patient did not come (doctor, clinic).
#[utoipa::path(post, path = "/appointments/{id}/noshow", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = AppointmentView), (status = 403), (status = 404), (status = 409), (status = 412)))]
async fn noshow(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<AppointmentId>,
    IfMatch(v): IfMatch,
) -> ApiResult<Response> {
    mark(s, caller, id, Mark::Noshow, v).await
}

/// Accept a request (a booking the clinic's no-show rule made one): it is booked (the clinic's staff).
#[utoipa::path(post, path = "/appointments/{id}/accept", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = AppointmentView), (status = 401), (status = 403), (status = 404), (status = 409), (status = 412)))]
async fn accept(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<AppointmentId>,
    IfMatch(v): IfMatch,
) -> ApiResult<Response> {
    let a = s.app.answer_request(caller.get(), id, true, None, v).await?;
    respond(&s, &caller, StatusCode::OK, &a).await
}

/// Decline a request, with a reason for the patient: it is cancelled (the clinic's staff).
#[utoipa::path(post, path = "/appointments/{id}/decline", params(("id" = uuid::Uuid, Path)),
    request_body = Option<CancelBody>, security(("bearer" = [])),
    responses((status = 200, body = AppointmentView), (status = 401), (status = 403), (status = 404), (status = 409), (status = 412), (status = 422)))]
async fn decline(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<AppointmentId>,
    IfMatch(v): IfMatch,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let a = s.app.answer_request(caller.get(), id, false, optional_reason(&body)?, v).await?;
    respond(&s, &caller, StatusCode::OK, &a).await
}
