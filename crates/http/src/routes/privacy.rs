//! Data rights: the signed-in person downloads everything held about them
//! (JSON, and a calendar of their appointments); a clinic's admins export its
//! appointments (CSV).

use crate::{
    extract::{ApiJson, IdPath, SignedIn},
    problem::ApiResult,
    views::{AppointmentView, AuditView, NotificationView, UserView, WaitlistView},
    AppState,
};
use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    Json,
};
use medislot_app::{Actor, AppError};
use medislot_domain::ClinicId;
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export))
        .routes(routes!(calendar))
        .routes(routes!(clinic_csv))
        .routes(routes!(erase))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EraseBody {
    /// Your password, to confirm.
    #[schema(max_length = 256)]
    password: String,
}

/// Erase your account (patients): coming appointments are cancelled, past
/// ones stay for the clinic's records linked to no one, everything else about
/// you goes, and every session ends.
#[utoipa::path(post, path = "/me/erase", request_body = EraseBody, security(("bearer" = [])),
    responses((status = 204), (status = 401), (status = 403), (status = 422)))]
async fn erase(State(s): State<AppState>, caller: SignedIn, ApiJson(b): ApiJson<EraseBody>) -> ApiResult<Response> {
    s.app.erase_me(caller.get(), &b.password).await?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
struct ExportedAppointment {
    #[serde(flatten)]
    appointment: AppointmentView,
    doctor_name: String,
    clinic_name: String,
    /// Who changed it, when, from what to what.
    audit: Vec<AuditView>,
}

/// Everything medislot holds about you.
#[derive(Serialize, utoipa::ToSchema)]
struct ExportView {
    exported_at: String,
    account: UserView,
    /// Your appointments as a patient, with their visit, answers and history.
    appointments: Vec<ExportedAppointment>,
    notifications: Vec<NotificationView>,
    waitlist: Vec<WaitlistView>,
}

fn attachment(mut resp: Response, content_type: &'static str, filename: &str) -> Response {
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Everything held about you: your account, appointments (with their audit
/// trails, visits and answers), notifications and waitlist entries.
#[utoipa::path(get, path = "/me/export", security(("bearer" = [])),
    responses((status = 200, body = ExportView), (status = 401)))]
async fn export(State(s): State<AppState>, caller: SignedIn) -> ApiResult<Response> {
    Ok(export_file(&s, caller.get()).await?)
}

/// The export as a JSON file (the API and the pages).
pub(crate) async fn export_file(s: &AppState, actor: Option<&Actor>) -> Result<Response, AppError> {
    let e = s.app.export_mine(actor).await?;
    let appointments = e
        .appointments
        .iter()
        .map(|(a, audit)| {
            let dc = e.doctors.get(&a.doctor_id);
            ExportedAppointment {
                appointment: AppointmentView::new(a, dc.map(|(_, c)| &c.time_zone))
                    .with_video(e.videos.get(&a.id).cloned()),
                doctor_name: dc.map(|(d, _)| d.name.clone()).unwrap_or_default(),
                clinic_name: dc.map(|(_, c)| c.name.clone()).unwrap_or_default(),
                audit: audit.iter().map(Into::into).collect(),
            }
        })
        .collect();
    let view = ExportView {
        exported_at: s.app.now().to_string(),
        account: (&e.user).into(),
        appointments,
        notifications: e.notifications.iter().map(Into::into).collect(),
        waitlist: e.waitlist.iter().map(Into::into).collect(),
    };
    Ok(attachment(Json(view).into_response(), "application/json", "medislot-export.json"))
}

/// Your appointments as one calendar (iCalendar), to keep or import.
#[utoipa::path(get, path = "/me/calendar.ics", security(("bearer" = [])),
    responses((status = 200, content_type = "text/calendar", body = String), (status = 401)))]
async fn calendar(State(s): State<AppState>, caller: SignedIn) -> ApiResult<Response> {
    Ok(calendar_file(&s, caller.get()).await?)
}

/// Every appointment of the caller's as an iCalendar file (the API and the pages).
pub(crate) async fn calendar_file(s: &AppState, actor: Option<&Actor>) -> Result<Response, AppError> {
    let e = s.app.export_mine(actor).await?;
    let items: Vec<_> = e
        .appointments
        .iter()
        .filter_map(|(a, _)| e.doctors.get(&a.doctor_id).map(|(d, c)| (a.clone(), d, c)))
        .collect();
    let ics = medislot_app::calendar::patient_calendar(&items, &e.videos, s.app.now());
    Ok(attachment(ics.into_response(), "text/calendar; charset=utf-8", "medislot-appointments.ics"))
}

/// The clinic's appointments as CSV (its admins, platform admins): one row
/// each, times in UTC and in the clinic's zone.
#[utoipa::path(get, path = "/clinics/{id}/appointments.csv", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String), (status = 401), (status = 403), (status = 404)))]
async fn clinic_csv(State(s): State<AppState>, caller: SignedIn, IdPath(id): IdPath<ClinicId>) -> ApiResult<Response> {
    Ok(clinic_csv_file(&s, caller.get(), id).await?)
}

/// The clinic's appointments as a CSV file (the API and the pages).
pub(crate) async fn clinic_csv_file(s: &AppState, actor: Option<&Actor>, id: ClinicId) -> Result<Response, AppError> {
    let (c, rows) = s.app.clinic_appointments(actor, id).await?;
    let tz = c.time_zone.tz();
    let local = |t: jiff::Timestamp| t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M").to_string();
    let mut w = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| AppError::Internal(e.to_string());
    w.write_record([
        "appointment_id",
        "start_utc",
        "end_utc",
        "start_local",
        "time_zone",
        "doctor",
        "patient",
        "patient_email",
        "mode",
        "visit_type",
        "status",
        "reason",
        "cancel_reason",
        "created_at",
    ])
    .map_err(failed)?;
    for (a, doctor, patient) in &rows {
        w.write_record([
            a.id.to_string(),
            a.start.to_string(),
            a.end.to_string(),
            local(a.start),
            c.time_zone.as_str().to_string(),
            doctor.clone(),
            patient.name.clone(),
            patient.email.clone(),
            a.mode.as_str().to_string(),
            a.visit.as_ref().map(|v| v.name.clone()).unwrap_or_default(),
            a.status.as_str().to_string(),
            a.reason.clone(),
            a.cancel_reason.clone().unwrap_or_default(),
            a.created_at.to_string(),
        ])
        .map_err(failed)?;
    }
    let body = w.into_inner().map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(attachment(body.into_response(), "text/csv; charset=utf-8", &format!("appointments-{}.csv", c.id)))
}
