//! Prometheus metrics (OpenMetrics text at `/metrics`). Labels are route
//! templates, outcomes and regions: never ids or personal data.

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The matched route template (`/api/v1/doctors/{id}/slots`), or `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BookingLabels {
    /// booked, replayed, held, slot_taken, invalid, unavailable, other
    pub outcome: String,
    pub region: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// email | webhook
    pub channel: String,
    /// delivered, retry, dead, skipped
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub result: String,
}

/// A metric that has no sample until it is first set.
type NoLabels = Vec<(String, String)>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicaLabels {
    /// served (by the replica) | fell_back (the replica failed; the primary answered)
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Histogram>,
    pub bookings: Family<BookingLabels, Counter>,
    pub availability_cache: Family<CacheLabels, Counter>,
    holds_expired: Counter<u64, AtomicU64>,
    writes_waiting: Gauge,
    writes_refused: Counter<u64, AtomicU64>,
    writes_committed: Counter<u64, AtomicU64>,
    write_groups: Counter<u64, AtomicU64>,
    pool_connections: Gauge,
    pool_idle: Gauge,
    cache_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    directory_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    notification_queue: Gauge,
    notification_queue_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    region_link_up: Family<PeerLabels, Gauge>,
    replication_lag: Family<PeerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    forwarding_queue: Gauge,
    forwarding_queue_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Only with a read replica configured: an empty family renders no sample.
    replica_up: Family<NoLabels, Gauge>,
    replica_lag: Family<NoLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    replica_reads: Family<ReplicaLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("medislot");
        // 0.5 ms … ~16 s
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register("http_request_duration_seconds", "HTTP request latency by route template", requests.clone());
        let bookings = Family::<BookingLabels, Counter>::default();
        registry.register("bookings", "Booking and hold attempts by outcome and region", bookings.clone());
        let availability_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "availability_cache_lookups",
            "Availability cache lookups by result",
            availability_cache.clone(),
        );
        let holds_expired = Counter::<u64, AtomicU64>::default();
        registry.register("holds_expired", "Holds released because they ran out (this node)", holds_expired.clone());
        let writes_waiting = Gauge::default();
        registry.register("db_writes_waiting", "Writes queued for the database now", writes_waiting.clone());
        let writes_refused = Counter::<u64, AtomicU64>::default();
        registry.register(
            "db_writes_refused",
            "Writes refused at once because the database's queue was full (answered 503)",
            writes_refused.clone(),
        );
        let writes_committed = Counter::<u64, AtomicU64>::default();
        registry.register("db_writes_committed", "Writes committed by this node", writes_committed.clone());
        let write_groups = Counter::<u64, AtomicU64>::default();
        registry.register(
            "db_write_groups",
            "Transactions this node's writes were committed in (SQLite commits several at once)",
            write_groups.clone(),
        );
        let pool_connections = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Database connections open in this node's pool",
            pool_connections.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections in this node's pool",
            pool_idle.clone(),
        );
        let cache_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "availability_cache_age_seconds",
            "Age of the oldest availability cache entry this node still serves",
            cache_age.clone(),
        );
        let directory_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "search_index_lag_seconds",
            "How far behind this node's changes the search index may be (since its keeper's last finished round began)",
            directory_age.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "notification_deliveries",
            "Notification delivery attempts by this node's workers, by channel and outcome",
            deliveries.clone(),
        );
        let notification_queue = Gauge::default();
        registry.register(
            "notification_queue",
            "Notifications waiting to be sent (all nodes), as last seen by this node's worker",
            notification_queue.clone(),
        );
        let notification_queue_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "notification_queue_oldest_seconds",
            "Age of the oldest notification waiting to be sent, as last seen by this node's worker",
            notification_queue_age.clone(),
        );
        let region_link_up = Family::<PeerLabels, Gauge>::default();
        registry.register("region_link_up", "1 when the link to a peer region is up, else 0", region_link_up.clone());
        let replication_lag = Family::<PeerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "replication_lag_seconds",
            "How old this region's replica of a peer region's directory and busy times is",
            replication_lag.clone(),
        );
        let forwarding_queue = Gauge::default();
        registry.register(
            "forwarding_queue",
            "Bookings accepted here as pending, waiting for their home region",
            forwarding_queue.clone(),
        );
        let forwarding_queue_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "forwarding_queue_oldest_seconds",
            "Age of the oldest booking waiting for its home region",
            forwarding_queue_age.clone(),
        );
        let replica_up = Family::<NoLabels, Gauge>::default();
        registry.register(
            "db_replica_up",
            "1 while the read replica answers and keeps up (within --read-max-lag-ms), else 0",
            replica_up.clone(),
        );
        let replica_lag = Family::<NoLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "db_replica_lag_seconds",
            "How far the read replica's data is behind the primary's, as last measured (+Inf: no answer)",
            replica_lag.clone(),
        );
        let replica_reads = Family::<ReplicaLabels, Counter>::default();
        registry.register(
            "db_replica_reads",
            "Stale-tolerant reads sent to the read replica, by outcome",
            replica_reads.clone(),
        );
        Self {
            registry,
            replica_up,
            replica_lag,
            replica_reads,
            region_link_up,
            replication_lag,
            forwarding_queue,
            forwarding_queue_age,
            requests,
            bookings,
            availability_cache,
            holds_expired,
            writes_waiting,
            writes_refused,
            writes_committed,
            write_groups,
            pool_connections,
            pool_idle,
            cache_age,
            directory_age,
            deliveries,
            notification_queue,
            notification_queue_age,
        }
    }
}

impl Metrics {
    pub fn booking(&self, outcome: &str, region: &str) {
        self.bookings.get_or_create(&BookingLabels { outcome: outcome.into(), region: region.into() }).inc();
    }

    /// Booking attempts with this outcome in this region, since the node started.
    pub fn booking_count(&self, outcome: &str, region: &str) -> u64 {
        self.bookings.get_or_create(&BookingLabels { outcome: outcome.into(), region: region.into() }).get()
    }

    pub fn delivery(&self, channel: &str, outcome: &str) {
        self.deliveries.get_or_create(&DeliveryLabels { channel: channel.into(), outcome: outcome.into() }).inc();
    }

    /// The notification queue as a worker last saw it: how many wait, the oldest's age.
    pub fn notification_queue(&self, pending: u64, oldest_age: std::time::Duration) {
        self.notification_queue.set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.notification_queue_age.set(oldest_age.as_secs_f64());
    }

    /// A peer link's state and the age of its replica here, as last seen.
    pub fn region_link(&self, peer: &str, up: bool, lag_seconds: Option<f64>) {
        let labels = PeerLabels { peer: peer.into() };
        self.region_link_up.get_or_create(&labels).set(i64::from(up));
        if let Some(lag) = lag_seconds {
            self.replication_lag.get_or_create(&labels).set(lag);
        }
    }

    pub fn forwarding_queue(&self, pending: u64, oldest_age_seconds: f64) {
        self.forwarding_queue.set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.forwarding_queue_age.set(oldest_age_seconds);
    }

    /// The read replica's lag as just measured (`None`: no answer), and whether it may serve.
    pub fn read_replica(&self, lag: Option<std::time::Duration>, serves: bool) {
        self.replica_lag.get_or_create(&vec![]).set(lag.map_or(f64::INFINITY, |l| l.as_secs_f64()));
        self.replica_up.get_or_create(&vec![]).set(i64::from(serves));
    }

    pub fn replica_read(&self, served: bool) {
        let outcome = if served { "served" } else { "fell_back" };
        self.replica_reads.get_or_create(&ReplicaLabels { outcome: outcome.into() }).inc();
    }

    pub fn cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.availability_cache.get_or_create(&CacheLabels { result: result.into() }).inc();
    }

    /// The exposition text, with the store's figures sampled now.
    pub fn render(
        &self,
        store: medislot_store::StoreStats,
        cache_age: std::time::Duration,
        directory_age: Option<std::time::Duration>,
    ) -> String {
        self.cache_age.set(cache_age.as_secs_f64());
        self.directory_age.set(directory_age.unwrap_or_default().as_secs_f64());
        self.pool_connections.set(i64::from(store.pool_connections));
        self.pool_idle.set(i64::from(store.pool_idle));
        self.writes_waiting.set(i64::try_from(store.writes_waiting).unwrap_or(i64::MAX));
        for (counter, total) in [
            (&self.holds_expired, store.holds_expired),
            (&self.writes_refused, store.writes_refused),
            (&self.writes_committed, store.writes_committed),
            (&self.write_groups, store.write_groups),
        ] {
            // The store counts; the registry's counters follow its totals.
            let seen = counter.get();
            if total > seen {
                counter.inc_by(total - seen);
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The exposition formats a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics 1.0 (`application/openmetrics-text`), what Prometheus asks for first.
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`text/plain`), what older scrapers,
    /// `promtool check metrics` and people with curl read.
    PrometheusText,
}

impl Exposition {
    /// The format an `Accept` header prefers: OpenMetrics only when it is asked
    /// for at least as strongly as plain text (`*/*` and no header mean text).
    pub fn negotiate(accept: Option<&str>) -> Self {
        let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.unwrap_or("*/*").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Self::OpenMetrics
        } else {
            Self::PrometheusText
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The exposition text in this format, from the OpenMetrics the registry writes.
    pub fn write(self, openmetrics: String) -> String {
        match self {
            Self::OpenMetrics => openmetrics,
            Self::PrometheusText => prometheus_text(&openmetrics),
        }
    }
}

/// OpenMetrics as the Prometheus text format 0.0.4 writes it: a counter's
/// family is named by its `_total` samples, and there are no `# UNIT` or
/// `# EOF` lines. (Histograms, gauges and samples are written alike.)
fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let family = if kind == "counter" { format!("{name}_total") } else { name.to_string() };
            if let Some((_, text)) = help.take().filter(|(n, _)| *n == name) {
                out.push_str(&format!("# HELP {family} {text}\n"));
            }
            out.push_str(&format!("# TYPE {family} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapers_get_the_format_they_ask_for() {
        use Exposition::*;
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Exposition::negotiate(Some(prometheus)), OpenMetrics);
        assert_eq!(Exposition::negotiate(Some("text/plain;version=0.0.4")), PrometheusText);
        assert_eq!(Exposition::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")), PrometheusText);
        assert_eq!(Exposition::negotiate(Some("application/openmetrics-text;q=0")), PrometheusText);
        assert_eq!(Exposition::negotiate(Some("*/*")), PrometheusText);
        assert_eq!(Exposition::negotiate(None), PrometheusText);
        assert_eq!(Exposition::negotiate(Some("Application/OpenMetrics-Text")), OpenMetrics);
    }

    #[test]
    fn the_text_format_names_counters_by_their_samples_and_has_no_eof() {
        let m = Metrics::default();
        m.booking("booked", "eu");
        let open = m.render(medislot_store::StoreStats::default(), std::time::Duration::ZERO, None);
        assert!(open.contains("# TYPE medislot_bookings counter") && open.ends_with("# EOF\n"));
        let text = Exposition::PrometheusText.write(open);
        assert!(text.contains("# HELP medislot_bookings_total Booking and hold attempts"), "{text}");
        assert!(text.contains("# TYPE medislot_bookings_total counter"), "{text}");
        assert!(text.contains("medislot_bookings_total{outcome=\"booked\",region=\"eu\"} 1"), "{text}");
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
        assert!(text.contains("# TYPE medislot_http_request_duration_seconds histogram"), "{text}");
    }
}
