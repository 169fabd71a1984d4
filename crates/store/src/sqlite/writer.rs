//! SQLite's one writer, which group-commits.
//!
//! Every write of the process is a closure sent to one thread that owns the
//! only writing connection. The thread takes whatever closures are waiting,
//! opens one transaction (`BEGIN IMMEDIATE`), runs each in its own savepoint —
//! a closure that fails (a slot taken, a stale version) rolls back only its own
//! changes — and commits the group with one fsync. Each caller hears its answer
//! only once its group is on disk (P2). A closure whose caller has gone (its
//! request timed out or was dropped) is skipped: nobody was told anything.
//!
//! Admission control: the queue holds a bounded number of closures.
//! When it is full the caller is refused at once ([`StoreError::Unavailable`],
//! so 503 with Retry-After) and the thread keeps committing at its own pace,
//! instead of every request waiting longer and longer and timing out.

use crate::{Result, StoreError};
use rusqlite::Connection;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// The most closures one transaction takes: enough to amortise the fsync,
/// few enough that one group stays short.
const MAX_GROUP: usize = 256;

/// One caller's closure, its result, and where to send it.
trait Work: Send {
    /// Runs the closure; whether it succeeded (its savepoint is kept).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Whether the caller has stopped waiting.
    fn abandoned(&self) -> bool;
    /// Sends the answer: the closure's result if the group committed, else `failed`.
    fn finish(self: Box<Self>, failed: Option<StoreError>);
}

struct Task<T, F> {
    f: Option<F>,
    out: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Work for Task<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let f = self.f.take().expect("a task runs once");
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(StoreError::Internal("a write panicked; it was rolled back".into())));
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn finish(self: Box<Self>, failed: Option<StoreError>) {
        let answer = match (self.out, failed) {
            (Some(Err(e)), _) => Err(e),
            (_, Some(e)) => Err(e),
            (Some(ok), None) => ok,
            (None, None) => Err(StoreError::Unavailable("the write was not run".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// The handle callers send their writes through.
pub(super) struct Writer {
    queue: mpsc::SyncSender<Box<dyn Work>>,
    stats: std::sync::Arc<WriterStats>,
}

/// What the writer did, for metrics and tests.
#[derive(Debug, Default)]
pub(super) struct WriterStats {
    pub groups: std::sync::atomic::AtomicU64,
    pub writes: std::sync::atomic::AtomicU64,
    pub refused: std::sync::atomic::AtomicU64,
    /// Writes in the queue now, not yet taken by the thread.
    pub waiting: std::sync::atomic::AtomicUsize,
}

impl Writer {
    /// Starts the writer thread on `conn`, with room for `capacity` waiting writes.
    pub fn start(conn: Connection, capacity: usize) -> Result<Self> {
        let (queue, jobs) = mpsc::sync_channel::<Box<dyn Work>>(capacity);
        let stats = std::sync::Arc::new(WriterStats::default());
        let counters = stats.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, jobs, &counters))
            .map_err(|e| StoreError::Internal(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { queue, stats })
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Runs `f` in the next group and answers once that group is committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let task: Box<dyn Work> = Box::new(Task { f: Some(f), out: None, reply });
        self.stats.waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let sent = self.queue.try_send(task);
        if sent.is_err() {
            self.stats.waiting.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        match sent {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                self.stats.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(StoreError::Unavailable("too many writes waiting for the database".into()));
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                return Err(StoreError::Unavailable("the SQLite writer has stopped".into()));
            }
        }
        answer.await.unwrap_or_else(|_| Err(StoreError::Unavailable("the SQLite writer has stopped".into())))
    }
}

/// The writer thread: one group after another until every handle is gone.
fn run(conn: Connection, jobs: mpsc::Receiver<Box<dyn Work>>, stats: &WriterStats) {
    use std::sync::atomic::Ordering::Relaxed;
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        stats.waiting.fetch_sub(group.len(), std::sync::atomic::Ordering::SeqCst);
        let (live, gone): (Vec<_>, Vec<_>) = group.into_iter().partition(|job| !job.abandoned());
        for job in gone {
            job.finish(Some(StoreError::Unavailable("the caller stopped waiting".into())));
        }
        if live.is_empty() {
            continue;
        }
        stats.groups.fetch_add(1, Relaxed);
        stats.writes.fetch_add(live.len() as u64, Relaxed);
        commit_group(&conn, live);
    }
}

/// One transaction for the whole group, one savepoint per write.
fn commit_group(conn: &Connection, mut group: Vec<Box<dyn Work>>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = super::map_err(e);
        for job in group {
            job.finish(Some(clone_error(&e)));
        }
        return;
    }
    for job in group.iter_mut() {
        let step = conn.execute_batch("SAVEPOINT write").map_err(super::map_err).and_then(|()| {
            let ok = job.run(conn);
            let end = if ok { "RELEASE write" } else { "ROLLBACK TO write; RELEASE write" };
            conn.execute_batch(end).map_err(super::map_err)
        });
        if let Err(e) = step {
            // The transaction itself is broken: nothing of the group is kept.
            let _ = conn.execute_batch("ROLLBACK");
            for job in group {
                job.finish(Some(clone_error(&e)));
            }
            return;
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => group.into_iter().for_each(|job| job.finish(None)),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            let e = super::map_err(e);
            for job in group {
                job.finish(Some(clone_error(&e)));
            }
        }
    }
}

/// The same failure, told to every write of a group.
fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        other => StoreError::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn writer(capacity: usize) -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL) STRICT;",
        )
        .unwrap();
        (dir, Writer::start(conn, capacity).unwrap())
    }

    fn count(dir: &tempfile::TempDir) -> i64 {
        let c = Connection::open(dir.path().join("w.db")).unwrap();
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_share_commits_and_a_failing_one_rolls_back_alone() {
        let (dir, w) = writer(4096);
        let w = std::sync::Arc::new(w);
        let mut all = tokio::task::JoinSet::new();
        for k in 0..2000i64 {
            let w = w.clone();
            all.spawn(async move {
                w.write(move |c| {
                    // Every tenth write inserts a key that another already took.
                    let key = if k % 10 == 9 { k - 1 } else { k };
                    c.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [key]).map_err(super::super::map_err)?;
                    Ok(k)
                })
                .await
            });
        }
        let results = all.join_all().await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(failed, 200, "only the writes that collided failed");
        assert_eq!(count(&dir), 1800, "every other write is on disk");
        let groups = w.stats().groups.load(Ordering::Relaxed);
        assert!(groups < 2000, "writes waiting together were committed together ({groups} groups)");
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_nothing_is_half_written() {
        let (dir, w) = writer(2);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        // The first write holds the thread until released; two more fill the queue.
        let w = std::sync::Arc::new(w);
        let first = {
            let w = w.clone();
            tokio::spawn(async move {
                w.write(move |c| {
                    wait.recv().ok();
                    c.execute("INSERT INTO t (k, v) VALUES (0, 'first')", []).map_err(super::super::map_err)?;
                    Ok(())
                })
                .await
            })
        };
        while w.stats().groups.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        let queued: Vec<_> = (1..=2i64)
            .map(|k| {
                let w = w.clone();
                tokio::spawn(async move {
                    w.write(move |c| {
                        c.execute("INSERT INTO t (k, v) VALUES (?1, 'queued')", [k]).map_err(super::super::map_err)?;
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        // Once both sit in the queue, one more is refused without waiting.
        while w.stats().waiting.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        let refused = tokio::time::timeout(std::time::Duration::from_secs(5), w.write(|_| Ok(()))).await;
        assert!(matches!(refused, Ok(Err(StoreError::Unavailable(_)))), "refused at once");
        assert_eq!(w.stats().refused.load(Ordering::Relaxed), 1);
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        for q in queued {
            q.await.unwrap().unwrap();
        }
        assert_eq!(count(&dir), 3);
    }
}
