//! SMART Scheduling Links: `GET /fhir/$bulk-publish` (the manifest) and its
//! Location, Schedule and Slot NDJSON files, with `_since` and conditional
//! requests. The full files are published artefacts: a background task
//! ([`super::publisher::Publisher`]) writes them to disk when the directory or busy times
//! changed, at most once a minute by default, and every reader is served the
//! last published file (with `ETag` and `Cache-Control`): readers never wait
//! for a generation and cannot make the node recompute the whole directory.
//! Slots come in one file per state, each of at most 500 doctors, and
//! `Slot.ndjson` streams them all. `_since` answers are small and computed
//! per request.

use super::{invalid, resources as r, Base, FhirError, FhirResult, Params};
use crate::AppState;
use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use jiff::{SignedDuration, Timestamp};
use medislot_domain::{DoctorId, Interval};
use medislot_store::{ClinicRecord, DoctorRecord};
use serde_json::{json, Value};
use std::{collections::HashSet, sync::Arc};

const DEEP_LINK: &str = "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-deep-link";
const NDJSON: &str = "application/fhir+ndjson";
/// How far ahead the Slot file reaches.
const SLOT_DAYS: i64 = 60;
pub(super) const FILES: [&str; 3] = ["Location", "Schedule", "Slot"];

/// What a publication's answers depend on: the data's last change and the hour
/// (slots that start drop out as time passes; a weak validator allows that).
pub(super) struct Version {
    pub(super) last_change: Timestamp,
    pub(super) etag: String,
}

/// The state of the data every answer is made from, read once.
pub(super) struct DataState {
    /// The data's last change, to the second (the precision the store keeps).
    pub(super) changed: Timestamp,
    hour: Timestamp,
}

impl DataState {
    pub(super) async fn now(s: &AppState) -> FhirResult<Self> {
        let now = s.app.now();
        let hour = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(3600)).unwrap_or(now);
        let changed = s.app.last_change().await?.unwrap_or(Timestamp::UNIX_EPOCH);
        Ok(Self { changed, hour })
    }

    /// The version of one answer (the manifest or a file, with its `_since`).
    pub(super) fn version(&self, what: &str, since: Option<Timestamp>) -> Version {
        let since = since.map_or(0, |t| t.as_second());
        Version {
            last_change: self.changed.max(self.hour),
            etag: format!("W/\"{}-{}-{what}-{since}\"", self.changed.as_second(), self.hour.as_second()),
        }
    }
}

fn http_date(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// 304 when the client's copy is current (If-None-Match first, then If-Modified-Since).
fn not_modified(headers: &HeaderMap, v: &Version) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|h| h.to_str().ok()) {
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_string();
        return inm.split(',').any(|t| t.trim() == "*" || weak(t) == weak(&v.etag));
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|h| h.to_str().ok())
        .and_then(|d| jiff::fmt::strtime::parse("%a, %d %b %Y %H:%M:%S GMT", d).ok())
        .and_then(|t| t.to_datetime().ok())
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .is_some_and(|since| since.timestamp() >= v.last_change)
}

fn with_validators(mut resp: Response, v: &Version) -> Response {
    if let Ok(e) = HeaderValue::from_str(&v.etag) {
        resp.headers_mut().insert(header::ETAG, e);
    }
    if let Ok(d) = HeaderValue::from_str(&http_date(v.last_change)) {
        resp.headers_mut().insert(header::LAST_MODIFIED, d);
    }
    resp
}

/// `_since`: an instant or a date (UTC midnight).
fn since(p: &Params) -> FhirResult<Option<Timestamp>> {
    p.only(&["_since"])?;
    p.one("_since")
        .map(|v| {
            v.parse::<Timestamp>()
                .ok()
                .or_else(|| {
                    v.parse::<jiff::civil::Date>().ok()?.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp())
                })
                .ok_or_else(|| invalid("_since", "must be an instant (2026-11-25T10:00:00Z) or a date"))
        })
        .transpose()
}

fn since_query(since: Option<Timestamp>) -> String {
    since.map(|t| format!("?_since={t}")).unwrap_or_default()
}

pub async fn manifest(State(s): State<AppState>, base: Base, p: Params, headers: HeaderMap) -> FhirResult<Response> {
    let since = since(&p)?;
    let v = DataState::now(&s).await?.version("manifest", since);
    if not_modified(&headers, &v) {
        return Ok(with_validators(StatusCode::NOT_MODIFIED.into_response(), &v));
    }
    let q = since_query(since);
    let body = json!({
        "transactionTime": Timestamp::from_second(s.app.now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH).to_string(),
        "request": format!("{}/$bulk-publish{q}", base.0),
        "output": outputs(&s, &base.0, since),
        "error": [],
    });
    let resp =
        ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=60")], body.to_string())
            .into_response();
    Ok(with_validators(resp, &v))
}

/// The manifest's outputs: each published file with the states it covers
/// (the Slot files one per state, in bounded parts); with `_since`, one
/// small file per kind.
fn outputs(s: &AppState, base: &str, since: Option<Timestamp>) -> Vec<Value> {
    let q = since_query(since);
    let mut out = Vec::new();
    for (kind, file) in FILES.iter().zip(&s.published.files) {
        let published = file.borrow().clone();
        let parts = published.map(|a| a.parts).unwrap_or_default();
        let all: std::collections::BTreeSet<&String> = parts.iter().flat_map(|p| &p.states).collect();
        if since.is_some() || parts.is_empty() || *kind != "Slot" {
            let mut output = json!({"type": kind, "url": format!("{base}/$bulk-publish/{kind}.ndjson{q}")});
            if !all.is_empty() {
                output["extension"] = json!({"state": all});
            }
            out.push(output);
            continue;
        }
        for p in &parts {
            let mut output = json!({"type": kind, "url": format!("{base}/$bulk-publish/{}.ndjson", p.name)});
            if !p.states.is_empty() {
                output["extension"] = json!({"state": p.states});
            }
            out.push(output);
        }
    }
    out
}

/// The directory entries a file covers: all of it, or what changed since `_since`.
pub(super) async fn entries(s: &AppState, since: Option<Timestamp>) -> FhirResult<Vec<(DoctorRecord, ClinicRecord)>> {
    let mut dir = s.app.directory().await?;
    if let Some(t) = since {
        let changed: HashSet<DoctorId> = s.app.doctors_changed_since(t).await?.into_iter().collect();
        dir.retain(|(d, c)| changed.contains(&d.id) || c.created_at >= t);
    }
    Ok(dir)
}

fn line(out: &mut Vec<u8>, mut v: Value) {
    super::prune(&mut v);
    // serde_json writes no newlines inside a value: one resource per line.
    let _ = serde_json::to_writer(&mut *out, &v);
    out.push(b'\n');
}

pub async fn file(
    State(s): State<AppState>,
    Path(name): Path<String>,
    p: Params,
    headers: HeaderMap,
) -> FhirResult<Response> {
    let stem = name.strip_suffix(".ndjson").ok_or_else(no_such_file)?;
    let since = since(&p)?;
    if since.is_none() {
        // The published file carries its own validators: no need to read the data's.
        return published(&s, stem, &headers).await;
    }
    let kind = FILES.iter().copied().find(|k| *k == stem).ok_or_else(no_such_file)?;
    let v = DataState::now(&s).await?.version(kind, since);
    if not_modified(&headers, &v) {
        return Ok(with_validators(StatusCode::NOT_MODIFIED.into_response(), &v));
    }
    let dir = Arc::new(entries(&s, since).await?);
    let body = Body::from_stream(content(&s, kind, dir));
    let resp = ([(header::CONTENT_TYPE, NDJSON), (header::CACHE_CONTROL, "public, max-age=60")], body).into_response();
    Ok(with_validators(resp, &v))
}

/// One file's lines for these directory entries, in chunks: the Location and
/// Schedule files at once (they are small), the Slot file doctor by doctor.
pub(super) fn content(
    s: &AppState,
    kind: &str,
    dir: Arc<Vec<(DoctorRecord, ClinicRecord)>>,
) -> futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>> {
    use futures::StreamExt;
    let mut out = vec![];
    match kind {
        "Location" => {
            let mut seen = HashSet::new();
            for (_, c) in dir.iter().filter(|(_, c)| seen.insert(c.id)) {
                line(&mut out, r::location(c));
            }
        }
        "Schedule" => {
            let now = s.app.now();
            for (d, c) in dir.iter() {
                for m in &d.modes {
                    line(&mut out, r::schedule(d, c, *m, now));
                }
            }
        }
        _ => return slot_stream(s.clone(), dir).boxed(),
    }
    futures::stream::once(async move { Ok(Bytes::from(out)) }).boxed()
}

/// How long a reader waits for a node's first publication before a 503.
const FIRST_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn no_such_file() -> FhirError {
    FhirError(crate::problem::ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such file: Location.ndjson, Schedule.ndjson, Slot.ndjson or a Slot file the manifest lists",
    ))
}

/// A published file (`Slot` alone: every Slot file, one after the other).
async fn published(s: &AppState, stem: &str, headers: &HeaderMap) -> FhirResult<Response> {
    let kind = if stem.starts_with("Slot-") { "Slot" } else { stem };
    let index = FILES.iter().position(|f| *f == kind).ok_or_else(no_such_file)?;
    let mut current = s.published.files[index].subscribe();
    // Only a node that has not published yet makes its readers wait, briefly.
    let artefact = match tokio::time::timeout(FIRST_WAIT, current.wait_for(Option::is_some)).await {
        Ok(Ok(a)) => a.clone(),
        _ => None,
    };
    let Some(mut artefact) = artefact else {
        let mut e = crate::problem::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "being-published",
            "Being published",
            format!("{kind}.ndjson is being published for the first time on this node; retry shortly"),
        );
        e.retry_after = Some(10);
        return Err(FhirError(e));
    };
    // Every file is opened before the answer starts: one replaced meanwhile
    // stays readable through its handle until it is closed. A publication
    // that replaced this one between reading it and opening its files has
    // removed them: then the new one is served.
    let mut attempts = 0;
    let (files, served) = loop {
        let (paths, served) = if stem == kind && kind == "Slot" {
            (artefact.parts.iter().map(|p| p.path.clone()).collect::<Vec<_>>(), artefact.version(None))
        } else {
            let Some(part) = artefact.parts.iter().find(|p| p.name == stem) else {
                return Err(FhirError(crate::problem::ApiError::not_found(&format!("{stem}.ndjson"))));
            };
            (vec![part.path.clone()], artefact.version((kind == "Slot").then_some(part)))
        };
        let cache = [(header::CACHE_CONTROL, "public, max-age=60")];
        if not_modified(headers, &served) {
            return Ok(with_validators((StatusCode::NOT_MODIFIED, cache).into_response(), &served));
        }
        let mut files = std::collections::VecDeque::new();
        let mut gone = false;
        for path in paths {
            match tokio::fs::File::open(&path).await {
                Ok(f) => files.push_back(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 3 => {
                    gone = true;
                    break;
                }
                Err(e) => return Err(internal(&e)),
            }
        }
        if !gone {
            break (files, served);
        }
        attempts += 1;
        match current.borrow().clone() {
            Some(newer) => artefact = newer,
            None => return Err(internal(&"the published files are gone")),
        }
    };
    let stream = futures::stream::try_unfold(files, |mut files| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        while let Some(f) = files.front_mut() {
            let n = f.read(&mut buf).await?;
            if n > 0 {
                buf.truncate(n);
                return Ok::<_, std::io::Error>(Some((Bytes::from(buf), files)));
            }
            files.pop_front();
        }
        Ok(None)
    });
    let resp =
        ([(header::CONTENT_TYPE, NDJSON), (header::CACHE_CONTROL, "public, max-age=60")], Body::from_stream(stream))
            .into_response();
    Ok(with_validators(resp, &served))
}

fn internal(e: &dyn std::fmt::Display) -> FhirError {
    tracing::error!(error = %e, "bulk file");
    FhirError(crate::problem::ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        "the file could not be read; it has been logged",
    ))
}

/// Slots, one doctor per chunk: free ones with a deep link to the booking
/// page for exactly that slot, busy ones so that `_since` readers learn a
/// slot they saw free is gone.
fn slot_stream(
    s: AppState,
    dir: Arc<Vec<(DoctorRecord, ClinicRecord)>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::try_unfold(0usize, move |i| {
        let (s, dir) = (s.clone(), dir.clone());
        async move {
            let origin = &s.published.origin;
            let Some((d, c)) = dir.get(i) else { return Ok(None) };
            let now = s.app.now();
            let window = Interval { start: now, end: now + SignedDuration::from_hours(24 * SLOT_DAYS) };
            let fail = |e: medislot_app::AppError| std::io::Error::other(e.to_string());
            let mut out = Vec::with_capacity(64 * 1024);
            for slot in s.app.free_slots_of(d, c, window).await.map_err(fail)? {
                let mut v = r::free_slot(&slot, d);
                v["extension"] = json!([{"url": DEEP_LINK, "valueUrl": format!("{origin}/book/{}", slot.slot_id)}]);
                line(&mut out, v);
            }
            for a in s.app.occupied(d, window).await.map_err(fail)?.iter().filter(|a| d.modes.contains(&a.mode)) {
                let mut v = r::busy_slot(a, d);
                v["status"] = json!("busy");
                line(&mut out, v);
            }
            Ok(Some((Bytes::from(out), i + 1)))
        }
    })
}
