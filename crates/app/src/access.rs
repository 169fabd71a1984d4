//! Who is calling, and what they may see or change (P5).

use crate::{App, AppError};
use medislot_domain::{ClinicId, Role, UserId};
use medislot_store::{AppointmentRecord, DoctorRecord, UserRecord};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: UserRecord,
}

impl Actor {
    pub fn id(&self) -> UserId {
        self.user.id
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }
}

/// The caller's relation to clinics, doctors and appointments.
impl App {
    pub(crate) async fn administers(&self, actor: &Actor, clinic: ClinicId) -> Result<bool, AppError> {
        if actor.role() != Role::ClinicAdmin {
            return Ok(false);
        }
        Ok(self.store.clinics_administered_by(actor.id()).await?.contains(&clinic))
    }

    /// May change this doctor's profile and schedule, and run their agenda.
    pub(crate) async fn manages_doctor(&self, actor: &Actor, doctor: &DoctorRecord) -> Result<bool, AppError> {
        Ok(actor.is_admin() || self.on_doctors_side(actor, doctor).await?)
    }

    /// The doctor themself or an admin of their clinic: the doctor's side of
    /// their appointments (platform admins are not).
    pub(crate) async fn on_doctors_side(&self, actor: &Actor, doctor: &DoctorRecord) -> Result<bool, AppError> {
        // An invited doctor does not manage the profile before accepting the invitation.
        let own = doctor.user_id == Some(actor.id()) && doctor.membership != medislot_domain::Membership::Invited;
        Ok(own || self.administers(actor, doctor.clinic_id).await?)
    }

    /// May read this appointment: its patient, its doctor, the doctor's clinic admins, platform admins.
    pub(crate) async fn can_see(&self, actor: &Actor, a: &AppointmentRecord) -> Result<bool, AppError> {
        if actor.is_admin() || a.patient_id == actor.id() {
            return Ok(true);
        }
        if matches!(actor.role(), Role::Doctor | Role::ClinicAdmin) {
            if let Some(doctor) = self.store.doctor(a.doctor_id).await? {
                return self.manages_doctor(actor, &doctor).await;
            }
        }
        Ok(false)
    }
}

pub(crate) fn require(actor: Option<&Actor>) -> Result<&Actor, AppError> {
    actor.ok_or(AppError::Unauthenticated)
}
