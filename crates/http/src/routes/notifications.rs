//! Notifications and what follows from them: the caller's in-app
//! notifications, clinics' webhooks and their delivery log, the waitlist, and
//! doctors' calendar feeds.

use crate::{
    extract::{ApiJson, IdPath, QueryMap, SignedIn},
    problem::{ApiError, ApiResult},
    views::{CalendarFeedView, DeliveryView, NotificationView, WaitlistView, WebhookView},
    AppState,
};
use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use medislot_app::{WaitlistInput, WebhookInput};
use medislot_domain::{ClinicId, DoctorId};
use std::str::FromStr;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(read_notification))
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(delete_webhook))
        .routes(routes!(webhook_deliveries))
        .routes(routes!(join_waitlist, doctor_waitlist))
        .routes(routes!(my_waitlist))
        .routes(routes!(leave_waitlist))
        .routes(routes!(new_calendar_token, revoke_calendar_token))
        .routes(routes!(calendar_feed))
}

fn id<T: FromStr>(name: &str, raw: &str) -> Result<T, ApiError> {
    raw.parse::<T>().map_err(|_| ApiError::bad_request(name, format!("{raw:?} is not a valid id (a UUID)")))
}

/// The caller's notifications, newest first (`limit`, default 50).
#[utoipa::path(get, path = "/notifications", params(("limit" = Option<u32>, Query, minimum = 1, maximum = 200)), security(("bearer" = [])),
    responses((status = 200, body = [NotificationView]), (status = 401)))]
async fn list_notifications(
    State(s): State<AppState>,
    caller: SignedIn,
    q: QueryMap,
) -> ApiResult<Json<Vec<NotificationView>>> {
    let limit = q.parse::<u32>("limit", "a whole number from 1 to 200")?.unwrap_or(50);
    let list = s.app.notifications(caller.get(), limit).await?;
    Ok(Json(list.iter().map(Into::into).collect()))
}

/// Mark one of the caller's notifications read.
#[utoipa::path(post, path = "/notifications/{id}/read", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404)))]
async fn read_notification(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<Uuid>,
) -> ApiResult<StatusCode> {
    s.app.mark_notification_read(caller.get(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Subscribe a URL to the clinic's appointment events (its admins). The answer
/// carries the signing secret, shown only here: every POST is signed with
/// `Medislot-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
#[utoipa::path(post, path = "/clinics/{id}/webhooks", params(("id" = uuid::Uuid, Path)), request_body = WebhookInput,
    security(("bearer" = [])), responses((status = 201, body = WebhookView), (status = 403), (status = 422)))]
async fn create_webhook(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(clinic): IdPath<ClinicId>,
    ApiJson(b): ApiJson<WebhookInput>,
) -> ApiResult<(StatusCode, Json<WebhookView>)> {
    let w = s.app.create_webhook(caller.get(), clinic, b).await?;
    Ok((StatusCode::CREATED, Json(WebhookView::new(&w, true))))
}

/// The clinic's webhook subscriptions (its admins).
#[utoipa::path(get, path = "/clinics/{id}/webhooks", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = [WebhookView]), (status = 403)))]
async fn list_webhooks(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(clinic): IdPath<ClinicId>,
) -> ApiResult<Json<Vec<WebhookView>>> {
    let list = s.app.webhooks(caller.get(), clinic).await?;
    Ok(Json(list.iter().map(|w| WebhookView::new(w, false)).collect()))
}

/// Switch a subscription off; its delivery log stays readable.
#[utoipa::path(delete, path = "/clinics/{id}/webhooks/{webhook_id}",
    params(("id" = uuid::Uuid, Path), ("webhook_id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403), (status = 404)))]
async fn delete_webhook(
    State(s): State<AppState>,
    caller: SignedIn,
    Path((clinic, hook)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.delete_webhook(caller.get(), id("id", &clinic)?, id("webhook_id", &hook)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The subscription's delivery log, newest first: every event with its
/// attempts, the receiver's last status and when it is tried next.
#[utoipa::path(get, path = "/clinics/{id}/webhooks/{webhook_id}/deliveries",
    params(("id" = uuid::Uuid, Path), ("webhook_id" = uuid::Uuid, Path), ("limit" = Option<u32>, Query, minimum = 1, maximum = 500)),
    security(("bearer" = [])), responses((status = 200, body = [DeliveryView]), (status = 403), (status = 404)))]
async fn webhook_deliveries(
    State(s): State<AppState>,
    caller: SignedIn,
    Path((clinic, hook)): Path<(String, String)>,
    q: QueryMap,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    let limit = q.parse::<u32>("limit", "a whole number from 1 to 500")?.unwrap_or(100);
    let log = s.app.webhook_deliveries(caller.get(), id("id", &clinic)?, id("webhook_id", &hook)?, limit).await?;
    Ok(Json(log.iter().map(Into::into).collect()))
}

/// Wait for a slot with this doctor (patients). When one comes free it is held
/// for the first waiting patient it suits, who is notified with a link to confirm.
#[utoipa::path(post, path = "/doctors/{id}/waitlist", params(("id" = uuid::Uuid, Path)), request_body = WaitlistInput,
    security(("bearer" = [])), responses((status = 201, body = WaitlistView), (status = 409), (status = 422)))]
async fn join_waitlist(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(doctor): IdPath<DoctorId>,
    ApiJson(b): ApiJson<WaitlistInput>,
) -> ApiResult<(StatusCode, Json<WaitlistView>)> {
    let e = s.app.join_waitlist(caller.get(), doctor, b).await?;
    Ok((StatusCode::CREATED, Json((&e).into())))
}

/// Who waits for this doctor, in order (the doctor and their clinic's admins).
#[utoipa::path(get, path = "/doctors/{id}/waitlist", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = [WaitlistView]), (status = 404)))]
async fn doctor_waitlist(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(doctor): IdPath<DoctorId>,
) -> ApiResult<Json<Vec<WaitlistView>>> {
    let list = s.app.doctor_waitlist(caller.get(), doctor).await?;
    Ok(Json(list.iter().map(Into::into).collect()))
}

/// The caller's waitlist entries.
#[utoipa::path(get, path = "/waitlist", security(("bearer" = [])), responses((status = 200, body = [WaitlistView])))]
async fn my_waitlist(State(s): State<AppState>, caller: SignedIn) -> ApiResult<Json<Vec<WaitlistView>>> {
    let list = s.app.my_waitlist(caller.get()).await?;
    Ok(Json(list.iter().map(Into::into).collect()))
}

/// Leave a waitlist.
#[utoipa::path(delete, path = "/waitlist/{id}", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404)))]
async fn leave_waitlist(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<Uuid>,
) -> ApiResult<StatusCode> {
    s.app.leave_waitlist(caller.get(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret for the doctor's calendar feed (the doctor, their clinic's
/// admins); the previous one stops working.
#[utoipa::path(post, path = "/doctors/{id}/calendar-token", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 201, body = CalendarFeedView), (status = 403)))]
async fn new_calendar_token(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(doctor): IdPath<DoctorId>,
) -> ApiResult<(StatusCode, Json<CalendarFeedView>)> {
    let token = s.app.new_calendar_token(caller.get(), doctor).await?;
    let path = format!("/api/v1/doctors/{doctor}/calendar.ics?token={token}");
    Ok((StatusCode::CREATED, Json(CalendarFeedView { token, path })))
}

/// Revoke the calendar feed's secret.
#[utoipa::path(delete, path = "/doctors/{id}/calendar-token", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403)))]
async fn revoke_calendar_token(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(doctor): IdPath<DoctorId>,
) -> ApiResult<StatusCode> {
    s.app.revoke_calendar_token(caller.get(), doctor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The doctor's agenda as an iCalendar feed (RFC 5545, times in UTC), for
/// whoever holds the feed's current token: 30 days back to the booking horizon,
/// each event with its patient and status (arrived, fulfilled, no-show included).
#[utoipa::path(get, path = "/doctors/{id}/calendar.ics", params(("id" = uuid::Uuid, Path), ("token" = String, Query, description = "the feed's token, as POST /doctors/{id}/calendar-token gave it", pattern = r"^[A-Za-z0-9_-]{1,256}$")),
    responses((status = 200, content_type = "text/calendar"), (status = 404)))]
async fn calendar_feed(
    State(s): State<AppState>,
    IdPath(doctor): IdPath<DoctorId>,
    q: QueryMap,
) -> ApiResult<Response> {
    let token = q.text("token").unwrap_or_default();
    let ics = s.app.calendar_feed(doctor, &token).await?;
    Ok(([(header::CONTENT_TYPE, "text/calendar; charset=utf-8"), (header::CACHE_CONTROL, "private, max-age=60")], ics)
        .into_response())
}
