//! Who may push to a source: its tokens (rotated without downtime), the addresses it accepts,
//! and how fast. Also the client address behind a trusted reverse proxy.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use ipnet::IpNet;
use xiansuo_store::{Store, StoreError};

use crate::auth::token_matches;

/// A generated token retired by `xiansuo token retire` stops working within this long; a new
/// one from `xiansuo token rotate` works at once (an unknown token re-reads the settings, at
/// most every MISS_REFRESH, so a flood of wrong tokens costs the database little).
const REFRESH: Duration = Duration::from_secs(10);
const MISS_REFRESH: Duration = Duration::from_millis(250);

/// The settings keys of a source's generated token and of the one it replaced.
pub fn token_setting(source: &str) -> String {
    format!("source_token.{source}")
}

pub fn previous_token_setting(source: &str) -> String {
    format!("source_token_previous.{source}")
}

/// A source's tokens as last read: the current one first.
struct Loaded {
    tokens: Vec<String>,
    at: Instant,
}

pub struct SourceAccess {
    name: String,
    /// Tokens set in the configuration (`token` and `previous_tokens`), which only a restart
    /// changes; `None` when the token is generated and kept in the database's settings.
    configured: Option<Vec<String>>,
    generated: tokio::sync::RwLock<Loaded>,
    allow_ips: Vec<IpNet>,
    limiter: Option<Mutex<Bucket>>,
}

impl SourceAccess {
    /// `tokens`: the current token then any previous ones, as resolved at start.
    pub fn new(
        name: &str,
        configured: bool,
        tokens: Vec<String>,
        allow_ips: Vec<IpNet>,
        rate_limit: Option<u32>,
    ) -> SourceAccess {
        SourceAccess {
            name: name.to_string(),
            configured: configured.then(|| tokens.clone()),
            generated: tokio::sync::RwLock::new(Loaded { tokens, at: Instant::now() }),
            allow_ips,
            limiter: rate_limit.map(|r| Mutex::new(Bucket::new(r))),
        }
    }

    /// Whether any presented token is one of the source's (compared in constant time).
    pub async fn accepts(&self, store: &dyn Store, presented: &[&str]) -> Result<bool, StoreError> {
        let matches = |tokens: &[String]| presented.iter().any(|p| tokens.iter().any(|t| token_matches(p, t)));
        if let Some(tokens) = &self.configured {
            return Ok(matches(tokens));
        }
        let (hit, age) = {
            let loaded = self.generated.read().await;
            (matches(&loaded.tokens), loaded.at.elapsed())
        };
        if age < if hit { REFRESH } else { MISS_REFRESH } {
            return Ok(hit);
        }
        let tokens = generated_tokens(store, &self.name).await?;
        let hit = matches(&tokens);
        *self.generated.write().await = Loaded { tokens, at: Instant::now() };
        Ok(hit)
    }

    /// Whether pushes from this address are accepted (always, without `allow_ips`).
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_ips.is_empty() || self.allow_ips.iter().any(|n| n.contains(&canonical(ip)))
    }

    /// Takes one push from the rate limit; `Err(wait)` when over it.
    pub fn take(&self) -> Result<(), Duration> {
        match &self.limiter {
            None => Ok(()),
            Some(bucket) => bucket.lock().map_or(Ok(()), |mut b| b.take(Instant::now())),
        }
    }
}

/// A generated source token and the one it replaced (during a rotation).
pub async fn generated_tokens(store: &dyn Store, source: &str) -> Result<Vec<String>, StoreError> {
    let current = store.setting(&token_setting(source)).await?;
    let previous = store.setting(&previous_token_setting(source)).await?;
    Ok(current.into_iter().chain(previous).filter(|t| !t.is_empty()).collect())
}

/// An IPv4 address arriving as IPv6 (`::ffff:203.0.113.7`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer's, or — when the peer is a trusted reverse proxy — the last
/// address in `X-Forwarded-For` that is not itself a trusted proxy. Without configured
/// proxies, loopback peers are trusted (a proxy on the same machine).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| {
        let ip = canonical(ip);
        if trusted.is_empty() { ip.is_loopback() } else { trusted.iter().any(|n| n.contains(&ip)) }
    };
    let peer = canonical(peer);
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// A token bucket: `rate` per second, up to twice that at once.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        let rate = f64::from(rate);
        Bucket { rate, burst: rate * 2.0, tokens: rate * 2.0, last: Instant::now() }
    }

    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn the_client_behind_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        // Without configured proxies: loopback is trusted, nobody else.
        assert_eq!(client_ip(ip("127.0.0.1"), &headers("203.0.113.9"), &[]), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("198.51.100.1"), &headers("203.0.113.9"), &[]), ip("198.51.100.1"));
        // A client cannot hide behind an entry it wrote itself: the rightmost untrusted wins.
        let trusted = [net("10.0.0.0/8")];
        assert_eq!(client_ip(ip("10.0.0.2"), &headers("1.2.3.4, 203.0.113.9, 10.0.0.5"), &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("127.0.0.1"), &headers("203.0.113.9"), &trusted), ip("127.0.0.1"));
        assert_eq!(client_ip(ip("10.0.0.2"), &headers("garbage"), &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("::ffff:203.0.113.9"), &HeaderMap::new(), &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn the_bucket_allows_bursts_then_the_rate() {
        let mut b = Bucket::new(2);
        let t0 = b.last;
        for _ in 0..4 {
            assert!(b.take(t0).is_ok());
        }
        let wait = b.take(t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(b.take(t0 + Duration::from_millis(500)).is_ok(), "one more after half a second at 2/s");
        assert!(b.take(t0 + Duration::from_millis(500)).is_err());
    }
}
