//! The HTTP edge: routes under `/api/v1`, problem+json errors, the OpenAPI document.

// ApiError carries a whole problem document; errors are the cold path of a
// request, so its size costs nothing that matters.
#![allow(clippy::result_large_err)]

mod errors;
pub mod extract;
mod fhir;
mod openapi;
mod pages;
pub mod problem;
mod routes;
pub mod throttle;
pub mod views;

use axum::{extract::DefaultBodyLimit, http::StatusCode, Router};
use medislot_app::App;
use std::sync::Arc;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Largest JSON body accepted (schedules are the largest legitimate bodies).
pub const BODY_LIMIT: usize = 256 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub app: App,
    /// Sign-in and sign-up attempts per client (password guessing, floods).
    pub throttle: Arc<throttle::Throttle>,
    /// Anonymous expensive reads per client (search, slots, FHIR, bulk files).
    pub public_reads: Arc<throttle::PublicReads>,
    /// The secrets peer regions may present on `/internal/v1`: the current one and,
    /// during a rotation, the previous one (none: those routes do not exist).
    pub region_secrets: Arc<[Box<[u8]>]>,
    /// The operators' token for `/metrics` and `/api/v1/regions` (none: internal address only).
    pub ops_token: Option<Arc<[u8]>>,
    /// Cookie names and attributes (`Secure`, `__Host-` over https).
    pub cookies: extract::CookiePolicy,
    /// Where this node writes the published SMART bulk files.
    pub bulk_dir: Arc<std::path::Path>,
    /// The published SMART bulk files.
    pub published: Arc<fhir::publisher::Published>,
}

#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Sign-in attempts allowed per client and account per minute.
    pub logins_per_minute: u32,
    /// Sign-in and sign-up attempts allowed per client per minute, whatever the account.
    pub client_attempts_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<throttle::Cidr>,
    /// The longest a request may take before it is answered 503 (outcome unknown, retry).
    pub request_timeout: std::time::Duration,
    /// Requests this node works on at once; one more is answered 503 with
    /// Retry-After at once, before anything is read or computed for it.
    pub max_in_flight: usize,
    /// The secret shared by the regions, for `/internal/v1`.
    pub region_secret: Option<String>,
    /// A second secret also accepted on `/internal/v1`, while the secret is rotated.
    pub region_secret_previous: Option<String>,
    /// The token operators present for `/metrics` and `/api/v1/regions` on the public address.
    pub ops_token: Option<String>,
    /// The longest a request body may take to arrive.
    pub body_read_timeout: std::time::Duration,
    /// The public URL is https: cookies are `Secure` and `__Host-` prefixed.
    pub https: bool,
    /// Where the published SMART bulk files are written.
    pub bulk_dir: std::path::PathBuf,
    /// Anonymous expensive reads allowed per client per second (twice that in a burst).
    pub public_reads_per_second: u32,
    /// The shortest time between two publications of a SMART bulk file.
    pub bulk_republish: std::time::Duration,
    /// The address people reach the web pages at, for the booking links in the bulk files.
    pub public_url: String,
}

/// Marks requests that came through the operators' own address (`--internal-listen`).
#[derive(Debug, Clone, Copy)]
pub struct InternalListener;

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            logins_per_minute: 10,
            client_attempts_per_minute: 60,
            trusted_proxies: Vec::new(),
            request_timeout: std::time::Duration::from_secs(15),
            max_in_flight: 512,
            region_secret: None,
            region_secret_previous: None,
            ops_token: None,
            body_read_timeout: std::time::Duration::from_secs(10),
            https: false,
            bulk_dir: std::env::temp_dir().join("medislot-bulk"),
            public_reads_per_second: 20,
            bulk_republish: std::time::Duration::from_secs(60),
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

pub use fhir::publisher::Publisher;

/// One node's HTTP application and the background work it needs.
pub struct Node {
    pub router: Router,
    /// Keeps the SMART bulk files published: run it for as long as the node serves.
    pub publisher: Publisher,
}

/// The whole HTTP application for one node.
pub fn node(app: App, options: HttpOptions) -> Node {
    let state = AppState {
        app,
        throttle: Arc::new(throttle::Throttle::new(
            options.logins_per_minute,
            options.client_attempts_per_minute,
            options.trusted_proxies.clone(),
        )),
        // The previous secret is accepted only alongside a current one.
        region_secrets: options
            .region_secret
            .iter()
            .chain(options.region_secret.as_ref().and(options.region_secret_previous.as_ref()))
            .map(|s| s.as_bytes().into())
            .collect(),
        ops_token: options.ops_token.as_ref().map(|t| t.as_bytes().into()),
        cookies: extract::CookiePolicy { secure: options.https },
        bulk_dir: options.bulk_dir.clone().into(),
        public_reads: Arc::new(throttle::PublicReads::new(options.public_reads_per_second)),
        published: Arc::new(fhir::publisher::Published::new(&options.public_url)),
    };
    let (api, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::accounts::router())
        .merge(routes::clinics::router())
        .merge(routes::doctors::router())
        .merge(routes::video::router())
        .merge(routes::visit_types::router())
        .merge(routes::privacy::router())
        .merge(routes::appointments::router())
        .merge(routes::notifications::router())
        .merge(routes::regions::router())
        .split_for_parts();
    // Paths are documented relative to the /api/v1 prefix the router is nested under.
    doc.servers = Some(vec![utoipa::openapi::Server::new("/api/v1")]);
    openapi::complete(&mut doc);
    let doc = Arc::new(doc);
    let publisher = Publisher::new(state.clone(), options.bulk_republish);
    let router = Router::new()
        .nest(
            "/api/v1",
            api.route(
                "/openapi.json",
                axum::routing::get(move || {
                    let doc = doc.clone();
                    async move { axum::Json(doc.as_ref().clone()) }
                }),
            ),
        )
        .nest("/fhir", fhir::router())
        .nest("/internal/v1", routes::internal::router(state.clone()))
        .merge(pages::router())
        .merge(routes::system::router())
        .fallback(|| async { problem::ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no such route") })
        .layer(axum::middleware::map_response(method_not_allowed_as_problem))
        .layer(axum::middleware::from_fn({
            let admission = Arc::new(tokio::sync::Semaphore::new(options.max_in_flight.max(1)));
            move |req, next| deadline(options.request_timeout, admission.clone(), req, next)
        }))
        .layer(axum::middleware::from_fn_with_state(state.clone(), throttle::limit_public_reads))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::middleware::from_fn(errors::uniform))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(options.body_read_timeout))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            // The matched route template, never the raw path: no ids in logs or labels.
            let route = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), route = %route, request_id = %id)
        }))
        // Every request gets an id (or keeps the caller's), echoed in the answer and in every log line.
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(tower_http::request_id::MakeRequestUuid))
        .with_state(state);
    Node { router, publisher }
}

/// Headers every answer carries: no sniffing, no framing, a strict
/// Content-Security-Policy for pages (no inline script or style), and no
/// caching of anything personal (pages, and answers to signed-in callers).
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let personal = req.headers().contains_key(header::AUTHORIZATION) || req.headers().contains_key(header::COOKIE);
    let mut resp = next.run(req).await;
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    if (html || personal) && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Request latency by method, route template and status, for `/metrics`.
async fn observe(
    axum::extract::State(s): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // A method a client invents is one label, not a new series per name.
    let method = match *req.method() {
        axum::http::Method::GET
        | axum::http::Method::HEAD
        | axum::http::Method::POST
        | axum::http::Method::PUT
        | axum::http::Method::PATCH
        | axum::http::Method::DELETE
        | axum::http::Method::OPTIONS => req.method().to_string(),
        _ => "OTHER".to_string(),
    };
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let labels = medislot_app::metrics::RequestLabels { method, route, status: resp.status().as_u16() };
    s.app.metrics().requests.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    resp
}

/// No request hangs, whatever the database or the network to it does: past
/// the deadline the client hears 503 with Retry-After. The work goes on to its
/// end; a change it was committing may still land, which is why a booking is
/// retried with the same Idempotency-Key, answered from what the database holds.
///
/// Admission control at the edge: at most `admission`'s permits of requests
/// are worked on at once (a timed-out one keeps its permit until its work
/// ends). Offered more than it can do, the node answers the excess 503 at
/// once, before reading or computing anything for it, and keeps doing what it
/// can at full speed instead of slowing everybody down. Health checks and
/// metrics are always answered.
async fn deadline(
    within: std::time::Duration,
    admission: Arc<tokio::sync::Semaphore>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let always = matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics");
    let permit = match admission.try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) if always => None,
        Err(_) => {
            let mut e = problem::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Too busy",
                "this node is working on as many requests as it can; retry shortly",
            );
            e.retry_after = Some(1);
            return axum::response::IntoResponse::into_response(e);
        }
    };
    // The work runs on its own task: past the deadline the client is answered,
    // but the work is never dropped halfway — a transaction finishes (commit or
    // rollback) and its connection goes back to the pool clean.
    let work = tokio::spawn(async move {
        let resp = next.run(req).await;
        drop(permit);
        resp
    });
    match tokio::time::timeout(within, work).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(panicked)) => {
            tracing::error!(error = %panicked, "request handler panicked");
            axum::response::IntoResponse::into_response(problem::ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "something went wrong on our side; it has been logged",
            ))
        }
        Err(_) => {
            tracing::warn!(?within, "request deadline passed");
            let mut e = problem::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Took too long",
                "the request did not finish in time; its outcome is unknown: retry (with the same Idempotency-Key)",
            );
            e.retry_after = Some(2);
            axum::response::IntoResponse::into_response(e)
        }
    }
}

/// axum answers a wrong method with an empty 405; clients get problem+json like every other error.
async fn method_not_allowed_as_problem(resp: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    if resp.status() != StatusCode::METHOD_NOT_ALLOWED || resp.headers().contains_key(axum::http::header::CONTENT_TYPE)
    {
        return resp;
    }
    let allow = resp.headers().get(axum::http::header::ALLOW).cloned();
    let mut out = problem::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this route does not accept this method",
    )
    .into_response();
    if let Some(a) = allow {
        out.headers_mut().insert(axum::http::header::ALLOW, a);
    }
    out
}
