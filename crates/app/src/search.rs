//! Search: verified doctors by specialty, place, language, mode and free
//! time, soonest first. The read model (`medislot_store::search`) chooses
//! and orders the candidates; each hit's next slot is computed from the
//! schedule and fresh busy times, so a hit never shows a time the index
//! only believes is free.

use crate::availability::{check_window, intersect, SlotView};
use crate::cache::Listing;
use crate::replica::Reader;
use crate::{App, AppError};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jiff::{SignedDuration, Timestamp};
use medislot_domain::{
    free_index::Known, people::parse_tag, Coordinates, DoctorId, Interval, Invalid, Mode, Slot, VerificationState,
};
use medislot_store::search::{SearchAfter, SearchFilter, SearchRow, COUNT_CAP};
use medislot_store::{ClinicRecord, DoctorRecord};
use std::{cmp::Ordering, collections::HashMap, sync::Arc};

/// How far ahead search looks when the client gives no window.
const DEFAULT_SEARCH_DAYS: i64 = 14;

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
    /// Where the previous page ended (its `next_cursor`): a page by keyset,
    /// instead of `page`.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SearchHit {
    pub doctor: DoctorRecord,
    pub clinic: ClinicRecord,
    pub distance_km: Option<f64>,
    pub next_slot: Option<SlotView>,
}

/// A search candidate with its first free start in the window, before the page is cut.
pub(crate) struct Ranked {
    pub(crate) doctor_id: DoctorId,
    name: String,
    position: Coordinates,
    distance_km: Option<f64>,
    key: Option<Timestamp>,
}

/// A place in search's order: soonest first (no free start last), then
/// nearest, then by name, then id, so that no two doctors share one.
type Place<'a> = (Option<Timestamp>, Option<f64>, &'a str, DoctorId);

fn compare(a: Place, b: Place) -> Ordering {
    a.0.unwrap_or(Timestamp::MAX)
        .cmp(&b.0.unwrap_or(Timestamp::MAX))
        .then(a.1.unwrap_or(0.0).total_cmp(&b.1.unwrap_or(0.0)))
        .then(a.2.cmp(b.2))
        .then(a.3.cmp(&b.3))
}

impl Ranked {
    fn of(row: &SearchRow, key: Option<Timestamp>) -> Self {
        Ranked { doctor_id: row.doctor_id, name: row.name.clone(), position: row.position, distance_km: None, key }
    }

    fn place(&self) -> Place<'_> {
        (self.key, self.distance_km, &self.name, self.doctor_id)
    }

    fn order(a: &Ranked, b: &Ranked) -> Ordering {
        compare(a.place(), b.place())
    }

    fn is_after(&self, c: Option<&SearchCursor>) -> bool {
        c.is_none_or(|c| compare(self.place(), c.place()) == Ordering::Greater)
    }
}

/// Where a page of search ended, handed to the client as an opaque string:
/// the next page is the candidates after it in search's order (keyset), so
/// a deep page costs what the first does and pages never overlap or skip
/// when doctors' free times change between them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SearchCursor {
    /// The first free start, µs since the epoch.
    #[serde(rename = "k")]
    key: Option<i64>,
    #[serde(rename = "d")]
    distance_km: Option<f64>,
    #[serde(rename = "n")]
    name: String,
    #[serde(rename = "i")]
    doctor_id: DoctorId,
}

/// Longer than any cursor search hands out (a name of 200 four-byte
/// characters makes one of about 1,200).
const MAX_CURSOR_LEN: usize = 2048;

impl SearchCursor {
    fn of(r: &Ranked) -> Self {
        SearchCursor {
            key: r.key.map(|t| t.as_microsecond()),
            distance_km: r.distance_km,
            name: r.name.clone(),
            doctor_id: r.doctor_id,
        }
    }

    fn key(&self) -> Option<Timestamp> {
        self.key.and_then(|k| Timestamp::from_microsecond(k).ok())
    }

    fn place(&self) -> Place<'_> {
        (self.key(), self.distance_km, &self.name, self.doctor_id)
    }

    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a cursor serializes"))
    }

    fn decode(s: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::field("cursor", "is not a cursor this search handed out (use next_cursor as given)");
        if s.len() > MAX_CURSOR_LEN {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let c: SearchCursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if c.key.is_some_and(|k| Timestamp::from_microsecond(k).is_err())
            || c.distance_km.is_some_and(|d| !d.is_finite())
        {
            return Err(bad());
        }
        Ok(c)
    }

    fn store_after(&self) -> SearchAfter {
        SearchAfter { next: self.key(), name: self.name.clone(), doctor_id: self.doctor_id }
    }
}

#[derive(Debug, Clone)]
pub struct SearchPage {
    pub items: Vec<SearchHit>,
    pub page: u32,
    pub per_page: u32,
    /// Matches: exact, or (`total_is_lower_bound`) at least this many; a
    /// broad search at scale is counted only so far.
    pub total: usize,
    pub total_is_lower_bound: bool,
    /// The window searched for free slots.
    pub window: Interval,
    /// Where the next page starts, when there is one.
    pub next_cursor: Option<String>,
    /// Read from a replica: its data is at least as new as this.
    pub as_of: Option<Timestamp>,
}

/// A search, checked.
struct Query {
    filter: SearchFilter,
    window: Interval,
    now: Timestamp,
    explicit: bool,
    near: bool,
    after: Option<SearchCursor>,
    page: u32,
    per_page: u32,
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
    visit: Option<&medislot_domain::VisitType>,
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
        let found =
            schedule.slots_for(doctor, tz, part, busy, visit).into_iter().find(|s| mode.is_none_or(|m| s.mode == m));
        if found.is_some() {
            return found;
        }
        from = end;
    }
    None
}

impl App {
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
        let after = p.cursor.as_deref().and_then(|c| errs.take(SearchCursor::decode(c)));
        if p.cursor.is_some() && p.page != 1 {
            errs.push("page", "cannot be combined with cursor (the cursor says where the page starts)");
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
        let q =
            Query { filter, window, now, explicit, near: near.is_some(), after, page: p.page, per_page: p.per_page };
        let q = &q;
        self.stale_read(|r| async move { self.search_on(&r, q).await.map(|page| (page, r.as_of)) }).await.map(
            |(mut page, as_of)| {
                page.as_of = as_of;
                page
            },
        )
    }

    /// The search itself, its reads from `r`.
    async fn search_on(&self, r: &Reader, q: &Query) -> Result<SearchPage, AppError> {
        let Query { ref filter, window, now, explicit, near, ref after, page, per_page } = *q;
        let mode = filter.mode;
        let offset = ((page - 1) as usize).saturating_mul(per_page as usize);
        // One more than the page: whether another follows.
        let want = offset + per_page as usize + 1;
        let after = after.as_ref();
        // A window that starts now reads the index in its order; a radius
        // bounds the candidates, and a later window needs their free times.
        let (ranked, (total, total_is_lower_bound)) = if !near && window.start <= now {
            self.ranked_by_index(r, filter, window, now, want, explicit, after).await?
        } else {
            self.ranked_by_scan(r, filter, window, now, explicit, after).await?
        };
        let more = ranked.len() > offset + per_page as usize;
        let shown: Vec<Ranked> = ranked.into_iter().skip(offset).take(per_page as usize).collect();
        let next_cursor = shown.last().filter(|_| more).map(|k| SearchCursor::of(k).encode());
        let items = self.hits(r, shown, window, mode, now, explicit).await?;
        Ok(SearchPage { items, page, per_page, total, total_is_lower_bound, window, next_cursor, as_of: None })
    }

    /// The window starting now, from the index: the rows still fresh in its
    /// order, merged with those whose indexed start may have passed (read
    /// from their free times); soonest first, then those without a slot.
    #[allow(clippy::too_many_arguments)]
    async fn ranked_by_index(
        &self,
        reader: &Reader,
        filter: &SearchFilter,
        window: Interval,
        now: Timestamp,
        want: usize,
        explicit: bool,
        after: Option<&SearchCursor>,
    ) -> Result<(Vec<Ranked>, (usize, bool)), AppError> {
        let limit = u32::try_from(want).unwrap_or(u32::MAX);
        let store_after = after.map(SearchCursor::store_after);
        let r = reader
            .store
            .search_indexed(filter, now, window.end, limit, (!explicit).then_some(limit), store_after.as_ref())
            .await?;
        let mut soon: Vec<Ranked> = r.soonest.into_iter().map(|row| Ranked::of(&row, row.next)).collect();
        let mut without: Vec<Ranked> = r.without_slot.into_iter().map(|row| Ranked::of(&row, None)).collect();
        let keyed = self.keys(reader, r.stale, filter.mode, window, now).await?;
        let stale_soon = keyed.iter().filter(|k| k.key.is_some()).count();
        for k in keyed.into_iter().filter(|k| k.is_after(after)) {
            if k.key.is_some() {
                soon.push(k)
            } else {
                without.push(k)
            }
        }
        soon.sort_by(Ranked::order);
        without.sort_by(Ranked::order);
        // Counts past the cap say only "more than the cap".
        let cap = COUNT_CAP as usize;
        let soon_total = (r.soonest_count > COUNT_CAP, r.soonest_count as usize + stale_soon);
        let (capped, total) = if explicit { soon_total } else { (r.total > COUNT_CAP, r.total as usize) };
        let total = if capped { (cap, true) } else { (total, false) };
        soon.truncate(want);
        if !explicit {
            soon.extend(without.into_iter().take(want.saturating_sub(soon.len())));
        }
        Ok((soon, total))
    }

    /// Every candidate the filter finds, keyed from its free times; those
    /// further than the radius dropped.
    pub(crate) async fn ranked_by_scan(
        &self,
        reader: &Reader,
        filter: &SearchFilter,
        window: Interval,
        now: Timestamp,
        explicit: bool,
        after: Option<&SearchCursor>,
    ) -> Result<(Vec<Ranked>, (usize, bool)), AppError> {
        // A window starting now needs the free times of stale rows only.
        let fresh_at = (window.start <= now).then_some(now);
        let mut rows = reader.store.search_candidates(filter, fresh_at).await?;
        if let Some((c, km)) = filter.near {
            rows.retain(|r| c.distance_km(r.position) <= km);
        }
        let mut ranked = self.keys(reader, rows, filter.mode, window, now).await?;
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
        ranked.retain(|r| r.is_after(after));
        Ok((ranked, (total, false)))
    }

    /// Each row's first free start in the window, from its free times; the
    /// few the free times cannot tell computed from the schedule.
    async fn keys(
        &self,
        reader: &Reader,
        rows: Vec<SearchRow>,
        mode: Option<Mode>,
        window: Interval,
        now: Timestamp,
    ) -> Result<Vec<Ranked>, AppError> {
        let mut out = Vec::with_capacity(rows.len());
        let mut unknown = Vec::new();
        for row in rows {
            // Fresh, for a window starting now: its indexed next start is the first.
            if row.free.is_none() && !row.stale && window.start <= now {
                let key = row.next.filter(|t| *t < window.end);
                out.push(Ranked::of(&row, key));
                continue;
            }
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
                Some(Known::Yes(key)) => out.push(Ranked::of(&row, key)),
                _ => unknown.push(row),
            }
        }
        if !unknown.is_empty() {
            let ids: Vec<DoctorId> = unknown.iter().map(|r| r.doctor_id).collect();
            let exact = self.first_slots(reader, &ids, window, mode, now).await?;
            for row in unknown {
                let key = exact.get(&row.doctor_id).and_then(|(_, s)| s.as_ref()).map(|s| s.start);
                out.push(Ranked::of(&row, key));
            }
        }
        Ok(out)
    }

    /// These doctors (verified ones) with their clinics and first free slot
    /// in the window, computed from the schedule and fresh busy times.
    async fn first_slots(
        &self,
        reader: &Reader,
        ids: &[DoctorId],
        window: Interval,
        mode: Option<Mode>,
        now: Timestamp,
    ) -> Result<HashMap<DoctorId, (Listing, Option<Slot>)>, AppError> {
        let listed: Vec<Listing> = reader
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
            for (d, iv) in self.busy_of(reader, &verified, window, now).await? {
                busy.entry(d).or_default().push(iv);
            }
        }
        Ok(listed
            .into_iter()
            .map(|l| {
                let (doctor, clinic) = &*l;
                let tz = clinic.time_zone.tz();
                let b = busy.get(&doctor.id).map(Vec::as_slice).unwrap_or(&[]);
                // The default visit type's first slot (none when patients book none online).
                let slot = crate::visits::listed_visit(doctor).and_then(|visit| {
                    let w = intersect(window, doctor.schedule.window_for(now, visit));
                    first_slot(&doctor.schedule, doctor.id, &tz, w, b, mode, visit)
                });
                (doctor.id, (l.clone(), slot))
            })
            .collect())
    }

    /// The page's hits, each with its next slot computed from the schedule
    /// and fresh busy times (the index only chose and ordered them).
    pub(crate) async fn hits(
        &self,
        reader: &Reader,
        page: Vec<Ranked>,
        window: Interval,
        mode: Option<Mode>,
        now: Timestamp,
        explicit: bool,
    ) -> Result<Vec<SearchHit>, AppError> {
        let ids: Vec<DoctorId> = page.iter().map(|r| r.doctor_id).collect();
        let mut found = self.first_slots(reader, &ids, window, mode, now).await?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_cursor_search_hands_out_comes_back_as_it_went() {
        let r = Ranked {
            doctor_id: DoctorId::new(),
            // The longest name a doctor may have, in four-byte characters, with quotes.
            name: format!("\"{}\"", "🩺".repeat(198)),
            position: Coordinates { lat: 0.0, lon: 0.0 },
            distance_km: Some(12.5),
            key: Some("2030-01-07T08:00:00Z".parse().unwrap()),
        };
        let c = SearchCursor::of(&r);
        let s = c.encode();
        assert!(s.len() <= MAX_CURSOR_LEN, "{} characters", s.len());
        assert_eq!(SearchCursor::decode(&s).unwrap(), c);
        assert!(SearchCursor::decode(&s[..s.len() - 2]).is_err(), "cut short");
    }
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
                        first_slot(&schedule, doctor, &tz, window, &busy, mode, None),
                        all,
                        "window {window:?} mode {mode:?}"
                    );
                }
            }
        }
    }
}
