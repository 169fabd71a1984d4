//! Visit types: a doctor's side sets them (the whole list at once, like the
//! schedule); slot lists and bookings name one, or take the doctor's default;
//! a booking checks that the patient may book it online and keeps their
//! answers to its intake questions with the appointment.

use crate::access::require;
use crate::booking::Bookable;
use crate::{Actor, App, AppError};
use medislot_domain::visit_type::{parse_visit_types, VisitTypesInput};
use medislot_domain::{default_visit, AppointmentStatus, BookableBy, DoctorId, Invalid, UserId, VisitType};
use medislot_store::{AppointmentQuery, DoctorRecord, Scope};
use std::collections::BTreeMap;

/// The visit a booking asks for: its answers to the intake questions, by question id.
pub type VisitRequest = BTreeMap<String, serde_json::Value>;

/// The visit type a slot list or booking is for. `named`: the code the client
/// gave (a `visit_type` parameter, or carried in a slot id). A doctor without
/// visit types: none (the schedule's own slots). With some, and none named:
/// the default (the first one patients may book online); if patients may book
/// none of them online, a slot of the schedule itself is no visit at all.
pub(crate) fn visit_for<'d>(
    doctor: &'d DoctorRecord,
    named: Option<&str>,
    field: &str,
) -> Result<Option<&'d VisitType>, AppError> {
    if doctor.visit_types.is_empty() {
        return match named {
            Some(_) => Err(Invalid::field(field, "this doctor has no visit types").into()),
            None => Ok(None),
        };
    }
    match named {
        Some(code) => match doctor.visit_type(code) {
            Some(v) => Ok(Some(v)),
            None => Err(Invalid::field(field, format!("this doctor offers no visit type {code:?} (any more)")).into()),
        },
        None => listed_visit(doctor).ok_or(AppError::VisitRestricted(
            "this doctor's visits are booked by the clinic's staff: please call the clinic",
        )),
    }
}

/// What a doctor's slots are listed for when no visit type is named: the
/// schedule's own slots (`Some(None)`), the default visit type's, or — when
/// patients may book none of the doctor's visit types online — nothing (`None`).
pub(crate) fn listed_visit(doctor: &DoctorRecord) -> Option<Option<&VisitType>> {
    if doctor.visit_types.is_empty() {
        return Some(None);
    }
    default_visit(&doctor.visit_types).map(Some)
}

/// The clinic's rules as they hold for a visit of `code` with `doctor` (a
/// visit type may have a cut-off of its own).
pub fn rules_for_visit(
    clinic: &medislot_store::ClinicRecord,
    doctor: &DoctorRecord,
    code: Option<&str>,
) -> medislot_domain::ClinicRules {
    match code.and_then(|c| doctor.visit_type(c)) {
        Some(v) => v.rules(clinic.rules),
        None => clinic.rules,
    }
}

/// What a patient is told when a visit type is not theirs to book online.
fn refusal(b: BookableBy) -> &'static str {
    match b {
        BookableBy::NewPatients => "this visit type is for patients new to this doctor: choose another visit type",
        BookableBy::ExistingPatients => {
            "this visit type is for patients this doctor has already seen: book a first visit instead"
        }
        _ => "this visit type is booked by the clinic's staff: please call the clinic",
    }
}

impl App {
    /// The doctor's visit types (public for a listed doctor, like the profile).
    pub async fn visit_types(&self, actor: Option<&Actor>, doctor: DoctorId) -> Result<DoctorRecord, AppError> {
        self.doctor(actor, doctor).await
    }

    /// Replaces the doctor's visit types (the doctor, or their clinic's
    /// admins). `if_match`: the doctor's version, as for the profile.
    pub async fn set_visit_types(
        &self,
        actor: Option<&Actor>,
        doctor: DoctorId,
        input: &VisitTypesInput,
        if_match: Option<i64>,
    ) -> Result<DoctorRecord, AppError> {
        let actor = require(actor)?;
        let mut d = self.doctor(Some(actor), doctor).await?;
        if !self.on_doctors_side(actor, &d).await? {
            return Err(AppError::Forbidden("only the doctor and their clinic's admins set the doctor's visit types"));
        }
        if if_match.is_some_and(|v| v != d.version) {
            return Err(AppError::PreconditionFailed { current: d.version });
        }
        d.visit_types = parse_visit_types(input, &d.modes)?;
        self.save_doctor(d).await
    }

    /// Whether the doctor has seen the patient: an appointment of theirs
    /// that took place (arrived or fulfilled).
    async fn seen_before(&self, patient: UserId, doctor: DoctorId) -> Result<bool, AppError> {
        for status in [AppointmentStatus::Fulfilled, AppointmentStatus::Arrived] {
            let q = AppointmentQuery {
                scope: Scope::Patient(patient),
                doctor: Some(doctor),
                status: Some(status),
                from: None,
                to: None,
                limit: 1,
                offset: 0,
            };
            if !self.store.list_appointments(&q).await?.0.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Checks that `patient` may book the slot's visit type online.
    pub(crate) async fn admit(&self, patient: UserId, b: &Bookable) -> Result<(), AppError> {
        let Some(v) = &b.visit else { return Ok(()) };
        let admitted = match v.bookable_by {
            BookableBy::Everyone => true,
            BookableBy::Staff => false,
            by => by.admits(self.seen_before(patient, b.doctor.id).await?),
        };
        if admitted {
            Ok(())
        } else {
            Err(AppError::VisitRestricted(refusal(v.bookable_by)))
        }
    }
}
