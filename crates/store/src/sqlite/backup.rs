//! `medislot backup`: a consistent copy of the embedded database, taken with
//! SQLite's online backup API while nodes keep reading and writing it.
//!
//! The whole database is copied in one step, under one read transaction: in
//! WAL mode that never blocks the writer, and the copy is the database as of
//! one commit (a copy made in small steps would restart at every commit the
//! nodes make, and under steady load never finish). The copy is written beside
//! the target and renamed into place only once it checks out, so a target
//! that exists is always a whole backup.

use super::{file_of, map_err};
use crate::{Result, StoreError};
use rusqlite::{
    backup::{Backup, StepResult},
    Connection, OpenFlags,
};
use std::path::Path;

/// What a backup holds, as read back from the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub appointments: u64,
    pub users: u64,
    pub bytes: u64,
}

/// Copies the database `url` (`sqlite:PATH`) names to `to`, which must not exist.
pub fn backup(url: &str, to: &Path) -> Result<BackupSummary> {
    let from = file_of(url)?;
    if !Path::new(&from).exists() {
        return Err(StoreError::Internal(format!("there is no database at {from}")));
    }
    if to.exists() {
        return Err(StoreError::Internal(format!("{} already exists: a backup never overwrites a file", to.display())));
    }
    let partial = to.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let result = copy(&from, &partial).and_then(|()| {
        let summary = check(&partial)?;
        std::fs::rename(&partial, to).map_err(|e| io("renaming the copy into place", e))?;
        Ok(summary)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn copy(from: &str, to: &Path) -> Result<()> {
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(map_err)?;
    src.busy_timeout(std::time::Duration::from_secs(30)).map_err(map_err)?;
    let mut dst = Connection::open(to).map_err(map_err)?;
    {
        let b = Backup::new(&src, &mut dst).map_err(map_err)?;
        // -1: every page in one step. Busy or locked (a checkpoint holds the
        // file for a moment): wait a little and step again.
        for _ in 0..600 {
            match b.step(-1).map_err(map_err)? {
                StepResult::Done => break,
                StepResult::More | StepResult::Busy | StepResult::Locked => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
        if b.progress().remaining != 0 {
            return Err(StoreError::Unavailable("the database stayed locked for 30 s; nothing was written".into()));
        }
    }
    // The copy is a database of its own: one file, no WAL beside it.
    dst.execute_batch("PRAGMA journal_mode = DELETE").map_err(map_err)?;
    Ok(())
}

/// The copy's integrity, and what it holds.
fn check(path: &Path) -> Result<BackupSummary> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(map_err)?;
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(map_err)?;
    if verdict != "ok" {
        return Err(StoreError::Internal(format!("the copy failed its integrity check: {verdict}")));
    }
    let count = |table: &str| -> Result<u64> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(map_err)
    };
    let bytes = std::fs::metadata(path).map_err(|e| io("reading the copy's size", e))?.len();
    Ok(BackupSummary { appointments: count("appointments")?, users: count("users")?, bytes })
}

fn io(what: &str, e: std::io::Error) -> StoreError {
    StoreError::Internal(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_whole_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE users (id INTEGER PRIMARY KEY);
             CREATE TABLE appointments (id INTEGER PRIMARY KEY);
             INSERT INTO users VALUES (1), (2);
             INSERT INTO appointments VALUES (1), (2), (3);",
        )
        .unwrap();
        let url = format!("sqlite:{}", db.display());
        let to = dir.path().join("copy.db");
        let summary = backup(&url, &to).unwrap();
        assert_eq!((summary.users, summary.appointments), (2, 3));
        // The connection that wrote still holds those rows in its WAL: the copy has them anyway.
        let copy = Connection::open(&to).unwrap();
        let n: i64 = copy.query_row("SELECT count(*) FROM appointments", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 3);

        let again = backup(&url, &to).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        let missing = backup(&format!("sqlite:{}", dir.path().join("none.db").display()), &dir.path().join("x.db"));
        assert!(missing.unwrap_err().to_string().contains("no database"));
        assert!(!dir.path().join("x.partial").exists() && !dir.path().join("copy.partial").exists());
    }
}
