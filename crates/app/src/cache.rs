//! A short-lived, in-process cache of doctors' busy times, for availability
//! reads only (slot lists, search). It can make a slot look free or taken for
//! up to its TTL after another node's change; it never decides a booking —
//! every booking goes to the database and its overlap constraint (P1). Writes
//! made through this node drop the doctor's entry at once.

use jiff::{SignedDuration, Timestamp};
use medislot_domain::{DoctorId, Interval};
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How far ahead an entry covers: the longest window a listing may ask for.
const SPAN_DAYS: i64 = 92;
/// Entries kept at most (then the oldest half is dropped).
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    fetched: Instant,
    covers: Interval,
    busy: Vec<Interval>,
}

pub struct AvailabilityCache {
    ttl: Duration,
    entries: Mutex<HashMap<DoctorId, Entry>>,
}

impl AvailabilityCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::default() }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The window to fetch for a request, so that the entry serves later ones too.
    pub fn span(window: Interval, now: Timestamp) -> Interval {
        Interval { start: window.start.min(now), end: window.end.max(now + SignedDuration::from_hours(24 * SPAN_DAYS)) }
    }

    /// A doctor's busy times within `window`, if a fresh entry covers it.
    pub fn get(&self, doctor: DoctorId, window: Interval) -> Option<Vec<Interval>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.get(&doctor)?;
        let fresh = e.fetched.elapsed() < self.ttl;
        let covers = e.covers.start <= window.start && window.end <= e.covers.end;
        (fresh && covers)
            .then(|| e.busy.iter().filter(|b| b.start < window.end && window.start < b.end).copied().collect())
    }

    pub fn put(&self, doctor: DoctorId, covers: Interval, busy: Vec<Interval>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, e| e.fetched.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(doctor, Entry { fetched: Instant::now(), covers, busy });
    }

    /// A write through this node changed the doctor's availability.
    pub fn invalidate(&self, doctor: DoctorId) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(&doctor);
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The age of the oldest entry still served (staleness, for metrics).
    pub fn oldest_age(&self) -> Duration {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.values().map(|e| e.fetched.elapsed()).filter(|a| *a < self.ttl).max().unwrap_or_default()
    }
}

/// Verified doctors by specialty, language and mode (not by place: the box
/// is applied in memory), for search: the same short TTL as availability,
/// dropped whole by any profile, schedule or verification change made through
/// this node. Search reads the directory here instead of once per request.
pub struct DirectoryCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, DirectoryEntry)>>,
    /// One first load per query at a time (no stampede when a query is new;
    /// different queries load side by side).
    first_loads: Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// Queries being refreshed in the background: requests that find an entry
    /// expired keep using it while one task fetches the new one.
    refreshing: Mutex<std::collections::HashSet<String>>,
}

pub type DirectoryEntry = std::sync::Arc<Vec<(medislot_store::DoctorRecord, medislot_store::ClinicRecord)>>;

/// Queries kept at most (then all are dropped).
const MAX_QUERIES: usize = 1000;

impl DirectoryCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::default(), first_loads: Mutex::default(), refreshing: Mutex::default() }
    }

    /// The entry and whether it is still fresh.
    pub fn get(&self, key: &str) -> Option<(DirectoryEntry, bool)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).map(|(at, e)| (e.clone(), at.elapsed() < self.ttl))
    }

    /// The lock the first load of `key` is made under.
    pub fn first_load(&self, key: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.first_loads.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() >= MAX_QUERIES {
            locks.clear();
        }
        locks.entry(key.to_string()).or_default().clone()
    }

    /// Claims the refresh of `key`; `false` when another task is on it.
    pub fn start_refresh(&self, key: &str) -> bool {
        self.refreshing.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_string())
    }

    pub fn end_refresh(&self, key: &str) {
        self.refreshing.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    pub fn put(&self, key: String, entry: DirectoryEntry) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_QUERIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), entry));
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(a: i64, b: i64) -> Interval {
        Interval { start: Timestamp::from_second(a).unwrap(), end: Timestamp::from_second(b).unwrap() }
    }

    #[test]
    fn serves_covered_windows_until_invalidated_or_stale() {
        let c = AvailabilityCache::new(Duration::from_millis(200));
        let d = DoctorId::new();
        assert!(c.get(d, iv(0, 100)).is_none());
        c.put(d, iv(0, 1000), vec![iv(10, 20), iv(500, 600)]);
        assert_eq!(c.get(d, iv(0, 100)), Some(vec![iv(10, 20)]), "only what overlaps the window");
        assert!(c.get(d, iv(900, 1100)).is_none(), "not covered");
        c.invalidate(d);
        assert!(c.get(d, iv(0, 100)).is_none(), "a local write drops it");
        c.put(d, iv(0, 1000), vec![]);
        std::thread::sleep(Duration::from_millis(250));
        assert!(c.get(d, iv(0, 100)).is_none(), "stale after the TTL");
        assert!(!AvailabilityCache::new(Duration::ZERO).enabled());
    }

    #[test]
    fn directory_entries_go_stale_but_stay_usable_and_refresh_once() {
        let c = DirectoryCache::new(Duration::from_millis(200));
        assert!(c.get("cardiology").is_none());
        c.put("cardiology".into(), std::sync::Arc::new(vec![]));
        assert!(matches!(c.get("cardiology"), Some((_, true))));
        std::thread::sleep(Duration::from_millis(250));
        assert!(matches!(c.get("cardiology"), Some((_, false))), "stale, still served while refreshed");
        assert!(c.start_refresh("cardiology"));
        assert!(!c.start_refresh("cardiology"), "one refresh at a time");
        c.end_refresh("cardiology");
        assert!(c.start_refresh("cardiology"));
        c.clear();
        assert!(c.get("cardiology").is_none(), "a local change drops everything");
        let off = DirectoryCache::new(Duration::ZERO);
        off.put("x".into(), std::sync::Arc::new(vec![]));
        assert!(off.get("x").is_none(), "a zero TTL keeps nothing");
    }
}
