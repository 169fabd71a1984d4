//! Admission control for PostgreSQL writes: at most as many writes at once as
//! the pool has connections, a bounded line behind them, and the rest refused
//! at once ([`StoreError::Unavailable`], so 503 with Retry-After). Offered more
//! than it can commit, the node keeps committing at capacity instead of every
//! request waiting for a connection until it times out.

use crate::{Result, StoreError};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Writes that may wait per connection: about a tenth of a second of bookings.
const LINE_PER_CONNECTION: usize = 16;

pub(super) struct Admission {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    patience: std::time::Duration,
    refused: AtomicU64,
    admitted: AtomicU64,
}

/// A write's place; the next one in line goes when it is dropped.
pub(super) struct Admitted(#[allow(dead_code)] OwnedSemaphorePermit);

impl Admission {
    pub fn new(connections: usize, patience: std::time::Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(connections)),
            waiting: AtomicUsize::new(0),
            max_waiting: connections * LINE_PER_CONNECTION,
            patience,
            refused: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
        }
    }

    pub async fn enter(&self) -> Result<Admitted> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            self.admitted.fetch_add(1, Ordering::Relaxed);
            return Ok(Admitted(permit));
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(self.refuse());
        }
        let permit = tokio::time::timeout(self.patience, self.permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        match permit {
            Ok(Ok(permit)) => {
                self.admitted.fetch_add(1, Ordering::Relaxed);
                Ok(Admitted(permit))
            }
            _ => Err(self.refuse()),
        }
    }

    fn refuse(&self) -> StoreError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        StoreError::Unavailable("too many writes waiting for the database".into())
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_the_line_writes_are_refused_at_once_and_the_line_moves_on() {
        let a = Arc::new(Admission::new(1, std::time::Duration::from_secs(30)));
        let first = a.enter().await.unwrap();
        let mut line = Vec::new();
        for _ in 0..LINE_PER_CONNECTION {
            let a = a.clone();
            line.push(tokio::spawn(async move { a.enter().await.map(drop) }));
        }
        while a.waiting() < LINE_PER_CONNECTION {
            tokio::task::yield_now().await;
        }
        let started = std::time::Instant::now();
        assert!(matches!(a.enter().await, Err(StoreError::Unavailable(_))), "the line is full");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "refused without waiting");
        assert_eq!(a.refused(), 1);
        drop(first);
        for waiting in line {
            waiting.await.unwrap().unwrap();
        }
        assert_eq!(a.waiting(), 0);
        let impatient = Admission::new(1, std::time::Duration::from_millis(20));
        let _held = impatient.enter().await.unwrap();
        assert!(matches!(impatient.enter().await, Err(StoreError::Unavailable(_))), "no longer than the busy timeout");
    }
}
