//! Every error in the format its caller reads: problem+json for the API,
//! OperationOutcome for FHIR, an HTML page for the pages. Handlers produce
//! problem+json (or their own format); this layer, the last one out, fixes up
//! what the framework produced on its own (413 and 400 as plain text, 405 with
//! no body, the fallback for an unknown URL, a panic) and translates by where
//! the request was going. Every 401 also carries `WWW-Authenticate`.

use crate::{fhir::FhirError, problem::ApiError, problem::PROBLEM_JSON};
use axum::{
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use medislot_domain::FieldError;

/// Who reads an answer, by the path (and, outside the API, by what the client accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Api,
    Fhir,
    Page,
}

fn reader(req: &Request) -> Reader {
    let path = req.uri().path();
    if path == "/fhir" || path.starts_with("/fhir/") {
        return Reader::Fhir;
    }
    let machine = ["/api/", "/internal/"].iter().any(|p| path.starts_with(p))
        || matches!(path, "/healthz" | "/readyz" | "/metrics");
    let wants_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("json") && !a.contains("text/html"));
    if machine || wants_json {
        Reader::Api
    } else {
        Reader::Page
    }
}

/// Error bodies are small; anything bigger is left as it is.
const LIMIT: usize = 64 * 1024;

pub async fn uniform(req: Request, next: Next) -> Response {
    let who = reader(&req);
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let kind = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let ours =
        kind.starts_with(PROBLEM_JSON) || kind.starts_with("application/fhir+json") || kind.starts_with("text/html");
    let mut resp = if ours && !(kind.starts_with(PROBLEM_JSON) && who != Reader::Api) {
        resp
    } else {
        let (parts, body) = resp.into_parts();
        let problem = if kind.starts_with(PROBLEM_JSON) {
            let bytes = axum::body::to_bytes(body, LIMIT).await.unwrap_or_default();
            from_problem_json(status, &bytes)
        } else {
            generic(status)
        };
        let mut out = match who {
            Reader::Api => problem.into_response(),
            Reader::Fhir => FhirError(problem).into_response(),
            Reader::Page => crate::pages::error_page(status, &problem.title, &problem.detail),
        };
        // Keep what the original answer told the client beyond its body.
        for name in [header::ALLOW, header::RETRY_AFTER, header::SET_COOKIE, header::WWW_AUTHENTICATE] {
            for v in parts.headers.get_all(&name) {
                out.headers_mut().append(name.clone(), v.clone());
            }
        }
        *out.status_mut() = status;
        out
    };
    if status == StatusCode::UNAUTHORIZED && !resp.headers().contains_key(header::WWW_AUTHENTICATE) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"medislot\""));
    }
    resp
}

/// A problem for a status the framework answered on its own.
fn generic(status: StatusCode) -> ApiError {
    let (slug, title, detail) = match status.as_u16() {
        400 => ("bad-request", "Malformed request", "the request could not be read"),
        404 => ("not-found", "Not found", "no such route"),
        405 => ("method-not-allowed", "Method not allowed", "this route does not take this method; see Allow"),
        413 => ("payload-too-large", "Body too large", "the body exceeds the limit of 256 KiB"),
        415 => ("unsupported-media-type", "Unsupported media type", "send the body as JSON"),
        s if s >= 500 => ("internal", "Internal error", "something went wrong on our side; it has been logged"),
        _ => ("error", "Request refused", "the request was refused"),
    };
    ApiError::new(status, slug, title, detail)
}

/// Reads back a problem document a handler produced, to translate it.
fn from_problem_json(status: StatusCode, bytes: &[u8]) -> ApiError {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let mut e = generic(status);
    if let Some(detail) = text("detail") {
        e.detail = detail;
    }
    if let Some(title) = text("title") {
        e.title = title.into();
    }
    e.errors = v
        .get("errors")
        .and_then(|x| x.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|f| {
                    Some(FieldError::new(f.get("field")?.as_str()?, f.get("message")?.as_str()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    e
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request, routing::get, Router};
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("index out of bounds: a detail no client should see")
    }

    /// A handler that panics, behind the same layers as the real router.
    fn app() -> Router {
        Router::new()
            .route("/api/v1/boom", get(boom))
            .route("/fhir/boom", get(boom))
            .route("/boom", get(boom))
            .layer(axum::middleware::from_fn(|req, next| {
                let admission = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
                crate::deadline(std::time::Duration::from_secs(5), admission, req, next)
            }))
            .layer(axum::middleware::from_fn(super::uniform))
    }

    async fn call(path: &str) -> (u16, String, String) {
        let resp = app().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let kind = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        (status, kind, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_panic_is_an_answered_500_in_the_callers_format() {
        let (status, kind, body) = call("/api/v1/boom").await;
        assert_eq!((status, kind.as_str()), (500, "application/problem+json"), "{body}");
        assert!(!body.contains("index out of bounds"), "no panic text leaks: {body}");
        let (status, kind, body) = call("/fhir/boom").await;
        assert_eq!((status, kind.as_str()), (500, "application/fhir+json"));
        assert!(body.contains("OperationOutcome"), "{body}");
        let (status, kind, _) = call("/boom").await;
        assert_eq!((status, kind.starts_with("text/html")), (500, true));
    }
}
