//! Reading availability: a doctor's free slots, the alternatives offered
//! when a slot was just taken, and the busy times both are computed from.

use crate::cache::Listing;
use crate::replica::Reader;
use crate::search::Ranked;
use crate::{access::Actor, App, AppError};
use jiff::{SignedDuration, Timestamp};
use medislot_domain::{schedule::local_rfc3339, DoctorId, Interval, Invalid, Mode, Slot, VerificationState};
use medislot_store::search::SearchFilter;
use medislot_store::{ClinicRecord, DoctorQuery, DoctorRecord};
use std::{collections::HashMap, sync::Arc};

/// A free slot as clients see it: UTC instants plus the clinic's wall time, zone named.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SlotView {
    pub slot_id: String,
    pub doctor_id: DoctorId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub mode: Mode,
    /// Start in the clinic's time zone, RFC 3339 with its offset.
    pub local_start: String,
    pub time_zone: String,
    /// The visit type the slot is for (its code); none: the schedule's own slot.
    pub visit_type: Option<String>,
}

impl SlotView {
    pub fn new(slot: &Slot, clinic: &ClinicRecord) -> Self {
        let tz = clinic.time_zone.tz();
        Self {
            slot_id: slot.id.encode(),
            doctor_id: slot.id.doctor,
            start: slot.start,
            end: slot.end,
            mode: slot.mode,
            local_start: local_rfc3339(slot.start, &tz),
            time_zone: clinic.time_zone.as_str().to_string(),
            visit_type: slot.id.visit.clone(),
        }
    }
}

/// The longest window one slot listing or search may cover.
pub const MAX_WINDOW_DAYS: i64 = 92;
/// "None soon" for alternatives: beyond this, offer other doctors too.
const SOON_DAYS: i64 = 14;
const NEARBY_KM: f64 = 50.0;

/// One doctor's free slots in the window that was searched.
#[derive(Debug, Clone)]
pub struct SlotList {
    pub slots: Vec<SlotView>,
    pub doctor: DoctorRecord,
    pub clinic: ClinicRecord,
    pub window: Interval,
    /// Read from a replica: its data is at least as new as this.
    pub as_of: Option<Timestamp>,
    /// The clinic's rules as they hold for the visit type listed.
    pub rules: medislot_domain::ClinicRules,
}

/// Checks a `[from, to)` window: ordered, not absurdly long.
pub(crate) fn check_window(from_field: &str, to_field: &str, from: Timestamp, to: Timestamp) -> Result<(), Invalid> {
    if to <= from {
        return Err(Invalid::field(to_field, format!("must be after {from_field}")));
    }
    if to.duration_since(from) > SignedDuration::from_hours(24 * MAX_WINDOW_DAYS) {
        return Err(Invalid::field(to_field, format!("the window may span at most {MAX_WINDOW_DAYS} days")));
    }
    Ok(())
}

pub(crate) fn intersect(a: Interval, b: Interval) -> Interval {
    Interval { start: a.start.max(b.start), end: a.end.min(b.end) }
}

impl App {
    /// Free, bookable slots of one verified doctor starting in `[from, to)`.
    pub async fn slots(
        &self,
        actor: Option<&Actor>,
        doctor_id: DoctorId,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        mode: Option<&str>,
        visit_type: Option<&str>,
    ) -> Result<SlotList, AppError> {
        let mode = mode.map(|m| Mode::parse("mode", m)).transpose()?;
        let now = self.now();
        let from = from.unwrap_or(now);
        let to = to.unwrap_or(from + SignedDuration::from_hours(24 * 7));
        check_window("from", "to", from, to)?;
        let doctor = self.doctor(actor, doctor_id).await?;
        let clinic = self.clinic(doctor.clinic_id).await?;
        let window = Interval { start: from, end: to };
        // A visit type named is checked; none named is the doctor's default
        // (or nothing, when patients book none of theirs online).
        let visit = match visit_type {
            Some(code) => Some(crate::visits::visit_for(&doctor, Some(code), "visit_type")?),
            None => crate::visits::listed_visit(&doctor),
        };
        let (doctor, clinic) = (&doctor, &clinic);
        let (slots, as_of) = match visit {
            Some(visit) => {
                self.stale_read(|r| async move {
                    Ok((self.visit_slots(&r, doctor, clinic, window, mode, now, visit).await?, r.as_of))
                })
                .await?
            }
            None => (vec![], None),
        };
        let rules = visit.flatten().map_or(clinic.rules, |v| v.rules(clinic.rules));
        Ok(SlotList {
            rules,
            slots: slots.iter().map(|s| SlotView::new(s, clinic)).collect(),
            doctor: doctor.clone(),
            clinic: clinic.clone(),
            window,
            as_of,
        })
    }

    /// Free slots of the doctor's default visit (or of the schedule itself,
    /// for a doctor without visit types) within its bookable window and `window`.
    pub(crate) async fn free_slots(
        &self,
        reader: &Reader,
        doctor: &DoctorRecord,
        clinic: &ClinicRecord,
        window: Interval,
        mode: Option<Mode>,
        now: Timestamp,
    ) -> Result<Vec<Slot>, AppError> {
        match crate::visits::listed_visit(doctor) {
            Some(visit) => self.visit_slots(reader, doctor, clinic, window, mode, now, visit).await,
            None => Ok(vec![]),
        }
    }

    /// Free slots of `visit` (or of the schedule itself) within its bookable
    /// window (notice, horizon) and `window`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn visit_slots(
        &self,
        reader: &Reader,
        doctor: &DoctorRecord,
        clinic: &ClinicRecord,
        window: Interval,
        mode: Option<Mode>,
        now: Timestamp,
        visit: Option<&medislot_domain::VisitType>,
    ) -> Result<Vec<Slot>, AppError> {
        let window = intersect(window, doctor.schedule.window_for(now, visit));
        if window.end <= window.start || doctor.verification != VerificationState::Verified {
            return Ok(vec![]);
        }
        let busy: Vec<Interval> =
            self.busy_of(reader, &[doctor.id], window, now).await?.into_iter().map(|(_, iv)| iv).collect();
        let tz = clinic.time_zone.tz();
        let mut slots = doctor.schedule.slots_for(doctor.id, &tz, window, &busy, visit);
        if let Some(m) = mode {
            slots.retain(|s| s.mode == m);
        }
        Ok(slots)
    }

    /// Up to five free slots to offer instead of a taken one: the same doctor's
    /// next ones, or, if none soon, the same specialty's nearby.
    pub(crate) async fn alternatives(
        &self,
        doctor: &DoctorRecord,
        clinic: &ClinicRecord,
        after: Timestamp,
    ) -> Vec<SlotView> {
        self.alternatives.get_or_compute((doctor.id, after), || self.compute_alternatives(doctor, clinic, after)).await
    }

    async fn compute_alternatives(
        &self,
        doctor: &DoctorRecord,
        clinic: &ClinicRecord,
        after: Timestamp,
    ) -> Vec<SlotView> {
        let now = self.now();
        let soon = Interval { start: after.max(now), end: after.max(now) + SignedDuration::from_hours(24 * SOON_DAYS) };
        let reader = self.reader();
        let mut out: Vec<SlotView> = match self.free_slots(&reader, doctor, clinic, soon, None, now).await {
            Ok(slots) => slots.iter().take(5).map(|s| SlotView::new(s, clinic)).collect(),
            Err(_) => vec![],
        };
        if out.is_empty() {
            let filter = SearchFilter {
                specialty: doctor.specialties.first().cloned().unwrap_or_default(),
                near: Some((clinic.position, NEARBY_KM)),
                ..Default::default()
            };
            if let Ok((ranked, _)) = self.ranked_by_scan(&reader, &filter, soon, now, true, None).await {
                let others: Vec<Ranked> = ranked.into_iter().filter(|r| r.doctor_id != doctor.id).take(5).collect();
                if let Ok(hits) = self.hits(&reader, others, soon, None, now, true).await {
                    out = hits.into_iter().filter_map(|h| h.next_slot).take(5).collect();
                }
            }
        }
        out
    }
}

impl App {
    /// The public directory: every verified doctor with their clinic. Read
    /// on the primary, never a replica: publishers (the SMART bulk files,
    /// `_since`) pair it with change times read there, and a lagging copy
    /// would let them stamp old data as new and never publish the change.
    pub async fn directory(&self) -> Result<Vec<(DoctorRecord, ClinicRecord)>, AppError> {
        Ok(self.store.search_doctors(&DoctorQuery::default()).await?)
    }

    /// The appointment whose slot starts at `start` for this doctor: one that
    /// occupies it now, else one that took place in it (fulfilled, no-show),
    /// else one that was cancelled from it.
    pub async fn occupant(
        &self,
        doctor: &DoctorRecord,
        start: jiff::Timestamp,
    ) -> Result<Option<medislot_store::AppointmentRecord>, AppError> {
        use medislot_domain::AppointmentStatus::{Fulfilled, Noshow};
        if doctor.verification != VerificationState::Verified {
            return Ok(None);
        }
        let now = self.now();
        let q = medislot_store::AppointmentQuery {
            scope: medislot_store::Scope::Doctor(doctor.id),
            doctor: None,
            status: None,
            from: Some(start),
            to: Some(start + jiff::SignedDuration::from_secs(1)),
            limit: 100,
            offset: 0,
        };
        let (rows, _) = self.store.list_appointments(&q).await?;
        let rank = |a: &medislot_store::AppointmentRecord| match a.status {
            _ if occupies(a, now) => 0,
            Fulfilled | Noshow => 1,
            _ => 2,
        };
        Ok(rows.into_iter().filter(|a| a.start == start).min_by_key(rank))
    }

    /// The appointments that occupy a verified doctor's time in `window`
    /// (live holds, pending, booked, arrived), in start order. Callers that
    /// show them publicly show times and status only.
    pub async fn occupied(
        &self,
        doctor: &DoctorRecord,
        window: Interval,
    ) -> Result<Vec<medislot_store::AppointmentRecord>, AppError> {
        if doctor.verification != VerificationState::Verified {
            return Ok(vec![]);
        }
        let now = self.now();
        let q = medislot_store::AppointmentQuery {
            scope: medislot_store::Scope::Doctor(doctor.id),
            doctor: None,
            status: None,
            from: Some(window.start),
            to: Some(window.end),
            limit: 10_000,
            offset: 0,
        };
        let (rows, _) = self.store.list_appointments(&q).await?;
        Ok(rows.into_iter().filter(|a| occupies(a, now)).collect())
    }
}

impl App {
    /// Free slots of a doctor already loaded with their clinic (publishers
    /// walking the whole directory), in `window` and the bookable window.
    pub async fn free_slots_of(
        &self,
        doctor: &DoctorRecord,
        clinic: &ClinicRecord,
        window: Interval,
    ) -> Result<Vec<SlotView>, AppError> {
        // On the primary, like the directory they publish with.
        let slots = self.free_slots(&self.primary_reader(), doctor, clinic, window, None, self.now()).await?;
        Ok(slots.iter().map(|s| SlotView::new(s, clinic)).collect())
    }

    /// When availability or the directory last changed (second precision).
    pub async fn last_change(&self) -> Result<Option<Timestamp>, AppError> {
        Ok(self.store.last_change(self.now()).await?)
    }

    /// Doctors whose availability or profile may have changed since `since`.
    pub async fn doctors_changed_since(&self, since: Timestamp) -> Result<Vec<DoctorId>, AppError> {
        Ok(self.store.doctors_changed_since(since, self.now()).await?)
    }
}

impl App {
    /// Busy times of these doctors in `window`: from the availability cache
    /// where a fresh entry covers it, the rest from the store in one query
    /// (over a wide window, cached for the next readers).
    pub(crate) async fn busy_of(
        &self,
        reader: &Reader,
        doctors: &[DoctorId],
        window: Interval,
        now: Timestamp,
    ) -> Result<Vec<(DoctorId, Interval)>, AppError> {
        // Doctors changed through this node lately are read where the change is.
        let (own, doctors): (Vec<DoctorId>, Vec<DoctorId>) =
            doctors.iter().partition(|d| reader.as_of.is_some() && self.read_own_writes(**d));
        let mut out = if own.is_empty() { vec![] } else { self.store.busy(&own, window, now).await? };
        if !self.cache.enabled() {
            if !doctors.is_empty() {
                out.extend(reader.store.busy(&doctors, window, now).await?);
            }
            return Ok(out);
        }
        let mut misses = vec![];
        for d in &doctors {
            let cached = self.cache.get(*d, window);
            self.metrics.cache(cached.is_some());
            match cached {
                Some(busy) => out.extend(busy.into_iter().map(|iv| (*d, iv))),
                None => misses.push(*d),
            }
        }
        if !misses.is_empty() {
            let span = crate::cache::AvailabilityCache::span(window, now);
            let mut fetched: HashMap<DoctorId, Vec<Interval>> = misses.iter().map(|d| (*d, vec![])).collect();
            for (d, iv) in reader.store.busy(&misses, span, now).await? {
                fetched.entry(d).or_default().push(iv);
            }
            for (d, busy) in fetched {
                out.extend(busy.iter().filter(|b| b.start < window.end && window.start < b.end).map(|iv| (d, *iv)));
                self.cache.put(d, span, busy);
            }
        }
        Ok(out)
    }

    /// This node changed the doctor's availability: its cached busy times
    /// are gone, and the search index computes them again.
    pub(crate) fn availability_changed(&self, doctor: DoctorId) {
        self.changed_here(doctor);
        self.cache.invalidate(doctor);
        self.search_changed(doctor);
    }

    /// A doctor's profile, schedule or verification changed through this node.
    /// Search shows it before the change is answered (such changes are few;
    /// bookings go through the keeper instead).
    pub(crate) async fn directory_changed(&self, doctor: &DoctorRecord) {
        self.changed_here(doctor.id);
        self.listings.invalidate(doctor.id);
        self.index_now(doctor.id).await;
    }

    /// A peer's directory was applied here: its doctors' cached reads go,
    /// and the search index computes them again.
    pub fn replica_changed(&self, snap: &medislot_store::RegionSnapshot) {
        if snap.full {
            self.cache.clear();
            self.listings.clear();
        }
        for d in snap.doctors.iter().map(|d| d.id).chain(snap.busy.iter().map(|(d, _)| *d)) {
            self.cache.invalidate(d);
            self.listings.invalidate(d);
            self.search_changed(d);
        }
    }

    /// A verified doctor and their clinic as read a moment ago: what a
    /// booking checks its slot against (the database, not this copy, decides
    /// whether the slot is free). A doctor changed through this node shows at
    /// once, through another node within the cache's TTL.
    pub(crate) async fn listed(&self, doctor: DoctorId) -> Result<Option<Listing>, AppError> {
        if let Some(l) = self.listings.get(doctor) {
            return Ok(Some(l));
        }
        let found = self.store.doctors_by_id(&[doctor]).await?.into_iter().next();
        Ok(found.filter(|(d, _)| d.verification == VerificationState::Verified).map(|row| {
            let l = Arc::new(row);
            self.listings.put(l.clone());
            l
        }))
    }
}

/// An appointment that holds its slot at `now`: active, and not a hold that ran out.
fn occupies(a: &medislot_store::AppointmentRecord, now: jiff::Timestamp) -> bool {
    a.status.is_active() && a.hold_expires_at.is_none_or(|e| e > now)
}
