//! Bulk loads through `COPY … FROM STDIN (FORMAT csv)`: one statement and one
//! stream per table instead of a round trip per row (seeding a million
//! doctors in minutes). Values are written as PostgreSQL reads them in CSV:
//! every text quoted, NULL as an empty unquoted field.

use super::{map_err, Tx};
use crate::search::SearchEntry;
use crate::{AppointmentRecord, DoctorRecord, Result};
use jiff::Timestamp;
use std::fmt::Write;

/// One CSV line being built.
#[derive(Default)]
struct Line(String);

impl Line {
    fn sep(&mut self) {
        if !self.0.is_empty() {
            self.0.push(',');
        }
    }
    fn text(&mut self, s: &str) -> &mut Self {
        self.sep();
        self.0.push('"');
        self.0.push_str(&s.replace('"', "\"\""));
        self.0.push('"');
        self
    }
    fn opt_text(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }
    fn null(&mut self) -> &mut Self {
        self.sep();
        self
    }
    fn raw(&mut self, v: impl std::fmt::Display) -> &mut Self {
        self.sep();
        let _ = write!(self.0, "{v}");
        self
    }
    fn time(&mut self, t: Timestamp) -> &mut Self {
        self.raw(t)
    }
    fn opt_time(&mut self, t: Option<Timestamp>) -> &mut Self {
        match t {
            Some(t) => self.time(t),
            None => self.null(),
        }
    }
    /// A `text[]` literal: `{"a","b"}`, each element quoted for the array parser.
    fn array<'a>(&mut self, items: impl IntoIterator<Item = &'a str>) -> &mut Self {
        let inner: Vec<String> =
            items.into_iter().map(|i| format!("\"{}\"", i.replace('\\', "\\\\").replace('"', "\\\""))).collect();
        self.text(&format!("{{{}}}", inner.join(",")))
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.sep();
        self.0.push_str("\\x");
        for byte in b {
            let _ = write!(self.0, "{byte:02x}");
        }
        self
    }
    fn end(&mut self, out: &mut String) {
        out.push_str(&self.0);
        out.push('\n');
        self.0.clear();
    }
}

async fn copy(tx: &mut Tx, statement: &str, data: String) -> Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let mut c = tx.copy_in_raw(statement).await.map_err(map_err)?;
    if let Err(e) = c.send(data.into_bytes()).await {
        let _ = c.abort("the load failed").await;
        return Err(map_err(e));
    }
    c.finish().await.map_err(map_err)?;
    Ok(())
}

pub(super) async fn doctors(tx: &mut Tx, doctors: &[DoctorRecord]) -> Result<()> {
    let mut out = String::new();
    let mut l = Line::default();
    for d in doctors {
        l.raw(d.id.0)
            .opt_text(d.user_id.map(|u| u.0.to_string()).as_deref())
            .raw(d.clinic_id.0)
            .text(&d.name)
            .array(d.specialties.iter().map(String::as_str))
            .array(d.languages.iter().map(String::as_str))
            .array(d.modes.iter().map(|m| m.as_str()))
            .text(&d.licence_number)
            .text(&d.bio)
            .text(d.verification.as_str())
            .opt_text(d.verification_reason.as_deref())
            .text(d.membership.as_str())
            .text(&serde_json::to_string(&d.schedule).unwrap_or_else(|_| "null".into()))
            .opt_text(d.video_room_url.as_deref())
            .text(&serde_json::to_string(&d.visit_types).unwrap_or_else(|_| "[]".into()))
            .raw(d.version)
            .time(d.created_at)
            .time(d.updated_at)
            .end(&mut out);
    }
    copy(
        tx,
        "COPY doctors (id, user_id, clinic_id, name, specialties, languages, modes, licence_number, bio,
                       verification, verification_reason, membership, schedule, video_room_url,
                       visit_types, version, created_at, updated_at)
         FROM STDIN (FORMAT csv)",
        out,
    )
    .await
}

/// Seeded appointments (booked, not holds).
pub(super) async fn appointments(tx: &mut Tx, appointments: &[AppointmentRecord]) -> Result<()> {
    let mut out = String::new();
    let mut l = Line::default();
    for a in appointments {
        l.raw(a.id.0)
            .raw(a.doctor_id.0)
            .raw(a.patient_id.0)
            .time(a.start)
            .time(a.end)
            .text(a.mode.as_str())
            .text(&a.reason)
            .text(a.status.as_str())
            .raw(a.version)
            .text(&a.origin_region)
            .time(a.created_at)
            .time(a.updated_at)
            .opt_text(a.video_room.as_deref())
            .opt_text(a.visit.as_ref().map(|v| v.code.as_str()))
            .opt_text(a.visit.as_ref().map(|v| v.name.as_str()))
            .opt_text(
                a.visit.as_ref().map(|v| serde_json::to_string(&v.intake).unwrap_or_else(|_| "[]".into())).as_deref(),
            )
            .end(&mut out);
    }
    copy(
        tx,
        "COPY appointments (id, doctor_id, patient_id, start_at, end_at, mode, reason, status, version,
                            origin_region, created_at, updated_at, video_room, visit_type, visit_type_name, intake)
         FROM STDIN (FORMAT csv)",
        out,
    )
    .await
}

/// Search rows of doctors that have none yet (a fresh load).
pub(super) async fn search_entries(tx: &mut Tx, entries: &[SearchEntry]) -> Result<()> {
    let (mut rows, mut free) = (String::new(), String::new());
    let mut l = Line::default();
    for e in entries {
        let Some(listing) = &e.listing else { continue };
        let c = listing.columns();
        for specialty in listing.specialty_keys() {
            l.raw(e.doctor_id.0)
                .text(specialty)
                .text(&listing.name)
                .raw(listing.position.lat)
                .raw(listing.position.lon)
                .array(listing.languages.iter().map(String::as_str))
                .raw(listing.mode_bits())
                .opt_time(c.any)
                .opt_time(c.in_person)
                .opt_time(c.online)
                .opt_time(c.fresh_until)
                .end(&mut rows);
        }
        l.raw(e.doctor_id.0)
            .time(listing.free.computed_at)
            .time(listing.free.refresh_at(listing.free.computed_at))
            .bytes(&listing.free.encode())
            .end(&mut free);
    }
    copy(
        tx,
        "COPY search_entries (doctor_id, specialty, name, latitude, longitude, languages, modes,
                              next_any, next_in_person, next_online, fresh_until)
         FROM STDIN (FORMAT csv)",
        rows,
    )
    .await?;
    copy(tx, "COPY search_free (doctor_id, computed_at, refresh_at, free) FROM STDIN (FORMAT csv)", free).await
}
