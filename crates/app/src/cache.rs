//! Bounded, short-lived, in-process caches for reads that never decide a
//! booking (every booking goes to the database and its overlap constraint,
//! P1): doctors' busy times for availability reads, doctors' listings for the
//! booking path, shared answers, and token look-ups. The first two are moka
//! caches bounded in bytes with a time to live, so a node's memory does not
//! grow with the directory. Writes made through this node drop what they
//! changed at once; another node's change shows within the TTL.

use jiff::{SignedDuration, Timestamp};
use medislot_domain::{DoctorId, Interval};
use medislot_store::{ClinicRecord, DoctorRecord};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// How far ahead an entry covers: the longest window a listing may ask for.
const SPAN_DAYS: i64 = 92;
/// Bytes the busy-time cache may hold (estimated: each interval and entry counted).
const AVAILABILITY_BYTES: u64 = 64 << 20;
/// Bytes the listing cache may hold.
const LISTING_BYTES: u64 = 32 << 20;

struct Entry {
    fetched: Instant,
    covers: Interval,
    busy: Vec<Interval>,
}

pub struct AvailabilityCache {
    ttl: Duration,
    entries: moka::sync::Cache<DoctorId, Arc<Entry>>,
}

impl AvailabilityCache {
    pub fn new(ttl: Duration) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(if ttl.is_zero() { 0 } else { AVAILABILITY_BYTES })
            .weigher(|_, e: &Arc<Entry>| u32::try_from(96 + 32 * e.busy.len()).unwrap_or(u32::MAX))
            .time_to_live(ttl.max(Duration::from_millis(1)))
            .build();
        Self { ttl, entries }
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
        let e = self.entries.get(&doctor)?;
        let fresh = e.fetched.elapsed() < self.ttl;
        let covers = e.covers.start <= window.start && window.end <= e.covers.end;
        (fresh && covers)
            .then(|| e.busy.iter().filter(|b| b.start < window.end && window.start < b.end).copied().collect())
    }

    pub fn put(&self, doctor: DoctorId, covers: Interval, busy: Vec<Interval>) {
        if self.enabled() {
            self.entries.insert(doctor, Arc::new(Entry { fetched: Instant::now(), covers, busy }));
        }
    }

    /// A write through this node changed the doctor's availability.
    pub fn invalidate(&self, doctor: DoctorId) {
        self.entries.invalidate(&doctor);
    }

    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// The age of the oldest entry still served (staleness, for metrics).
    pub fn oldest_age(&self) -> Duration {
        self.entries.iter().map(|(_, e)| e.fetched.elapsed()).filter(|a| *a < self.ttl).max().unwrap_or_default()
    }
}

/// One verified doctor with their clinic, shared between the cache and the
/// requests that read it (no per-request copies).
pub type Listing = Arc<(DoctorRecord, ClinicRecord)>;

/// Verified doctors with their clinics, by id, for the booking path (which
/// checks a slot against the doctor's schedule before the database decides).
pub struct ListingCache {
    entries: moka::sync::Cache<DoctorId, Listing>,
}

impl ListingCache {
    pub fn new(ttl: Duration) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(if ttl.is_zero() { 0 } else { LISTING_BYTES })
            .weigher(|_, l: &Listing| {
                let (d, c) = &**l;
                let size = 512
                    + d.name.len()
                    + d.bio.len()
                    + 96 * (d.schedule.weekly.len() + d.schedule.extra.len())
                    + c.name.len()
                    + c.address.len();
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .time_to_live(ttl.max(Duration::from_millis(1)))
            .build();
        Self { entries }
    }

    pub fn get(&self, doctor: DoctorId) -> Option<Listing> {
        self.entries.get(&doctor)
    }

    pub fn put(&self, listing: Listing) {
        self.entries.insert(listing.0.id, listing);
    }

    pub fn invalidate(&self, doctor: DoctorId) {
        self.entries.invalidate(&doctor);
    }

    pub fn clear(&self) {
        self.entries.invalidate_all();
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

    /// Drops every token of `user` (an erased account's, on this node).
    pub fn forget_user(&self, user: medislot_domain::UserId) {
        self.entries().retain(|_, (_, u)| u.id != user);
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
    fn the_caches_hold_a_bounded_number_of_bytes() {
        let cache = AvailabilityCache::new(Duration::from_secs(60));
        let busy: Vec<Interval> = (0..1000).map(|i| iv(i * 10, i * 10 + 5)).collect();
        for _ in 0..4000 {
            cache.put(DoctorId::new(), iv(0, 100_000), busy.clone());
        }
        cache.entries.run_pending_tasks();
        // 4,000 entries of 32 kB each would be 128 MB.
        assert!(cache.entries.weighted_size() <= AVAILABILITY_BYTES, "{}", cache.entries.weighted_size());
        assert!(cache.entries.entry_count() < 4000);
    }
}
