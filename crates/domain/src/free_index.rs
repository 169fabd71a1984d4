//! A doctor's free times in the compact form search keeps in its index: the
//! next few free slots per mode, and per UTC day the first and last free
//! start per mode. It is computed from the schedule minus busy time at one
//! instant and read at later ones without recomputing, as long as nothing
//! was written for the doctor since (whoever keeps the index recomputes on
//! writes): time passing only removes slots from the front, which the
//! reader skips. Where it cannot tell (a window starting in the middle of a
//! day it only knows the ends of, or reaching past what was computed), it
//! says so and the caller computes from the schedule instead.
//!
//! It never decides a booking: the database's constraint does.

use crate::{schedule::Schedule, DoctorId, Interval, Mode};
use jiff::{SignedDuration, Timestamp};

/// The next free slots kept per mode.
pub const UPCOMING_PER_MODE: usize = 8;
/// The longest stretch an index is read before it is computed again: it
/// bounds how far behind the horizon's end it may lag.
pub const MAX_AGE: SignedDuration = SignedDuration::from_hours(24);
/// A day with no free start of a mode.
const NONE: u16 = u16::MAX;
/// A day whose starts are not whole minutes (a zone with odd offsets): unknown.
const ODD: u16 = u16::MAX - 1;
const DAY_SECS: i64 = 86_400;
const FORMAT: u8 = 1;

const fn mode_index(m: Mode) -> usize {
    match m {
        Mode::InPerson => 0,
        Mode::Online => 1,
    }
}

const MODES: [Mode; 2] = [Mode::InPerson, Mode::Online];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeIndex {
    /// When it was computed.
    pub computed_at: Timestamp,
    /// The doctor's minimum notice: at instant `t`, slots before `t + notice` are gone.
    pub notice: SignedDuration,
    /// The end of the range computed; starts at or after it are unknown here.
    pub covered_until: Timestamp,
    /// When it must be computed again whatever happens: a day on (the
    /// horizon's end moved), or sooner, when a hold it counted as busy runs out.
    pub recompute_at: Timestamp,
    /// The first free slots in start order, at most [`UPCOMING_PER_MODE`] per mode.
    pub upcoming: Vec<(Timestamp, Mode)>,
    /// Per mode: whether `upcoming` lists every free slot of that mode.
    pub complete: [bool; 2],
    /// The UTC day (days since 1970-01-01) of `days[0]`.
    pub first_day: i64,
    /// Per UTC day: first and last free start of in-person, then of online
    /// slots, in minutes since midnight UTC.
    pub days: Vec<[u16; 4]>,
}

/// What an index knows of a question: the answer, or that it cannot tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known<T> {
    Yes(T),
    Unknown,
}

fn day_of(t: Timestamp) -> i64 {
    t.as_second().div_euclid(DAY_SECS)
}

fn minute_of_day(t: Timestamp) -> Option<u16> {
    let s = t.as_second().rem_euclid(DAY_SECS);
    (s % 60 == 0 && t.subsec_nanosecond() == 0).then_some((s / 60) as u16)
}

fn at_minute(day: i64, minute: u16) -> Timestamp {
    Timestamp::from_second(day * DAY_SECS + i64::from(minute) * 60).unwrap_or(Timestamp::MAX)
}

impl FreeIndex {
    /// The doctor's free slots over the bookable window at `now`, indexed.
    pub fn compute(
        schedule: &Schedule,
        doctor: DoctorId,
        tz: &jiff::tz::TimeZone,
        busy: &[Interval],
        now: Timestamp,
    ) -> Self {
        let window = schedule.bookable_window(now);
        let slots = schedule.slots(doctor, tz, window, busy);
        let first_day = day_of(window.start);
        let ndays = (day_of(window.end) - first_day + 1).max(0) as usize;
        let mut days = vec![[NONE; 4]; ndays];
        let mut upcoming = Vec::new();
        let mut per_mode = [0usize; 2];
        for s in &slots {
            let m = mode_index(s.mode);
            per_mode[m] += 1;
            if per_mode[m] <= UPCOMING_PER_MODE {
                upcoming.push((s.start, s.mode));
            }
            let d = (day_of(s.start) - first_day) as usize;
            let Some(entry) = days.get_mut(d) else { continue };
            match minute_of_day(s.start) {
                Some(min) if entry[2 * m] != ODD => {
                    if entry[2 * m] == NONE {
                        entry[2 * m] = min;
                    }
                    entry[2 * m + 1] = min;
                }
                _ => {
                    entry[2 * m] = ODD;
                    entry[2 * m + 1] = ODD;
                }
            }
        }
        let complete = [per_mode[0] <= UPCOMING_PER_MODE, per_mode[1] <= UPCOMING_PER_MODE];
        FreeIndex {
            computed_at: now,
            notice: SignedDuration::from_mins(schedule.min_notice_minutes),
            covered_until: window.end,
            recompute_at: now + MAX_AGE,
            upcoming,
            complete,
            first_day,
            days,
        }
    }

    /// The first free start of `mode` (any mode with `None`) in `[from, to)`,
    /// as far as this index knows; `from` is at least the bookable start at
    /// the instant asked about (now plus notice), which callers ensure.
    pub fn first_in(&self, from: Timestamp, to: Timestamp, mode: Option<Mode>) -> Known<Option<Timestamp>> {
        match mode {
            Some(m) => self.first_of(from, to, m),
            None => {
                let (a, b) = (self.first_of(from, to, Mode::InPerson), self.first_of(from, to, Mode::Online));
                match (a, b) {
                    (Known::Yes(x), Known::Yes(y)) => Known::Yes(match (x, y) {
                        (Some(x), Some(y)) => Some(x.min(y)),
                        (x, y) => x.or(y),
                    }),
                    // The other mode's unknown answer is after `from`, and may be before the known one.
                    _ => Known::Unknown,
                }
            }
        }
    }

    fn first_of(&self, from: Timestamp, to: Timestamp, mode: Mode) -> Known<Option<Timestamp>> {
        let m = mode_index(mode);
        let listed = || self.upcoming.iter().filter(|(_, um)| *um == mode).map(|(t, _)| *t);
        if let Some(t) = listed().find(|t| *t >= from) {
            return Known::Yes((t < to).then_some(t));
        }
        // Past what is listed: from here on, only the days' first and last starts.
        let known_until = self.covered_until;
        if self.complete[m] {
            return if to <= known_until { Known::Yes(None) } else { Known::Unknown };
        }
        let last_listed = listed().next_back().unwrap_or(Timestamp::MIN);
        let mut day = day_of(from);
        while at_minute(day, 0) < to.min(known_until) {
            let Some(entry) = usize::try_from(day - self.first_day).ok().and_then(|i| self.days.get(i)) else {
                break;
            };
            let (first, last) = (entry[2 * m], entry[2 * m + 1]);
            if first == ODD {
                return Known::Unknown;
            }
            if first != NONE {
                let (first, last) = (at_minute(day, first), at_minute(day, last));
                if first >= from {
                    return Known::Yes((first < to && first < known_until).then_some(first));
                }
                // Some start of this day is at or after `from` and is not listed: when, is unknown.
                if last >= from && last > last_listed {
                    return Known::Unknown;
                }
            }
            day += 1;
        }
        if to <= known_until {
            Known::Yes(None)
        } else {
            Known::Unknown
        }
    }

    /// The next free start per mode (in-person, online) bookable at `at`;
    /// `Unknown` when the listed slots ran out and the index must be computed again.
    pub fn next_at(&self, at: Timestamp) -> Known<[Option<Timestamp>; 2]> {
        let from = at + self.notice;
        let mut out = [None; 2];
        for mode in MODES {
            let m = mode_index(mode);
            let listed = self.upcoming.iter().filter(|(_, um)| *um == mode).map(|(t, _)| *t).find(|t| *t >= from);
            match listed {
                Some(t) => out[m] = Some(t),
                None if self.complete[m] => {}
                None => return Known::Unknown,
            }
        }
        Known::Yes(out)
    }

    /// When whoever keeps the index should look at it again: the next listed
    /// slot stops being bookable (its indexed next start moves on), or
    /// [`Self::recompute_at`].
    pub fn refresh_at(&self, at: Timestamp) -> Timestamp {
        let from = at + self.notice;
        let next_gone = self.upcoming.iter().map(|(t, _)| *t).find(|t| *t >= from).map(|t| t - self.notice);
        next_gone.map_or(self.recompute_at, |t| t.min(self.recompute_at))
    }

    /// The stored form: a versioned, little-endian byte string.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + 9 * self.upcoming.len() + 8 * self.days.len());
        b.push(FORMAT);
        b.extend(self.computed_at.as_microsecond().to_le_bytes());
        b.extend((self.notice.as_secs() as i32).to_le_bytes());
        b.extend(self.covered_until.as_second().to_le_bytes());
        b.extend(self.recompute_at.as_second().to_le_bytes());
        b.push(u8::from(self.complete[0]) | (u8::from(self.complete[1]) << 1));
        b.push(self.upcoming.len() as u8);
        for (t, m) in &self.upcoming {
            b.extend(t.as_second().to_le_bytes());
            b.push(mode_index(*m) as u8);
        }
        b.extend(self.first_day.to_le_bytes());
        b.extend((self.days.len() as u16).to_le_bytes());
        for d in &self.days {
            for v in d {
                b.extend(v.to_le_bytes());
            }
        }
        b
    }

    /// Reads [`Self::encode`]'s form; `None` for bytes it did not write.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.u8()? != FORMAT {
            return None;
        }
        let computed_at = Timestamp::from_microsecond(r.i64()?).ok()?;
        let notice = SignedDuration::from_secs(i64::from(r.i32()?));
        let covered_until = Timestamp::from_second(r.i64()?).ok()?;
        let recompute_at = Timestamp::from_second(r.i64()?).ok()?;
        let flags = r.u8()?;
        let n = r.u8()? as usize;
        let mut upcoming = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Timestamp::from_second(r.i64()?).ok()?;
            let mode = *MODES.get(r.u8()? as usize)?;
            upcoming.push((t, mode));
        }
        let first_day = r.i64()?;
        let ndays = r.u16()? as usize;
        let mut days = Vec::with_capacity(ndays);
        for _ in 0..ndays {
            days.push([r.u16()?, r.u16()?, r.u16()?, r.u16()?]);
        }
        r.0.is_empty().then_some(FreeIndex {
            computed_at,
            notice,
            covered_until,
            recompute_at,
            upcoming,
            complete: [flags & 1 != 0, flags & 2 != 0],
            first_day,
            days,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{RangeInput, ScheduleInput};
    use proptest::prelude::*;

    fn schedule(notice: i64) -> Schedule {
        let input = ScheduleInput {
            weekly: vec![
                RangeInput::weekly("monday", "09:00", "12:00", "in_person", 30),
                RangeInput::weekly("tuesday", "08:00", "10:00", "online", 20),
                RangeInput::weekly("tuesday", "14:00", "17:00", "in_person", 45),
                RangeInput::weekly("thursday", "22:00", "23:59", "in_person", 25),
                RangeInput::weekly("saturday", "10:00", "11:00", "online", 15),
            ],
            extra: vec![],
            horizon_days: Some(30),
            min_notice_minutes: Some(notice),
        };
        Schedule::parse(&input).unwrap()
    }

    /// The answer from the schedule itself, as search computed it before the index.
    #[allow(clippy::too_many_arguments)]
    fn truth(
        s: &Schedule,
        doctor: DoctorId,
        tz: &jiff::tz::TimeZone,
        busy: &[Interval],
        now: Timestamp,
        from: Timestamp,
        to: Timestamp,
        mode: Option<Mode>,
    ) -> Option<Timestamp> {
        let w = s.bookable_window(now);
        let w = Interval { start: w.start.max(from), end: w.end.min(to) };
        if w.end <= w.start {
            return None;
        }
        s.slots(doctor, tz, w, busy).into_iter().find(|x| mode.is_none_or(|m| x.mode == m)).map(|x| x.start)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Read at a later instant, for any window and mode, the index gives
        /// the schedule's own answer or says it cannot tell; and it can tell
        /// for windows that start at now or at a UTC midnight.
        #[test]
        fn the_index_agrees_with_the_schedule_or_says_it_cannot_tell(
            zone in prop::sample::select(vec!["Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]),
            start_h in 0i64..24 * 14,
            busy_picks in prop::collection::vec(0usize..200, 0..40),
            later_min in 0i64..24 * 60,
            from_h in prop::option::of(0i64..24 * 35),
            len_h in 1i64..24 * 40,
            mode in prop::option::of(prop::sample::select(vec![Mode::InPerson, Mode::Online])),
            notice in prop::sample::select(vec![0i64, 60, 600]),
        ) {
            let s = schedule(notice);
            let tz = jiff::tz::TimeZone::get(zone).unwrap();
            let doctor = DoctorId::new();
            let t0: Timestamp = "2026-03-16T00:00:00Z".parse().unwrap();
            let now = t0 + SignedDuration::from_hours(start_h);
            let all = s.slots(doctor, &tz, s.bookable_window(now), &[]);
            let busy: Vec<Interval> = busy_picks.iter().filter_map(|i| all.get(*i)).map(|x| Interval { start: x.start, end: x.end }).collect();
            let index = FreeIndex::decode(&FreeIndex::compute(&s, doctor, &tz, &busy, now).encode()).unwrap();
            let at = now + SignedDuration::from_mins(later_min);
            let bookable = at + SignedDuration::from_mins(notice);
            let from = from_h.map_or(bookable, |h| (t0 + SignedDuration::from_hours(h)).max(bookable));
            let to = from + SignedDuration::from_hours(len_h);
            // What the index covers: the horizon as of when it was computed.
            let expected = truth(&s, doctor, &tz, &busy, now, from, to, mode);
            match index.first_in(from, to, mode) {
                Known::Yes(got) => prop_assert_eq!(got, expected, "from {} to {}", from, to),
                Known::Unknown => {
                    let midnight = from.as_second() % DAY_SECS == 0;
                    let can_tell = (from == bookable && later_min == 0) || (midnight && mode.is_some());
                    prop_assert!(!(can_tell && to <= index.covered_until), "unknown from {} to {}", from, to);
                }
            }
            if let Known::Yes(next) = index.next_at(at) {
                for m in MODES {
                    let far = index.covered_until;
                    prop_assert_eq!(next[mode_index(m)], truth(&s, doctor, &tz, &busy, now, bookable, far, Some(m)));
                }
            }
        }
    }

    #[test]
    fn refresh_comes_when_the_next_slot_stops_being_bookable_or_after_a_day() {
        let s = schedule(60);
        let tz = jiff::tz::TimeZone::get("UTC").unwrap();
        let now: Timestamp = "2026-03-16T07:00:00Z".parse().unwrap(); // a Monday
        let index = FreeIndex::compute(&s, DoctorId::new(), &tz, &[], now);
        // Monday 09:00 is the first slot; with an hour's notice it goes at 08:00.
        assert_eq!(index.refresh_at(now), "2026-03-16T08:00:00Z".parse().unwrap());
        let sunday: Timestamp = "2026-03-15T00:00:00Z".parse().unwrap();
        let empty =
            FreeIndex::compute(&Schedule::parse(&ScheduleInput::default()).unwrap(), DoctorId::new(), &tz, &[], sunday);
        assert_eq!(empty.refresh_at(sunday), sunday + MAX_AGE);
        assert_eq!(empty.first_in(sunday, sunday + SignedDuration::from_hours(48), None), Known::Yes(None));
    }

    #[test]
    fn bytes_it_did_not_write_are_refused() {
        let s = schedule(0);
        let tz = jiff::tz::TimeZone::get("UTC").unwrap();
        let bytes = FreeIndex::compute(&s, DoctorId::new(), &tz, &[], "2026-03-16T07:00:00Z".parse().unwrap()).encode();
        assert!(FreeIndex::decode(&bytes).is_some());
        assert!(FreeIndex::decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(FreeIndex::decode(&[2]).is_none());
        assert!(FreeIndex::decode(&[bytes.as_slice(), &[0]].concat()).is_none());
    }
}
