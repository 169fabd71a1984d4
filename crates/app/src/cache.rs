//! A short-lived, in-process cache of doctors' busy times, for availability
//! reads only (slot lists, search). It can make a slot look free or taken for
//! up to its TTL after another node's change; it never decides a booking —
//! every booking goes to the database and its overlap constraint (P1). Writes
//! made through this node drop the doctor's entry at once.

use jiff::{SignedDuration, Timestamp};
use medislot_domain::{DoctorId, Interval, VerificationState};
use medislot_store::{ClinicRecord, DoctorQuery, DoctorRecord};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
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

/// One verified doctor with their clinic, shared between the directory
/// snapshot and the requests that read it (no per-request copies).
pub type Listing = Arc<(DoctorRecord, ClinicRecord)>;

/// Every verified doctor, for search, with an index by specialty; filters
/// (language, mode, place) are applied in memory. Built once per refresh.
#[derive(Default)]
pub struct Directory {
    listings: Vec<Listing>,
    by_specialty: HashMap<String, Vec<usize>>,
    by_id: HashMap<DoctorId, usize>,
}

impl Directory {
    pub fn new(rows: Vec<(DoctorRecord, ClinicRecord)>) -> Self {
        Self::index(
            rows.into_iter().filter(|(d, _)| d.verification == VerificationState::Verified).map(Arc::new).collect(),
        )
    }

    fn index(listings: Vec<Listing>) -> Self {
        let mut by_specialty: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_id = HashMap::with_capacity(listings.len());
        for (i, l) in listings.iter().enumerate() {
            for s in &l.0.specialties {
                by_specialty.entry(s.clone()).or_default().push(i);
            }
            by_id.insert(l.0.id, i);
        }
        Self { listings, by_specialty, by_id }
    }

    /// One verified doctor with their clinic.
    pub fn listing(&self, id: DoctorId) -> Option<Listing> {
        self.by_id.get(&id).map(|&i| self.listings[i].clone())
    }

    pub fn len(&self) -> usize {
        self.listings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.listings.is_empty()
    }

    /// The listings matching the query: the same rules as the store's
    /// `search_doctors` (exact specialty and language tags, offered mode,
    /// clinic inside the box, the excluded doctor left out).
    pub fn matching(&self, q: &DoctorQuery) -> Vec<Listing> {
        let keep = |l: &&Listing| {
            let (d, c) = &***l;
            q.language.as_ref().is_none_or(|lang| d.languages.contains(lang))
                && q.mode.is_none_or(|m| d.modes.contains(&m))
                && q.exclude_doctor != Some(d.id)
                && q.bounding_box.is_none_or(|(lat0, lat1, lon0, lon1)| {
                    (lat0..=lat1).contains(&c.position.lat) && (lon0..=lon1).contains(&c.position.lon)
                })
        };
        match &q.specialty {
            Some(s) => self
                .by_specialty
                .get(s)
                .into_iter()
                .flatten()
                .map(|&i| &self.listings[i])
                .filter(keep)
                .cloned()
                .collect(),
            None => self.listings.iter().filter(keep).cloned().collect(),
        }
    }

    /// This directory with some doctors' newer records: added or replaced
    /// while verified, dropped otherwise. An older version never replaces a
    /// newer one, so a change may be applied twice, in any order.
    pub fn with(&self, changed: &[(DoctorRecord, ClinicRecord)]) -> Self {
        // Each doctor once, at the newest version given (the later one on a tie).
        let mut newest: HashMap<DoctorId, &(DoctorRecord, ClinicRecord)> = HashMap::new();
        for row in changed {
            match newest.get(&row.0.id) {
                Some(seen) if seen.0.version > row.0.version => {}
                _ => {
                    newest.insert(row.0.id, row);
                }
            }
        }
        let mut listings = self.listings.clone();
        let position: HashMap<DoctorId, usize> = listings.iter().enumerate().map(|(i, l)| (l.0.id, i)).collect();
        let mut dropped = std::collections::HashSet::new();
        for (d, c) in newest.into_values() {
            let verified = d.verification == VerificationState::Verified;
            match position.get(&d.id) {
                Some(&i) if d.version < listings[i].0.version => {}
                Some(&i) if verified => listings[i] = Arc::new((d.clone(), c.clone())),
                Some(&i) => {
                    dropped.insert(i);
                }
                None if verified => listings.push(Arc::new((d.clone(), c.clone()))),
                None => {}
            }
        }
        let listings = listings.into_iter().enumerate().filter(|(i, _)| !dropped.contains(i)).map(|(_, l)| l).collect();
        Self::index(listings)
    }
}

#[derive(Default)]
struct DirectoryState {
    snapshot: Option<(Instant, Arc<Directory>)>,
    refreshing: bool,
    /// Changes patched in while a refresh was reading the store, applied
    /// again to what it read (which may predate them).
    patched_during_refresh: Vec<(DoctorRecord, ClinicRecord)>,
    /// When the last successful load began (by the application's clock).
    loaded_from: Option<Timestamp>,
    last_full: Option<Instant>,
}

/// What a refresh reads: the whole directory, or the doctors changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Full,
    ChangedSince(Timestamp),
}

/// Every this many TTLs a refresh reads the whole directory again (which
/// also catches what the incremental ones could miss, such as a replicated
/// doctor whose change carries another region's older time).
const FULL_REFRESH_EVERY_TTLS: u32 = 6;
/// Incremental refreshes reach this far before the previous load began:
/// changes written by other nodes whose clocks run a little behind.
const CLOCK_MARGIN: SignedDuration = SignedDuration::from_secs(5);

/// This node's copy of the directory for search: loaded once, refreshed in
/// the background when older than the TTL (requests meanwhile use the
/// previous copy, so none waits and none stampedes), and patched at once by
/// the changes this node makes or replicates. Another node's change shows
/// within a TTL. It never decides a booking.
pub struct DirectoryCache {
    ttl: Duration,
    state: Mutex<DirectoryState>,
    /// The first load, made once while requests wait for it.
    first_load: tokio::sync::Mutex<()>,
}

impl DirectoryCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, state: Mutex::default(), first_load: tokio::sync::Mutex::const_new(()) }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DirectoryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The snapshot and whether it is still fresh.
    pub fn get(&self) -> Option<(Arc<Directory>, bool)> {
        self.state().snapshot.as_ref().map(|(at, d)| (d.clone(), at.elapsed() < self.ttl))
    }

    /// Waits for the first load when there is no snapshot yet (hold the guard
    /// while loading).
    pub async fn first_load(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.first_load.lock().await
    }

    /// Claims a refresh and says what it must read; `None` when one is under way.
    pub fn start_refresh(&self) -> Option<Refresh> {
        let mut st = self.state();
        if st.refreshing {
            return None;
        }
        st.refreshing = true;
        st.patched_during_refresh.clear();
        let full_due = st.last_full.is_none_or(|t| t.elapsed() >= self.ttl * FULL_REFRESH_EVERY_TTLS);
        Some(match (&st.snapshot, st.loaded_from) {
            (Some(_), Some(from)) if !full_due => Refresh::ChangedSince(from - CLOCK_MARGIN),
            _ => Refresh::Full,
        })
    }

    /// Ends the claimed refresh with the rows it read (from `began` on), plus
    /// what was patched meanwhile.
    pub fn finish_refresh(
        &self,
        refresh: Refresh,
        began: Timestamp,
        mut rows: Vec<(DoctorRecord, ClinicRecord)>,
    ) -> Arc<Directory> {
        let mut st = self.state();
        st.refreshing = false;
        let patched = std::mem::take(&mut st.patched_during_refresh);
        let dir = match refresh {
            Refresh::Full => {
                st.last_full = Some(Instant::now());
                let loaded = Directory::new(rows);
                if patched.is_empty() {
                    loaded
                } else {
                    loaded.with(&patched)
                }
            }
            Refresh::ChangedSince(_) => {
                rows.extend(patched);
                let current = st.snapshot.as_ref().map(|(_, d)| d.clone()).unwrap_or_default();
                current.with(&rows)
            }
        };
        let dir = Arc::new(dir);
        if self.enabled() {
            st.snapshot = Some((Instant::now(), dir.clone()));
            st.loaded_from = Some(began);
        }
        dir
    }

    /// Ends the claimed load that failed; the previous snapshot stays.
    pub fn abandon_refresh(&self) {
        let mut st = self.state();
        st.refreshing = false;
        st.patched_during_refresh.clear();
    }

    /// Doctors changed through this node (or replicated to it): the snapshot
    /// shows them at once.
    pub fn patch(&self, changed: Vec<(DoctorRecord, ClinicRecord)>) {
        if changed.is_empty() {
            return;
        }
        let mut st = self.state();
        if let Some((at, dir)) = &st.snapshot {
            st.snapshot = Some((*at, Arc::new(dir.with(&changed))));
        }
        if st.refreshing {
            st.patched_during_refresh.extend(changed);
        }
    }

    /// Serve the snapshot as stale: the next search refreshes it in the background.
    pub fn expire(&self) {
        let ttl = self.ttl;
        if let Some((at, _)) = &mut self.state().snapshot {
            *at = Instant::now().checked_sub(ttl).unwrap_or(*at);
        }
    }

    /// The snapshot's age (staleness, for metrics).
    pub fn age(&self) -> Option<Duration> {
        self.state().snapshot.as_ref().map(|(at, _)| at.elapsed())
    }
}

/// Answers worth sharing for a moment: everyone asking the same question
/// within the TTL gets one computation's answer, and those who ask while it
/// runs wait for it (the 199 losers of a race for one slot are offered the
/// same alternatives, computed once).
pub struct Memo<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, MemoEntry<V>>>,
}

/// When a question was first asked, and its answer (once computed).
type MemoEntry<V> = (Instant, Arc<tokio::sync::OnceCell<V>>);

/// Questions remembered at most (then the expired ones, or all, are dropped).
const MAX_MEMO_ENTRIES: usize = 10_000;

impl<K: std::hash::Hash + Eq, V: Clone> Memo<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::default() }
    }

    pub async fn get_or_compute<F, Fut>(&self, key: K, compute: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = V>,
    {
        if self.ttl.is_zero() {
            return compute().await;
        }
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if entries.len() >= MAX_MEMO_ENTRIES {
                let ttl = self.ttl;
                entries.retain(|_, (at, _)| at.elapsed() < ttl);
                if entries.len() >= MAX_MEMO_ENTRIES {
                    entries.clear();
                }
            }
            match entries.get(&key) {
                Some((at, cell)) if at.elapsed() < self.ttl => cell.clone(),
                _ => {
                    let cell = Arc::new(tokio::sync::OnceCell::new());
                    entries.insert(key, (Instant::now(), cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_init(compute).await.clone()
    }
}

/// Who a bearer token stands for, as the store said a moment ago: every
/// request presents a token, and most of them the same few. An entry is kept
/// for [`TOKEN_CACHE_TTL`] at most, and a log-out through this node drops it
/// at once; a log-out through another node is seen here within that time.
/// It never decides a booking (the database does), only who is asking.
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, medislot_store::UserRecord)>>,
}

/// How long a token's look-up is reused.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries at most; past that the cache starts afresh (a flood of tokens
/// cannot make it grow without bound).
const TOKEN_CACHE_ENTRIES: usize = 50_000;

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(TOKEN_CACHE_TTL)
    }
}

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, medislot_store::UserRecord)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, token_hash: &str) -> Option<medislot_store::UserRecord> {
        let mut entries = self.entries();
        match entries.get(token_hash) {
            Some((at, user)) if at.elapsed() < self.ttl => Some(user.clone()),
            Some(_) => {
                entries.remove(token_hash);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, token_hash: &str, user: &medislot_store::UserRecord) {
        let mut entries = self.entries();
        if entries.len() >= TOKEN_CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(token_hash.to_string(), (Instant::now(), user.clone()));
    }

    pub fn forget(&self, token_hash: &str) {
        self.entries().remove(token_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient(name: &str) -> medislot_store::UserRecord {
        medislot_store::UserRecord {
            id: medislot_domain::UserId::new(),
            email: format!("{name}@example.org"),
            password_hash: "x".into(),
            role: medislot_domain::Role::Patient,
            name: name.into(),
            created_at: Timestamp::now(),
        }
    }

    #[test]
    fn a_token_look_up_is_reused_for_a_while_and_forgotten_on_log_out() {
        let cache = TokenCache::new(Duration::from_millis(200));
        let p = patient("p");
        assert!(cache.get("h").is_none());
        cache.put("h", &p);
        assert_eq!(cache.get("h").map(|u| u.id), Some(p.id));
        cache.forget("h");
        assert!(cache.get("h").is_none(), "a log-out through this node counts at once");
        cache.put("h", &p);
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.get("h").is_none(), "an entry is not used past its time");
    }

    #[test]
    fn a_flood_of_tokens_cannot_grow_the_token_cache_without_bound() {
        let cache = TokenCache::default();
        let p = patient("p");
        for i in 0..TOKEN_CACHE_ENTRIES + 10 {
            cache.put(&i.to_string(), &p);
        }
        assert!(cache.entries().len() <= TOKEN_CACHE_ENTRIES);
    }

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

    fn listing(name: &str, specialty: &str, lat: f64, version: i64) -> (DoctorRecord, ClinicRecord) {
        let now = Timestamp::UNIX_EPOCH;
        let clinic = ClinicRecord {
            id: medislot_domain::ClinicId::new(),
            name: "Clinic".into(),
            address: "1 Main St".into(),
            postal: Default::default(),
            phone: None,
            position: medislot_domain::Coordinates { lat, lon: 2.35 },
            time_zone: medislot_domain::TimeZoneName::parse("time_zone", "Europe/Paris").unwrap(),
            region: "local".into(),
            policy: medislot_domain::Policy::Strict,
            created_at: now,
        };
        let doctor = DoctorRecord {
            id: DoctorId::new(),
            user_id: None,
            clinic_id: clinic.id,
            name: name.into(),
            specialties: vec![specialty.into()],
            languages: vec!["en".into()],
            modes: vec![medislot_domain::Mode::InPerson],
            licence_number: "L-1".into(),
            bio: String::new(),
            verification: VerificationState::Verified,
            verification_reason: None,
            membership: medislot_domain::Membership::Active,
            schedule: Default::default(),
            version,
            created_at: now,
            updated_at: now,
        };
        (doctor, clinic)
    }

    fn names(mut v: Vec<Listing>) -> Vec<String> {
        v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        v.iter().map(|l| l.0.name.clone()).collect()
    }

    #[tokio::test]
    async fn a_memo_computes_once_for_everyone_asking_at_the_same_time() {
        let memo = Arc::new(Memo::new(Duration::from_millis(300)));
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ask = |memo: Arc<Memo<&'static str, u32>>, runs: Arc<std::sync::atomic::AtomicU32>| async move {
            memo.get_or_compute("slot", || async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
            })
            .await
        };
        let mut asking = tokio::task::JoinSet::new();
        for _ in 0..50 {
            asking.spawn(ask(memo.clone(), runs.clone()));
        }
        let answers = asking.join_all().await;
        assert!(answers.iter().all(|a| *a == 1), "one computation, shared: {answers:?}");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(ask(memo.clone(), runs.clone()).await, 2, "computed again after the TTL");
        let off = Memo::new(Duration::ZERO);
        assert_eq!(off.get_or_compute("x", || async { 7 }).await + off.get_or_compute("x", || async { 8 }).await, 15);
    }

    #[test]
    fn the_directory_filters_like_the_store_query() {
        let (a, b, c) = (
            listing("A", "cardiology", 48.8, 1),
            listing("B", "dermatology", 48.8, 1),
            listing("C", "cardiology", 10.0, 1),
        );
        let mut pending = listing("D", "cardiology", 48.8, 1);
        pending.0.verification = VerificationState::Pending;
        let dir = Directory::new(vec![a.clone(), b, c, pending]);
        assert_eq!(dir.len(), 3, "only verified doctors are listed");
        let q = |specialty: Option<&str>| DoctorQuery { specialty: specialty.map(String::from), ..Default::default() };
        assert_eq!(names(dir.matching(&q(Some("cardiology")))), ["A", "C"]);
        assert_eq!(names(dir.matching(&q(Some("neurology")))), Vec::<String>::new());
        assert_eq!(names(dir.matching(&q(None))), ["A", "B", "C"]);
        let boxed = DoctorQuery { bounding_box: Some((48.0, 49.0, 2.0, 3.0)), ..q(Some("cardiology")) };
        assert_eq!(names(dir.matching(&boxed)), ["A"], "the box is the clinic's position");
        let others = DoctorQuery { exclude_doctor: Some(a.0.id), ..q(Some("cardiology")) };
        assert_eq!(names(dir.matching(&others)), ["C"]);
        let lang = DoctorQuery { language: Some("fr".into()), ..q(None) };
        assert!(dir.matching(&lang).is_empty());
        let online = DoctorQuery { mode: Some(medislot_domain::Mode::Online), ..q(None) };
        assert!(dir.matching(&online).is_empty());
    }

    #[test]
    fn patches_replace_add_and_drop_doctors_and_never_go_back_a_version() {
        let a = listing("A", "cardiology", 48.8, 2);
        let dir = Directory::new(vec![a.clone()]);
        let mut renamed = a.clone();
        renamed.0.name = "A2".into();
        renamed.0.version = 3;
        let mut older = a.clone();
        older.0.name = "A-old".into();
        older.0.version = 1;
        let b = listing("B", "cardiology", 48.8, 1);
        let dir = dir.with(&[renamed.clone(), older, b.clone(), b.clone()]);
        assert_eq!(names(dir.matching(&DoctorQuery::default())), ["A2", "B"], "a doctor given twice is listed once");
        let mut moved = renamed;
        moved.0.specialties = vec!["neurology".into()];
        moved.0.version = 4;
        let dir = dir.with(&[moved]);
        let cardio = DoctorQuery { specialty: Some("cardiology".into()), ..Default::default() };
        assert_eq!(names(dir.matching(&cardio)), ["B"], "the specialty index follows the change");
        let mut suspended = b;
        suspended.0.verification = VerificationState::Suspended;
        suspended.0.version = 2;
        assert_eq!(names(dir.with(&[suspended]).matching(&DoctorQuery::default())), ["A2"]);
    }

    #[test]
    fn a_refresh_keeps_what_was_patched_while_it_read() {
        let c = DirectoryCache::new(Duration::from_millis(200));
        assert!(c.get().is_none());
        let a = listing("A", "cardiology", 48.8, 1);
        let began = Timestamp::from_second(1_000_000).unwrap();
        assert_eq!(c.start_refresh(), Some(Refresh::Full), "the first load reads everything");
        assert_eq!(c.start_refresh(), None, "one load at a time");
        let mut renamed = a.clone();
        renamed.0.name = "A2".into();
        renamed.0.version = 2;
        c.patch(vec![renamed]);
        c.finish_refresh(Refresh::Full, began, vec![a.clone()]);
        let (dir, fresh) = c.get().unwrap();
        assert!(fresh);
        assert_eq!(names(dir.matching(&DoctorQuery::default())), ["A2"], "the patch outlives the older read");
        std::thread::sleep(Duration::from_millis(250));
        assert!(matches!(c.get(), Some((_, false))), "stale, still served while refreshed");
        let since = c.start_refresh();
        assert_eq!(since, Some(Refresh::ChangedSince(began - CLOCK_MARGIN)), "then only what changed");
        c.abandon_refresh();
        assert!(matches!(c.get(), Some((_, false))), "a failed refresh keeps the previous copy");
        let b = listing("B", "cardiology", 48.8, 1);
        c.start_refresh();
        c.finish_refresh(since.unwrap(), began, vec![b]);
        let (dir, _) = c.get().unwrap();
        assert_eq!(names(dir.matching(&DoctorQuery::default())), ["A2", "B"], "changes are merged");
        let off = DirectoryCache::new(Duration::ZERO);
        assert_eq!(off.start_refresh(), Some(Refresh::Full));
        off.finish_refresh(Refresh::Full, began, vec![a]);
        assert!(off.get().is_none(), "a zero TTL keeps nothing");
    }
}
