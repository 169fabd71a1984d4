//! Data rights: everything held about the signed-in person, to download (the
//! JSON export and a calendar of their appointments), and the clinic's
//! appointments for its admins (CSV).

use crate::access::require;
use crate::{Actor, App, AppError};
use medislot_domain::{AppointmentId, ClinicId, DoctorId};
use medislot_store::{
    AppointmentQuery, AppointmentRecord, AuditRecord, ClinicRecord, DoctorRecord, NotificationRecord, Scope,
    UserRecord, WaitlistRecord,
};
use std::collections::HashMap;

/// Appointments read per page while exporting (every page is read).
const PAGE: u32 = 200;

/// Everything held about one person.
pub struct Export {
    pub user: UserRecord,
    /// Their appointments as a patient, each with its audit trail, oldest first.
    pub appointments: Vec<(AppointmentRecord, Vec<AuditRecord>)>,
    /// The doctors (with clinics) of those appointments.
    pub doctors: HashMap<DoctorId, (DoctorRecord, ClinicRecord)>,
    /// The video links they may be shown.
    pub videos: HashMap<AppointmentId, String>,
    pub notifications: Vec<NotificationRecord>,
    pub waitlist: Vec<WaitlistRecord>,
}

impl App {
    /// Every appointment of `scope`, page after page.
    async fn all_appointments(&self, scope: Scope) -> Result<Vec<AppointmentRecord>, AppError> {
        let mut out = Vec::new();
        loop {
            let q = AppointmentQuery {
                scope: scope.clone(),
                doctor: None,
                status: None,
                from: None,
                to: None,
                limit: PAGE,
                offset: out.len() as u64,
            };
            let (page, total) = self.store.list_appointments(&q).await?;
            let done = page.len() < PAGE as usize || out.len() as u64 + page.len() as u64 >= total;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Everything held about the caller: their account, appointments (with
    /// audit trails), notifications and waitlist entries.
    pub async fn export_mine(&self, actor: Option<&Actor>) -> Result<Export, AppError> {
        let actor = require(actor)?;
        let now = self.now();
        let mine = self.all_appointments(Scope::Patient(actor.id())).await?;
        let mut appointments = Vec::with_capacity(mine.len());
        for a in mine {
            let audit = self.store.audit_of(a.id).await?;
            appointments.push((crate::booking::as_of(a, now), audit));
        }
        let ids: Vec<DoctorId> = appointments.iter().map(|(a, _)| a.doctor_id).collect();
        let doctors = self.doctors_with_clinics(ids).await?;
        let items: Vec<AppointmentRecord> = appointments.iter().map(|(a, _)| a.clone()).collect();
        let videos = self.video_links(actor, &items, &doctors).await?;
        Ok(Export {
            user: actor.user.clone(),
            appointments,
            doctors,
            videos,
            notifications: self.store.notifications(actor.id(), 1000).await?,
            waitlist: self.store.waitlist_of_patient(actor.id()).await?,
        })
    }

    /// A clinic's appointments, for its admins (and platform admins), with
    /// their doctors and patients' names and e-mail addresses.
    pub async fn clinic_appointments(
        &self,
        actor: Option<&Actor>,
        clinic: ClinicId,
    ) -> Result<(ClinicRecord, Vec<(AppointmentRecord, String, UserRecord)>), AppError> {
        let actor = require(actor)?;
        let c = self.clinic(clinic).await?;
        if !actor.is_admin() && !self.administers(actor, c.id).await? {
            return Err(AppError::Forbidden("only the clinic's admins export its appointments"));
        }
        let now = self.now();
        let all = self.all_appointments(Scope::Clinics(vec![clinic])).await?;
        let ids: Vec<DoctorId> = all.iter().map(|a| a.doctor_id).collect();
        let doctors = self.doctors_with_clinics(ids).await?;
        let mut users: HashMap<medislot_domain::UserId, UserRecord> = HashMap::new();
        let mut out = Vec::with_capacity(all.len());
        for a in all {
            if !users.contains_key(&a.patient_id) {
                if let Some(u) = self.store.user_by_id(a.patient_id).await? {
                    users.insert(u.id, u);
                }
            }
            let Some(patient) = users.get(&a.patient_id).cloned() else { continue };
            let doctor = doctors.get(&a.doctor_id).map(|(d, _)| d.name.clone()).unwrap_or_default();
            out.push((crate::booking::as_of(a, now), doctor, patient));
        }
        Ok((c, out))
    }
}

/// What an erased account's row keeps: no address, no name, no password.
fn pseudonym(u: &UserRecord) -> UserRecord {
    let tag = u.id.0.simple().to_string();
    UserRecord {
        email: format!("erased-{tag}@erased.invalid"),
        name: format!("Erased patient {}", &tag[tag.len() - 8..]),
        password_hash: medislot_store::ERASED_PASSWORD.into(),
        ..u.clone()
    }
}

impl App {
    /// Erases the caller's account (a patient's; the password confirms it).
    /// Their coming appointments are cancelled (the clinic is told); the
    /// others stay for the clinic's records, with their audit trails, linked
    /// to a pseudonym that names no one; everything else about them goes.
    /// Run again after an interruption, it finishes the job.
    pub async fn erase_me(&self, actor: Option<&Actor>, password: &str) -> Result<(), AppError> {
        let actor = require(actor)?;
        if actor.role() != medislot_domain::Role::Patient {
            return Err(AppError::Forbidden(
                "staff accounts hold the clinic's data: ask a platform admin to close yours",
            ));
        }
        if !crate::accounts::verify_password(password.to_string(), actor.user.password_hash.clone()).await {
            return Err(medislot_domain::Invalid::field("password", "is not your password").into());
        }
        let now = self.now();
        let coming: Vec<AppointmentRecord> = self
            .all_appointments(Scope::Patient(actor.id()))
            .await?
            .into_iter()
            .map(|a| crate::booking::as_of(a, now))
            .filter(|a| a.status.is_active() && a.end > now)
            .collect();
        for a in coming {
            let decide: medislot_store::Decide = Box::new(move |a: &AppointmentRecord| {
                let status = crate::booking::transition(a, medislot_domain::Action::Cancel)?;
                Ok(medislot_store::AppointmentChange {
                    status,
                    start: a.start,
                    end: a.end,
                    cancel_reason: Some("the patient closed their account".into()),
                    event: "appointment.cancelled",
                    detail: Some("cancelled as the patient erased their account".into()),
                })
            });
            match self.store.modify_appointment(a.id, now, Some(actor.id()), decide).await {
                Ok(done) => self.availability_changed(done.doctor_id),
                // Changed meanwhile into something that cannot be cancelled: it stays as it is.
                Err(medislot_store::StoreError::Rejected(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.store.erase_user(&pseudonym(&actor.user), &actor.user.email).await?;
        // Its sessions end here at once (on other nodes within the token cache's few seconds).
        self.tokens.forget_user(actor.id());
        Ok(())
    }
}
