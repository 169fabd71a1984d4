//! Use cases: each public method is one command or query, runs in at most one
//! store transaction, and checks who may do it (P5) before anything is written.

mod access;
mod accounts;
mod availability;
mod booking;
mod cache;
pub mod calendar;
mod directory;
mod error;
pub mod metrics;
mod notifications;
mod privacy;
mod regions;
mod replica;
mod requests;
mod search;
pub mod search_index;
mod video;
mod visits;

pub use access::Actor;
pub use accounts::{LoginOutcome, Registration};
pub use availability::{SlotList, SlotView};
pub use booking::{AppointmentFilter, BookOutcome, BookRequest, Mark};
pub use directory::{
    ClinicInput, ClinicRulesInput, DoctorInput, DoctorPatch, Operations, TimeOffInput, Verification,
    MEMBERSHIP_DECISIONS,
};
pub use error::{AppError, BusyWith};
pub use notifications::{
    new_secret, WaitlistInput, WebhookInput, DELIVERIES_LIMIT, NOTIFICATIONS_LIMIT, WEBHOOK_EVENTS,
};
pub use privacy::Export;
pub use regions::{
    ChangeAnswer, ForwardedBooking, HomeAnswer, LinkError, LinkState, PeerStatus, PeerView, RegionLink, RegionsView,
    RemoteChange,
};
pub use search::{SearchHit, SearchPage, SearchParams};
pub use video::{parse_room_url, VideoProvider, DEFAULT_VIDEO_URL, ROOM_URL_PATTERN};
pub use visits::{rules_for_visit, VisitRequest};

use jiff::{SignedDuration, Timestamp};
use medislot_store::DynStore;
use std::sync::Arc;

/// Where "now" comes from: the wall clock in production, a hand-set clock in tests.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

#[derive(Debug, Clone)]
pub struct AppConfig {
    /// This node's region; new clinics default to it and appointments record it.
    pub region: String,
    /// How long a hold keeps its slot during checkout.
    pub hold_ttl: SignedDuration,
    /// How long a bearer token or web session stays valid.
    pub token_ttl: SignedDuration,
    /// Most unexpired holds one patient may have at once.
    pub max_holds_per_patient: u32,
    /// How long availability reads may be served from this node's cache (zero: no cache).
    pub availability_cache_ttl: std::time::Duration,
    /// How long a doctor's listing read for the booking path is reused;
    /// changes made through this node drop it at once. Off when the
    /// availability cache is off.
    pub directory_cache_ttl: std::time::Duration,
    /// How long a slot offered from the waitlist is held for the patient.
    pub waitlist_hold_ttl: SignedDuration,
    /// How long before its start an appointment may be marked "arrived".
    pub arrival_window: SignedDuration,
    /// Webhook receivers may be on loopback and private addresses (on-premises, tests).
    pub webhooks_allow_private: bool,
    /// Where online appointments' video rooms are.
    pub video: VideoProvider,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            region: "local".into(),
            hold_ttl: SignedDuration::from_mins(10),
            token_ttl: SignedDuration::from_hours(24 * 30),
            max_holds_per_patient: 3,
            availability_cache_ttl: std::time::Duration::from_secs(2),
            directory_cache_ttl: std::time::Duration::from_secs(10),
            waitlist_hold_ttl: SignedDuration::from_mins(30),
            arrival_window: SignedDuration::from_mins(60),
            webhooks_allow_private: false,
            video: VideoProvider::default(),
        }
    }
}

#[derive(Clone)]
pub struct App {
    store: DynStore,
    config: Arc<AppConfig>,
    clock: Clock,
    metrics: Arc<metrics::Metrics>,
    cache: Arc<cache::AvailabilityCache>,
    listings: Arc<cache::ListingCache>,
    keeper: Arc<search_index::Keeper>,
    tokens: Arc<cache::TokenCache>,
    /// The alternatives offered for a taken slot, shared by its race's losers.
    alternatives: Arc<cache::Memo<(medislot_domain::DoctorId, Timestamp), Vec<SlotView>>>,
    /// The cities with listed doctors, as search offers them (see [`App::places`]).
    places: Arc<cache::Memo<(), Arc<Vec<medislot_store::Place>>>>,
    regions: Option<Arc<dyn RegionLink>>,
    /// A read replica for stale-tolerant reads (see [`replica`]).
    replica: Option<Arc<replica::ReadReplica>>,
}

impl App {
    pub fn new(store: DynStore, config: AppConfig) -> Self {
        Self::with_clock(store, config, Arc::new(Timestamp::now))
    }

    pub fn with_clock(store: DynStore, config: AppConfig, clock: Clock) -> Self {
        let cache = Arc::new(cache::AvailabilityCache::new(config.availability_cache_ttl));
        let listing_ttl = if config.availability_cache_ttl.is_zero() {
            std::time::Duration::ZERO
        } else {
            config.directory_cache_ttl
        };
        let listings = Arc::new(cache::ListingCache::new(listing_ttl));
        let places = Arc::new(cache::Memo::new(listing_ttl));
        // At most a second, and never longer than availability may be cached.
        let memo_ttl = config.availability_cache_ttl.min(std::time::Duration::from_secs(1));
        let alternatives = Arc::new(cache::Memo::new(memo_ttl));
        Self {
            store,
            config: Arc::new(config),
            clock,
            metrics: Arc::default(),
            cache,
            listings,
            keeper: Arc::default(),
            tokens: Arc::default(),
            alternatives,
            places,
            regions: None,
            replica: None,
        }
    }

    /// Now, to the microsecond: the finest time PostgreSQL keeps, so that a
    /// record reads back as it was written on either backend.
    pub fn now(&self) -> Timestamp {
        let now = (self.clock)();
        now.round(jiff::Unit::Microsecond).unwrap_or(now)
    }

    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The metrics exposition, with the store's and the cache's figures sampled now.
    pub fn render_metrics(&self, format: metrics::Exposition) -> String {
        format.write(self.metrics.render(self.store.stats(), self.cache.oldest_age(), self.search_index_lag()))
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// Readiness: the database answers, within a second (a load balancer
    /// polling `/readyz` must learn fast that this node cannot serve).
    pub async fn ready(&self) -> Result<(), AppError> {
        const WITHIN: std::time::Duration = std::time::Duration::from_secs(1);
        match tokio::time::timeout(WITHIN, self.store.ping()).await {
            Ok(answer) => answer.map_err(AppError::from),
            Err(_) => Err(AppError::Unavailable("the database did not answer within a second".into())),
        }
    }
}
