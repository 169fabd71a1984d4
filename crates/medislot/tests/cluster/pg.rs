//! Private PostgreSQL servers this test binary starts, stops, kills and
//! promotes, through `scripts/pg-cluster` (the operator's script, tested here).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg-cluster");

/// A directory of private PostgreSQL servers, destroyed on drop.
pub struct PgCluster {
    pub dir: PathBuf,
}

impl PgCluster {
    fn new() -> PgCluster {
        let dir = std::env::temp_dir().join(format!("medislot-pg-{}", uuid::Uuid::new_v4().simple()));
        PgCluster { dir }
    }

    /// One server; returns it and the URL of a fresh `medislot` database on it.
    pub fn single() -> (PgCluster, String) {
        let c = Self::new();
        let port = free_port();
        c.run(&["single", path(&c.dir), &port.to_string()]);
        let url = create_database(port);
        (c, url)
    }

    /// A primary whose commits wait for a synchronous standby; returns the
    /// cluster and the `medislot` database's URL on the primary and on the standby.
    pub fn replicated() -> (PgCluster, String, String) {
        let c = Self::new();
        let (primary, standby) = (free_port(), free_port());
        c.run(&["replicated", path(&c.dir), &primary.to_string(), &standby.to_string()]);
        let url = create_database(primary);
        (c, url, format!("postgres://postgres@127.0.0.1:{standby}/medislot"))
    }

    /// `scripts/pg-cluster COMMAND DIR`, on this cluster or one of its servers (`primary`, `standby`).
    pub fn server(&self, command: &str, server: Option<&str>) {
        let dir = server.map_or_else(|| self.dir.clone(), |s| self.dir.join(s));
        self.run(&[command, path(&dir)]);
    }

    fn run(&self, args: &[&str]) {
        let out = Command::new(SCRIPT).args(args).output().unwrap_or_else(|e| panic!("running {SCRIPT}: {e}"));
        assert!(
            out.status.success(),
            "scripts/pg-cluster {} failed (PostgreSQL's server binaries are needed; scripts/test installs them): {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT).args(["destroy", path(&self.dir)]).output();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary directory path is UTF-8")
}

fn create_database(port: u16) -> String {
    crate::helpers::query(&format!("postgres://postgres@127.0.0.1:{port}/postgres"), "CREATE DATABASE medislot");
    format!("postgres://postgres@127.0.0.1:{port}/medislot")
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
