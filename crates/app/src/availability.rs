//! Reading availability: a doctor's free slots, search with next free slot,
//! and the alternatives offered when a slot was just taken.

use crate::cache::Listing;
use crate::{access::Actor, App, AppError};
use jiff::{SignedDuration, Timestamp};
use medislot_domain::{
    free_index::Known, people::parse_tag, schedule::local_rfc3339, Coordinates, DoctorId, Interval, Invalid, Mode,
    Slot, VerificationState,
};
use medislot_store::search::{SearchFilter, SearchRow};
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
        }
    }
}

/// The longest window one slot listing or search may cover.
pub const MAX_WINDOW_DAYS: i64 = 92;
/// How far ahead search looks when the client gives no window.
const DEFAULT_SEARCH_DAYS: i64 = 14;
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
}

#[derive(Debug, Clone, Default)]
pub struct SearchParams {
    pub specialty: Option<String>,
    pub near: Option<String>,
    pub radius_km: Option<f64>,
    pub mode: Option<String>,
    pub language: Option<String>,
    pub available_from: Option<Timestamp>,
    pub available_to: Option<Timestamp>,
    pub page: u32,
    pub per_page: u32,
}

#[derive(Debug, Clone)]
pub struct SearchHit {
    pub doctor: DoctorRecord,
    pub clinic: ClinicRecord,
    pub distance_km: Option<f64>,
    pub next_slot: Option<SlotView>,
}

/// A search candidate with its first free start in the window, before the page is cut.
struct Ranked {
    doctor_id: DoctorId,
    name: String,
    position: Coordinates,
    distance_km: Option<f64>,
    key: Option<Timestamp>,
}

impl Ranked {
    fn of(row: &SearchRow, distance_km: Option<f64>, key: Option<Timestamp>) -> Self {
        Ranked { doctor_id: row.doctor_id, name: row.name.clone(), position: row.position, distance_km, key }
    }

    /// Soonest first, then nearest, then by name (and id, so that pages never overlap).
    fn order(a: &Ranked, b: &Ranked) -> std::cmp::Ordering {
        a.key
            .unwrap_or(Timestamp::MAX)
            .cmp(&b.key.unwrap_or(Timestamp::MAX))
            .then(a.distance_km.unwrap_or(0.0).total_cmp(&b.distance_km.unwrap_or(0.0)))
            .then(a.name.cmp(&b.name))
            .then(a.doctor_id.cmp(&b.doctor_id))
    }
}

#[derive(Debug, Clone)]
pub struct SearchPage {
    pub items: Vec<SearchHit>,
    pub page: u32,
    pub per_page: u32,
    pub total: usize,
    /// The window searched for free slots.
    pub window: Interval,
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

/// The first free slot of a doctor in `window`: slots come sorted by start, so
/// the first one in a prefix of the window is the first in all of it; most
/// doctors have one within a day or two, so search looks there first instead
/// of laying out every slot of the window for every candidate.
fn first_slot(
    schedule: &medislot_domain::Schedule,
    doctor: DoctorId,
    tz: &jiff::tz::TimeZone,
    window: Interval,
    busy: &[Interval],
    mode: Option<Mode>,
) -> Option<Slot> {
    let mut from = window.start;
    for days in [1, 3, 7, i64::MAX] {
        if from >= window.end {
            return None;
        }
        let end = if days == i64::MAX {
            window.end
        } else {
            (window.start + SignedDuration::from_hours(24 * days)).min(window.end)
        };
        let part = Interval { start: from, end };
        let found = schedule.slots(doctor, tz, part, busy).into_iter().find(|s| mode.is_none_or(|m| s.mode == m));
        if found.is_some() {
            return found;
        }
        from = end;
    }
    None
}

fn intersect(a: Interval, b: Interval) -> Interval {
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
    ) -> Result<SlotList, AppError> {
        let mode = mode.map(|m| Mode::parse("mode", m)).transpose()?;
        let now = self.now();
        let from = from.unwrap_or(now);
        let to = to.unwrap_or(from + SignedDuration::from_hours(24 * 7));
        check_window("from", "to", from, to)?;
        let doctor = self.doctor(actor, doctor_id).await?;
        let clinic = self.clinic(doctor.clinic_id).await?;
        let window = Interval { start: from, end: to };
        let slots = self.free_slots(&doctor, &clinic, window, mode, now).await?;
        Ok(SlotList { slots: slots.iter().map(|s| SlotView::new(s, &clinic)).collect(), doctor, clinic, window })
    }

    /// Free slots within the doctor's bookable window (notice, horizon) and `window`.
    pub(crate) async fn free_slots(
        &self,
        doctor: &DoctorRecord,
        clinic: &ClinicRecord,
        window: Interval,
        mode: Option<Mode>,
        now: Timestamp,
    ) -> Result<Vec<Slot>, AppError> {
        let window = intersect(window, doctor.schedule.bookable_window(now));
        if window.end <= window.start || doctor.verification != VerificationState::Verified {
            return Ok(vec![]);
        }
        let busy: Vec<Interval> =
            self.busy_of(&[doctor.id], window, now).await?.into_iter().map(|(_, iv)| iv).collect();
        let tz = clinic.time_zone.tz();
        let mut slots = doctor.schedule.slots(doctor.id, &tz, window, &busy);
        if let Some(m) = mode {
            slots.retain(|s| s.mode == m);
        }
        Ok(slots)
    }

    /// Verified doctors by specialty, place, mode and language, each with its
    /// next free slot in the window; sorted by soonest slot, then distance.
    pub async fn search(&self, p: SearchParams) -> Result<SearchPage, AppError> {
        let mut errs = medislot_domain::error::Errors::default();
        let specialty = p.specialty.as_deref().and_then(|s| errs.take(parse_tag("specialty", s)));
        let language = p.language.as_deref().and_then(|s| errs.take(parse_tag("language", s)));
        let mode = p.mode.as_deref().and_then(|m| errs.take(Mode::parse("mode", m)));
        let near = p.near.as_deref().and_then(|n| errs.take(Coordinates::parse_pair("near", n)));
        if let Some(r) = p.radius_km {
            if p.near.is_none() {
                errs.push("radius_km", "needs near=LAT,LON");
            } else if !(r.is_finite() && r > 0.0 && r <= 1000.0) {
                errs.push("radius_km", "must be between 0 and 1000");
            }
        }
        if p.page == 0 || p.page > 10_000 {
            errs.push("page", "must be between 1 and 10000");
        }
        if p.per_page == 0 || p.per_page > 100 {
            errs.push("per_page", "must be between 1 and 100");
        }
        let now = self.now();
        let from = p.available_from.unwrap_or(now).max(now);
        let to = p.available_to.unwrap_or(from + SignedDuration::from_hours(24 * DEFAULT_SEARCH_DAYS));
        if let Err(Invalid(e)) = check_window("available_from", "available_to", from, to) {
            for fe in e {
                errs.push(fe.field, fe.message);
            }
        }
        errs.finish()?;
        let window = Interval { start: from, end: to };
        let radius = p.radius_km.unwrap_or(25.0);
        let filter =
            SearchFilter { specialty: specialty.unwrap_or_default(), language, mode, near: near.map(|c| (c, radius)) };
        let explicit = p.available_from.is_some() || p.available_to.is_some();
        let offset = ((p.page - 1) as usize).saturating_mul(p.per_page as usize);
        let want = offset + p.per_page as usize;
        // A window that starts now reads the index in its order; a radius
        // bounds the candidates, and a later window needs their free times.
        let (ranked, total) = if near.is_none() && p.available_from.is_none_or(|f| f <= now) {
            self.ranked_by_index(&filter, window, now, want, explicit).await?
        } else {
            self.ranked_by_scan(&filter, window, now, explicit).await?
        };
        let page: Vec<Ranked> = ranked.into_iter().skip(offset).take(p.per_page as usize).collect();
        let items = self.hits(page, window, mode, now, explicit).await?;
        Ok(SearchPage { items, page: p.page, per_page: p.per_page, total, window })
    }

    /// The window starting now, from the index: the rows still fresh in its
    /// order, merged with those whose indexed start may have passed (read
    /// from their free times); soonest first, then those without a slot.
    async fn ranked_by_index(
        &self,
        filter: &SearchFilter,
        window: Interval,
        now: Timestamp,
        want: usize,
        explicit: bool,
    ) -> Result<(Vec<Ranked>, usize), AppError> {
        let limit = u32::try_from(want).unwrap_or(u32::MAX);
        let r = self.store.search_indexed(filter, now, window.end, limit, (!explicit).then_some(limit)).await?;
        let mut soon: Vec<Ranked> = r.soonest.into_iter().map(|row| Ranked::of(&row, None, row.next)).collect();
        let mut without: Vec<Ranked> = r.without_slot.into_iter().map(|row| Ranked::of(&row, None, None)).collect();
        let keyed = self.keys(r.stale, filter.mode, window, now).await?;
        let stale_soon = keyed.iter().filter(|k| k.key.is_some()).count();
        for k in keyed {
            if k.key.is_some() {
                soon.push(k)
            } else {
                without.push(k)
            }
        }
        soon.sort_by(Ranked::order);
        without.sort_by(Ranked::order);
        let soon_total = r.soonest_count as usize + stale_soon;
        let total = if explicit { soon_total } else { r.total as usize };
        soon.truncate(want);
        if !explicit {
            soon.extend(without.into_iter().take(want.saturating_sub(soon.len())));
        }
        Ok((soon, total))
    }

    /// Every candidate the filter finds, keyed from its free times; those
    /// further than the radius dropped.
    async fn ranked_by_scan(
        &self,
        filter: &SearchFilter,
        window: Interval,
        now: Timestamp,
        explicit: bool,
    ) -> Result<(Vec<Ranked>, usize), AppError> {
        let mut rows = self.store.search_candidates(filter).await?;
        if let Some((c, km)) = filter.near {
            rows.retain(|r| c.distance_km(r.position) <= km);
        }
        let mut ranked = self.keys(rows, filter.mode, window, now).await?;
        if let Some((c, _)) = filter.near {
            for r in &mut ranked {
                r.distance_km = Some(c.distance_km(r.position));
            }
        }
        if explicit {
            ranked.retain(|r| r.key.is_some());
        }
        ranked.sort_by(Ranked::order);
        let total = ranked.len();
        Ok((ranked, total))
    }

    /// Each row's first free start in the window, from its free times; the
    /// few the free times cannot tell computed from the schedule.
    async fn keys(
        &self,
        rows: Vec<SearchRow>,
        mode: Option<Mode>,
        window: Interval,
        now: Timestamp,
    ) -> Result<Vec<Ranked>, AppError> {
        let mut out = Vec::with_capacity(rows.len());
        let mut unknown = Vec::new();
        for row in rows {
            let known = row.free.as_ref().map(|f| {
                let horizon = f.covered_until.duration_since(f.computed_at);
                let from = window.start.max(now + f.notice);
                let to = window.end.min(now + horizon);
                if to <= from {
                    Known::Yes(None)
                } else {
                    f.first_in(from, to, mode)
                }
            });
            match known {
                Some(Known::Yes(key)) => out.push(Ranked::of(&row, None, key)),
                _ => unknown.push(row),
            }
        }
        if !unknown.is_empty() {
            let ids: Vec<DoctorId> = unknown.iter().map(|r| r.doctor_id).collect();
            let exact = self.first_slots(&ids, window, mode, now).await?;
            for row in unknown {
                let key = exact.get(&row.doctor_id).and_then(|(_, s)| s.as_ref()).map(|s| s.start);
                out.push(Ranked::of(&row, None, key));
            }
        }
        Ok(out)
    }

    /// These doctors (verified ones) with their clinics and first free slot
    /// in the window, computed from the schedule and fresh busy times.
    async fn first_slots(
        &self,
        ids: &[DoctorId],
        window: Interval,
        mode: Option<Mode>,
        now: Timestamp,
    ) -> Result<HashMap<DoctorId, (Listing, Option<Slot>)>, AppError> {
        let listed: Vec<Listing> = self
            .store
            .doctors_by_id(ids)
            .await?
            .into_iter()
            .filter(|(d, _)| d.verification == VerificationState::Verified)
            .map(Arc::new)
            .collect();
        let verified: Vec<DoctorId> = listed.iter().map(|l| l.0.id).collect();
        let mut busy: HashMap<DoctorId, Vec<Interval>> = HashMap::new();
        if !verified.is_empty() {
            for (d, iv) in self.busy_of(&verified, window, now).await? {
                busy.entry(d).or_default().push(iv);
            }
        }
        Ok(listed
            .into_iter()
            .map(|l| {
                let (doctor, clinic) = &*l;
                let w = intersect(window, doctor.schedule.bookable_window(now));
                let tz = clinic.time_zone.tz();
                let b = busy.get(&doctor.id).map(Vec::as_slice).unwrap_or(&[]);
                let slot = first_slot(&doctor.schedule, doctor.id, &tz, w, b, mode);
                (doctor.id, (l.clone(), slot))
            })
            .collect())
    }

    /// The page's hits, each with its next slot computed from the schedule
    /// and fresh busy times (the index only chose and ordered them).
    async fn hits(
        &self,
        page: Vec<Ranked>,
        window: Interval,
        mode: Option<Mode>,
        now: Timestamp,
        explicit: bool,
    ) -> Result<Vec<SearchHit>, AppError> {
        let ids: Vec<DoctorId> = page.iter().map(|r| r.doctor_id).collect();
        let mut found = self.first_slots(&ids, window, mode, now).await?;
        Ok(page
            .into_iter()
            .filter_map(|r| {
                let (listing, slot) = found.remove(&r.doctor_id)?;
                // Taken since the index was written: a window asked for free doctors only.
                if explicit && slot.is_none() {
                    return None;
                }
                let (doctor, clinic) = Arc::unwrap_or_clone(listing);
                let next_slot = slot.map(|s| SlotView::new(&s, &clinic));
                Some(SearchHit { doctor, clinic, distance_km: r.distance_km, next_slot })
            })
            .collect())
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
        let mut out: Vec<SlotView> = match self.free_slots(doctor, clinic, soon, None, now).await {
            Ok(slots) => slots.iter().take(5).map(|s| SlotView::new(s, clinic)).collect(),
            Err(_) => vec![],
        };
        if out.is_empty() {
            let filter = SearchFilter {
                specialty: doctor.specialties.first().cloned().unwrap_or_default(),
                near: Some((clinic.position, NEARBY_KM)),
                ..Default::default()
            };
            if let Ok((ranked, _)) = self.ranked_by_scan(&filter, soon, now, true).await {
                let others: Vec<Ranked> = ranked.into_iter().filter(|r| r.doctor_id != doctor.id).take(5).collect();
                if let Ok(hits) = self.hits(others, soon, None, now, true).await {
                    out = hits.into_iter().filter_map(|h| h.next_slot).take(5).collect();
                }
            }
        }
        out
    }
}

impl App {
    /// The public directory: every verified doctor with their clinic.
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
        let slots = self.free_slots(doctor, clinic, window, None, self.now()).await?;
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
        doctors: &[DoctorId],
        window: Interval,
        now: Timestamp,
    ) -> Result<Vec<(DoctorId, Interval)>, AppError> {
        if !self.cache.enabled() {
            return Ok(self.store.busy(doctors, window, now).await?);
        }
        let mut out = vec![];
        let mut misses = vec![];
        for d in doctors {
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
            for (d, iv) in self.store.busy(&misses, span, now).await? {
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
        self.cache.invalidate(doctor);
        self.search_changed(doctor);
    }

    /// A doctor's profile, schedule or verification changed through this node.
    /// Search shows it before the change is answered (such changes are few;
    /// bookings go through the keeper instead).
    pub(crate) async fn directory_changed(&self, doctor: &DoctorRecord) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use medislot_domain::schedule::{RangeInput, ScheduleInput};

    #[test]
    fn the_first_slot_found_by_growing_windows_is_the_first_of_the_whole_window() {
        let input = ScheduleInput {
            weekly: vec![
                RangeInput::weekly("tuesday", "09:00", "10:00", "in_person", 20),
                RangeInput::weekly("friday", "14:00", "16:00", "online", 30),
                RangeInput::weekly("sunday", "23:00", "23:45", "in_person", 15),
            ],
            extra: vec![],
            horizon_days: Some(90),
            min_notice_minutes: Some(0),
        };
        let schedule = medislot_domain::Schedule::parse(&input).unwrap();
        let doctor = DoctorId::new();
        let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        let t0: Timestamp = "2026-03-02T00:00:00Z".parse().unwrap();
        for start_h in (0..24 * 16).step_by(7) {
            for len_d in [1, 2, 5, 9, 14, 40] {
                let window = Interval {
                    start: t0 + SignedDuration::from_hours(start_h),
                    end: t0 + SignedDuration::from_hours(start_h + 24 * len_d),
                };
                // Busy: the first slot of each Tuesday in the window.
                let busy: Vec<Interval> = schedule
                    .slots(doctor, &tz, window, &[])
                    .into_iter()
                    .filter(|s| s.mode == Mode::InPerson)
                    .take(1)
                    .map(|s| Interval { start: s.start, end: s.end })
                    .collect();
                for mode in [None, Some(Mode::InPerson), Some(Mode::Online)] {
                    let all = schedule
                        .slots(doctor, &tz, window, &busy)
                        .into_iter()
                        .find(|s| mode.is_none_or(|m| s.mode == m));
                    assert_eq!(
                        first_slot(&schedule, doctor, &tz, window, &busy, mode),
                        all,
                        "window {window:?} mode {mode:?}"
                    );
                }
            }
        }
    }
}
