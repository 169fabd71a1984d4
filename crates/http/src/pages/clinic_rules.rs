//! A clinic's rules for its patients, as its admins set them and as patients
//! read them before they book.

use super::{error_for, field_errors, Form, Web};
use crate::AppState;
use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use maud::{html, Markup};
use medislot_app::{AppError, ClinicRulesInput};
use medislot_domain::{ClinicId, ClinicRules};
use medislot_store::ClinicRecord;
use std::collections::HashMap;

/// The rule as patients read it.
pub fn cutoff_text(rules: &ClinicRules) -> String {
    match rules.cutoff_hours() {
        0 => "You can cancel or move it online until it starts.".into(),
        1 => "You can cancel or move it online until 1 hour before it starts; after that, call the clinic.".into(),
        h => format!("You can cancel or move it online until {h} hours before it starts; after that, call the clinic."),
    }
}

/// The no-show rule as patients read it, if the clinic has one.
pub fn noshow_text(rules: &ClinicRules) -> Option<String> {
    (rules.noshow_limit > 0).then(|| {
        let times = if rules.noshow_limit == 1 { "an appointment".to_string() } else { format!("{} appointments", rules.noshow_limit) };
        format!(
            "A patient who missed {times} here without cancelling in the last {} days books by request: the clinic confirms the booking.",
            rules.noshow_period_days
        )
    })
}

/// Past the cut-off: who to call.
pub fn call_the_clinic(c: &ClinicRecord) -> String {
    match &c.phone {
        Some(phone) => format!("please call {} ({phone}).", c.name),
        None => format!("please contact {}.", c.name),
    }
}

/// The form field, with what was typed (or the clinic's current rule).
pub fn cutoff_field(value: Option<&str>, errors: &HashMap<String, String>) -> Markup {
    html! {
        label for="cancel_cutoff_hours" { "Patients cancel or move online until … hours before the start (0: until it starts)" }
        input #cancel_cutoff_hours name="cancel_cutoff_hours" type="number" min="0" max="720" step="1" inputmode="numeric"
            value=(value.unwrap_or("0"));
        (error_for(errors, "cancel_cutoff_hours"))
    }
}

/// The hours typed, if any; a message in `errors` if they are not a whole number.
pub fn hours(form: &Form, errors: &mut HashMap<String, String>) -> Option<i64> {
    whole(form, "cancel_cutoff_hours", "must be a whole number of hours", errors)
}

/// A whole number typed in `field`, if any; a message in `errors` if it is not one.
fn whole(form: &Form, field: &str, message: &str, errors: &mut HashMap<String, String>) -> Option<i64> {
    let raw = form.text(field);
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    match raw.parse::<i64>() {
        Ok(h) => Some(h),
        Err(_) => {
            errors.insert(field.into(), message.into());
            None
        }
    }
}

fn page(w: &Web, c: &ClinicRecord, typed: Option<&Form>, errors: &HashMap<String, String>) -> Markup {
    let value = |field: &str, current: i64| typed.map_or(current.to_string(), |f| f.text(field));
    html! {
        h1 { "Rules of " (c.name) }
        p { "Patients see them before they book. Now: " (cutoff_text(&c.rules)) " " (noshow_text(&c.rules).unwrap_or_default()) }
        form method="post" action={ "/clinic/" (c.id) "/rules" } {
            (w.csrf_field())
            @if let Some(e) = errors.get("form") { p.error role="alert" { (e) } }
            (cutoff_field(Some(&value("cancel_cutoff_hours", c.rules.cutoff_hours())), errors))
            label for="noshow_limit" { "After this many no-shows, bookings need your confirmation (0: never)" }
            input #noshow_limit name="noshow_limit" type="number" min="0" max="20" step="1" inputmode="numeric"
                value=(value("noshow_limit", c.rules.noshow_limit));
            (error_for(errors, "noshow_limit"))
            label for="noshow_period_days" { "… counting the no-shows of the last … days" }
            input #noshow_period_days name="noshow_period_days" type="number" min="1" max="730" step="1" inputmode="numeric"
                value=(value("noshow_period_days", c.rules.noshow_period_days));
            (error_for(errors, "noshow_period_days"))
            button type="submit" { "Save" }
        }
        p { a href="/clinic" { "Back to your clinics" } }
    }
}

fn clinic_id(raw: &str) -> Result<ClinicId, AppError> {
    raw.parse().map_err(|_| AppError::NotFound("clinic"))
}

/// The rules form, for the clinic's admins.
pub async fn show(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let w = Web::new(&s, &headers).await;
    if w.me.is_none() {
        return Redirect::to(&format!("/login?next=/clinic/{}/rules", super::urlencode(&id))).into_response();
    }
    let clinic = match clinic_id(&id) {
        Ok(id) => s.app.clinic_to_run(w.me.as_ref(), id).await,
        Err(e) => Err(e),
    };
    match clinic {
        Ok(c) => w.ok("Clinic rules", page(&w, &c, None, &HashMap::new())),
        Err(e) => w.problem(&e),
    }
}

/// Saves the rules, then back to the clinics.
pub async fn save(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let w = Web::with_form(&s, &headers, Some(&form)).await;
    let c = match clinic_id(&id) {
        Ok(id) => s.app.clinic_to_run(w.me.as_ref(), id).await,
        Err(e) => Err(e),
    };
    let c = match c {
        Ok(c) => c,
        Err(e) => return w.problem(&e),
    };
    let mut errors = HashMap::new();
    if !w.csrf_ok() {
        errors.insert("form".to_string(), "Your form expired. Please try again.".to_string());
    } else if let Some(h) = hours(&form, &mut errors) {
        let noshow_limit = whole(&form, "noshow_limit", "must be a whole number", &mut errors);
        let noshow_period_days = whole(&form, "noshow_period_days", "must be a whole number of days", &mut errors);
        let input = ClinicRulesInput { cancel_cutoff_hours: h, noshow_limit, noshow_period_days };
        if !errors.is_empty() {
            return w.render(StatusCode::UNPROCESSABLE_ENTITY, "Clinic rules", page(&w, &c, Some(&form), &errors));
        }
        match s.app.set_clinic_rules(w.me.as_ref(), c.id, input).await {
            Ok(_) => return Redirect::to("/clinic").into_response(),
            Err(AppError::Invalid(e)) => errors.extend(field_errors(&e.0)),
            Err(e) => return w.problem(&e),
        }
    } else if errors.is_empty() {
        errors.insert("cancel_cutoff_hours".into(), "is required (0: until it starts)".into());
    }
    w.render(StatusCode::UNPROCESSABLE_ENTITY, "Clinic rules", page(&w, &c, Some(&form), &errors))
}
