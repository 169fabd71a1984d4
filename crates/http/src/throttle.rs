//! Throttling of sign-in and sign-up by client: who is asking is the client's
//! address (taken from `X-Forwarded-For` only when the connection comes from a
//! configured trusted proxy). Attempts are counted per client and per client
//! and account — never per account alone, so attempts from elsewhere cannot
//! lock the owner out of their own login. Excess attempts are answered 429
//! before any password is hashed, so a flood costs the node almost nothing.

use crate::{problem::ApiError, AppState};
use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{request::Parts, HeaderMap, StatusCode},
};
use governor::{
    clock::{Clock, DefaultClock},
    DefaultKeyedRateLimiter, Quota, RateLimiter,
};
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::NonZeroU32,
    str::FromStr,
};

/// An address range (`10.0.0.0/8`, `::1/128`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let base: IpAddr = addr.trim().parse().map_err(|_| format!("{s:?} is not an address or CIDR range"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{s:?}: bad prefix"))?,
            None => max,
        };
        Ok(Cidr { base, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (a, b, bits) = match (self.base, canonical(ip)) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32u32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (a >> shift) == (b >> shift)
    }
}

/// An IPv4 client seen through an IPv6 socket is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Who is asking: the connection's peer, or — when the peer is a trusted
/// proxy — the nearest address in `X-Forwarded-For` that is not one.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.iter().any(|c| c.contains(peer)) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse::<IpAddr>().ok())
        .map(canonical)
        .collect();
    hops.into_iter().rev().find(|ip| !trusted.iter().any(|c| c.contains(*ip))).unwrap_or(peer)
}

/// The client address of a request, as [`client_address`] decides.
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// From a request's connection (set by the listener) and headers.
    fn of(extensions: &axum::http::Extensions, headers: &HeaderMap, s: &AppState) -> Self {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(a)| a.ip());
        ClientAddr(client_address(peer, headers, &s.throttle.trusted))
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        Ok(ClientAddr::of(&parts.extensions, &parts.headers, s))
    }
}

/// Reads anyone may make that cost the node real work (search, slot lists,
/// FHIR searches and bulk files, the search page): limited per client when
/// made without an account, so that one client cannot take the node down.
pub fn is_expensive_public_read(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    if !matches!(*method, Method::GET | Method::HEAD | Method::POST) {
        return false;
    }
    let fhir = path.starts_with("/fhir/") && path != "/fhir/metadata";
    let api = path == "/api/v1/doctors" || (path.starts_with("/api/v1/doctors/") && path.ends_with("/slots"));
    let pages =
        *method != Method::POST && (path == "/" || (path.starts_with("/doctors/") && !path.ends_with("/waitlist")));
    let fhir_write = matches!(path, "/fhir/Appointment/$hold" | "/fhir/Appointment/$book");
    fhir && !fhir_write || api && *method != Method::POST || pages
}

pub struct PublicReads {
    per_client: DefaultKeyedRateLimiter<IpAddr>,
}

impl PublicReads {
    pub fn new(per_second: u32) -> Self {
        let n = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(per_second.saturating_mul(2).max(1)).unwrap_or(n);
        Self { per_client: RateLimiter::keyed(Quota::per_second(n).allow_burst(burst)) }
    }

    pub fn check(&self, client: IpAddr) -> Result<(), ApiError> {
        if self.per_client.len() > 100_000 {
            self.per_client.retain_recent();
        }
        self.per_client.check_key(&client).map_err(|n| too_many(n.wait_time_from(DefaultClock::default().now())))
    }
}

/// The layer: anonymous expensive reads over the client's budget are 429 (in
/// the caller's format, by the error layer), before any work is done.
pub async fn limit_public_reads(
    axum::extract::State(s): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let anonymous = !req.headers().contains_key(axum::http::header::AUTHORIZATION);
    if anonymous && is_expensive_public_read(req.method(), req.uri().path()) {
        let ClientAddr(client) = ClientAddr::of(req.extensions(), req.headers(), &s);
        if let Err(e) = s.public_reads.check(client) {
            return e.into_response();
        }
    }
    next.run(req).await
}

pub struct Throttle {
    /// Sign-in attempts per client and account.
    per_account: DefaultKeyedRateLimiter<(IpAddr, String)>,
    /// Sign-in and sign-up attempts per client, whatever the account.
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    pub trusted: Vec<Cidr>,
}

impl Throttle {
    pub fn new(per_account_per_minute: u32, per_client_per_minute: u32, trusted: Vec<Cidr>) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        Self {
            per_account: RateLimiter::keyed(quota(per_account_per_minute)),
            per_client: RateLimiter::keyed(quota(per_client_per_minute)),
            trusted,
        }
    }

    /// May this client try to sign in to this account now? Otherwise 429.
    pub fn login(&self, client: IpAddr, email: &str) -> Result<(), ApiError> {
        self.forget_refilled();
        self.per_client.check_key(&client).map_err(|n| too_many(n.wait_time_from(DefaultClock::default().now())))?;
        // The account as the accounts layer will read it, so that spellings of one address count as one.
        let account = medislot_domain::Email::parse("email", email)
            .map_or_else(|_| email.trim().to_lowercase(), |e| e.as_str().to_string());
        let key = (client, account);
        self.per_account.check_key(&key).map_err(|n| too_many(n.wait_time_from(DefaultClock::default().now())))
    }

    /// May this client create an account now? Otherwise 429.
    pub fn register(&self, client: IpAddr) -> Result<(), ApiError> {
        self.forget_refilled();
        self.per_client.check_key(&client).map_err(|n| too_many(n.wait_time_from(DefaultClock::default().now())))
    }

    /// Keys whose quota has refilled are forgotten, so memory stays bounded under a flood.
    fn forget_refilled(&self) {
        if self.per_account.len() > 10_000 {
            self.per_account.retain_recent();
        }
        if self.per_client.len() > 10_000 {
            self.per_client.retain_recent();
        }
    }
}

fn too_many(wait: std::time::Duration) -> ApiError {
    let wait = wait.as_secs().max(1);
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many attempts",
        format!("try again in {wait} s"),
    );
    e.retry_after = Some(wait);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_what_they_should() {
        let r: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(r.contains(ip("10.255.1.2")) && !r.contains(ip("11.0.0.1")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(
            one.contains(ip("127.0.0.1")) && one.contains(ip("::ffff:127.0.0.1")) && !one.contains(ip("127.0.0.2"))
        );
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "nope", "::/129", "1.2.3.4/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.7, 10.0.0.5".parse().unwrap());
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        // Through the proxy: the nearest untrusted hop is the client.
        assert_eq!(client_address(ip("10.0.0.2"), &h, &trusted), ip("198.51.100.7"));
        // Straight from the internet: the header is the client's own claim, ignored.
        assert_eq!(client_address(ip("203.0.113.9"), &h, &trusted), ip("203.0.113.9"));
        assert_eq!(client_address(ip("10.0.0.2"), &h, &[]), ip("10.0.0.2"));
        // A spoofed left-most entry does not win over what the proxy saw.
        h.insert("x-forwarded-for", "1.1.1.1, 198.51.100.7".parse().unwrap());
        assert_eq!(client_address(ip("10.0.0.2"), &h, &trusted), ip("198.51.100.7"));
    }

    #[test]
    fn the_expensive_public_reads_are_the_ones_limited() {
        use axum::http::Method;
        for (m, p) in [
            (Method::GET, "/api/v1/doctors"),
            (Method::GET, "/api/v1/doctors/abc/slots"),
            (Method::GET, "/fhir/Slot"),
            (Method::GET, "/fhir/$bulk-publish/Slot.ndjson"),
            (Method::POST, "/fhir/Appointment/$find"),
            (Method::GET, "/"),
            (Method::GET, "/doctors/abc"),
        ] {
            assert!(is_expensive_public_read(&m, p), "{m} {p}");
        }
        for (m, p) in [
            (Method::GET, "/healthz"),
            (Method::GET, "/fhir/metadata"),
            (Method::POST, "/api/v1/appointments"),
            (Method::POST, "/fhir/Appointment/$book"),
            (Method::GET, "/api/v1/doctors/abc"),
            (Method::POST, "/doctors/abc/waitlist"),
        ] {
            assert!(!is_expensive_public_read(&m, p), "{m} {p}");
        }
    }

    #[test]
    fn another_clients_attempts_never_lock_the_owner_out() {
        let t = Throttle::new(3, 100, vec![]);
        let (attacker, owner) = (ip("203.0.113.9"), ip("198.51.100.7"));
        for _ in 0..3 {
            assert!(t.login(attacker, "owner@example.org").is_ok());
        }
        assert_eq!(t.login(attacker, "Owner@example.org").unwrap_err().status, StatusCode::TOO_MANY_REQUESTS);
        assert!(t.login(owner, "owner@example.org").is_ok(), "the owner's own address is not throttled");
    }

    #[test]
    fn a_client_spraying_accounts_is_throttled_as_a_whole() {
        let t = Throttle::new(10, 5, vec![]);
        let c = ip("203.0.113.9");
        let answers: Vec<bool> = (0..8).map(|i| t.login(c, &format!("u{i}@example.org")).is_ok()).collect();
        assert_eq!(answers.iter().filter(|ok| **ok).count(), 5, "{answers:?}");
        assert!(t.register(c).is_err(), "sign-ups count against the same client budget");
    }
}
