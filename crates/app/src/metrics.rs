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
pub struct CacheLabels {
    pub result: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Histogram>,
    pub bookings: Family<BookingLabels, Counter>,
    pub availability_cache: Family<CacheLabels, Counter>,
    holds_expired: Counter<u64, AtomicU64>,
    pool_connections: Gauge,
    pool_idle: Gauge,
    cache_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    notification_queue: Gauge,
    notification_queue_age: Gauge<f64, std::sync::atomic::AtomicU64>,
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
        Self {
            registry,
            requests,
            bookings,
            availability_cache,
            holds_expired,
            pool_connections,
            pool_idle,
            cache_age,
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

    pub fn cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.availability_cache.get_or_create(&CacheLabels { result: result.into() }).inc();
    }

    /// The exposition text, with the store's figures sampled now.
    pub fn render(&self, store: medislot_store::StoreStats, cache_age: std::time::Duration) -> String {
        self.cache_age.set(cache_age.as_secs_f64());
        self.pool_connections.set(i64::from(store.pool_connections));
        self.pool_idle.set(i64::from(store.pool_idle));
        let seen = self.holds_expired.get();
        if store.holds_expired > seen {
            self.holds_expired.inc_by(store.holds_expired - seen);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
