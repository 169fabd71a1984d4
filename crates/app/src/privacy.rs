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
