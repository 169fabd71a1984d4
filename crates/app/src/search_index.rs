//! Keeping search's read model (see `medislot_store::search`) up to date.
//!
//! Each node keeps the index for the changes it makes: a booking, cancel,
//! hold, schedule, time-off or profile change through this node, or a
//! peer's directory replicated by it, marks the doctor, and the keeper
//! computes their free times again right after the write has committed —
//! asynchronously, in batches, outside the booking's transaction, so the
//! booking path costs what it cost before (the index never decides a
//! booking; the database's constraint does). Time is the other writer: a
//! row is due when its next start stops being bookable (its indexed next
//! start moves on, read from its own free times), when a hold it counted
//! runs out, or when it is a day old (the horizon's end moved on).
//!
//! At start the keeper catches up: doctors without rows, and those changed
//! since the newest row was computed (by a node that has gone since).

use crate::{App, AppError};
use jiff::{SignedDuration, Timestamp};
use medislot_domain::{
    free_index::{FreeIndex, Known},
    DoctorId, Interval, VerificationState,
};
use medislot_store::search::{Advance, SearchEntry, SearchListing};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Doctors computed per batch (one read of their records, one of their busy
/// times, one write of their rows).
const BATCH: usize = 500;
/// Due rows looked at per round.
const DUE_PER_ROUND: u32 = 5000;
/// How often the keeper looks at due rows when nothing wakes it.
const TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// How far before the newest row a keeper that starts looks for changes.
const CATCH_UP_MARGIN: SignedDuration = SignedDuration::from_secs(10);

#[derive(Default)]
pub(crate) struct Keeper {
    /// Doctors changed through this node since the last round.
    pending: Mutex<HashSet<DoctorId>>,
    wake: tokio::sync::Notify,
    /// When the last round that finished began (what the lag metric reports).
    last_round: Mutex<Option<Timestamp>>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepReport {
    /// Doctors whose free times were computed again.
    pub computed: usize,
    /// Rows whose next start moved on from their own free times.
    pub advanced: usize,
}

impl App {
    /// A write through this node (or a replicated change) touched the doctor.
    pub(crate) fn search_changed(&self, doctor: DoctorId) {
        self.keeper.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(doctor);
        self.keeper.wake.notify_one();
    }

    /// Computes the doctor's rows now, before the caller answers; if that
    /// fails, the keeper's next round tries again.
    pub(crate) async fn index_now(&self, doctor: DoctorId) {
        if let Err(e) = self.compute_free_times(&[doctor]).await {
            tracing::warn!(error = %e, "updating the search index failed; the keeper retries");
            self.search_changed(doctor);
        }
    }

    /// How far behind the index may be: since the last finished round began.
    pub fn search_index_lag(&self) -> Option<std::time::Duration> {
        let last = (*self.keeper.last_round.lock().unwrap_or_else(|p| p.into_inner()))?;
        Some(self.now().duration_since(last).unsigned_abs())
    }

    /// Catches up after a start: doctors without rows, and doctors changed
    /// since the newest row was computed.
    pub async fn catch_up_search_index(&self) -> Result<usize, AppError> {
        let mut done = 0;
        loop {
            let missing = self.store.doctors_missing_from_search(BATCH as u32 * 4).await?;
            if missing.is_empty() {
                break;
            }
            done += self.compute_free_times(&missing).await?;
        }
        if let Some(as_of) = self.store.search_entries_as_of().await? {
            let changed = self.store.doctors_changed_since(as_of - CATCH_UP_MARGIN, self.now()).await?;
            done += self.compute_free_times(&changed).await?;
        }
        Ok(done)
    }

    /// One round: the doctors changed through this node, then the due rows.
    pub async fn keep_search_index(&self) -> Result<KeepReport, AppError> {
        let began = self.now();
        let pending: Vec<DoctorId> =
            std::mem::take(&mut *self.keeper.pending.lock().unwrap_or_else(|p| p.into_inner())).into_iter().collect();
        let mut report = KeepReport::default();
        if let Err(e) = self.compute_free_times(&pending).await.map(|n| report.computed += n) {
            // Not lost: they are looked at again next round.
            self.keeper.pending.lock().unwrap_or_else(|p| p.into_inner()).extend(pending);
            return Err(e);
        }
        let now = self.now();
        let due = self.store.search_entries_due(now, DUE_PER_ROUND).await?;
        let mut again = Vec::new();
        let mut advances = Vec::new();
        for d in due {
            match d.free.next_at(now) {
                Known::Yes(next) if now < d.free.recompute_at => advances.push(Advance {
                    doctor_id: d.doctor_id,
                    computed_at: d.free.computed_at,
                    next,
                    refresh_at: d.free.refresh_at(now),
                    notice: d.free.notice,
                }),
                _ => again.push(d.doctor_id),
            }
        }
        for chunk in advances.chunks(BATCH) {
            self.store.advance_search_entries(chunk).await?;
        }
        report.advanced = advances.len();
        report.computed += self.compute_free_times(&again).await?;
        *self.keeper.last_round.lock().unwrap_or_else(|p| p.into_inner()) = Some(began);
        Ok(report)
    }

    /// Runs rounds until `stop` turns true: woken by changes, else every tick.
    pub async fn run_search_keeper(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        match self.catch_up_search_index().await {
            Ok(n) => tracing::info!(doctors = n, "search index caught up"),
            Err(e) => tracing::warn!(error = %e, "catching up the search index failed; rounds go on"),
        }
        loop {
            if let Err(e) = self.keep_search_index().await {
                tracing::warn!(error = %e, "keeping the search index failed; retrying");
            }
            tokio::select! {
                _ = self.keeper.wake.notified() => {
                    // Let a burst of writes gather into one batch.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Computes these doctors' free times from the store and writes their
    /// rows (dropping those of doctors no longer searchable); how many.
    pub(crate) async fn compute_free_times(&self, ids: &[DoctorId]) -> Result<usize, AppError> {
        let mut done = 0;
        for chunk in ids.chunks(BATCH) {
            let now = self.now();
            let rows = self.store.doctors_by_id(chunk).await?;
            let verified: Vec<_> =
                rows.into_iter().filter(|(d, _)| d.verification == VerificationState::Verified).collect();
            let ids: Vec<DoctorId> = verified.iter().map(|(d, _)| d.id).collect();
            let horizon = verified.iter().map(|(d, _)| d.schedule.horizon_days).max().unwrap_or(0);
            let window = Interval { start: now, end: now + SignedDuration::from_hours(24 * (horizon + 1)) };
            let mut busy: HashMap<DoctorId, Vec<Interval>> = HashMap::new();
            if !ids.is_empty() {
                for (d, iv) in self.store.busy(&ids, window, now).await? {
                    busy.entry(d).or_default().push(iv);
                }
            }
            let expiries: HashMap<DoctorId, Timestamp> = if ids.is_empty() {
                HashMap::new()
            } else {
                self.store.hold_expiries(&ids, now).await?.into_iter().collect()
            };
            let searchable: HashSet<DoctorId> = ids.iter().copied().collect();
            let mut entries: Vec<SearchEntry> = chunk
                .iter()
                .filter(|id| !searchable.contains(id))
                .map(|id| SearchEntry { doctor_id: *id, at: now, listing: None })
                .collect();
            for (d, c) in verified {
                let tz = c.time_zone.tz();
                let b = busy.get(&d.id).map(Vec::as_slice).unwrap_or(&[]);
                let mut free = FreeIndex::compute(&d.schedule, d.id, &tz, b, now);
                if let Some(e) = expiries.get(&d.id) {
                    free.recompute_at = free.recompute_at.min(*e);
                }
                entries.push(SearchEntry {
                    doctor_id: d.id,
                    at: now,
                    listing: Some(SearchListing {
                        name: d.name,
                        specialties: d.specialties,
                        languages: d.languages,
                        modes: d.modes,
                        position: c.position,
                        free,
                    }),
                });
            }
            self.store.put_search_entries(&entries).await?;
            done += entries.len();
        }
        Ok(done)
    }
}

#[cfg(test)]
#[path = "search_index_tests.rs"]
mod tests;
