//! Reads that may be a little stale — search and slot lists — from a read
//! replica (a PostgreSQL standby) when one is configured and keeps up. The
//! directory that publishers walk stays on the primary: they pair it with
//! change times read there.
//!
//! Nothing read here decides a booking: bookings and holds go to the primary
//! and its overlap constraint (P1), so a replica that is behind can only show
//! a slot that was just taken, which booking answers with "just taken —
//! alternatives". Staleness is bounded: the replica's lag is measured twice a
//! second, and while it is above `max_lag`, unknown, or the replica fails a
//! read, reads go to the primary. A doctor whose availability changed through
//! this node is read from the primary for a few seconds, so that a patient
//! sees their own booking's effect at once (read-your-writes).

use crate::{App, AppError};
use jiff::{SignedDuration, Timestamp};
use medislot_domain::DoctorId;
use medislot_store::DynStore;
use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long a lag measurement is trusted.
const PROBE_VALID: Duration = Duration::from_secs(2);
/// How often the lag is measured.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long a doctor changed through this node is read from the primary.
const OWN_WRITES_FOR: Duration = Duration::from_secs(5);

pub(crate) struct ReadReplica {
    store: DynStore,
    max_lag: Duration,
    probe: Mutex<Probe>,
    /// Doctors whose availability changed through this node lately.
    own_writes: moka::sync::Cache<DoctorId, ()>,
}

#[derive(Clone, Copy)]
struct Probe {
    /// When the lag was measured, and what it was; `None` when the replica
    /// did not answer, is not a standby, or failed a read since.
    at: Instant,
    measured_at: Timestamp,
    lag: Option<Duration>,
}

/// Where a request's stale-tolerant reads go.
#[derive(Clone)]
pub(crate) struct Reader {
    pub(crate) store: DynStore,
    /// Reading from the replica: its data is at least as new as this.
    pub(crate) as_of: Option<Timestamp>,
}

impl ReadReplica {
    pub(crate) fn new(store: DynStore, max_lag: Duration) -> Self {
        Self {
            store,
            max_lag,
            probe: Mutex::new(Probe { at: Instant::now(), measured_at: Timestamp::now(), lag: None }),
            own_writes: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(OWN_WRITES_FOR).build(),
        }
    }

    fn probe(&self) -> Probe {
        *self.probe.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, lag: Option<Duration>) {
        *self.probe.lock().unwrap_or_else(|p| p.into_inner()) =
            Probe { at: Instant::now(), measured_at: Timestamp::now(), lag };
    }

    /// The replica's data is as of this, if it may serve reads now.
    fn as_of(&self) -> Option<Timestamp> {
        let p = self.probe();
        let lag = p.lag.filter(|lag| *lag <= self.max_lag && p.at.elapsed() <= PROBE_VALID)?;
        Some(p.measured_at - SignedDuration::try_from(lag).unwrap_or(SignedDuration::MAX))
    }
}

impl App {
    /// Serves stale-tolerant reads from `replica` while it lags at most `max_lag`.
    pub fn with_read_replica(mut self, replica: DynStore, max_lag: Duration) -> Self {
        self.replica = Some(std::sync::Arc::new(ReadReplica::new(replica, max_lag)));
        self
    }

    pub fn has_read_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Measures the replica's lag until `stop`; reads follow the last measurement.
    pub async fn watch_read_replica(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(r) = self.replica.clone() else { return };
        let mut serving = None;
        loop {
            let (lag, why) = match tokio::time::timeout(Duration::from_secs(1), r.store.replication_lag()).await {
                Ok(Ok(Some(lag))) => (Some(lag), format!("it lags {lag:?}")),
                Ok(Ok(None)) => (None, "it is not a standby (a primary?)".to_string()),
                Ok(Err(e)) => (None, format!("it did not answer: {e}")),
                Err(_) => (None, "it did not answer within a second".to_string()),
            };
            r.record(lag);
            let now_serving = r.as_of().is_some();
            // Said once per change, not twice a second.
            if serving != Some(now_serving) {
                if now_serving {
                    tracing::info!("the read replica serves search and slot lists");
                } else {
                    tracing::warn!(%why, max_lag = ?r.max_lag, "the read replica does not serve; the primary answers its reads");
                }
                serving = Some(now_serving);
            }
            self.metrics.read_replica(lag, now_serving);
            tokio::select! {
                _ = tokio::time::sleep(PROBE_EVERY) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Where this request's stale-tolerant reads go: the replica while it keeps up, else the primary.
    pub(crate) fn reader(&self) -> Reader {
        match self.replica.as_ref().and_then(|r| Some((r, r.as_of()?))) {
            Some((r, as_of)) => Reader { store: r.store.clone(), as_of: Some(as_of) },
            None => self.primary_reader(),
        }
    }

    pub(crate) fn primary_reader(&self) -> Reader {
        Reader { store: self.store.clone(), as_of: None }
    }

    /// Runs `read` on the replica when it may serve, and on the primary when
    /// it may not or fails (the replica is then left alone until its next
    /// measurement); says which answered.
    pub(crate) async fn stale_read<T, F, Fut>(&self, read: F) -> Result<T, AppError>
    where
        F: Fn(Reader) -> Fut,
        Fut: std::future::Future<Output = Result<T, AppError>>,
    {
        let reader = self.reader();
        if reader.as_of.is_none() {
            return read(reader).await;
        }
        match read(reader).await {
            Ok(v) => {
                self.metrics.replica_read(true);
                Ok(v)
            }
            Err(e @ (AppError::Unavailable(_) | AppError::Internal(_))) => {
                tracing::warn!(error = %e, "a read on the replica failed; reading from the primary");
                if let Some(r) = &self.replica {
                    r.record(None);
                }
                self.metrics.replica_read(false);
                read(self.primary_reader()).await
            }
            Err(other) => Err(other),
        }
    }

    /// This node changed the doctor's availability: their reads come from the
    /// primary for a few seconds, until any replica has it.
    pub(crate) fn changed_here(&self, doctor: DoctorId) {
        if let Some(r) = &self.replica {
            r.own_writes.insert(doctor, ());
        }
    }

    /// Whether reads of this doctor must come from the primary now.
    pub(crate) fn read_own_writes(&self, doctor: DoctorId) -> bool {
        self.replica.as_ref().is_some_and(|r| r.own_writes.contains_key(&doctor))
    }
}
