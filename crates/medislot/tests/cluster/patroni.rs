//! A Patroni cluster this test binary starts and breaks, through
//! `scripts/ha-cluster` (the operator's script, tested here): three etcd
//! members, three PostgreSQL servers under Patroni, HAProxy in front.

use std::{path::PathBuf, process::Command};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/ha-cluster");

/// A running cluster, taken down (and its directory deleted) on drop.
pub struct HaCluster {
    dir: PathBuf,
    /// HAProxy's port for the leader, and the one for the replicas.
    pub write_url: String,
    pub read_url: String,
}

impl HaCluster {
    pub fn up() -> HaCluster {
        let dir = std::env::temp_dir().join(format!("medislot-ha-{}", uuid::Uuid::new_v4().simple()));
        let base = free_port_block(15);
        let out = run(&["up", path(&dir), &base.to_string()]);
        let url = |kind: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(kind))
                .unwrap_or_else(|| panic!("scripts/ha-cluster up names the {kind}URL: {out}"))
                .trim()
                .to_string()
        };
        HaCluster { write_url: url("write "), read_url: url("read "), dir }
    }

    fn run(&self, args: &[&str]) -> String {
        let mut all = vec![args[0], path(&self.dir)];
        all.extend(&args[1..]);
        run(&all)
    }

    /// The leader's member name (`pg1`…`pg3`), if there is one now.
    pub fn leader(&self) -> Option<String> {
        let out = Command::new(SCRIPT).args(["leader", path(&self.dir)]).output().expect("running scripts/ha-cluster");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// When a member other than `old` was first seen leading (polled every 100 ms).
    pub fn new_leader_within(&self, old: &str, within: std::time::Duration) -> std::time::Instant {
        let t0 = std::time::Instant::now();
        loop {
            if self.leader().is_some_and(|l| l != old) {
                return std::time::Instant::now();
            }
            assert!(t0.elapsed() < within, "no member took over from {old} within {within:?}: {}", self.status());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// SIGKILLs the leader's PostgreSQL; returns the member's name.
    pub fn kill_leader(&self) -> String {
        self.run(&["kill-leader"]).trim().to_string()
    }

    /// SIGSTOPs the leader's Patroni and PostgreSQL; returns the member's name.
    pub fn pause_leader(&self) -> String {
        self.run(&["pause-leader"]).trim().to_string()
    }

    pub fn resume(&self, member: &str) {
        self.run(&["resume", member]);
    }

    pub fn kill_etcd(&self, n: u8) {
        self.run(&["kill-etcd", &n.to_string()]);
    }

    pub fn start_etcd(&self, n: u8) {
        self.run(&["start-etcd", &n.to_string()]);
    }

    /// Waits for a leader, a synchronous standby and every member streaming.
    pub fn wait_healthy(&self, secs: u32) {
        self.run(&["wait-healthy", &secs.to_string()]);
    }

    /// Patroni's table of members, for failure messages and logs.
    pub fn status(&self) -> String {
        self.run(&["status"])
    }
}

impl Drop for HaCluster {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT).args(["down", path(&self.dir)]).output();
    }
}

fn run(args: &[&str]) -> String {
    let out = Command::new(SCRIPT).args(args).output().unwrap_or_else(|e| panic!("running {SCRIPT}: {e}"));
    assert!(
        out.status.success(),
        "scripts/ha-cluster {} failed (Patroni, etcd and HAProxy are needed; scripts/test installs them): {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("temporary directory path is UTF-8")
}

/// The first of `n` consecutive loopback ports nobody listens on now.
fn free_port_block(n: u16) -> u16 {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let base: u16 = rng.gen_range(20_000..60_000);
        if (base..base + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no block of {n} free ports on 127.0.0.1");
}
