//! SMART Scheduling Links: `GET /fhir/$bulk-publish` (the manifest) and its
//! Location, Schedule and Slot NDJSON files, with `_since` and conditional
//! requests. The full files are published artefacts: a background task
//! ([`Publisher`]) writes them to disk when the directory or busy times
//! changed, at most once a minute by default, and every reader is served the
//! last published file (with `ETag` and `Cache-Control`): readers never wait
//! for a generation and cannot make the node recompute the whole directory.
//! `_since` answers are small and computed per request.

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
const FILES: [&str; 3] = ["Location", "Schedule", "Slot"];

/// What a publication's answers depend on: the data's last change and the hour
/// (slots that start drop out as time passes; a weak validator allows that).
struct Version {
    last_change: Timestamp,
    etag: String,
}

/// The state of the data every answer is made from, read once.
struct DataState {
    /// The data's last change, to the second (the precision the store keeps).
    changed: Timestamp,
    hour: Timestamp,
}

impl DataState {
    async fn now(s: &AppState) -> FhirResult<Self> {
        let now = s.app.now();
        let hour = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(3600)).unwrap_or(now);
        let changed = s.app.last_change().await?.unwrap_or(Timestamp::UNIX_EPOCH);
        Ok(Self { changed, hour })
    }

    /// The version of one answer (the manifest or a file, with its `_since`).
    fn version(&self, what: &str, since: Option<Timestamp>) -> Version {
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
        "output": FILES.iter().zip(&s.published.files).map(|(f, file)| {
            let mut output = json!({"type": f, "url": format!("{}/$bulk-publish/{f}.ndjson{q}", base.0)});
            if let Some(a) = file.borrow().as_ref().filter(|a| !a.states.is_empty()) {
                output["extension"] = json!({"state": a.states});
            }
            output
        }).collect::<Vec<_>>(),
        "error": [],
    });
    let resp =
        ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=60")], body.to_string())
            .into_response();
    Ok(with_validators(resp, &v))
}

/// The directory entries a file covers: all of it, or what changed since `_since`.
async fn entries(s: &AppState, since: Option<Timestamp>) -> FhirResult<Vec<(DoctorRecord, ClinicRecord)>> {
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
    let kind = name.strip_suffix(".ndjson").filter(|k| FILES.contains(k)).ok_or_else(|| {
        FhirError(crate::problem::ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "no such file: Location.ndjson, Schedule.ndjson or Slot.ndjson",
        ))
    })?;
    let since = since(&p)?;
    if since.is_none() {
        // The published file carries its own validators: no need to read the data's.
        return published(&s, kind, &headers).await;
    }
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
fn content(
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

/// How often the publisher looks whether the data changed (at most).
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a reader waits for a node's first publication before a 503.
const FIRST_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One published file: where it is, what data it reflects, when it was made.
#[derive(Clone)]
struct Artefact {
    path: std::path::PathBuf,
    /// The ETag readers get: the data's version and when this file was made
    /// (two files made from data changed within one second differ).
    etag: String,
    /// The data's version it was made from.
    data: String,
    last_change: Timestamp,
    made: std::time::Instant,
    /// When its generation began: a change in that second may not be in it.
    began: Timestamp,
    /// The states (a clinic's `district`) its clinics are in: the manifest's
    /// hint to slot finders that serve some places only.
    states: Vec<String>,
}

/// The published files of this node, one per kind: readers take the current
/// one, the [`Publisher`] replaces it when a new one is complete.
pub struct Published {
    files: [tokio::sync::watch::Sender<Option<Artefact>>; 3],
    /// The web pages' origin, for the booking deep links (never a request's
    /// `Host`: a reader must not choose the links every other reader gets).
    origin: String,
}

impl Published {
    pub fn new(public_url: &str) -> Self {
        Self {
            files: std::array::from_fn(|_| tokio::sync::watch::Sender::new(None)),
            origin: public_url.trim_end_matches('/').to_string(),
        }
    }
}

async fn published(s: &AppState, kind: &str, headers: &HeaderMap) -> FhirResult<Response> {
    let index = FILES.iter().position(|f| *f == kind).unwrap_or(0);
    let mut current = s.published.files[index].subscribe();
    // Only a node that has not published yet makes its readers wait, briefly.
    let artefact = match tokio::time::timeout(FIRST_WAIT, current.wait_for(Option::is_some)).await {
        Ok(Ok(a)) => a.clone(),
        _ => None,
    };
    let Some(artefact) = artefact else {
        let mut e = crate::problem::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "being-published",
            "Being published",
            format!("{kind}.ndjson is being published for the first time on this node; retry shortly"),
        );
        e.retry_after = Some(10);
        return Err(FhirError(e));
    };
    let served = Version { last_change: artefact.last_change, etag: artefact.etag.clone() };
    let cache = [(header::CACHE_CONTROL, "public, max-age=60")];
    if not_modified(headers, &served) {
        return Ok(with_validators((StatusCode::NOT_MODIFIED, cache).into_response(), &served));
    }
    // A file replaced meanwhile stays readable through this handle until it is closed.
    let file = tokio::fs::File::open(&artefact.path).await.map_err(|e| internal(&e))?;
    let stream = futures::stream::try_unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        let n = f.read(&mut buf).await?;
        buf.truncate(n);
        Ok::<_, std::io::Error>((n > 0).then(|| (Bytes::from(buf), f)))
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

/// The background task that keeps this node's bulk files current: it
/// publishes them at start, then again whenever the data they reflect changed
/// and the previous publication is old enough (a minute by default).
pub struct Publisher {
    state: AppState,
    /// The shortest time between two publications of one file.
    republish: std::time::Duration,
}

impl Publisher {
    pub(crate) fn new(state: AppState, republish: std::time::Duration) -> Self {
        Self { state, republish }
    }

    /// Publishes until `stop` completes (a generation under way is abandoned).
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let _ = self.remove_leftovers().await;
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = self.publish_changed() => {}
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(CHECK_EVERY.min(self.republish)) => {}
            }
        }
    }

    /// Temporary files of a generation a previous process did not finish.
    async fn remove_leftovers(&self) -> std::io::Result<()> {
        let mut entries = tokio::fs::read_dir(&*self.state.bulk_dir).await?;
        while let Some(e) = entries.next_entry().await? {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                tokio::fs::remove_file(e.path()).await?;
            }
        }
        Ok(())
    }

    async fn publish_changed(&self) {
        let data = match DataState::now(&self.state).await {
            Ok(d) => d,
            Err(e) => return tracing::warn!(error = %e.0.detail, "bulk files: reading what changed failed; retrying"),
        };
        for (index, kind) in FILES.iter().enumerate() {
            let slot = &self.state.published.files[index];
            let v = data.version(kind, None);
            let due = slot.borrow().as_ref().is_none_or(|a| {
                // Changes are known to the second: one in the second the last
                // generation began may have come after it read the data.
                let maybe_missed = data.changed.as_second() >= a.began.as_second();
                (a.data != v.etag || maybe_missed) && a.made.elapsed() >= self.republish
            });
            if !due {
                continue;
            }
            let started = std::time::Instant::now();
            match self.generate(kind, &v).await {
                Ok(a) => {
                    tracing::info!(kind, seconds = started.elapsed().as_secs_f64(), "bulk file published");
                    slot.send_replace(Some(a));
                }
                // Readers keep the previous file; the next check tries again.
                Err(e) => tracing::warn!(error = %e, kind, "bulk file: publishing failed; retrying"),
            }
        }
    }

    /// Writes one file to a temporary name, then renames it into place: a
    /// reader opens either the previous file or the new one, never half a file.
    async fn generate(&self, kind: &str, v: &Version) -> std::io::Result<Artefact> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let s = &self.state;
        let began = s.app.now();
        let dir: &std::path::Path = &s.bulk_dir;
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join(format!("{kind}.ndjson"));
        let tmp = dir.join(format!("{kind}.ndjson.{}.tmp", uuid::Uuid::new_v4().simple()));
        let mut states = std::collections::BTreeSet::new();
        let written = async {
            let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(&tmp).await?);
            let entries = entries(s, None).await.map_err(|e| std::io::Error::other(e.0.detail))?;
            states.extend(entries.iter().filter_map(|(_, c)| c.postal.district.clone()));
            let mut chunks = content(s, kind, Arc::new(entries));
            while let Some(chunk) = chunks.next().await {
                out.write_all(&chunk?).await?;
            }
            out.flush().await?;
            out.into_inner().sync_all().await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        written?;
        let etag = format!("{}-{}\"", v.etag.trim_end_matches('"'), began.as_millisecond());
        Ok(Artefact {
            path,
            etag,
            data: v.etag.clone(),
            last_change: v.last_change,
            made: std::time::Instant::now(),
            began,
            states: states.into_iter().collect(),
        })
    }
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
                let mut v = r::free_slot(&slot);
                v["extension"] = json!([{"url": DEEP_LINK, "valueUrl": format!("{origin}/book/{}", slot.slot_id)}]);
                line(&mut out, v);
            }
            for a in s.app.occupied(d, window).await.map_err(fail)?.iter().filter(|a| d.modes.contains(&a.mode)) {
                let mut v = r::busy_slot(a);
                v["status"] = json!("busy");
                line(&mut out, v);
            }
            Ok(Some((Bytes::from(out), i + 1)))
        }
    })
}
