//! A doctor's own video room: read and set by the doctor's side only (the
//! doctor, their clinic's admins); their online appointments then use it.

use crate::{
    extract::{ApiJson, IdPath, IfMatch, SignedIn},
    problem::ApiResult,
    AppState,
};
use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use medislot_domain::DoctorId;
use medislot_store::DoctorRecord;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_video_room, put_video_room))
}

/// The room's address as `parse_room_url` checks it, or null.
fn room_url_or_null() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let ty: SchemaType = [Type::String, Type::Null].into_iter().collect();
    ObjectBuilder::new().schema_type(ty).pattern(Some(medislot_app::ROOM_URL_PATTERN)).max_length(Some(2000)).build()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct VideoRoomBody {
    /// The room every online appointment of the doctor meets in; null for a
    /// room per appointment on the platform's video service.
    #[schema(schema_with = room_url_or_null)]
    url: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct VideoRoomView {
    /// The doctor's own room, or null: a room per appointment.
    url: Option<String>,
    /// The doctor's version (the ETag); send it in If-Match to change the room safely.
    version: i64,
}

fn respond(d: &DoctorRecord) -> Response {
    let mut resp = Json(VideoRoomView { url: d.video_room_url.clone(), version: d.version }).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", d.version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// The doctor's own video room (the doctor and their clinic's admins).
#[utoipa::path(get, path = "/doctors/{id}/video-room", params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = VideoRoomView), (status = 401), (status = 403), (status = 404)))]
async fn get_video_room(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<DoctorId>,
) -> ApiResult<Response> {
    Ok(respond(&s.app.video_room_of(caller.get(), id).await?))
}

/// Set or clear the doctor's own video room. Honours If-Match.
#[utoipa::path(put, path = "/doctors/{id}/video-room", params(("id" = uuid::Uuid, Path)), request_body = VideoRoomBody,
    security(("bearer" = [])),
    responses((status = 200, body = VideoRoomView), (status = 401), (status = 403), (status = 404), (status = 412), (status = 422)))]
async fn put_video_room(
    State(s): State<AppState>,
    caller: SignedIn,
    IdPath(id): IdPath<DoctorId>,
    IfMatch(v): IfMatch,
    ApiJson(b): ApiJson<VideoRoomBody>,
) -> ApiResult<Response> {
    let d = s.app.set_video_room(caller.get(), id, b.url.as_deref(), v).await?;
    Ok((StatusCode::OK, respond(&d)).into_response())
}
