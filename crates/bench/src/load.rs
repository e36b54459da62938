//! Load over HTTP: closed loop (C workers, each sending its next push as soon as the last is
//! answered) or open loop (pushes started at a fixed rate whatever the answers, latency counted
//! from when each was due, so a slow server cannot hide its queue).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

/// What one body generator gives: the body of push `i`.
pub type Bodies = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// How a run is driven.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Closed { concurrency: usize },
    Open { rate: f64, max_in_flight: usize },
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// From latencies in microseconds (sorted here).
    pub fn of(mut micros: Vec<u64>) -> Percentiles {
        if micros.is_empty() {
            return Percentiles::default();
        }
        micros.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * micros.len() as f64).ceil() as usize).clamp(1, micros.len());
            micros[rank - 1] as f64 / 1000.0
        };
        Percentiles {
            count: micros.len(),
            p50: at(0.50),
            p90: at(0.90),
            p95: at(0.95),
            p99: at(0.99),
            max: micros[micros.len() - 1] as f64 / 1000.0,
            mean: micros.iter().sum::<u64>() as f64 / micros.len() as f64 / 1000.0,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        serde_json::json!({
            "n": self.count, "p50_ms": r(self.p50), "p90_ms": r(self.p90), "p95_ms": r(self.p95),
            "p99_ms": r(self.p99), "max_ms": r(self.max), "mean_ms": r(self.mean),
        })
    }
}

/// The result of one load run.
#[derive(Debug, Default)]
pub struct Outcome {
    pub elapsed: Duration,
    /// Requests answered (any status) or failed in transport.
    pub sent: u64,
    /// 2xx answers whose outcome is "accepted" (the ceiling says so too) or "queued" (stored
    /// durably in a burst, its leads built right after: issue #8).
    pub accepted: u64,
    /// Of those, the "queued" ones.
    pub queued: u64,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Connection failures, timeouts.
    pub transport_errors: u64,
    pub first_error: Option<String>,
    pub body_bytes: u64,
    /// Latency of the 2xx answers.
    pub latency: Percentiles,
    /// Open loop: how late the dispatcher started pushes (its own lag), at most.
    pub dispatch_lag_max: Duration,
    /// Per second of the run (by completion): answers, and the slowest of them in ms.
    pub timeline: Vec<(u64, f64)>,
}

impl Outcome {
    pub fn accepted_per_sec(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Non-2xx answers and transport failures, as "503×12, transport×1".
    pub fn errors_text(&self) -> String {
        let mut parts: Vec<String> =
            self.statuses.iter().filter(|(s, _)| !(200..300).contains(*s)).map(|(s, n)| format!("{s}×{n}")).collect();
        if self.transport_errors > 0 {
            parts.push(format!("transport×{}", self.transport_errors));
        }
        if parts.is_empty() { "none".into() } else { parts.join(", ") }
    }

    pub fn error_count(&self) -> u64 {
        self.statuses.iter().filter(|(s, _)| !(200..300).contains(*s)).map(|(_, n)| n).sum::<u64>()
            + self.transport_errors
    }

    pub fn json(&self) -> serde_json::Value {
        let statuses: serde_json::Map<String, serde_json::Value> =
            self.statuses.iter().map(|(s, n)| (s.to_string(), (*n).into())).collect();
        serde_json::json!({
            "elapsed_s": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "sent": self.sent,
            "accepted": self.accepted,
            "queued": self.queued,
            "accepted_per_s": self.accepted_per_sec().round(),
            "statuses": statuses,
            "transport_errors": self.transport_errors,
            "first_error": self.first_error,
            "avg_body_bytes": self.body_bytes.checked_div(self.sent).unwrap_or(0),
            "latency": self.latency.json(),
            "dispatch_lag_max_ms": self.dispatch_lag_max.as_secs_f64() * 1000.0,
            "per_second": self.timeline.iter().map(|(n, max)| serde_json::json!([n, (max * 10.0).round() / 10.0])).collect::<Vec<_>>(),
        })
    }

    /// The second with the fewest answers and the second with the slowest answer (whole seconds
    /// only: the last, partial one is left out).
    pub fn timeline_text(&self) -> String {
        let full = &self.timeline[..self.timeline.len().saturating_sub(1)];
        let fewest = full.iter().enumerate().min_by_key(|(_, (n, _))| *n);
        let slowest = full.iter().enumerate().max_by(|a, b| a.1.1.total_cmp(&b.1.1));
        match (fewest, slowest) {
            (Some((i, (n, _))), Some((j, (_, max)))) => {
                format!("fewest {n}/s (second {i}); slowest answer {max:.0} ms (second {j})")
            }
            _ => "-".into(),
        }
    }
}

/// One request's result.
struct Shot {
    /// When it was answered, since the run's start.
    at: Duration,
    status: Option<u16>,
    accepted: bool,
    queued: bool,
    micros: u64,
    bytes: u64,
    error: Option<String>,
}

async fn shoot(client: &reqwest::Client, url: &str, body: String, started: Instant, run_start: Instant) -> Shot {
    let mut shot = shoot_once(client, url, body, started).await;
    shot.at = run_start.elapsed();
    shot
}

async fn shoot_once(client: &reqwest::Client, url: &str, body: String, started: Instant) -> Shot {
    let bytes = body.len() as u64;
    let result = client.post(url).header("content-type", "application/json").body(body).send().await;
    match result {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(answer) => {
                    let micros = started.elapsed().as_micros() as u64;
                    let ok = (200..300).contains(&status);
                    let queued = ok && contains(&answer, b"\"outcome\":\"queued\"");
                    let accepted = queued || (ok && contains(&answer, b"\"outcome\":\"accepted\""));
                    let error = (!(200..300).contains(&status))
                        .then(|| format!("{status}: {}", String::from_utf8_lossy(&answer[..answer.len().min(300)])));
                    Shot { at: Duration::ZERO, status: Some(status), accepted, queued, micros, bytes, error }
                }
                Err(e) => Shot::failed(bytes, e.to_string()),
            }
        }
        Err(e) => Shot::failed(bytes, e.to_string()),
    }
}

impl Shot {
    /// A request that got no answer (transport, or a body that broke off).
    fn failed(bytes: u64, error: String) -> Shot {
        Shot { at: Duration::ZERO, status: None, accepted: false, queued: false, micros: 0, bytes, error: Some(error) }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[derive(Default)]
struct Tally {
    sent: u64,
    accepted: u64,
    queued: u64,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    first_error: Option<String>,
    bytes: u64,
    micros: Vec<u64>,
    timeline: Vec<(u64, f64)>,
}

impl Tally {
    fn add(&mut self, shot: Shot) {
        let second = shot.at.as_secs() as usize;
        if self.timeline.len() <= second {
            self.timeline.resize(second + 1, (0, 0.0));
        }
        self.timeline[second].0 += 1;
        self.timeline[second].1 = self.timeline[second].1.max(shot.micros as f64 / 1000.0);
        self.sent += 1;
        self.bytes += shot.bytes;
        match shot.status {
            Some(s) => {
                *self.statuses.entry(s).or_default() += 1;
                if (200..300).contains(&s) {
                    self.micros.push(shot.micros);
                }
            }
            None => self.transport_errors += 1,
        }
        if shot.accepted {
            self.accepted += 1;
        }
        if shot.queued {
            self.queued += 1;
        }
        if self.first_error.is_none() {
            self.first_error = shot.error;
        }
    }

    fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.queued += other.queued;
        self.bytes += other.bytes;
        self.transport_errors += other.transport_errors;
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.micros.extend(other.micros);
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), (0, 0.0));
        }
        for (i, (n, max)) in other.timeline.into_iter().enumerate() {
            self.timeline[i].0 += n;
            self.timeline[i].1 = self.timeline[i].1.max(max);
        }
    }

    fn finish(self, elapsed: Duration, dispatch_lag_max: Duration) -> Outcome {
        Outcome {
            elapsed,
            sent: self.sent,
            accepted: self.accepted,
            queued: self.queued,
            statuses: self.statuses,
            transport_errors: self.transport_errors,
            first_error: self.first_error,
            body_bytes: self.bytes,
            latency: Percentiles::of(self.micros),
            dispatch_lag_max,
            timeline: self.timeline,
        }
    }
}

/// A client for loopback load: no proxy, no pool limit, Nagle off.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Sends pushes `first`, `first + 1`, … to `url` for `duration` (or until `limit` pushes have
/// been started, whichever comes first).
pub async fn run(
    client: &reqwest::Client,
    url: &str,
    bodies: Bodies,
    first: u64,
    mode: Mode,
    duration: Duration,
    limit: Option<u64>,
) -> Outcome {
    match mode {
        Mode::Closed { concurrency } => closed(client, url, bodies, first, concurrency, duration, limit).await,
        Mode::Open { rate, max_in_flight } => {
            open(client, url, bodies, first, rate, max_in_flight, duration, limit).await
        }
    }
}

async fn closed(
    client: &reqwest::Client,
    url: &str,
    bodies: Bodies,
    first: u64,
    concurrency: usize,
    duration: Duration,
    limit: Option<u64>,
) -> Outcome {
    let next = Arc::new(AtomicU64::new(first));
    let end = limit.map_or(u64::MAX, |n| first + n);
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (client, url, bodies, next) = (client.clone(), url.to_string(), bodies.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let body = bodies(i);
                tally.add(shoot(&client, &url, body, Instant::now(), start).await);
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for w in workers {
        if let Ok(t) = w.await {
            total.merge(t);
        }
    }
    total.finish(start.elapsed(), Duration::ZERO)
}

#[allow(clippy::too_many_arguments)]
async fn open(
    client: &reqwest::Client,
    url: &str,
    bodies: Bodies,
    first: u64,
    rate: f64,
    max_in_flight: usize,
    duration: Duration,
    limit: Option<u64>,
) -> Outcome {
    let total_pushes = ((rate * duration.as_secs_f64()) as u64).min(limit.unwrap_or(u64::MAX));
    let (tx, mut rx) = mpsc::unbounded_channel::<Shot>();
    let collector = tokio::spawn(async move {
        let mut tally = Tally::default();
        while let Some(shot) = rx.recv().await {
            tally.add(shot);
        }
        tally
    });
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let start = Instant::now();
    let mut lag_max = Duration::ZERO;
    for k in 0..total_pushes {
        let body = bodies(first + k);
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        // When every slot is busy the dispatcher waits here; the push's latency still counts
        // from when it was due.
        let Ok(permit) = slots.clone().acquire_owned().await else { break };
        lag_max = lag_max.max(due.elapsed());
        let (client, url, tx) = (client.clone(), url.to_string(), tx.clone());
        tokio::spawn(async move {
            let shot = shoot(&client, &url, body, due, start).await;
            drop(permit);
            let _ = tx.send(shot);
        });
    }
    drop(tx);
    let tally = collector.await.unwrap_or_default();
    tally.finish(start.elapsed(), lag_max)
}
