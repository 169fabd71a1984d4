//! Clinics: where they are, which time zone they keep, and their CAP policy.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a clinic prefers when its home region cannot be reached (DESIGN.md P7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Consistency first: cross-region bookings fail fast during a partition.
    #[default]
    Strict,
    /// Availability first: cross-region bookings are accepted as pending and reconciled.
    Available,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Strict => "strict",
            Policy::Available => "available",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self, Invalid> {
        match s {
            "strict" => Ok(Policy::Strict),
            "available" => Ok(Policy::Available),
            _ => Err(Invalid::field(field, "must be strict or available")),
        }
    }
}

/// The clinic's rules for its patients, shown to them before they book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicRules {
    /// How long before an appointment's start patients can no longer cancel
    /// or move it themselves (the clinic's staff still can); zero: until it starts.
    #[serde(default)]
    pub cancel_cutoff_minutes: i64,
    /// After this many no-shows at the clinic within `noshow_period_days`, a
    /// patient's online booking there is a request the clinic accepts or
    /// declines; zero: no such rule.
    #[serde(default)]
    pub noshow_limit: i64,
    #[serde(default = "default_noshow_period")]
    pub noshow_period_days: i64,
}

fn default_noshow_period() -> i64 {
    DEFAULT_NOSHOW_PERIOD_DAYS
}

impl Default for ClinicRules {
    fn default() -> Self {
        Self { cancel_cutoff_minutes: 0, noshow_limit: 0, noshow_period_days: DEFAULT_NOSHOW_PERIOD_DAYS }
    }
}

/// The longest cut-off a clinic may set: 30 days.
pub const MAX_CANCEL_CUTOFF_HOURS: i64 = 720;
/// The most no-shows a rule may allow before bookings need confirming.
pub const MAX_NOSHOW_LIMIT: i64 = 20;
/// The longest period no-shows are counted over: two years.
pub const MAX_NOSHOW_PERIOD_DAYS: i64 = 730;
pub const DEFAULT_NOSHOW_PERIOD_DAYS: i64 = 365;

impl ClinicRules {
    /// A cut-off given in whole hours, 0 to [`MAX_CANCEL_CUTOFF_HOURS`].
    pub fn with_cutoff_hours(field: &str, hours: i64) -> Result<Self, Invalid> {
        if !(0..=MAX_CANCEL_CUTOFF_HOURS).contains(&hours) {
            return Err(Invalid::field(field, format!("must be between 0 and {MAX_CANCEL_CUTOFF_HOURS} hours")));
        }
        Ok(Self { cancel_cutoff_minutes: hours * 60, ..Self::default() })
    }

    /// The no-show rule: `limit` no-shows (0: none) within `period_days`.
    pub fn with_noshow_rule(self, limit: i64, period_days: i64) -> Result<Self, Invalid> {
        let mut errs = crate::error::Errors::default();
        if !(0..=MAX_NOSHOW_LIMIT).contains(&limit) {
            errs.push("noshow_limit", format!("must be between 0 (no rule) and {MAX_NOSHOW_LIMIT}"));
        }
        if !(1..=MAX_NOSHOW_PERIOD_DAYS).contains(&period_days) {
            errs.push("noshow_period_days", format!("must be between 1 and {MAX_NOSHOW_PERIOD_DAYS} days"));
        }
        errs.finish()?;
        Ok(Self { noshow_limit: limit, noshow_period_days: period_days, ..self })
    }

    /// Whether a patient with `noshows` no-shows within the period books only
    /// by request.
    pub fn needs_confirmation(&self, noshows: usize) -> bool {
        self.noshow_limit > 0 && i64::try_from(noshows).unwrap_or(i64::MAX) >= self.noshow_limit
    }

    /// Since when no-shows count, at `now`.
    pub fn noshows_since(&self, now: jiff::Timestamp) -> jiff::Timestamp {
        now - jiff::SignedDuration::from_hours(24 * self.noshow_period_days)
    }

    pub fn cutoff_hours(&self) -> i64 {
        self.cancel_cutoff_minutes / 60
    }

    /// When patients can no longer cancel or move an appointment starting at `start`.
    pub fn changes_close_at(&self, start: jiff::Timestamp) -> jiff::Timestamp {
        start - jiff::SignedDuration::from_mins(self.cancel_cutoff_minutes)
    }

    /// Whether, at `now`, the cut-off before `start` has passed (never, without one).
    pub fn changes_closed(&self, start: jiff::Timestamp, now: jiff::Timestamp) -> bool {
        self.cancel_cutoff_minutes > 0 && now >= self.changes_close_at(start)
    }
}

/// An IANA time-zone name that the bundled time-zone database knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct TimeZoneName(String);

impl TryFrom<String> for TimeZoneName {
    type Error = Invalid;

    fn try_from(raw: String) -> Result<Self, Invalid> {
        Self::parse("time_zone", &raw)
    }
}

impl TimeZoneName {
    /// Any name of the IANA time-zone database, however it is capitalised;
    /// stored as the database spells it (`europe/paris` → `Europe/Paris`).
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        let unknown =
            || Invalid::field(field, format!("unknown time zone {raw:?}; use an IANA name such as Europe/Paris"));
        if raw.is_empty() || raw.len() > 64 || !raw.chars().all(|c| c.is_ascii_graphic()) {
            return Err(unknown());
        }
        let tz = jiff::tz::TimeZone::get(raw).map_err(|_| unknown())?;
        let name = tz.iana_name().ok_or_else(unknown)?;
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The zone's rules. Cannot fail: the name was checked when it was parsed.
    pub fn tz(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.0).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A point on Earth in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coordinates {
    pub lat: f64,
    pub lon: f64,
}

impl Coordinates {
    pub fn new(lat: f64, lon: f64, field_prefix: &str) -> Result<Self, Invalid> {
        let mut errs = Vec::new();
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            errs.push(crate::FieldError::new(format!("{field_prefix}latitude"), "must be between -90 and 90"));
        }
        if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
            errs.push(crate::FieldError::new(format!("{field_prefix}longitude"), "must be between -180 and 180"));
        }
        // Under a nanodegree (a tenth of a millimetre) is zero: the database's
        // geometry (PostgreSQL's earthdistance) refuses what would underflow.
        let snap = |x: f64| if x.abs() < 1e-9 { 0.0 } else { x };
        if errs.is_empty() {
            Ok(Self { lat: snap(lat), lon: snap(lon) })
        } else {
            Err(Invalid(errs))
        }
    }

    /// Parses the search parameter `near=LAT,LON`.
    pub fn parse_pair(field: &str, raw: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::field(field, "must be LAT,LON in degrees, e.g. 48.85,2.35");
        let (a, b) = raw.split_once(',').ok_or_else(bad)?;
        let lat: f64 = a.trim().parse().map_err(|_| bad())?;
        let lon: f64 = b.trim().parse().map_err(|_| bad())?;
        Self::new(lat, lon, "").map_err(|_| bad())
    }

    /// Great-circle distance (haversine), in kilometres.
    pub fn distance_km(self, other: Coordinates) -> f64 {
        const EARTH_RADIUS_KM: f64 = 6371.0088;
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
    }

    /// A latitude/longitude box that contains every point within `km`; lets a
    /// database index narrow a radius search before the exact distance is computed.
    pub fn bounding_box(self, km: f64) -> (f64, f64, f64, f64) {
        let dlat = km / 111.0;
        let coslat = self.lat.to_radians().cos().max(0.01);
        let dlon = (km / (111.0 * coslat)).min(180.0);
        (self.lat - dlat, self.lat + dlat, self.lon - dlon, self.lon + dlon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_must_be_iana_names() {
        for (typed, stored) in [
            ("Europe/Paris", "Europe/Paris"),
            ("EUROPE/PARIS", "Europe/Paris"),
            ("america/new_york", "America/New_York"),
            ("GMT", "GMT"),
            ("UTC", "UTC"),
            ("Etc/GMT+5", "Etc/GMT+5"),
            ("CET", "CET"),
        ] {
            assert_eq!(TimeZoneName::parse("tz", typed).unwrap().as_str(), stored, "{typed}");
        }
        for bad in ["", "+01:00", "Mars/Olympus_Mons", "Europe/Pariss", "Europe/Paris\u{0}", "../../etc/passwd"] {
            assert_eq!(TimeZoneName::parse("time_zone", bad).unwrap_err().0[0].field, "time_zone", "{bad}");
        }
    }

    #[test]
    fn distance_paris_lyon_is_about_392_km() {
        let paris = Coordinates { lat: 48.8566, lon: 2.3522 };
        let lyon = Coordinates { lat: 45.764, lon: 4.8357 };
        let d = paris.distance_km(lyon);
        assert!((390.0..395.0).contains(&d), "{d}");
        let (a, b, c, e) = paris.bounding_box(400.0);
        assert!(a < lyon.lat && lyon.lat < b && c < lyon.lon && lyon.lon < e);
    }

    #[test]
    fn near_parameter_is_checked() {
        assert!(Coordinates::parse_pair("near", "48.8,2.3").is_ok());
        for bad in ["48.8", "x,y", "91,0", "0,181", ""] {
            assert_eq!(Coordinates::parse_pair("near", bad).unwrap_err().0[0].field, "near");
        }
    }

    #[test]
    fn after_k_no_shows_bookings_are_requests() {
        let off = ClinicRules::default();
        assert!(!off.needs_confirmation(100), "no rule, no requests");
        let rule = off.with_noshow_rule(2, 180).unwrap();
        assert!(!rule.needs_confirmation(1) && rule.needs_confirmation(2) && rule.needs_confirmation(3));
        let now: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        assert_eq!(rule.noshows_since(now), "2026-06-04T00:00:00Z".parse::<jiff::Timestamp>().unwrap());
        let bad = off.with_noshow_rule(21, 0).unwrap_err();
        let fields: Vec<&str> = bad.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["noshow_limit", "noshow_period_days"]);
    }
}
