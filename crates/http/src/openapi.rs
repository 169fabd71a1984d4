//! The OpenAPI document of `/api/v1`: the routes' own annotations, completed
//! with the answers every route can give and that no handler spells out — the
//! malformed request, the missing sign-in, the body too large or not JSON, the
//! rate limit and the unavailable database — each with its problem+json body.
//! It is generated from the same handlers and extractors that answer, so it
//! cannot promise what the server refuses.

use axum::http::Method;
use utoipa::openapi::{
    header::HeaderBuilder,
    path::{Operation, ParameterIn},
    ContentBuilder, OpenApi, Ref, RefOr, Response,
};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "medislot", description = "Doctor-patient appointment booking. Errors are RFC 9457 application/problem+json."),
    components(schemas(crate::problem::Problem, medislot_domain::Mode, medislot_domain::AppointmentStatus)),
    modifiers(&BearerAuth)
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Adds to every operation the error answers it can give, and gives every error
/// answer the `Problem` body it has.
pub(crate) fn complete(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let methods = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::PATCH, &mut item.patch),
        ];
        for (method, op) in methods {
            if let Some(op) = op.as_mut() {
                complete_operation(path, &method, op);
            }
        }
    }
}

fn complete_operation(path: &str, method: &Method, op: &mut Operation) {
    let params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let body = op.request_body.is_some();
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let responses = &mut op.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses.entry(status.to_string()).or_insert_with(|| RefOr::T(Response::new(description)));
    };
    if params || body {
        add("400", "Malformed request: a path id that is not a UUID, a header or JSON that cannot be read");
    }
    if secured {
        add("401", "No bearer token, or one that is not valid (any more)");
        add("403", "The caller's role, or their relation to this resource, does not allow this");
    }
    if path.contains('{') {
        add("404", "No such resource (or not one the caller may see)");
    }
    if body {
        add("413", "The body is larger than the limit");
        add("415", "The body is not application/json");
    }
    if body || op.parameters.as_ref().is_some_and(|p| p.iter().any(|p| p.parameter_in == ParameterIn::Query)) {
        add("422", "A field is invalid: `errors` names each one");
    }
    if crate::throttle::is_expensive_public_read(method, &format!("/api/v1{path}")) {
        add("429", "Too many anonymous reads from this client: wait for Retry-After");
    }
    add("503", "The database is unavailable or the request ran out of time: retry after Retry-After");

    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        if !status.starts_with(['4', '5']) {
            continue;
        }
        if response.description.is_empty() {
            response.description = default_description(status).into();
        }
        if response.content.is_empty() {
            let problem = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
            response.content.insert(crate::problem::PROBLEM_JSON.to_string(), problem);
        }
        let header = |name: &str, description: &str| {
            (name.to_string(), HeaderBuilder::new().description(Some(description)).build())
        };
        match status.as_str() {
            "401" => {
                let (k, v) = header("WWW-Authenticate", "Bearer: how to authenticate");
                response.headers.entry(k).or_insert(v);
            }
            "429" | "503" => {
                let (k, v) = header("Retry-After", "Seconds to wait before trying again");
                response.headers.entry(k).or_insert(v);
            }
            _ => {}
        }
    }
}

fn default_description(status: &str) -> &'static str {
    match status {
        "403" => "The caller may not do this",
        "404" => "No such resource (or not one the caller may see)",
        "409" => "Conflicts with the current state (a slot taken, the patient already busy then, a duplicate)",
        "412" => "If-Match names a version that is no longer current: `current_version` says which is",
        "428" => "If-Match is required on this route",
        _ => "An error, as problem+json",
    }
}
