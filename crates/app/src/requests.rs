//! The clinic's no-show rule: a patient who missed `noshow_limit`
//! appointments at a clinic within its period books there only by request —
//! a `pending` appointment that holds its time until the clinic's staff
//! accept it (booked) or decline it (cancelled, the patient told why).

use crate::access::Actor;
use crate::booking::Bookable;
use crate::{App, AppError};
use medislot_domain::appointment::Action;
use medislot_domain::{AppointmentId, AppointmentStatus, UserId};
use medislot_store::{AppointmentChange, AppointmentQuery, AppointmentRecord, Decide, Scope};
use std::collections::HashMap;

/// How many no-shows are read to apply the rule (well above its highest limit).
const NOSHOWS_READ: u32 = 100;

impl App {
    /// How many appointments at the slot's clinic the patient missed within
    /// the clinic's period (none read without a rule).
    pub(crate) async fn noshows_at(&self, patient: UserId, b: &Bookable) -> Result<usize, AppError> {
        let rules = b.clinic.rules;
        if rules.noshow_limit == 0 {
            return Ok(0);
        }
        let q = AppointmentQuery {
            scope: Scope::Patient(patient),
            doctor: None,
            status: Some(AppointmentStatus::Noshow),
            from: Some(rules.noshows_since(self.now())),
            to: None,
            limit: NOSHOWS_READ,
            offset: 0,
        };
        let (missed, _) = self.store.list_appointments(&q).await?;
        let mut clinic_of = HashMap::new();
        let mut n = 0;
        for a in missed {
            let clinic = match clinic_of.get(&a.doctor_id) {
                Some(c) => *c,
                None => {
                    let c = self.store.doctor(a.doctor_id).await?.map(|d| d.clinic_id);
                    clinic_of.insert(a.doctor_id, c);
                    c
                }
            };
            n += usize::from(clinic == Some(b.clinic.id));
        }
        Ok(n)
    }

    /// Whether the patient's online booking of `b` is a request to the clinic.
    pub(crate) async fn books_by_request(&self, patient: UserId, b: &Bookable) -> Result<bool, AppError> {
        Ok(b.clinic.rules.needs_confirmation(self.noshows_at(patient, b).await?))
    }

    /// The clinic's staff (the doctor, the clinic's admins, platform admins)
    /// accept a request (it is booked) or decline it (cancelled, with the reason).
    pub async fn answer_request(
        &self,
        actor: Option<&Actor>,
        id: AppointmentId,
        accept: bool,
        reason: Option<String>,
        if_match: Option<i64>,
    ) -> Result<AppointmentRecord, AppError> {
        let (actor, staff, _) = self.for_change(actor, id).await?;
        if !staff {
            return Err(AppError::Forbidden("only the clinic's staff accept or decline a request"));
        }
        let reason = crate::booking::check_reason(reason.as_deref().unwrap_or(""))?;
        let now = self.now();
        let decide: Decide = Box::new(move |a: &AppointmentRecord| {
            crate::booking::check_version(a, if_match)?;
            if !(a.status == AppointmentStatus::Pending && a.awaiting_clinic) {
                return Err(AppError::Conflict("this appointment is no request waiting for the clinic").rejected());
            }
            let (action, event, detail) = if accept {
                (Action::Confirm, "appointment.booked", "request accepted by the clinic")
            } else {
                (Action::Cancel, "appointment.cancelled", "request declined by the clinic")
            };
            let status = crate::booking::transition(a, action)?;
            let cancel_reason = (!accept).then(|| {
                if reason.is_empty() {
                    "declined by the clinic".to_string()
                } else {
                    format!("declined by the clinic: {reason}")
                }
            });
            Ok(AppointmentChange {
                status,
                start: a.start,
                end: a.end,
                cancel_reason,
                event,
                detail: Some(detail.into()),
            })
        });
        let a = self.store.modify_appointment(id, now, Some(actor.id()), decide).await?;
        self.availability_changed(a.doctor_id);
        Ok(a)
    }
}
