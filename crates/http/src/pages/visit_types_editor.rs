//! The doctor's visit types page (the doctor, their clinic's admins): the
//! list, and a form to add one or change one, with up to five intake
//! questions; each change saves the whole list, as the API does.

use super::staff::{managed_doctor, signed_in};
use super::{error_for, Form, Web};
use crate::AppState;
use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use maud::{html, Markup};
use medislot_app::AppError;
use medislot_domain::visit_type::{QuestionInput, QuestionKind, VisitTypeInput, VisitTypesInput};
use medislot_domain::{BookableBy, Mode, VisitType};
use medislot_store::DoctorRecord;
use std::collections::HashMap;

/// Questions one form asks about (more through the API).
const FORM_QUESTIONS: usize = 5;

fn page_url(q: &HashMap<String, String>) -> String {
    match q.get("doctor") {
        Some(d) => format!("/doctor/visit-types?doctor={}", super::urlencode(d)),
        None => "/doctor/visit-types".into(),
    }
}

fn with(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

fn who_text(b: BookableBy) -> &'static str {
    match b {
        BookableBy::Everyone => "any patient online",
        BookableBy::NewPatients => "new patients online",
        BookableBy::ExistingPatients => "patients you have seen, online",
        BookableBy::Staff => "the clinic's staff only",
    }
}

fn list(w: &Web, d: &DoctorRecord, url: &str) -> Markup {
    html! {
        @if d.visit_types.is_empty() {
            p { "No visit types yet: patients book the slots of your schedule as they are." }
        }
        @for v in &d.visit_types {
            div.card data-visit-type=(v.code) {
                p { strong { (v.name) } " · " (v.duration_minutes) " minutes · "
                    (v.modes.iter().map(|m| super::mode_text(*m)).collect::<Vec<_>>().join(", "))
                    " · booked by " (who_text(v.bookable_by)) }
                @if !v.questions.is_empty() {
                    ul { @for q in &v.questions { li { (q.text) @if q.required { " (required)" } } } }
                }
                p {
                    a href=(with(url, &format!("edit={}", v.code))) { "Change" } " "
                    form.inline method="post" action=(url) {
                        (w.csrf_field())
                        input type="hidden" name="version" value=(d.version);
                        input type="hidden" name="remove" value=(v.code);
                        button.secondary type="submit" aria-label={ "Remove " (v.name) } { "Remove" }
                    }
                }
            }
        }
    }
}

/// The form, filled from `typed` (what was sent) or the visit type being changed.
fn editor(
    w: &Web,
    d: &DoctorRecord,
    url: &str,
    editing: Option<&VisitType>,
    typed: Option<&Form>,
    errors: &HashMap<String, String>,
) -> Markup {
    let start = editing.map(VisitTypeInput::from).unwrap_or_default();
    let value = |k: &str, fallback: String| typed.map_or(fallback, |f| f.text(k));
    let checked_mode =
        |m: Mode| typed.map_or(start.modes.iter().any(|x| x == m.as_str()), |f| f.get(m.as_str()).is_some());
    let by = value("bookable_by", start.bookable_by.clone().unwrap_or_else(|| "everyone".into()));
    let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    html! {
        form method="post" action=(url) {
            (w.csrf_field())
            input type="hidden" name="version" value=(d.version);
            @if let Some(v) = editing { input type="hidden" name="original" value=(v.code); }
            h2 { @if let Some(v) = editing { "Change “" (v.name) "”" } @else { "Add a visit type" } }
            label for="name" { "Name patients see" }
            input #name name="name" required maxlength="100" value=(value("name", start.name.clone()));
            (error_for(errors, "name"))
            label for="code" { "Short code (letters, digits, dashes)" }
            input #code name="code" required pattern="[a-z0-9][a-z0-9-]{1,39}" maxlength="40" value=(value("code", start.code.clone()));
            (error_for(errors, "code"))
            label for="duration_minutes" { "Length in minutes" }
            input #duration_minutes name="duration_minutes" type="number" min="5" max="480" required
                value=(value("duration_minutes", if editing.is_some() { start.duration_minutes.to_string() } else { "30".into() }));
            (error_for(errors, "duration_minutes"))
            fieldset {
                legend { "Offered" }
                @for m in &d.modes {
                    label { input type="checkbox" name=(m.as_str()) value="1" checked[checked_mode(*m) || (editing.is_none() && typed.is_none())]; " " (super::mode_text(*m)) }
                }
            }
            (error_for(errors, "modes"))
            label for="bookable_by" { "Who books it" }
            select #bookable_by name="bookable_by" {
                @for (name, b) in BookableBy::NAMES {
                    option value=(name) selected[by == name] { (who_text(b)) }
                }
            }
            label for="min_notice_minutes" { "Minimum notice in minutes (empty: the schedule's)" }
            input #min_notice_minutes name="min_notice_minutes" type="number" min="0" max="10080" value=(value("min_notice_minutes", number(start.min_notice_minutes)));
            (error_for(errors, "min_notice_minutes"))
            label for="horizon_days" { "Bookable up to this many days ahead (empty: the schedule's)" }
            input #horizon_days name="horizon_days" type="number" min="1" max="366" value=(value("horizon_days", number(start.horizon_days)));
            (error_for(errors, "horizon_days"))
            label for="cancel_cutoff_hours" { "Patients cancel or move it online until … hours before (empty: the clinic's rule)" }
            input #cancel_cutoff_hours name="cancel_cutoff_hours" type="number" min="0" max="720" value=(value("cancel_cutoff_hours", number(start.cancel_cutoff_hours)));
            (error_for(errors, "cancel_cutoff_hours"))
            h3 { "Questions before the visit (optional)" }
            @for i in 0..FORM_QUESTIONS {
                @let q = start.questions.get(i).cloned().unwrap_or_default();
                @let k = |f: &str| format!("q{i}_{f}");
                @let kind = value(&k("kind"), if q.kind.is_empty() { "text".into() } else { q.kind.clone() });
                fieldset.question {
                    legend { "Question " (i + 1) }
                    input type="hidden" name=(k("id")) value=(value(&k("id"), q.id.clone()));
                    label for=(k("text")) { "Question" }
                    input id=(k("text")) name=(k("text")) maxlength="300" value=(value(&k("text"), q.text.clone()));
                    (error_for(errors, &k("text")))
                    label for=(k("kind")) { "Answer" }
                    select id=(k("kind")) name=(k("kind")) {
                        @for (name, label) in [("text", "Free text"), ("choice", "One of the options"), ("yes_no", "Yes or no")] {
                            option value=(name) selected[kind == name] { (label) }
                        }
                    }
                    label for=(k("options")) { "Options, one per line (for “one of the options”)" }
                    textarea id=(k("options")) name=(k("options")) rows="2" { (value(&k("options"), q.options.join("\n"))) }
                    (error_for(errors, &k("options")))
                    label { input type="checkbox" name=(k("required")) value="1" checked[typed.map_or(q.required, |f| f.get(&k("required")).is_some())]; " Required" }
                }
            }
            button type="submit" { @if editing.is_some() { "Save changes" } @else { "Add it" } }
            @if editing.is_some() { " " a href=(url) { "Cancel" } }
        }
    }
}

fn body(
    w: &Web,
    d: &DoctorRecord,
    q: &HashMap<String, String>,
    typed: Option<&Form>,
    errors: &HashMap<String, String>,
) -> Markup {
    let url = page_url(q);
    let editing =
        typed.and_then(|f| f.get("original")).or(q.get("edit").map(String::as_str)).and_then(|c| d.visit_type(c));
    html! {
        h1 { "Visit types of " (d.name) }
        @if q.get("notice").is_some_and(|n| n == "saved") { p.ok role="status" { "Saved." } }
        @if let Some(e) = errors.get("form") { p.error role="alert" { (e) } }
        p { "Patients first choose the type of visit; its length decides which times are free." }
        (list(w, d, &url))
        (editor(w, d, &url, editing, typed, errors))
        p { a href={ "/doctor/schedule" @if let Some(id) = q.get("doctor") { "?doctor=" (super::urlencode(id)) } } { "Back to the schedule" } }
    }
}

pub async fn page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let w = Web::new(&s, &headers).await;
    if let Some(r) = signed_in(&w, "/doctor/visit-types") {
        return r;
    }
    match managed_doctor(&s, &w, &q).await {
        Ok(d) => w.ok("Visit types", body(&w, &d, &q, None, &HashMap::new())),
        Err(e) => w.problem(&e),
    }
}

/// The visit type the form describes.
fn from_form(form: &Form, modes: &[Mode], taken: &[String]) -> VisitTypeInput {
    let number = |k: &str| form.get(k).map(|v| v.trim().parse::<i64>().unwrap_or(-1));
    let mut ids: Vec<String> = taken.to_vec();
    let questions = (0..FORM_QUESTIONS)
        .filter_map(|i| {
            let k = |f: &str| format!("q{i}_{f}");
            let text = form.text(&k("text"));
            if text.trim().is_empty() {
                return None;
            }
            let kind = form.get(&k("kind")).unwrap_or("text").to_string();
            let id = match form.get(&k("id")) {
                Some(id) => id.to_string(),
                None => (1..).map(|n| format!("q{n}")).find(|c| !ids.contains(c)).unwrap_or_default(),
            };
            ids.push(id.clone());
            let options = if kind == QuestionKind::Choice.as_str() {
                form.text(&k("options")).lines().map(str::trim).filter(|o| !o.is_empty()).map(String::from).collect()
            } else {
                vec![]
            };
            Some(QuestionInput { id, text, kind, options, required: form.get(&k("required")).is_some() })
        })
        .collect();
    VisitTypeInput {
        code: form.text("code").trim().to_string(),
        name: form.text("name"),
        duration_minutes: number("duration_minutes").unwrap_or(0),
        modes: modes.iter().filter(|m| form.get(m.as_str()).is_some()).map(|m| m.as_str().to_string()).collect(),
        bookable_by: form.get("bookable_by").map(String::from),
        questions,
        min_notice_minutes: number("min_notice_minutes"),
        horizon_days: number("horizon_days"),
        cancel_cutoff_hours: number("cancel_cutoff_hours"),
    }
}

/// The API's field names for the visit type at `index`, as the form names them.
fn form_errors(e: &medislot_domain::Invalid, index: usize) -> HashMap<String, String> {
    let prefix = format!("visit_types[{index}].");
    let mut out = HashMap::new();
    for f in &e.0 {
        let Some(rest) = f.field.strip_prefix(&prefix) else {
            out.entry("form".to_string()).or_insert_with(|| format!("{}: {}", f.field, f.message));
            continue;
        };
        let name = match rest.strip_prefix("questions[") {
            Some(q) => {
                let (n, field) = q.split_once("].").unwrap_or((q.trim_end_matches(']'), "text"));
                let field = if field.starts_with("options") { "options" } else { field };
                format!("q{n}_{field}")
            }
            None if rest.starts_with("modes") => "modes".into(),
            None => rest.to_string(),
        };
        out.entry(name).or_insert_with(|| f.message.clone());
    }
    out
}

pub async fn save(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    raw: Bytes,
) -> Response {
    let form = Form::parse(&raw);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    let d = match managed_doctor(&s, &w, &q).await {
        Ok(d) => d,
        Err(e) => return w.problem(&e),
    };
    let mut errors = HashMap::new();
    let removing = form.get("remove").is_some();
    if !w.csrf_ok() {
        errors.insert("form".to_string(), "Your form expired. Please try again.".to_string());
    } else {
        let mut all: Vec<VisitTypeInput> = d.visit_types.iter().map(VisitTypeInput::from).collect();
        let mut index = all.len();
        if let Some(code) = form.get("remove") {
            all.retain(|v| v.code != code);
        } else {
            let original = form.get("original");
            let taken: Vec<String> = d
                .visit_types
                .iter()
                .find(|v| Some(v.code.as_str()) == original)
                .map(|v| v.questions.iter().map(|q| q.id.clone()).collect())
                .unwrap_or_default();
            let typed = from_form(&form, &d.modes, &taken);
            match all.iter().position(|v| Some(v.code.as_str()) == original) {
                Some(i) => {
                    all[i] = typed;
                    index = i;
                }
                None => all.push(typed),
            }
        }
        let version = form.text("version").parse().ok();
        match s.app.set_visit_types(w.me.as_ref(), d.id, &VisitTypesInput { visit_types: all }, version).await {
            Ok(_) => return Redirect::to(&with(&page_url(&q), "notice=saved")).into_response(),
            Err(AppError::Invalid(e)) => errors.extend(form_errors(&e, index)),
            Err(AppError::PreconditionFailed { .. }) => {
                errors.insert(
                    "form".into(),
                    "Someone changed these visit types meanwhile: here they are as they are now.".into(),
                );
            }
            Err(e) => return w.problem(&e),
        }
    }
    let now = managed_doctor(&s, &w, &q).await.unwrap_or(d);
    let typed = (!removing).then_some(&form);
    w.render(StatusCode::UNPROCESSABLE_ENTITY, "Visit types", body(&w, &now, &q, typed, &errors))
}
