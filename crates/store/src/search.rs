//! Search's read model: one row per verified doctor and specialty (and one
//! with the empty specialty, for searches by other filters), carrying what
//! search filters on (place, languages, modes) and the doctor's next free
//! start per mode as indexed columns; beside it, per doctor, the compact
//! [`FreeIndex`] those columns come from. Both backends keep it in tables
//! with indexes of their own (SQLite: B-trees and an R*Tree; PostgreSQL:
//! B-trees and a GiST index over `earthdistance`), so that a search is an
//! index query and no node holds the directory in memory.
//!
//! It is kept up to date by the application after the writes that change a
//! doctor's free times (see `medislot_app::search_index`); it never decides
//! a booking.

use crate::Result;
use async_trait::async_trait;
use jiff::Timestamp;
use medislot_domain::{free_index::FreeIndex, Coordinates, DoctorId, Mode};

/// What search filters on. The empty specialty matches every doctor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFilter {
    pub specialty: String,
    pub language: Option<String>,
    pub mode: Option<Mode>,
    /// A place and a radius in km: rows within the box around the circle
    /// (callers check the exact distance).
    pub near: Option<(Coordinates, f64)>,
}

/// One doctor as the read model lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRow {
    pub doctor_id: DoctorId,
    pub name: String,
    pub position: Coordinates,
    /// The indexed next free start of the mode searched (of any mode without one).
    pub next: Option<Timestamp>,
    /// Whether `next` may have stopped being bookable since it was written.
    pub stale: bool,
    /// The doctor's free times, where the query needed them.
    pub free: Option<FreeIndex>,
}

/// How far an indexed search counts: past this, a count says only "more"
/// (`COUNT_CAP + 1`). Counting every match of a broad search at a million
/// doctors would read every row of a specialty per request.
pub const COUNT_CAP: u64 = 1000;

/// A search by index order, read in one snapshot: the doctors whose indexed
/// next start is still bookable, soonest first; those whose indexed start
/// may have passed, with their free times so the caller can read the next
/// one; and the counts that need no free times.
#[derive(Debug, Clone, Default)]
pub struct IndexedSearch {
    /// Fresh rows with a next start in `[now, to)`, by (next, name, id), at most the limit asked.
    pub soonest: Vec<SearchRow>,
    /// Fresh rows with a next start in `[now, to)`, counted up to
    /// [`COUNT_CAP`] + 1 where rows without a slot are not asked for (a
    /// window asked for: the matches are those with a slot); else 0.
    pub soonest_count: u64,
    /// Rows whose indexed start may have passed (with free times), all of them.
    pub stale: Vec<SearchRow>,
    /// Fresh rows without a free start before `to`, by (name, id), where
    /// asked and `soonest` did not fill the limit.
    pub without_slot: Vec<SearchRow>,
    /// Every row matching the filter, counted up to [`COUNT_CAP`] + 1,
    /// where rows without a slot are asked for; else 0.
    pub total: u64,
}

/// Where the previous page of an indexed search ended: its last row's place
/// in the index's order (next start, then name and id; rows without a start
/// after every row with one). A page after it starts strictly later.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchAfter {
    pub next: Option<Timestamp>,
    pub name: String,
    pub doctor_id: DoctorId,
}

/// What the application writes for one doctor.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchEntry {
    pub doctor_id: DoctorId,
    /// When what it says was read: an entry never replaces one read later.
    pub at: Timestamp,
    /// `None`: the doctor is not searchable (any more): their rows go.
    pub listing: Option<SearchListing>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchListing {
    pub name: String,
    pub specialties: Vec<String>,
    pub languages: Vec<String>,
    pub modes: Vec<Mode>,
    pub position: Coordinates,
    pub free: FreeIndex,
}

/// A row the keeper should look at: its next start is passing, or it is old.
#[derive(Debug, Clone, PartialEq)]
pub struct DueEntry {
    pub doctor_id: DoctorId,
    pub free: FreeIndex,
}

/// The indexed next starts moved on, read from the stored free times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Advance {
    pub doctor_id: DoctorId,
    /// The stored free times this was read from: a row computed again since is left alone.
    pub computed_at: Timestamp,
    /// Next start in person, online.
    pub next: [Option<Timestamp>; 2],
    pub refresh_at: Timestamp,
    /// The doctor's minimum notice (the free times'), for the columns' bookable-until.
    pub notice: jiff::SignedDuration,
}

/// The indexed columns of a row written at `at`: next starts per mode, any
/// mode, and until when they stay bookable (`None`: no next start at all).
pub fn indexed_columns(next: [Option<Timestamp>; 2], notice: jiff::SignedDuration) -> IndexedColumns {
    let any = match next {
        [Some(a), Some(b)] => Some(a.min(b)),
        [a, b] => a.or(b),
    };
    IndexedColumns { in_person: next[0], online: next[1], any, fresh_until: any.map(|t| t - notice) }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexedColumns {
    pub in_person: Option<Timestamp>,
    pub online: Option<Timestamp>,
    pub any: Option<Timestamp>,
    pub fresh_until: Option<Timestamp>,
}

impl SearchListing {
    /// The next starts as written: from the free times, at the instant they were computed.
    pub fn columns(&self) -> IndexedColumns {
        let next = match self.free.next_at(self.free.computed_at) {
            medislot_domain::free_index::Known::Yes(n) => n,
            medislot_domain::free_index::Known::Unknown => [None, None],
        };
        indexed_columns(next, self.free.notice)
    }

    /// The rows' specialties: each one, and the empty one that every search without a specialty reads.
    pub fn specialty_keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once("").chain(self.specialties.iter().map(String::as_str).filter(|s| !s.is_empty()))
    }

    pub fn mode_bits(&self) -> i64 {
        self.modes.iter().map(|m| mode_bit(*m)).fold(0, |a, b| a | b)
    }
}

pub fn mode_bit(m: Mode) -> i64 {
    match m {
        Mode::InPerson => 1,
        Mode::Online => 2,
    }
}

#[async_trait]
pub trait SearchStore: Send + Sync {
    /// Every row matching the filter, with free times: for searches whose
    /// candidates the filter bounds (a radius) or whose window starts later.
    /// With `fresh_at`, rows still fresh then come without free times (their
    /// indexed next start is still bookable, which is all a window starting
    /// then needs); the stale ones with.
    async fn search_candidates(&self, filter: &SearchFilter, fresh_at: Option<Timestamp>) -> Result<Vec<SearchRow>>;

    /// A search in the index's order, for windows starting now (see
    /// [`IndexedSearch`]); with `after`, `soonest` and `without_slot` hold
    /// only rows past it (the counts and `stale` stay whole).
    async fn search_indexed(
        &self,
        filter: &SearchFilter,
        now: Timestamp,
        to: Timestamp,
        limit: u32,
        without_slot: Option<u32>,
        after: Option<&SearchAfter>,
    ) -> Result<IndexedSearch>;

    /// Replaces each doctor's rows, unless they hold free times computed
    /// later than the ones given (another node got there with fresher data).
    async fn put_search_entries(&self, entries: &[SearchEntry]) -> Result<()>;

    /// Rows to look at again at `now`, at most `limit`, the most overdue first.
    async fn search_entries_due(&self, now: Timestamp, limit: u32) -> Result<Vec<DueEntry>>;

    /// Moves indexed next starts on, from rows' own free times.
    async fn advance_search_entries(&self, advances: &[Advance]) -> Result<()>;

    /// Verified doctors without rows (a new database, or a doctor whose
    /// change no keeper saw), at most `limit`.
    async fn doctors_missing_from_search(&self, limit: u32) -> Result<Vec<DoctorId>>;

    /// When the newest free times were computed: where a keeper that starts picks up.
    async fn search_entries_as_of(&self) -> Result<Option<Timestamp>>;

    /// These doctors, whatever their verification, with their clinics.
    async fn doctors_by_id(&self, ids: &[DoctorId]) -> Result<Vec<(crate::DoctorRecord, crate::ClinicRecord)>>;

    /// Per doctor, when their earliest live hold runs out (the slot frees then).
    async fn hold_expiries(&self, ids: &[DoctorId], now: Timestamp) -> Result<Vec<(DoctorId, Timestamp)>>;
}
