//! Command line: every flag can also come from a `MEDISLOT_…` environment variable.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::{path::PathBuf, process::ExitCode};

#[derive(Parser, Debug)]
#[command(name = "medislot", version, about = "Doctor-patient appointment booking")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP service (with the notification workers, unless `--workers false`).
    Serve(Box<ServeArgs>),
    /// Run only the notification workers (e-mail, webhooks, reminders, waitlist), no HTTP.
    Worker {
        #[command(flatten)]
        db: DbArgs,
        /// The region of the database this worker serves (as `serve --region`).
        #[arg(long, env = "MEDISLOT_REGION", default_value = "local")]
        region: String,
        #[command(flatten)]
        notify: NotifyArgs,
    },
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
    /// Load a large generated data set (bulk inserts), for benchmarks and trials.
    Seed {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        seed: crate::seed::SeedArgs,
    },
    /// Copy the embedded database to a new file, consistently, while nodes keep
    /// serving (SQLite's online backup). PostgreSQL has its own tools: see
    /// docs/operations.md, "Backups and restore".
    Backup {
        #[command(flatten)]
        db: DbArgs,
        /// The file to write; it must not exist.
        #[arg(long)]
        to: PathBuf,
    },
    /// Platform administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a platform admin account.
    Create {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        email: String,
        #[arg(long, env = "MEDISLOT_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "Platform admin")]
        name: String,
    },
}

#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    /// Where the embedded database lives (when --database-url is not given).
    #[arg(long, env = "MEDISLOT_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// `sqlite:PATH` (default: DATA_DIR/medislot.db) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "MEDISLOT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Database connections per node.
    #[arg(long, env = "MEDISLOT_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: u32,
    /// How long a statement may wait for a lock or a pooled connection before the request gets 503.
    #[arg(long, env = "MEDISLOT_DB_BUSY_TIMEOUT_MS", default_value_t = 5000)]
    pub db_busy_timeout_ms: u64,
    /// PostgreSQL: the longest a statement may run before it is cancelled (503).
    #[arg(long, env = "MEDISLOT_DB_STATEMENT_TIMEOUT_MS", default_value_t = 10000)]
    pub db_statement_timeout_ms: u64,
}

impl DbArgs {
    pub fn url(&self) -> anyhow::Result<String> {
        if let Some(u) = &self.database_url {
            return Ok(u.clone());
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data dir {}", self.data_dir.display()))?;
        Ok(format!("sqlite:{}", self.data_dir.join("medislot.db").display()))
    }

    pub async fn connect(&self, migrate: bool) -> anyhow::Result<medislot_store::DynStore> {
        let url = self.url()?;
        medislot_store::connect(&url, &self.options(migrate, false)).await.with_context(|| "opening the database")
    }

    /// The read replica at `url` (a PostgreSQL standby), with this node's pool settings.
    pub async fn connect_replica(&self, url: &str) -> anyhow::Result<medislot_store::DynStore> {
        if !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
            anyhow::bail!("--read-database-url must be a PostgreSQL standby's URL (postgres://…)");
        }
        medislot_store::connect(url, &self.options(false, true)).await.with_context(|| "opening the read replica")
    }

    fn options(&self, migrate: bool, read_only: bool) -> medislot_store::ConnectOptions {
        medislot_store::ConnectOptions {
            max_connections: self.db_pool_size,
            busy_timeout: std::time::Duration::from_millis(self.db_busy_timeout_ms),
            statement_timeout: std::time::Duration::from_millis(self.db_statement_timeout_ms),
            migrate,
            read_only,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// PostgreSQL: a standby (or a proxy to the standbys) that serves reads which
    /// may be a little stale: search and slot lists. Bookings, holds
    /// and every read of one's own changes stay on --database-url; while the
    /// replica lags more than --read-max-lag-ms or does not answer, its reads go
    /// to the primary too.
    #[arg(long, env = "MEDISLOT_READ_DATABASE_URL", hide_env_values = true)]
    pub read_database_url: Option<String>,
    /// The most a read replica may lag behind the primary and still serve reads.
    #[arg(long, env = "MEDISLOT_READ_MAX_LAG_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub read_max_lag_ms: u64,
    /// Address to listen on; port 0 picks a free port (printed at start-up).
    #[arg(long, env = "MEDISLOT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// A second address for operators only: /metrics, /api/v1/regions, /healthz and
    /// /readyz without a token. Keep it on the internal network.
    #[arg(long, env = "MEDISLOT_INTERNAL_LISTEN")]
    pub internal_listen: Option<String>,
    /// A token for /metrics and /api/v1/regions on the public address
    /// (`Authorization: Bearer …`); without it, only the internal address serves them.
    #[arg(long, env = "MEDISLOT_OPS_TOKEN", hide_env_values = true)]
    pub ops_token: Option<String>,
    /// A request's headers must arrive within this many milliseconds.
    #[arg(long, env = "MEDISLOT_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub header_read_timeout_ms: u64,
    /// A connection that moves no byte for this many milliseconds is closed (idle keep-alive).
    #[arg(long, env = "MEDISLOT_IDLE_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub idle_timeout_ms: u64,
    /// A request body must arrive within this many milliseconds.
    #[arg(long, env = "MEDISLOT_BODY_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub body_read_timeout_ms: u64,
    /// Open connections at most; more are answered 503 and closed at once.
    #[arg(long, env = "MEDISLOT_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// This node's region.
    #[arg(long, env = "MEDISLOT_REGION", default_value = "local")]
    pub region: String,
    /// A peer region, `NAME=URL` (repeat the flag; env: comma-separated).
    #[arg(long = "peer", env = "MEDISLOT_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// The secret the regions share; required with --peer.
    #[arg(long, env = "MEDISLOT_REGION_SECRET", hide_env_values = true)]
    pub region_secret: Option<String>,
    /// A second secret accepted (never sent) from peers while the secret is rotated.
    #[arg(long, env = "MEDISLOT_REGION_SECRET_PREVIOUS", hide_env_values = true, requires = "region_secret")]
    pub region_secret_previous: Option<String>,
    /// How long a booking forwarded to its home region may wait for the answer.
    #[arg(long, env = "MEDISLOT_FORWARD_TIMEOUT_MS", default_value_t = 2000)]
    pub forward_timeout_ms: u64,
    /// Heartbeats to peer regions, in milliseconds (two missed: the link is down).
    #[arg(long, env = "MEDISLOT_HEARTBEAT_MS", default_value_t = 500)]
    pub heartbeat_ms: u64,
    /// How often each peer's directory and busy times are pulled, in milliseconds.
    #[arg(long, env = "MEDISLOT_REPLICATION_MS", default_value_t = 250)]
    pub replication_ms: u64,
    /// Seed demo clinics, doctors, patients and appointments on first start.
    #[arg(long, env = "MEDISLOT_DEMO")]
    pub demo: bool,
    /// How long a hold keeps its slot, in seconds.
    #[arg(long, env = "MEDISLOT_HOLD_TTL_SECS", default_value_t = 600)]
    pub hold_ttl_secs: i64,
    /// How long before its start an appointment may be marked "arrived", in minutes.
    #[arg(long, env = "MEDISLOT_ARRIVAL_WINDOW_MINUTES", default_value_t = 60, value_parser = clap::value_parser!(i64).range(0..=10080))]
    pub arrival_window_minutes: i64,
    /// Where online appointments' video rooms are: a Jitsi-compatible
    /// address; each appointment gets an unguessable room under it.
    #[arg(long, env = "MEDISLOT_VIDEO_URL", default_value = medislot_app::DEFAULT_VIDEO_URL, value_parser = video_provider)]
    pub video_url: medislot_app::VideoProvider,
    /// Sign-in attempts allowed per client address and account per minute.
    #[arg(long, env = "MEDISLOT_LOGINS_PER_MINUTE", default_value_t = 10)]
    pub logins_per_minute: u32,
    /// Sign-in and sign-up attempts allowed per client address per minute, whatever the account.
    #[arg(long, env = "MEDISLOT_CLIENT_ATTEMPTS_PER_MINUTE", default_value_t = 60)]
    pub client_attempts_per_minute: u32,
    /// Anonymous expensive reads (search, slot lists, FHIR, bulk files, the search
    /// page) allowed per client address per second; twice that in a burst.
    #[arg(long, env = "MEDISLOT_PUBLIC_READS_PER_SECOND", default_value_t = 20)]
    pub public_reads_per_second: u32,
    /// The shortest time between two publications of a SMART bulk file, in seconds:
    /// a file is republished when its data changed and it is at least this old.
    #[arg(long, env = "MEDISLOT_BULK_REPUBLISH_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub bulk_republish_secs: u64,
    /// Publish the SMART bulk files (FHIR Location, Schedule, Slot) from this node.
    /// Off on nodes that do not serve them: at a million doctors a publication
    /// keeps a core busy for many minutes.
    #[arg(long, env = "MEDISLOT_BULK_PUBLISH", default_value_t = true, action = clap::ArgAction::Set)]
    pub bulk_publish: bool,
    /// A proxy (address or CIDR range) whose X-Forwarded-For names the client; repeat
    /// the flag (env: comma-separated). Without one, X-Forwarded-For is ignored.
    #[arg(long = "trusted-proxy", env = "MEDISLOT_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<medislot_http::throttle::Cidr>,
    /// How long availability reads (slot lists, search) may come from this node's
    /// cache; 0 turns it off. Bookings always go to the database.
    #[arg(long, env = "MEDISLOT_AVAILABILITY_CACHE_TTL_MS", default_value_t = 2000)]
    pub availability_cache_ttl_ms: u64,
    /// How long a doctor's listing read for a booking is reused (a cache bounded
    /// in bytes); changes made through this node drop it at once. 0 (or no
    /// availability cache) reads the database every time.
    #[arg(long, env = "MEDISLOT_DIRECTORY_CACHE_TTL_MS", default_value_t = 10000)]
    pub directory_cache_ttl_ms: u64,
    /// The longest a request may take; past it the client gets 503 with Retry-After.
    #[arg(long, env = "MEDISLOT_REQUEST_TIMEOUT_MS", default_value_t = 15000)]
    pub request_timeout_ms: u64,
    /// Requests worked on at once; more are answered 503 with Retry-After at once.
    #[arg(long, env = "MEDISLOT_MAX_IN_FLIGHT", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_in_flight: u32,
    /// Log format: text or json.
    #[arg(long, env = "MEDISLOT_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Run the notification workers in this process (several nodes may all run them).
    #[arg(long, env = "MEDISLOT_WORKERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub workers: bool,
    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// Notifications: where e-mail goes, what links point to, reminders, retries.
#[derive(Args, Debug, Clone)]
pub struct NotifyArgs {
    /// SMTP server for e-mail, `smtp://HOST[:PORT]` (plain SMTP to a relay).
    /// Without it, e-mails are written as .eml files to --mail-dir.
    #[arg(long, env = "MEDISLOT_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Where e-mails are written when no SMTP server is set (default: DATA_DIR/mail).
    #[arg(long, env = "MEDISLOT_MAIL_DIR")]
    pub mail_dir: Option<PathBuf>,
    /// The sender of e-mails and organizer of their calendar invitations.
    #[arg(long, env = "MEDISLOT_MAIL_FROM", default_value = "medislot <no-reply@medislot.localhost>")]
    pub mail_from: String,
    /// The address people reach the web pages at, for links in messages
    /// (default: http:// and the listen address).
    #[arg(long, env = "MEDISLOT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Reminder offsets before each appointment, comma-separated (e.g. `24h,2h`; empty: none).
    #[arg(long, env = "MEDISLOT_REMINDERS", default_value = "24h,2h")]
    pub reminders: String,
    /// Delivery attempts before a message is dead-lettered.
    #[arg(long, env = "MEDISLOT_NOTIFY_MAX_ATTEMPTS", default_value_t = 10)]
    pub notify_max_attempts: u32,
    /// First retry delay in milliseconds; doubles each attempt (up to 30 minutes).
    #[arg(long, env = "MEDISLOT_NOTIFY_BACKOFF_MS", default_value_t = 5000)]
    pub notify_backoff_ms: u64,
    /// How long a worker owns a claimed message before another worker may send it.
    #[arg(long, env = "MEDISLOT_NOTIFY_LEASE_SECS", default_value_t = 60)]
    pub notify_lease_secs: u64,
    /// How often an idle worker looks for work, in milliseconds.
    #[arg(long, env = "MEDISLOT_NOTIFY_POLL_MS", default_value_t = 500)]
    pub notify_poll_ms: u64,
    /// How long a slot offered from the waitlist stays held for the patient, in seconds.
    #[arg(long, env = "MEDISLOT_WAITLIST_HOLD_SECS", default_value_t = 1800)]
    pub waitlist_hold_secs: i64,
    /// Fault injection for the crash tests: the probability of aborting after
    /// a message is sent and before that is recorded.
    #[arg(long, env = "MEDISLOT_FAILPOINT_CRASH_AFTER_SEND", default_value_t = 0.0, hide = true)]
    pub crash_after_send: f64,
    /// Let webhooks reach loopback and private addresses (an on-premises receiver).
    /// Off by default: a subscription must not make the node call inside its own network.
    #[arg(long, env = "MEDISLOT_WEBHOOKS_ALLOW_PRIVATE")]
    pub webhooks_allow_private: bool,
}

impl NotifyArgs {
    pub fn worker_config(&self, listen: Option<&str>) -> anyhow::Result<medislot_workers::WorkerConfig> {
        let mut reminder_offsets = Vec::new();
        for part in self.reminders.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let d: jiff::SignedDuration = part
                .parse()
                .map_err(|e| anyhow::anyhow!("--reminders: {part:?} is not a duration like 24h or 90m: {e}"))?;
            if d <= jiff::SignedDuration::ZERO {
                anyhow::bail!("--reminders: {part:?} must be positive");
            }
            reminder_offsets.push(d);
        }
        if !(0.0..=1.0).contains(&self.crash_after_send) {
            anyhow::bail!("MEDISLOT_FAILPOINT_CRASH_AFTER_SEND must be between 0 and 1");
        }
        let public_url = self
            .public_url
            .clone()
            .or_else(|| listen.map(|l| format!("http://{l}")))
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        Ok(medislot_workers::WorkerConfig {
            poll: std::time::Duration::from_millis(self.notify_poll_ms.max(10)),
            lease: jiff::SignedDuration::from_secs(i64::try_from(self.notify_lease_secs.max(1)).unwrap_or(60)),
            max_attempts: self.notify_max_attempts.max(1),
            backoff_base: jiff::SignedDuration::from_millis(i64::try_from(self.notify_backoff_ms).unwrap_or(5000)),
            reminder_offsets,
            mail_from: self.mail_from.clone(),
            public_url: public_url.trim_end_matches('/').to_string(),
            crash_after_send: self.crash_after_send,
            allow_private_webhooks: self.webhooks_allow_private,
            ..Default::default()
        })
    }

    pub fn mailer(&self, db: &DbArgs) -> anyhow::Result<medislot_workers::mail::Mailer> {
        let dir = self.mail_dir.clone().unwrap_or_else(|| db.data_dir.join("mail"));
        Ok(medislot_workers::mail::Mailer::new(self.smtp_url.as_deref(), dir)?)
    }
}

fn init_logging(json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("MEDISLOT_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = matches!(&cli.command, Command::Serve(a) if a.log_format == "json");
    init_logging(json);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("medislot: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medislot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => crate::server::serve(*args).await,
        Command::Worker { db, region, notify } => crate::server::work(db, region, notify).await,
        Command::Migrate(db) => {
            db.connect(true).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Backup { db, to } => {
            let url = db.url()?;
            if !url.starts_with("sqlite:") {
                anyhow::bail!(
                    "medislot backup copies the embedded SQLite database; for PostgreSQL use pg_basebackup \
                     with a WAL archive, or pg_dump (docs/operations.md, \"Backups and restore\")"
                );
            }
            let t0 = std::time::Instant::now();
            let s = medislot_store::sqlite::backup::backup(&url, &to).context("backing up the database")?;
            println!(
                "backed up {} appointments and {} users to {} ({} bytes) in {:.1} s",
                s.appointments,
                s.users,
                to.display(),
                s.bytes,
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Seed { db, seed } => {
            let store = db.connect(true).await?;
            let app = medislot_app::App::new(store, Default::default());
            let t0 = std::time::Instant::now();
            let (c, d, p, a) = crate::seed::run(&app, &seed).await?;
            println!(
                "seeded {c} clinics, {d} doctors, {p} patients, {a} appointments in {:.1} s (password: {})",
                t0.elapsed().as_secs_f64(),
                crate::seed::PASSWORD
            );
            Ok(())
        }
        Command::Admin { command: AdminCommand::Create { db, email, password, name } } => {
            let store = db.connect(true).await?;
            let app = medislot_app::App::new(store, Default::default());
            let user = app.create_admin(&email, &password, &name).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created platform admin {} ({})", user.email, user.id);
            Ok(())
        }
    }
}

fn video_provider(s: &str) -> Result<medislot_app::VideoProvider, String> {
    medislot_app::VideoProvider::parse("video_url", s).map_err(|e| e.to_string())
}
