//! Visit types in the pages: the choice of visit on a doctor's week, the
//! intake questions on the hold to confirm, the answers on the appointment.

use super::Form;
use maud::{html, Markup};
use medislot_app::VisitRequest;
use medislot_domain::{visit_type::QuestionKind, BookableBy, VisitType};
use medislot_store::{DoctorRecord, Visit};
use std::collections::HashMap;

/// "45 minutes".
fn length(v: &VisitType) -> String {
    format!("{} minutes", v.duration_minutes)
}

/// Who may book it online, for patients to read; none for everyone.
fn who(b: BookableBy) -> Option<&'static str> {
    match b {
        BookableBy::Everyone => None,
        BookableBy::NewPatients => Some("for new patients"),
        BookableBy::ExistingPatients => Some("for patients the doctor has seen"),
        BookableBy::Staff => Some("booked by the clinic: call them"),
    }
}

/// The doctor's visit types to choose from, the chosen one marked; each one
/// patients may book leads to its week (`href`), the clinic's own are named.
pub fn picker(d: &DoctorRecord, chosen: Option<&VisitType>, href: impl Fn(&VisitType) -> String) -> Markup {
    html! {
        @if !d.visit_types.is_empty() {
            nav.visits aria-label="Type of visit" {
                h2 { "Type of visit" }
                ul {
                    @for v in &d.visit_types {
                        li {
                            @if v.bookable_by == BookableBy::Staff {
                                span.muted { (v.name) " · " (length(v)) " · " (who(v.bookable_by).unwrap_or_default()) }
                            } @else if chosen.is_some_and(|c| c.code == v.code) {
                                strong aria-current="true" { (v.name) " · " (length(v)) }
                                @if let Some(w) = who(v.bookable_by) { " · " span.muted { (w) } }
                            } @else {
                                a href=(href(v)) { (v.name) " · " (length(v)) }
                                @if let Some(w) = who(v.bookable_by) { " · " span.muted { (w) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The visit type of `code` among the doctor's, if they still offer it.
pub fn of<'d>(d: &'d DoctorRecord, code: Option<&str>) -> Option<&'d VisitType> {
    code.and_then(|c| d.visit_type(c))
}

fn field(id: &str) -> String {
    format!("intake.{id}")
}

/// The visit type's questions as form fields, with what was answered
/// (`form`) and the errors by field (`intake.<id>`) when the form comes back.
pub fn questions(v: Option<&VisitType>, form: Option<&Form>, errors: &HashMap<String, String>) -> Markup {
    let given = |id: &str| form.and_then(|f| f.get(&field(id))).unwrap_or("").to_string();
    html! {
        @if let Some(v) = v.filter(|v| !v.questions.is_empty()) {
            fieldset.intake {
                legend { "A few questions from the doctor" }
                @for q in &v.questions {
                    @let name = field(&q.id);
                    @let error = errors.get(&name);
                    @let described = error.map(|_| format!("{name}-error"));
                    @match q.kind {
                        QuestionKind::YesNo => {
                            fieldset.yesno aria-describedby=[described.as_deref()] {
                                legend { (q.text) @if q.required { " (required)" } }
                                @for (value, label) in [("yes", "Yes"), ("no", "No")] {
                                    label {
                                        input type="radio" name=(name) value=(value) required[q.required] checked[given(&q.id) == value];
                                        " " (label)
                                    }
                                }
                            }
                        }
                        QuestionKind::Choice => {
                            label for=(name) { (q.text) @if q.required { " (required)" } }
                            select id=(name) name=(name) required[q.required] aria-describedby=[described.as_deref()] {
                                option value="" { "Choose…" }
                                @for o in &q.options {
                                    option value=(o) selected[given(&q.id) == *o] { (o) }
                                }
                            }
                        }
                        QuestionKind::Text => {
                            label for=(name) { (q.text) @if q.required { " (required)" } }
                            textarea id=(name) name=(name) rows="2" maxlength="1000" required[q.required] aria-describedby=[described.as_deref()] { (given(&q.id)) }
                        }
                    }
                    (super::error_for(errors, &name))
                }
            }
        }
    }
}

/// The answers a form gives to the visit type's questions, as the booking takes them.
pub fn answers(v: Option<&VisitType>, form: &Form) -> Option<VisitRequest> {
    let v = v.filter(|v| !v.questions.is_empty())?;
    let mut out = VisitRequest::new();
    for q in &v.questions {
        let Some(given) = form.get(&field(&q.id)) else { continue };
        let value = match (q.kind, given) {
            (QuestionKind::YesNo, "yes") => serde_json::Value::Bool(true),
            (QuestionKind::YesNo, "no") => serde_json::Value::Bool(false),
            // Anything else is refused by the booking, naming the question.
            _ => serde_json::Value::String(given.to_string()),
        };
        out.insert(q.id.clone(), value);
    }
    Some(out)
}

/// The visit booked and the patient's answers, as the appointment keeps them.
pub fn booked(visit: Option<&Visit>) -> Markup {
    html! {
        @if let Some(v) = visit {
            p.visit { "Visit: " strong { (v.name) } }
            @if !v.intake.is_empty() {
                dl.intake {
                    @for a in &v.intake {
                        dt { (a.text) }
                        dd { (a.answer) }
                    }
                }
            }
        }
    }
}
