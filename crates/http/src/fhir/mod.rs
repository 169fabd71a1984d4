//! HL7 FHIR R4 facade under `/fhir`: the same domain and the same use cases
//! as the JSON API, read and written as FHIR resources (no second source of
//! truth). Errors are `OperationOutcome`s, searches `Bundle`s.

pub(crate) mod bulk;
mod metadata;
mod operations;
pub(crate) mod publisher;
mod resources;
mod search;

use crate::{problem::ApiError, AppState};
use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use medislot_app::AppError;
use serde_json::{json, Value};

pub const FHIR_JSON: &str = "application/fhir+json";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metadata", get(metadata::capability_statement))
        .route("/OperationDefinition/{id}", get(metadata::operation_definition))
        .route("/$bulk-publish", get(bulk::manifest))
        .route("/$bulk-publish/{file}", get(bulk::file))
        .route("/Practitioner", get(search::practitioners))
        .route("/Practitioner/{id}", get(search::practitioner))
        .route("/PractitionerRole", get(search::practitioner_roles))
        .route("/PractitionerRole/{id}", get(search::practitioner_role))
        .route("/Location", get(search::locations))
        .route("/Location/{id}", get(search::location))
        .route("/Schedule", get(search::schedules))
        .route("/Schedule/{id}", get(search::schedule))
        .route("/Slot", get(search::slots))
        .route("/Slot/{id}", get(search::slot))
        .route("/Appointment", get(search::appointments))
        .route("/Appointment/{id}", get(search::appointment))
        .route("/Appointment/$find", get(operations::find_get).post(operations::find_post))
        .route("/Appointment/$hold", post(operations::hold))
        .route("/Appointment/$book", post(operations::book))
        .fallback(|| async {
            FhirError(ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                "no such FHIR resource type or operation here; see /fhir/metadata",
            ))
        })
}

/// A FHIR resource on its way out, with its status and (for versioned resources) ETag.
pub struct Fhir {
    pub status: StatusCode,
    pub body: Value,
    /// `meta.versionId`, sent as the weak ETag.
    pub version: Option<String>,
}

impl Fhir {
    pub fn ok(body: Value) -> Self {
        Self { status: StatusCode::OK, body, version: None }
    }
}

/// FHIR JSON has no empty arrays, objects or strings ("an element either has
/// a value or is absent"): removes them, and whatever becomes empty in turn.
pub fn prune(v: &mut Value) {
    fn empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::String(s) => s.is_empty(),
            _ => false,
        }
    }
    match v {
        Value::Array(items) => {
            items.iter_mut().for_each(prune);
            items.retain(|i| !empty(i));
        }
        Value::Object(fields) => {
            fields.values_mut().for_each(prune);
            fields.retain(|_, f| !empty(f));
        }
        _ => {}
    }
}

impl IntoResponse for Fhir {
    fn into_response(mut self) -> Response {
        prune(&mut self.body);
        let bytes = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut resp = (self.status, bytes).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        if let Some(v) = self.version.and_then(|v| HeaderValue::from_str(&format!("W/\"{v}\"")).ok()) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        resp
    }
}

/// Any error, as an `OperationOutcome` with the same HTTP status the JSON API would give.
#[derive(Debug)]
pub struct FhirError(pub ApiError);

impl From<AppError> for FhirError {
    fn from(e: AppError) -> Self {
        Self(e.into())
    }
}

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

pub type FhirResult<T = Fhir> = Result<T, FhirError>;

/// A search or operation parameter that is wrong: 400 naming it.
pub fn invalid(param: &str, message: impl Into<String>) -> FhirError {
    FhirError(ApiError::bad_request(param, message))
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let e = self.0;
        let code = match e.status.as_u16() {
            400 | 422 => "invalid",
            401 => "login",
            403 => "forbidden",
            404 => "not-found",
            409 | 412 => "conflict",
            413 => "too-long",
            429 => "throttled",
            503 => "transient",
            _ => "exception",
        };
        let mut issues = vec![];
        if e.errors.is_empty() {
            issues.push(json!({"severity": "error", "code": code, "diagnostics": e.detail}));
        }
        for f in &e.errors {
            issues.push(json!({"severity": "error", "code": code, "diagnostics": f.message, "expression": [f.field]}));
        }
        // A slot just taken: the nearest free ones, as the JSON API offers them.
        for alt in e.alternatives.iter().flatten() {
            issues.push(json!({
                "severity": "information",
                "code": "informational",
                "diagnostics": format!("free instead: Slot/{} at {} ({})", resources::slot_fhir_id(alt.doctor_id, alt.start, alt.visit_type.as_deref()), alt.local_start, alt.time_zone),
            }));
        }
        let outcome = json!({"resourceType": "OperationOutcome", "issue": issues});
        let mut resp = Fhir { status: e.status, body: outcome, version: None }.into_response();
        if let Some(secs) = e.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The service base the client used (`http://host/fhir`), for absolute URLs in bundles.
pub struct Base(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get("x-forwarded-host")
            .or_else(|| parts.headers.get(header::HOST))
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let scheme = parts.headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
        Ok(Base(format!("{scheme}://{host}/fhir")))
    }
}

/// Search parameters as FHIR sends them: names may repeat (`start=ge…&start=lt…`).
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        Ok(Params(form_urlencoded::parse(q.as_bytes()).into_owned().collect()))
    }
}

impl Params {
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Refuses parameters this endpoint does not support (FHIR's strict handling),
    /// so that a client never mistakes an ignored filter for an applied one.
    pub fn only(&self, supported: &[&str]) -> FhirResult<()> {
        for (k, _) in &self.0 {
            if !supported.contains(&k.as_str()) && !matches!(k.as_str(), "_count" | "_offset" | "_format") {
                return Err(invalid(
                    k,
                    format!("unsupported search parameter; supported here: {}", supported.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// `_count` (default 50, at most 500; 0 asks for the total alone) and `_offset`.
    pub fn paging(&self) -> FhirResult<(usize, usize)> {
        let count = match self.one("_count") {
            None => 50,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|c| *c <= 500)
                .ok_or_else(|| invalid("_count", "must be a number from 0 to 500"))?,
        };
        let offset = match self.one("_offset") {
            None => 0,
            Some(o) => o.parse::<usize>().map_err(|_| invalid("_offset", "must be a non-negative number"))?,
        };
        Ok((count, offset))
    }
}

/// A `searchset` Bundle over one page of `all`, with self and next links.
pub fn bundle(base: &Base, path: &str, params: &Params, all: Vec<Value>, count: usize, offset: usize) -> Value {
    let total = all.len();
    let page: Vec<Value> = all
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|r| {
            let full_url =
                format!("{}/{}/{}", base.0, r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or(""));
            json!({"fullUrl": full_url, "resource": r, "search": {"mode": "match"}})
        })
        .collect();
    let link = |offset: usize| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.0.iter().filter(|(k, _)| k != "_offset" && k != "_count") {
            q.append_pair(k, v);
        }
        q.append_pair("_count", &count.to_string());
        q.append_pair("_offset", &offset.to_string());
        format!("{}/{path}?{}", base.0, q.finish())
    };
    let mut links = vec![json!({"relation": "self", "url": link(offset)})];
    if count > 0 && offset + count < total {
        links.push(json!({"relation": "next", "url": link(offset + count)}));
    }
    json!({"resourceType": "Bundle", "type": "searchset", "total": total, "link": links, "entry": page})
}
