//! `medislot-bench`: load for a running medislot, with an open model (requests
//! are sent at a fixed arrival rate, whether or not earlier ones finished) and
//! latencies measured from each request's intended send time, so a stalled
//! server cannot hide its stall (no coordinated omission). Prints one JSON
//! object per run.
//!
//! ```text
//! medislot-bench book   --url http://127.0.0.1:8080 --rate 1500 --seconds 20
//! medislot-bench race   --url … --clients 200
//! medislot-bench search --url … --rate 200 --seconds 20
//! medislot-bench search-mix --url … --rate 200 --seconds 20
//! medislot-bench search-limit --database-url sqlite:data/medislot.db --seconds 10
//! medislot-bench freshness --book-url http://node-a --search-url http://node-b
//! medislot-bench first-search --url …
//! medislot-bench slots  --url … --rate 500 --seconds 20
//! medislot-bench mixed  --url … --rate 500 --seconds 20
//! medislot-bench book   --url … --clients 64 --seconds 20   (closed loop: the node's capacity)
//! medislot-bench sqlite-limit --database-url sqlite:data/medislot.db --seconds 10
//! medislot-bench login-flood  --url … --threads 32 --seconds 10   (serve --trusted-proxy 127.0.0.1)
//! medislot-bench bulk-flood   --url … --requests 60 --concurrency 20
//! medislot-bench slow-clients --url … --clients 3000 --hold-seconds 30
//! ```

mod abuse;
mod limit;
mod load;
mod search;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "medislot-bench", about = "Benchmarks for medislot")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The medislot to drive.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Requests per second offered.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// How long to offer them.
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// Patient accounts the bench registers and spreads its bookings over.
    #[arg(long, default_value_t = 20)]
    pub patients: usize,
    /// Warm-up before measuring, in seconds (same rate, not recorded).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Requests in flight at most; one due beyond that is not sent and counts as
    /// an error (`shed`), so an overloaded server shows as such instead of
    /// exhausting this machine's sockets.
    #[arg(long, default_value_t = 2000)]
    pub max_in_flight: usize,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Book distinct free slots (log-in included once per patient, bearer tokens after):
    /// at `--rate` (open model), or as fast as `--clients` callers get answers (closed loop).
    Book {
        #[command(flatten)]
        target: Target,
        /// Callers in a closed loop, each sending its next booking once answered;
        /// unset: the open model at `--rate`.
        #[arg(long)]
        clients: Option<usize>,
    },
    /// N clients at once for one slot: exactly one must win.
    Race {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 200)]
        clients: usize,
    },
    /// Search by specialty, radius and date window, with each hit's next slot.
    Search(Target),
    /// Search as patients mix it: a specialty, with or without a 50 km radius, a
    /// language, a mode, a date window.
    SearchMix(Target),
    /// The search mix without date windows (every search starts now).
    SearchNow(Target),
    /// The database's own rate for the search mix's queries (no HTTP, no application).
    SearchLimit(search::LimitArgs),
    /// How soon a booking through one node stops showing in another node's search.
    Freshness(search::FreshnessArgs),
    /// The time a node just started takes to answer its first search.
    FirstSearch {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// One doctor's week of free slots.
    Slots(Target),
    /// A realistic day: 80% reads (search, slots), 15% bookings, 5% reschedules and cancels.
    Mixed(Target),
    /// SQLite's own limit for the writes a booking needs (no HTTP, no medislot code).
    SqliteLimit(limit::Args),
    /// A login flood (random e-mails, wrong passwords) and a real user's logins meanwhile.
    LoginFlood(abuse::FloodArgs),
    /// Concurrent downloads of the SMART Slot file and /healthz meanwhile.
    BulkFlood(abuse::BulkArgs),
    /// Connections that send half a request and stop: how many are still open later.
    SlowClients(abuse::SlowArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.scenario {
        Scenario::Book { target, clients: Some(clients) } => load::saturate(&target, clients).await?,
        Scenario::Book { target, clients: None } => load::run(load::Kind::Book, &target).await?,
        Scenario::Race { target, clients } => load::race(&target, clients).await?,
        Scenario::Search(t) => load::run(load::Kind::Search, &t).await?,
        Scenario::SearchMix(t) => load::run(load::Kind::SearchMix, &t).await?,
        Scenario::SearchNow(t) => load::run(load::Kind::SearchNow, &t).await?,
        Scenario::SearchLimit(a) => search::limit(&a).await?,
        Scenario::Freshness(a) => search::freshness(&a).await?,
        Scenario::FirstSearch { url } => search::first(&url).await?,
        Scenario::Slots(t) => load::run(load::Kind::Slots, &t).await?,
        Scenario::Mixed(t) => load::run(load::Kind::Mixed, &t).await?,
        Scenario::SqliteLimit(a) => tokio::task::spawn_blocking(move || limit::sqlite(&a)).await??,
        Scenario::LoginFlood(a) => abuse::login_flood(&a).await?,
        Scenario::BulkFlood(a) => abuse::bulk_flood(&a).await?,
        Scenario::SlowClients(a) => abuse::slow_clients(&a).await?,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
