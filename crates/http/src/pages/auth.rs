//! Sign in, create an account, sign out.

use super::{error_for, field_errors, safe_next, urlencode, Form, Web};
use crate::throttle::ClientAddr;
use crate::AppState;
use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use maud::{html, Markup};
use medislot_app::{AppError, Registration};
use std::collections::HashMap;

fn login_form(w: &Web, next: &str, email: &str, error: Option<&str>) -> Markup {
    html! {
        h1 { "Sign in" }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form method="post" action={ "/login?next=" (urlencode(next)) } {
            (w.csrf_field())
            label for="email" { "E-mail" }
            input #email name="email" type="email" autocomplete="username" required value=(email);
            label for="password" { "Password" }
            input #password name="password" type="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
        p { "No account yet? " a href={ "/register?next=" (urlencode(next)) } { "Create one" } }
    }
}

pub async fn login_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = Web::new(&s, &headers).await;
    let next = safe_next(q.get("next").map(String::as_str));
    w.ok("Sign in", login_form(&w, &next, "", None))
}

/// Signs in (rate-limited like the API) and sets the session cookie.
pub async fn login(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    let next = safe_next(q.get("next").map(String::as_str));
    let email = form.text("email");
    if !w.csrf_ok() {
        let page = login_form(&w, &next, &email, Some("Your form expired. Please try again."));
        return w.render(StatusCode::UNPROCESSABLE_ENTITY, "Sign in", page);
    }
    match sign_in(&s, client, &email, &form.text("password"), &next).await {
        Ok(resp) => resp,
        Err((status, msg)) => w.render(status, "Sign in", login_form(&w, &next, &email, Some(msg))),
    }
}

/// Signs in (rate-limited like the API): a redirect to `next` that sets the
/// session cookie, or the status and message to show on the form.
pub async fn sign_in(
    s: &AppState,
    client: std::net::IpAddr,
    email: &str,
    password: &str,
    next: &str,
) -> Result<Response, (StatusCode, &'static str)> {
    match crate::routes::accounts::rate_limited_login(s, client, email, password).await {
        Ok((_, cookie)) => Ok(with_cookie(Redirect::to(next).into_response(), &cookie)),
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
            Err((e.status, "Too many attempts. Wait a minute and try again."))
        }
        Err(e) => Err((e.status, "Wrong e-mail or password.")),
    }
}

pub(super) fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn register_form(w: &Web, next: &str, form: &Form, errors: &HashMap<String, String>) -> Markup {
    let role = form.get("role").unwrap_or("patient");
    html! {
        h1 { "Create an account" }
        form method="post" action={ "/register?next=" (urlencode(next)) } novalidate {
            (w.csrf_field())
            label for="name" { "Your name" }
            input #name name="name" autocomplete="name" required value=(form.text("name"));
            (error_for(errors, "name"))
            label for="email" { "E-mail" }
            input #email name="email" type="email" autocomplete="email" required value=(form.text("email"));
            (error_for(errors, "email"))
            label for="password" { "Password (at least 10 characters)" }
            input #password name="password" type="password" autocomplete="new-password" required;
            (error_for(errors, "password"))
            label for="role" { "I am" }
            select #role name="role" {
                option value="patient" selected[role == "patient"] { "a patient" }
                option value="doctor" selected[role == "doctor"] { "a doctor" }
                option value="clinic_admin" selected[role == "clinic_admin"] { "running a clinic" }
            }
            (error_for(errors, "role"))
            button type="submit" { "Create my account" }
        }
    }
}

pub async fn register_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = Web::new(&s, &headers).await;
    let next = safe_next(q.get("next").map(String::as_str));
    w.ok("Create an account", register_form(&w, &next, &Form(HashMap::new()), &HashMap::new()))
}

pub async fn register(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    let next = safe_next(q.get("next").map(String::as_str));
    if !w.csrf_ok() {
        let errors = HashMap::from([("name".to_string(), "Your form expired. Please try again.".to_string())]);
        return w.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Create an account",
            register_form(&w, &next, &form, &errors),
        );
    }
    if let Err(e) = s.throttle.register(client) {
        let errors =
            HashMap::from([("email".to_string(), format!("Too many attempts from your network: {}.", e.detail))]);
        return w.render(e.status, "Create an account", register_form(&w, &next, &form, &errors));
    }
    let reg = Registration {
        email: form.text("email"),
        password: form.text("password"),
        name: form.text("name"),
        role: form.get("role").unwrap_or("patient").to_string(),
    };
    match s.app.register(reg).await {
        Ok(user) => {
            // Staff start where their work is, unless they were on their way somewhere.
            let next = match (next.as_str(), user.role) {
                ("/", medislot_domain::Role::Doctor) => "/doctor".to_string(),
                ("/", medislot_domain::Role::ClinicAdmin) => "/clinic".to_string(),
                _ => next,
            };
            sign_in(&s, client, &form.text("email"), &form.text("password"), &next)
                .await
                .unwrap_or_else(|_| Redirect::to("/login").into_response())
        }
        Err(AppError::Invalid(e)) => {
            let errors = field_errors(&e.0);
            w.render(StatusCode::UNPROCESSABLE_ENTITY, "Create an account", register_form(&w, &next, &form, &errors))
        }
        Err(AppError::Taken { field }) => {
            let errors =
                HashMap::from([(field.to_string(), "An account with this e-mail already exists.".to_string())]);
            w.render(StatusCode::CONFLICT, "Create an account", register_form(&w, &next, &form, &errors))
        }
        Err(e) => w.problem(&e),
    }
}

/// Signs out: the session token is revoked, the cookie cleared.
pub async fn logout(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    if w.csrf_ok() {
        if let Some(token) = s.cookies.read_session(&headers) {
            let _ = s.app.logout(&token).await;
        }
    }
    with_cookie(Redirect::to("/").into_response(), &s.cookies.session_cookie("", 0))
}
