//! Extractors whose rejections are our problem+json, never the framework's text.

use crate::{problem::ApiError, AppState};
use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts, HeaderMap, Method, StatusCode},
};
use medislot_app::{Actor, AppError};
use serde::de::DeserializeOwned;
use std::{collections::HashMap, str::FromStr};

/// The cookies' names and attributes: over https (the public URL says so)
/// they are `Secure` and `__Host-` prefixed, so no other site or subdomain can
/// set or read them.
#[derive(Debug, Clone, Copy, Default)]
pub struct CookiePolicy {
    pub secure: bool,
}

impl CookiePolicy {
    pub fn session(&self) -> &'static str {
        if self.secure {
            "__Host-medislot_session"
        } else {
            "medislot_session"
        }
    }

    pub fn csrf(&self) -> &'static str {
        if self.secure {
            "__Host-medislot_csrf"
        } else {
            "medislot_csrf"
        }
    }

    /// `; Secure` over https, nothing otherwise.
    pub fn secure_attr(&self) -> &'static str {
        if self.secure {
            "; Secure"
        } else {
            ""
        }
    }

    /// The session cookie to set (`max_age` 0 clears it).
    pub fn session_cookie(&self, token: &str, max_age: i64) -> String {
        format!("{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}", self.session(), self.secure_attr())
    }

    /// The session token a request carries, if any.
    pub fn read_session(&self, headers: &HeaderMap) -> Option<String> {
        read_cookie(headers, self.session())
    }
}

/// A JSON body. Syntax errors are 400, wrong types or missing fields 422,
/// both naming the field (`weekly[0].slot_minutes`); an oversized body is 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Expected JSON",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "Body too large",
                    format!("the body exceeds the limit of {} bytes", crate::BODY_LIMIT),
                )
            } else {
                ApiError::bad_request("body", r.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body, naming the field that is wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let at_root = path == "." || path.is_empty();
            let inner = err.into_inner();
            let msg = inner.to_string();
            // A missing field is named itself, under the object it is missing
            // from (an unknown one is in the path already).
            let missing = msg.strip_prefix("missing field `").and_then(|m| m.split('`').next());
            let field = match (missing, at_root) {
                (Some(name), true) => name.to_string(),
                (Some(name), false) => format!("{path}.{name}"),
                (None, true) => "body".to_string(),
                (None, false) => path,
            };
            if inner.is_syntax() || inner.is_eof() {
                Err(ApiError::bad_request("body", format!("malformed JSON: {msg}")))
            } else {
                Err(ApiError::invalid(field, msg))
            }
        }
    }
}

/// The caller, if any: a bearer token, or the web session cookie on safe methods
/// (unsafe methods with a cookie need the pages' CSRF protection, not this API).
pub struct Caller(pub Option<Actor>);

impl Caller {
    pub fn get(&self) -> Option<&Actor> {
        self.0.as_ref()
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// A cookie's value by name.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let cookies = headers.get_all(header::COOKIE);
    cookies.iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let safe = matches!(parts.method, Method::GET | Method::HEAD);
        let token = match bearer(&parts.headers) {
            Some(t) => Some(t),
            None if safe => state.cookies.read_session(&parts.headers),
            None => None,
        };
        let Some(token) = token else { return Ok(Caller(None)) };
        match state.app.authenticate(&token).await? {
            Some(actor) => Ok(Caller(Some(actor))),
            // A token that was sent but is not valid is an error, not anonymity.
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Invalid or expired token",
                "log in again",
            )),
        }
    }
}

/// A signed-in caller, for the routes that need one: an anonymous request is
/// answered 401 before anything else it carries (path, query, headers, body)
/// is looked at, so a stranger learns nothing about what would be valid.
/// Take it before every other extractor.
pub struct SignedIn(pub Actor);

impl SignedIn {
    /// The caller, as the use cases take it.
    pub fn get(&self) -> Option<&Actor> {
        Some(&self.0)
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await?.0 {
            Some(actor) => Ok(SignedIn(actor)),
            None => Err(AppError::Unauthenticated.into()),
        }
    }
}

/// Operators only (`/metrics`, `/api/v1/regions`): a request through the
/// internal address, or one presenting the ops token, or a platform admin's.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.extensions.get::<crate::InternalListener>().is_some() {
            return Ok(Operator);
        }
        if let Some(token) = bearer(&parts.headers) {
            if state.ops_token.as_deref().is_some_and(|ops| crate::routes::same_secret(token.as_bytes(), ops)) {
                return Ok(Operator);
            }
            if let Ok(Some(actor)) = state.app.authenticate(&token).await {
                if actor.role() == medislot_domain::Role::Admin {
                    return Ok(Operator);
                }
            }
        }
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "operators-only",
            "Operators only",
            "this endpoint is for operators: use the internal address (--internal-listen) or Authorization: Bearer <ops token>",
        ))
    }
}

/// A UUID path parameter; anything else is 400 naming the parameter.
pub struct IdPath<T>(pub T);

impl<T: FromStr + Send, S: Send + Sync> FromRequestParts<S> for IdPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(params) =
            axum::extract::Path::<HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::bad_request("path", e.body_text()))?;
        let (name, raw) = params.into_iter().next().ok_or_else(|| ApiError::bad_request("path", "missing id"))?;
        raw.parse::<T>()
            .map(IdPath)
            .map_err(|_| ApiError::bad_request(name, format!("{raw:?} is not a valid id (a UUID)")))
    }
}

/// Query parameters as text; each handler parses its own, naming the field on error.
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(map) =
            axum::extract::Query::<HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::bad_request("query", e.body_text()))?;
        // `?mode=` is refused rather than read as "any": the caller meant
        // something, and the API says what each parameter takes.
        let mut blank: Vec<&String> = map.iter().filter(|(_, v)| v.trim().is_empty()).map(|(k, _)| k).collect();
        if !blank.is_empty() {
            blank.sort();
            let errors = blank
                .into_iter()
                .map(|k| {
                    medislot_domain::FieldError::new(k.as_str(), "must not be empty: leave the parameter out instead")
                })
                .collect();
            return Err(AppError::Invalid(medislot_domain::Invalid(errors)).into());
        }
        Ok(QueryMap(map))
    }
}

impl QueryMap {
    pub fn text(&self, k: &str) -> Option<String> {
        self.0.get(k).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    pub fn parse<T: FromStr>(&self, k: &str, what: &str) -> Result<Option<T>, ApiError> {
        match self.text(k) {
            None => Ok(None),
            Some(s) => s.parse::<T>().map(Some).map_err(|_| ApiError::invalid(k, format!("must be {what}"))),
        }
    }

    /// An instant: RFC 3339 (`2026-03-20T09:00:00Z`) or a date (`2026-03-20`, midnight UTC).
    pub fn instant(&self, k: &str) -> Result<Option<jiff::Timestamp>, ApiError> {
        let Some(s) = self.text(k) else { return Ok(None) };
        if s.contains(['T', 't']) {
            return Ok(Some(medislot_domain::instant::parse(k, &s).map_err(AppError::from)?));
        }
        if let Ok(d) = s.parse::<jiff::civil::Date>() {
            if let Ok(z) = d.to_zoned(jiff::tz::TimeZone::UTC) {
                return Ok(Some(medislot_domain::instant::check(k, z.timestamp()).map_err(AppError::from)?));
            }
        }
        Err(ApiError::invalid(k, "must be an RFC 3339 instant such as 2026-03-20T09:00:00Z, or a date YYYY-MM-DD"))
    }

    pub fn page(&self) -> Result<(u32, u32), ApiError> {
        let page = self.parse::<u32>("page", "a positive whole number")?.unwrap_or(1);
        let per_page = self.parse::<u32>("per_page", "a whole number from 1 to 100")?.unwrap_or(20);
        Ok((page, per_page))
    }
}

/// `If-Match: "3"` (also `W/"3"` and bare `3`) as a version; `*` means any.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get(header::IF_MATCH) else { return Ok(IfMatch(None)) };
        if_match_version(v)
    }
}

/// `If-Match` where a change must say which version it was made against (428
/// without it): two clients moving one appointment at once cannot both win.
/// `*` is an explicit "whatever the current version".
pub struct RequiredIfMatch(Option<Result<IfMatch, ApiError>>);

impl RequiredIfMatch {
    /// The version, once the caller is known to be signed in (401 comes before 428).
    pub fn version(self) -> Result<Option<i64>, ApiError> {
        match self.0 {
            Some(parsed) => parsed.map(|m| m.0),
            None => Err({
                let mut e = ApiError::new(
                    StatusCode::PRECONDITION_REQUIRED,
                    "precondition-required",
                    "If-Match required",
                    "send If-Match with the ETag of the appointment as you last read it (or * for any version)",
                );
                e.errors.push(medislot_domain::FieldError::new("If-Match", "is required on this route"));
                e
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequiredIfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(RequiredIfMatch(parts.headers.get(header::IF_MATCH).map(if_match_version)))
    }
}

fn if_match_version(v: &axum::http::HeaderValue) -> Result<IfMatch, ApiError> {
    {
        let s = v.to_str().unwrap_or("").trim();
        if s == "*" {
            return Ok(IfMatch(None));
        }
        let bare = s.trim_start_matches("W/").trim_matches('"');
        bare.parse::<i64>()
            .map(|v| IfMatch(Some(v)))
            .map_err(|_| ApiError::bad_request("If-Match", "must be an ETag from a previous GET, e.g. \"3\""))
    }
}

pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.headers.get("idempotency-key") {
            None => Ok(IdempotencyKey(None)),
            Some(v) => v
                .to_str()
                .map(|s| IdempotencyKey(Some(s.trim().to_string())))
                .map_err(|_| ApiError::bad_request("Idempotency-Key", "must be visible ASCII")),
        }
    }
}
