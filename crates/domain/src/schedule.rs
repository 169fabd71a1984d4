//! Weekly availability in the clinic's local time, and the slots it yields.
//!
//! Slots are computed, never stored. DST semantics (see tests/vectors/README.md):
//! a range's local start and end become instants with the *compatible*
//! disambiguation (a wall time in a spring-forward gap moves forward, one in a
//! fold takes the earlier instant); slots then step in elapsed time.

use crate::{
    appointment::{Interval, Mode},
    error::{Errors, Invalid},
    ids::DoctorId,
    slot_id::SlotId,
    visit_type::VisitType,
};
use jiff::{
    civil::{Date, Time},
    tz::TimeZone,
    SignedDuration, Timestamp,
};
use serde::{Deserialize, Serialize};

pub const MAX_HORIZON_DAYS: i64 = 366;
const MAX_RANGES: usize = 100;

/// A day of the week, spelled out in the API (`monday` … `sunday`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    pub(crate) const NAMES: [(&'static str, Weekday); 7] = [
        ("monday", Weekday::Monday),
        ("tuesday", Weekday::Tuesday),
        ("wednesday", Weekday::Wednesday),
        ("thursday", Weekday::Thursday),
        ("friday", Weekday::Friday),
        ("saturday", Weekday::Saturday),
        ("sunday", Weekday::Sunday),
    ];

    fn parse(field: &str, s: &str) -> Result<Self, Invalid> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, w)| *w)
            .ok_or_else(|| Invalid::field(field, "must be a weekday name such as monday"))
    }

    fn of(date: Date) -> Self {
        use jiff::civil::Weekday as W;
        match date.weekday() {
            W::Monday => Weekday::Monday,
            W::Tuesday => Weekday::Tuesday,
            W::Wednesday => Weekday::Wednesday,
            W::Thursday => Weekday::Thursday,
            W::Friday => Weekday::Friday,
            W::Saturday => Weekday::Saturday,
            W::Sunday => Weekday::Sunday,
        }
    }
}

/// `HH:MM` in JSON.
mod hhmm {
    use jiff::civil::Time;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:02}:{:02}", t.hour(), t.minute()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_time("time", &s).map_err(|e| serde::de::Error::custom(e.to_string()))
    }
}

/// One working range: `[start, end)` local wall time, cut into slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    #[serde(with = "hhmm")]
    pub start: Time,
    #[serde(with = "hhmm")]
    pub end: Time,
    pub mode: Mode,
    pub slot_minutes: i64,
    #[serde(default)]
    pub buffer_minutes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyRange {
    pub weekday: Weekday,
    #[serde(flatten)]
    pub range: Range,
}

/// Extra hours on one date (in addition to the weekly ranges).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatedRange {
    pub date: Date,
    #[serde(flatten)]
    pub range: Range,
}

/// A doctor's availability rules. Built only through [`Schedule::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub weekly: Vec<WeeklyRange>,
    #[serde(default)]
    pub extra: Vec<DatedRange>,
    pub horizon_days: i64,
    pub min_notice_minutes: i64,
}

impl Default for Schedule {
    /// No hours at all: a new doctor is not bookable until they publish a schedule.
    fn default() -> Self {
        Self { weekly: vec![], extra: vec![], horizon_days: 90, min_notice_minutes: 120 }
    }
}

/// The raw shape clients send; every field is checked by [`Schedule::parse`].
#[derive(Debug, Clone, Deserialize, Serialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// Weekly opening hours.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub weekly: Vec<RangeInput>,
    /// Extra hours on given dates.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub extra: Vec<RangeInput>,
    /// How far ahead patients may book (default 90).
    #[schema(minimum = 1, maximum = 366)]
    pub horizon_days: Option<i64>,
    /// How soon before its start a slot stops being bookable (default 120).
    #[schema(minimum = 0, maximum = 10080)]
    pub min_notice_minutes: Option<i64>,
}

/// A range of opening hours: weekly (`weekday`) or on one `date`, from `start`
/// to `end` (local `HH:MM`), cut into slots of `slot_minutes` with
/// `buffer_minutes` between them.
#[derive(Debug, Clone, Deserialize, Serialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeInput {
    /// For weekly hours.
    #[schema(schema_with = crate::schemas::weekday_or_null)]
    pub weekday: Option<String>,
    /// For extra hours.
    #[schema(schema_with = crate::schemas::date_or_null)]
    pub date: Option<String>,
    #[schema(schema_with = crate::schemas::local_time)]
    pub start: String,
    #[schema(schema_with = crate::schemas::local_time)]
    pub end: String,
    #[schema(schema_with = crate::schemas::mode)]
    pub mode: String,
    #[schema(minimum = 5, maximum = 480)]
    pub slot_minutes: i64,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 240)]
    pub buffer_minutes: i64,
}

impl RangeInput {
    /// A weekly range, as a clinic would type it (`"monday", "09:00", "12:00", "in_person", 30`).
    pub fn weekly(weekday: &str, start: &str, end: &str, mode: &str, slot_minutes: i64) -> Self {
        Self {
            weekday: Some(weekday.into()),
            start: start.into(),
            end: end.into(),
            mode: mode.into(),
            slot_minutes,
            ..Default::default()
        }
    }
}

fn parse_time(field: &str, s: &str) -> Result<Time, Invalid> {
    let bad = || Invalid::field(field, "must be a local time HH:MM");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

pub fn parse_date(field: &str, s: &str) -> Result<Date, Invalid> {
    s.parse::<Date>().map_err(|_| Invalid::field(field, "must be a date YYYY-MM-DD"))
}

fn parse_range(field: &str, r: &RangeInput, errs: &mut Errors) -> Option<Range> {
    let start = errs.take(parse_time(&format!("{field}.start"), &r.start));
    let end = errs.take(parse_time(&format!("{field}.end"), &r.end));
    let mode = errs.take(Mode::parse(&format!("{field}.mode"), &r.mode));
    if !(5..=480).contains(&r.slot_minutes) {
        errs.push(format!("{field}.slot_minutes"), "must be between 5 and 480");
    }
    if !(0..=240).contains(&r.buffer_minutes) {
        errs.push(format!("{field}.buffer_minutes"), "must be between 0 and 240");
    }
    let (start, end, mode) = (start?, end?, mode?);
    if end <= start {
        errs.push(format!("{field}.end"), "must be after start (ranges cannot cross midnight)");
        return None;
    }
    let minutes_of_day = |t: Time| i64::from(t.hour()) * 60 + i64::from(t.minute());
    let minutes = minutes_of_day(end) - minutes_of_day(start);
    if (5..=480).contains(&r.slot_minutes) && minutes < r.slot_minutes {
        errs.push(format!("{field}.end"), "range is shorter than one slot");
        return None;
    }
    Some(Range { start, end, mode, slot_minutes: r.slot_minutes, buffer_minutes: r.buffer_minutes })
}

impl Range {
    fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }
}

impl Schedule {
    /// Checks a client's schedule; every wrong field is reported at once.
    pub fn parse(input: &ScheduleInput) -> Result<Schedule, Invalid> {
        let mut errs = Errors::default();
        if input.weekly.len() > MAX_RANGES {
            errs.push("weekly", format!("at most {MAX_RANGES} ranges"));
        }
        if input.extra.len() > MAX_RANGES {
            errs.push("extra", format!("at most {MAX_RANGES} ranges"));
        }
        let mut weekly: Vec<WeeklyRange> = Vec::new();
        for (i, r) in input.weekly.iter().enumerate() {
            let field = format!("weekly[{i}]");
            if r.date.is_some() {
                errs.push(format!("{field}.date"), "weekly ranges take a weekday, not a date (use extra)");
            }
            let day = match &r.weekday {
                Some(d) => errs.take(Weekday::parse(&format!("{field}.weekday"), d)),
                None => {
                    errs.push(format!("{field}.weekday"), "is required");
                    None
                }
            };
            if let (Some(weekday), Some(range)) = (day, parse_range(&field, r, &mut errs)) {
                if weekly.iter().any(|w| w.weekday == weekday && w.range.overlaps(&range)) {
                    errs.push(format!("{field}.start"), "overlaps another range on the same weekday");
                }
                weekly.push(WeeklyRange { weekday, range });
            }
        }
        let mut extra: Vec<DatedRange> = Vec::new();
        for (i, r) in input.extra.iter().enumerate() {
            let field = format!("extra[{i}]");
            if r.weekday.is_some() {
                errs.push(format!("{field}.weekday"), "extra hours take a date, not a weekday");
            }
            let date = match &r.date {
                Some(d) => errs.take(parse_date(&format!("{field}.date"), d)),
                None => {
                    errs.push(format!("{field}.date"), "is required");
                    None
                }
            };
            if let (Some(date), Some(range)) = (date, parse_range(&field, r, &mut errs)) {
                if extra.iter().any(|w| w.date == date && w.range.overlaps(&range)) {
                    errs.push(format!("{field}.start"), "overlaps another range on the same date");
                }
                extra.push(DatedRange { date, range });
            }
        }
        let horizon_days = input.horizon_days.unwrap_or(90);
        if !(1..=MAX_HORIZON_DAYS).contains(&horizon_days) {
            errs.push("horizon_days", format!("must be between 1 and {MAX_HORIZON_DAYS}"));
        }
        let min_notice_minutes = input.min_notice_minutes.unwrap_or(120);
        if !(0..=7 * 24 * 60).contains(&min_notice_minutes) {
            errs.push("min_notice_minutes", "must be between 0 and 10080 (7 days)");
        }
        errs.finish()?;
        Ok(Schedule { weekly, extra, horizon_days, min_notice_minutes })
    }

    /// The instants a patient may book at `now`: after the minimum notice,
    /// before the horizon.
    pub fn bookable_window(&self, now: Timestamp) -> Interval {
        self.window_for(now, None)
    }

    /// Every slot starting in `window`, minus those overlapping `busy`,
    /// sorted by start. `window` should be bounded by [`Self::bookable_window`].
    pub fn slots(&self, doctor: DoctorId, tz: &TimeZone, window: Interval, busy: &[Interval]) -> Vec<Slot> {
        let mut out: Vec<Slot> = Vec::new();
        self.each_range(tz, window, |date, range| {
            for iv in expand_range(tz, date, range.start, range.end, range.slot_minutes, range.buffer_minutes) {
                if iv.start >= window.start && iv.start < window.end && !busy.iter().any(|b| b.overlaps(&iv)) {
                    out.push(Slot {
                        id: SlotId::new(doctor, iv.start),
                        start: iv.start,
                        end: iv.end,
                        mode: range.mode,
                    });
                }
            }
        });
        out.sort_by_key(|s| s.start);
        // Extra hours may overlap weekly ones: keep the earliest slot of any overlap.
        let mut kept: Vec<Slot> = Vec::with_capacity(out.len());
        for s in out {
            if kept.last().is_none_or(|k| k.end <= s.start) {
                kept.push(s);
            }
        }
        kept
    }

    /// The slots of one visit type starting in `window`: a start of the
    /// schedule's grid (in a range of one of its modes) from which the whole
    /// visit fits before the range ends, with the range's buffer free on
    /// either side of it. Slots of one visit type may overlap one another
    /// (a 45-minute visit may start every 15 minutes): a patient takes one.
    pub fn visit_slots(
        &self,
        doctor: DoctorId,
        tz: &TimeZone,
        window: Interval,
        busy: &[Interval],
        visit: &VisitType,
    ) -> Vec<Slot> {
        let len = SignedDuration::from_mins(visit.duration_minutes);
        let mut out: Vec<Slot> = Vec::new();
        self.each_range(tz, window, |date, range| {
            if !visit.modes.contains(&range.mode) {
                return;
            }
            let Some((from, until)) = range_bounds(tz, date, range.start, range.end) else { return };
            let step = SignedDuration::from_mins(range.slot_minutes + range.buffer_minutes);
            let buffer = SignedDuration::from_mins(range.buffer_minutes);
            let mut t = from;
            while t + len <= until {
                let iv = Interval { start: t, end: t + len };
                let clear = !busy.iter().any(|b| b.start < iv.end + buffer && iv.start < b.end + buffer);
                if iv.start >= window.start && iv.start < window.end && clear {
                    let id = SlotId::of_visit(doctor, iv.start, Some(&visit.code));
                    out.push(Slot { id, start: iv.start, end: iv.end, mode: range.mode });
                }
                t += step;
            }
        });
        out.sort_by_key(|s| s.start);
        out.dedup_by_key(|s| s.start);
        out
    }

    /// The free slots of `visit`, or of the schedule itself without one.
    pub fn slots_for(
        &self,
        doctor: DoctorId,
        tz: &TimeZone,
        window: Interval,
        busy: &[Interval],
        visit: Option<&VisitType>,
    ) -> Vec<Slot> {
        match visit {
            Some(v) => self.visit_slots(doctor, tz, window, busy, v),
            None => self.slots(doctor, tz, window, busy),
        }
    }

    /// When `visit` (or, without one, the schedule) may be booked from `now`:
    /// after its minimum notice and before its horizon.
    pub fn window_for(&self, now: Timestamp, visit: Option<&VisitType>) -> Interval {
        let notice = visit.and_then(|v| v.min_notice_minutes).unwrap_or(self.min_notice_minutes);
        let horizon = visit.and_then(|v| v.horizon_days).unwrap_or(self.horizon_days);
        Interval { start: now + SignedDuration::from_mins(notice), end: now + SignedDuration::from_hours(24 * horizon) }
    }

    /// Calls `f` with each date and range that may hold a slot starting in `window`.
    fn each_range(&self, tz: &TimeZone, window: Interval, mut f: impl FnMut(Date, &Range)) {
        if window.end <= window.start {
            return;
        }
        let first = window.start.to_zoned(tz.clone()).date().yesterday().unwrap_or(Date::MIN);
        let last = window.end.to_zoned(tz.clone()).date();
        let mut date = first;
        while date <= last {
            let day = Weekday::of(date);
            let weekly = self.weekly.iter().filter(|w| w.weekday == day).map(|w| &w.range);
            for range in weekly.chain(self.extra.iter().filter(|e| e.date == date).map(|e| &e.range)) {
                f(date, range);
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
    }

    pub fn slot_at(&self, doctor: DoctorId, tz: &TimeZone, start: Timestamp) -> Option<Slot> {
        self.slot_of(doctor, tz, start, None)
    }

    /// The slot of `visit` (or of the schedule) starting at `start`, busy time aside.
    pub fn slot_of(
        &self,
        doctor: DoctorId,
        tz: &TimeZone,
        start: Timestamp,
        visit: Option<&VisitType>,
    ) -> Option<Slot> {
        let window = Interval { start, end: start + SignedDuration::from_secs(1) };
        self.slots_for(doctor, tz, window, &[], visit).into_iter().find(|s| s.start == start)
    }
}

/// A range's `[start, end)` on `date` as instants (a gap moves forward, a fold
/// takes the earlier instant).
fn range_bounds(tz: &TimeZone, date: Date, start: Time, end: Time) -> Option<(Timestamp, Timestamp)> {
    let to_instant = |t: Time| tz.to_ambiguous_timestamp(date.to_datetime(t)).compatible();
    Some((to_instant(start).ok()?, to_instant(end).ok()?))
}

pub fn expand_range(
    tz: &TimeZone,
    date: Date,
    start: Time,
    end: Time,
    slot_minutes: i64,
    buffer_minutes: i64,
) -> Vec<Interval> {
    let Some((from, until)) = range_bounds(tz, date, start, end) else {
        return vec![];
    };
    let len = SignedDuration::from_mins(slot_minutes);
    let step = SignedDuration::from_mins(slot_minutes + buffer_minutes);
    let mut out = Vec::new();
    let mut t = from;
    while t + len <= until {
        out.push(Interval { start: t, end: t + len });
        t += step;
    }
    out
}

/// A free slot: computed, with its deterministic id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub id: SlotId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub mode: Mode,
}

/// An instant rendered in a zone as RFC 3339 with its offset (`2026-03-28T08:00:00+01:00`).
pub fn local_rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    let offset = tz.to_offset(t);
    t.display_with_offset(offset).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn input(json: serde_json::Value) -> ScheduleInput {
        serde_json::from_value(json).unwrap()
    }

    fn fields(r: Result<Schedule, Invalid>) -> Vec<String> {
        r.unwrap_err().0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = input(serde_json::json!({
            "weekly": [
                {"weekday": "funday", "start": "09:00", "end": "12:00", "mode": "online", "slot_minutes": 30},
                {"weekday": "monday", "start": "12:00", "end": "09:00", "mode": "online", "slot_minutes": 30},
                {"weekday": "monday", "start": "9am", "end": "10:00", "mode": "video", "slot_minutes": 2}
            ],
            "horizon_days": 0,
            "min_notice_minutes": -5
        }));
        let f = fields(Schedule::parse(&bad));
        for want in [
            "weekly[0].weekday",
            "weekly[1].end",
            "weekly[2].start",
            "weekly[2].mode",
            "weekly[2].slot_minutes",
            "horizon_days",
            "min_notice_minutes",
        ] {
            assert!(f.contains(&want.to_string()), "{want} missing from {f:?}");
        }
    }

    #[test]
    fn overlapping_ranges_on_one_day_are_refused() {
        let bad = input(serde_json::json!({"weekly": [
            {"weekday": "monday", "start": "09:00", "end": "12:00", "mode": "online", "slot_minutes": 30},
            {"weekday": "monday", "start": "11:00", "end": "13:00", "mode": "in_person", "slot_minutes": 30}
        ]}));
        assert_eq!(fields(Schedule::parse(&bad)), vec!["weekly[1].start"]);
    }

    fn visit(code: &str, minutes: i64, modes: &[Mode]) -> VisitType {
        VisitType {
            code: code.into(),
            name: code.into(),
            duration_minutes: minutes,
            modes: modes.to_vec(),
            bookable_by: crate::BookableBy::Everyone,
            questions: vec![],
            min_notice_minutes: None,
            horizon_days: None,
            cancel_cutoff_hours: None,
        }
    }

    #[test]
    fn a_visit_needs_its_whole_length_free_and_its_buffers() {
        let s = Schedule::parse(&input(serde_json::json!({"weekly": [
            {"weekday": "monday", "start": "09:00", "end": "10:30", "mode": "in_person", "slot_minutes": 15},
            {"weekday": "monday", "start": "14:00", "end": "15:00", "mode": "online", "slot_minutes": 20, "buffer_minutes": 10}
        ]}))).unwrap();
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let d = DoctorId::new();
        let day =
            Interval { start: "2026-01-05T00:00:00Z".parse().unwrap(), end: "2026-01-06T00:00:00Z".parse().unwrap() };
        let local = |slots: Vec<Slot>| -> Vec<String> {
            slots.iter().map(|s| s.start.to_zoned(tz.clone()).strftime("%H:%M").to_string()).collect()
        };
        let first = visit("first", 45, &[Mode::InPerson]);
        assert_eq!(local(s.visit_slots(d, &tz, day, &[], &first)), ["09:00", "09:15", "09:30", "09:45"]);
        let slot = &s.visit_slots(d, &tz, day, &[], &first)[0];
        assert_eq!((slot.end.duration_since(slot.start).as_mins(), slot.id.visit.as_deref()), (45, Some("first")));
        // A 15-minute appointment at 09:30 (local) leaves room only after it.
        let busy =
            [Interval { start: "2026-01-05T08:30:00Z".parse().unwrap(), end: "2026-01-05T08:45:00Z".parse().unwrap() }];
        assert_eq!(local(s.visit_slots(d, &tz, day, &busy, &first)), ["09:45"]);
        // The schedule's own slots around it are still there (5 of 15 minutes, 2 online).
        assert_eq!(local(s.slots(d, &tz, day, &busy)).len(), 7);

        // Online, 20-minute grid with 10-minute buffers: a 30-minute visit fits at
        // 14:00 and 14:30, and an appointment at 14:00-14:20 keeps the 10 minutes after it.
        let call = visit("call", 30, &[Mode::Online]);
        assert_eq!(local(s.visit_slots(d, &tz, day, &[], &call)), ["14:00", "14:30"]);
        let at_two =
            [Interval { start: "2026-01-05T13:00:00Z".parse().unwrap(), end: "2026-01-05T13:20:00Z".parse().unwrap() }];
        assert_eq!(local(s.visit_slots(d, &tz, day, &at_two, &call)), ["14:30"]);
        let close =
            [Interval { start: "2026-01-05T13:00:00Z".parse().unwrap(), end: "2026-01-05T13:25:00Z".parse().unwrap() }];
        assert!(s.visit_slots(d, &tz, day, &close, &call).is_empty(), "14:30 is inside the buffer after 14:25");
        // A visit in both modes takes the ranges of both.
        assert_eq!(s.visit_slots(d, &tz, day, &[], &visit("any", 15, &[Mode::InPerson, Mode::Online])).len(), 8);
        // Found again by its start, with its length; not at a start off the grid.
        let at = "2026-01-05T08:15:00Z".parse().unwrap();
        assert_eq!(s.slot_of(d, &tz, at, Some(&first)).map(|s| s.end), Some("2026-01-05T09:00:00Z".parse().unwrap()));
        assert_eq!(s.slot_of(d, &tz, "2026-01-05T08:10:00Z".parse().unwrap(), Some(&first)), None);
    }

    #[test]
    fn a_visit_type_may_keep_its_own_notice_and_horizon() {
        let s = Schedule::default();
        let now: Timestamp = "2026-01-05T00:00:00Z".parse().unwrap();
        let mut v = visit("v", 15, &[Mode::Online]);
        assert_eq!(s.window_for(now, Some(&v)), s.bookable_window(now));
        v.min_notice_minutes = Some(2880);
        v.horizon_days = Some(14);
        let w = s.window_for(now, Some(&v));
        assert_eq!((w.start.duration_since(now).as_hours(), w.end.duration_since(now).as_hours()), (48, 14 * 24));
    }

    #[test]
    fn slots_skip_busy_time_and_honour_buffers() {
        let s = Schedule::parse(&input(serde_json::json!({"weekly": [
            {"weekday": "monday", "start": "09:00", "end": "11:00", "mode": "in_person", "slot_minutes": 30, "buffer_minutes": 10}
        ]}))).unwrap();
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let d = DoctorId::new();
        // Monday 2026-01-05, winter time (UTC+1).
        let window =
            Interval { start: "2026-01-05T00:00:00Z".parse().unwrap(), end: "2026-01-06T00:00:00Z".parse().unwrap() };
        let all = s.slots(d, &tz, window, &[]);
        let starts: Vec<String> = all.iter().map(|s| local_rfc3339(s.start, &tz)).collect();
        assert_eq!(starts, ["2026-01-05T09:00:00+01:00", "2026-01-05T09:40:00+01:00", "2026-01-05T10:20:00+01:00"]);
        let busy = [Interval { start: all[1].start, end: all[1].end }];
        assert_eq!(s.slots(d, &tz, window, &busy).len(), 2);
        assert_eq!(s.slot_at(d, &tz, all[2].start).unwrap(), all[2]);
        assert!(s.slot_at(d, &tz, all[2].start + SignedDuration::from_mins(5)).is_none());
    }

    proptest! {
        /// Slots never overlap each other, never overlap busy time, and each
        /// lies within one of the schedule's ranges, whatever the zone and day.
        #[test]
        fn slots_are_disjoint_and_free(
            zone in prop::sample::select(vec!["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
            day_offset in 0i64..730,
            start_h in 0i8..20, len_h in 1i8..4, slot in 5i64..90, buffer in 0i64..30,
            busy_at in 0i64..300, busy_len in 0i64..120,
        ) {
            let end_h = (start_h + len_h).min(23);
            prop_assume!(end_h > start_h);
            let tz = TimeZone::get(zone).unwrap();
            let mut weekly = vec![];
            for wd in ["monday","tuesday","wednesday","thursday","friday","saturday","sunday"] {
                weekly.push(RangeInput { weekday: Some(wd.into()), start: format!("{start_h:02}:00"), end: format!("{end_h:02}:30"), mode: "online".into(), slot_minutes: slot, buffer_minutes: buffer, ..Default::default() });
            }
            let s = Schedule::parse(&ScheduleInput { weekly, ..Default::default() }).unwrap();
            let base: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
            let from = base + SignedDuration::from_hours(24 * day_offset);
            let window = Interval { start: from, end: from + SignedDuration::from_hours(72) };
            let b = Interval { start: from + SignedDuration::from_mins(busy_at * 10), end: from + SignedDuration::from_mins(busy_at * 10 + busy_len) };
            let slots = s.slots(DoctorId::new(), &tz, window, &[b]);
            for w in slots.windows(2) {
                prop_assert!(w[0].end <= w[1].start);
            }
            for sl in &slots {
                let iv = Interval { start: sl.start, end: sl.end };
                prop_assert!(!b.overlaps(&iv));
                prop_assert_eq!(sl.end.duration_since(sl.start), SignedDuration::from_mins(slot));
                prop_assert!(sl.start >= window.start && sl.start < window.end);
            }
        }
    }
}
