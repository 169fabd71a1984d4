//! The SQLite schema's migrations, applied in order, each in its own
//! transaction, and recorded in `schema_migrations`.
//!
//! Databases made before medislot ran SQLite through rusqlite recorded their
//! migrations in sqlx's `_sqlx_migrations`; that history is adopted as it is,
//! so an existing file goes on from where it was.

use super::map_err;
use crate::{Result, StoreError};
use rusqlite::{Connection, OptionalExtension};

/// Every migration: its version, its name, its SQL.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, "notifications", include_str!("../../migrations/sqlite/0002_notifications.sql")),
    (3, "regions", include_str!("../../migrations/sqlite/0003_regions.sql")),
    (4, "origin index", include_str!("../../migrations/sqlite/0004_origin_index.sql")),
    (5, "hold indexes", include_str!("../../migrations/sqlite/0005_hold_indexes.sql")),
    (6, "licence index", include_str!("../../migrations/sqlite/0006_licence_index.sql")),
    (7, "membership", include_str!("../../migrations/sqlite/0007_membership.sql")),
    (8, "clinic contact", include_str!("../../migrations/sqlite/0008_clinic_contact.sql")),
    (9, "strict tables", include_str!("../../migrations/sqlite/0009_strict_tables.sql")),
    (10, "search index", include_str!("../../migrations/sqlite/0010_search_index.sql")),
    (11, "change indexes", include_str!("../../migrations/sqlite/0011_change_indexes.sql")),
    (12, "covering search indexes", include_str!("../../migrations/sqlite/0012_covering_search_indexes.sql")),
    (13, "patient no overlap", include_str!("../../migrations/sqlite/0013_patient_no_overlap.sql")),
    (14, "exempt overlaps block", include_str!("../../migrations/sqlite/0014_exempt_overlaps_block.sql")),
    (15, "video rooms", include_str!("../../migrations/sqlite/0015_video_rooms.sql")),
    (16, "clinic rules", include_str!("../../migrations/sqlite/0016_clinic_rules.sql")),
    (17, "visit types", include_str!("../../migrations/sqlite/0017_visit_types.sql")),
    (18, "no-show requests", include_str!("../../migrations/sqlite/0018_noshow_requests.sql")),
];

/// Brings the schema up to date on the writing connection, before the writer
/// starts: all pending migrations in one transaction, so a failed upgrade
/// leaves the file as it was.
///
/// Foreign keys are off meanwhile, as SQLite's procedure for rebuilding a
/// table requires (a parent dropped and made anew would otherwise take its
/// children's rows with it), and checked as a whole before the commit.
pub(super) fn run(conn: &Connection) -> Result<()> {
    conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE").map_err(map_err)?;
    let done = run_in_transaction(conn).and_then(|applied| if applied > 0 { foreign_keys_hold(conn) } else { Ok(()) });
    let end = match done {
        Ok(()) => conn.execute_batch("COMMIT").map_err(map_err),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    };
    conn.execute_batch("PRAGMA foreign_keys = ON").map_err(map_err)?;
    end
}

/// Every reference points at a row that exists.
fn foreign_keys_hold(conn: &Connection) -> Result<()> {
    let broken: Option<String> = conn
        .query_row("SELECT \"table\" || ' → ' || parent FROM pragma_foreign_key_check LIMIT 1", [], |r| r.get(0))
        .optional()
        .map_err(map_err)?;
    match broken {
        None => Ok(()),
        Some(what) => {
            Err(StoreError::Internal(format!("the upgrade would break a reference ({what}); nothing was changed")))
        }
    }
}

/// The migrations not yet applied, inside the caller's transaction; how many.
fn run_in_transaction(conn: &Connection) -> Result<usize> {
    let applied = applied(conn)?;
    if let Some(newest) = MIGRATIONS.last().map(|m| m.0) {
        if applied > newest {
            return Err(StoreError::Internal(format!(
                "the database is at schema version {applied}, newer than this medislot knows ({newest}): upgrade medislot"
            )));
        }
    }
    let pending: Vec<_> = MIGRATIONS.iter().filter(|m| m.0 > applied).collect();
    for (version, name, sql) in &pending {
        conn.execute_batch(sql)
            .map_err(|e| StoreError::Internal(format!("migration {version} ({name}) failed: {e}")))?;
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            rusqlite::params![version, name, jiff::Timestamp::now().to_string()],
        )
        .map_err(map_err)?;
        tracing::info!(version, name, "applied a SQLite migration");
    }
    Ok(pending.len())
}

/// The newest migration applied: from `schema_migrations`, else from sqlx's
/// history (adopted into `schema_migrations`), else none (a new file).
fn applied(conn: &Connection) -> Result<i64> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL
         ) STRICT",
    )
    .map_err(map_err)?;
    let recorded: Option<i64> =
        conn.query_row("SELECT max(version) FROM schema_migrations", [], |r| r.get(0)).map_err(map_err)?;
    if let Some(v) = recorded {
        return Ok(v);
    }
    let sqlx_history: Option<String> = conn
        .query_row("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(map_err)?;
    if sqlx_history.is_none() {
        return Ok(0);
    }
    let failed: i64 =
        conn.query_row("SELECT count(*) FROM _sqlx_migrations WHERE NOT success", [], |r| r.get(0)).map_err(map_err)?;
    if failed > 0 {
        return Err(StoreError::Internal("the database has a migration that failed half-way; restore a backup".into()));
    }
    conn.execute(
        "INSERT INTO schema_migrations (version, name, applied_at)
         SELECT version, description, installed_on FROM _sqlx_migrations ORDER BY version",
        [],
    )
    .map_err(map_err)?;
    conn.query_row("SELECT coalesce(max(version), 0) FROM schema_migrations", [], |r| r.get(0)).map_err(map_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_gets_every_migration_once() {
        let conn = Connection::open_in_memory().unwrap();
        run(&conn).unwrap();
        run(&conn).unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
    }

    #[test]
    fn tables_are_strict_and_refuse_a_value_of_the_wrong_type() {
        let conn = Connection::open_in_memory().unwrap();
        run(&conn).unwrap();
        let loose: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master m, pragma_table_list(m.name) t
                 WHERE m.type = 'table' AND t.name = m.name AND t.type = 'table' AND NOT t.strict
                   AND m.name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        // (An R*Tree and its shadow tables are SQLite's own, typed by the module.)
        assert_eq!(loose, 0, "every table is STRICT");
        let e = conn
            .execute(
                "INSERT INTO tokens (token_hash, user_id, expires_at, created_at) VALUES ('h', 'u', 'soon', 'now')",
                [],
            )
            .unwrap_err();
        assert!(e.to_string().contains("cannot store TEXT value in INTEGER column"), "{e}");
    }

    #[test]
    fn an_upgrade_that_would_break_a_reference_changes_nothing() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0].2).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT;
             INSERT INTO schema_migrations VALUES (1, 'init', 'then');
             PRAGMA foreign_keys = OFF;
             INSERT INTO tokens (token_hash, user_id, expires_at, created_at) VALUES ('h', 'nobody', 1, 'now');",
        )
        .unwrap();
        let e = run(&conn).unwrap_err().to_string();
        assert!(e.contains("would break a reference"), "{e}");
        let version: i64 = conn.query_row("SELECT max(version) FROM schema_migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(version, 1, "no migration was kept");
    }

    #[test]
    fn a_file_from_a_newer_medislot_is_refused_untouched() {
        let conn = Connection::open_in_memory().unwrap();
        run(&conn).unwrap();
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'now')", []).unwrap();
        let e = run(&conn).unwrap_err().to_string();
        assert!(e.contains("newer than this medislot knows"), "{e}");
    }
}
