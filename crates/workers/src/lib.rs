//! Background work of `xiansuo serve` (issue #6): delivering the outbox to the configured sinks —
//! generic webhooks signed per Standard Webhooks, and WeCom, DingTalk and Feishu robots — with
//! retries (exponential backoff with jitter, a cap after which an event is dead), each lead's
//! events in order per sink, and nothing lost across restarts (the deliveries are rows: a
//! restarted or another instance takes up what is pending once its lease ends).

pub mod message;
pub mod sign;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Notify, Semaphore, broadcast};
use xiansuo_config::{Config, DeliveryConfig, RelayTarget, SinkConfig, SinkKind};
use xiansuo_domain::Instant;
use xiansuo_store::Store;
use xiansuo_store::outbox::{ClaimedDelivery, DeliveryOutcome};

/// Deliveries in flight at once (each to a different lead or sink).
const CONCURRENCY: usize = 16;

/// The delivery worker.
pub struct Worker {
    store: Arc<dyn Store>,
    sinks: HashMap<String, SinkConfig>,
    /// Issue #11: the sources' relay targets, by delivery name (`relay:SOURCE:N`).
    relays: HashMap<String, RelayTarget>,
    /// Decoded `whsec_` keys of the webhook sinks.
    keys: HashMap<String, Vec<u8>>,
    delivery: DeliveryConfig,
    public_url: Option<String>,
    client: reqwest::Client,
    wake: Notify,
}

/// Starts the worker when the configuration has sinks; `new_leads` wakes it at once when this
/// process stores a new lead (otherwise it looks every `delivery.poll_ms`).
pub fn start(
    store: Arc<dyn Store>,
    config: &Config,
    new_leads: broadcast::Receiver<i64>,
) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    if config.sinks.is_empty() && config.sources.values().all(|s| s.relay.is_empty()) {
        return Ok(None);
    }
    let worker = Arc::new(Worker::new(store, config)?);
    Ok(Some(tokio::spawn(worker.run(new_leads))))
}

impl Worker {
    pub fn new(store: Arc<dyn Store>, config: &Config) -> Result<Worker, String> {
        let mut keys = HashMap::new();
        for sink in config.sinks.iter().filter(|s| s.kind == SinkKind::Webhook) {
            let secret = sink.secret.as_deref().unwrap_or("");
            keys.insert(sink.name.clone(), sign::webhook_key(secret).map_err(|e| format!("sink {}: {e}", sink.name))?);
        }
        let client = reqwest::Client::builder()
            .timeout(config.delivery.timeout)
            .connect_timeout(config.delivery.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("xiansuo/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client of the delivery worker: {e}"))?;
        Ok(Worker {
            store,
            sinks: config.sinks.iter().map(|s| (s.name.clone(), s.clone())).collect(),
            relays: config.sources.values().flat_map(|s| &s.relay).map(|r| (r.name.clone(), r.clone())).collect(),
            keys,
            delivery: config.delivery.clone(),
            public_url: config.public_url.clone(),
            client,
            wake: Notify::new(),
        })
    }

    /// How long a claimed delivery is this worker's: past it, another worker may take it up.
    fn lease(&self) -> chrono::Duration {
        // Twice an attempt's limit, and some: the outcome is recorded well within it.
        chrono::Duration::from_std(self.delivery.timeout * 2 + Duration::from_secs(5))
            .unwrap_or_else(|_| chrono::Duration::seconds(60))
    }

    async fn run(self: Arc<Self>, mut new_leads: broadcast::Receiver<i64>) {
        tracing::info!(sinks = self.sinks.len(), relays = self.relays.len(), "delivery worker started");
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        loop {
            let free = permits.available_permits();
            let mut claimed_any = false;
            if free > 0 {
                let now = xiansuo_domain::now();
                match self.store.claim_deliveries(now, now + self.lease(), free).await {
                    Ok(claimed) => {
                        claimed_any = !claimed.is_empty();
                        for d in claimed {
                            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
                            let worker = Arc::clone(&self);
                            tokio::spawn(async move {
                                worker.deliver(d).await;
                                drop(permit);
                                worker.wake.notify_one();
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot claim deliveries; trying again"),
                }
            }
            if claimed_any && permits.available_permits() > 0 {
                continue;
            }
            let wait = if permits.available_permits() == 0 {
                self.delivery.poll
            } else {
                match self.store.next_delivery_due().await {
                    Ok(Some(due)) => {
                        let until = (due - xiansuo_domain::now()).to_std().unwrap_or(Duration::ZERO);
                        // Due already but nothing claimable (another instance has it): not a spin.
                        until.max(Duration::from_millis(20)).min(self.delivery.poll)
                    }
                    Ok(None) => self.delivery.poll,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the next delivery's time");
                        self.delivery.poll
                    }
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                r = new_leads.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = r {
                        // The server is going away; keep polling on the timer alone.
                        new_leads = broadcast::channel(1).1;
                    }
                }
            }
        }
    }

    /// The wait before attempt `attempts + 1`: `backoff × 2^(attempts − 1)`, at most
    /// `max_backoff`, times a random factor in [0.5, 1] (so that retries of many events spread).
    pub fn backoff(delivery: &DeliveryConfig, attempts: u32, jitter: f64) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let base = delivery.backoff.saturating_mul(1u32 << exp).min(delivery.max_backoff);
        base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    async fn deliver(&self, d: ClaimedDelivery) {
        let now = xiansuo_domain::now();
        let attempt = if d.kind == xiansuo_domain::routing::EventKind::Relay {
            // Issue #11: a push re-sent to a source's relay target.
            match self.relays.get(&d.sink) {
                None => Err(format!(
                    "the relay target \"{}\" is no longer configured (a target is named by its place in its source's relay list)",
                    d.sink
                )),
                Some(target) => Ok(self.relay(target, &d).await),
            }
        } else {
            match self.sinks.get(&d.sink) {
                None => Err(format!("the sink \"{}\" is no longer configured", d.sink)),
                Some(sink) => Ok(self.send(sink, &d).await),
            }
        };
        let outcome = match attempt {
            Err(error) => DeliveryOutcome::Dead { status: None, error, at: now },
            Ok(result) => match result {
                Ok(status) => DeliveryOutcome::Delivered { status: Some(status), at: xiansuo_domain::now() },
                Err((status, error)) => {
                    let attempts = u32::try_from(d.attempts + 1).unwrap_or(u32::MAX);
                    tracing::warn!(sink = %d.sink, delivery = d.id, event = d.event_id, attempts, error = %error, "delivery failed");
                    if attempts >= self.delivery.max_attempts {
                        DeliveryOutcome::Dead { status, error, at: xiansuo_domain::now() }
                    } else {
                        let wait = Worker::backoff(&self.delivery, attempts, random_unit());
                        let next_at = xiansuo_domain::now()
                            + chrono::Duration::from_std(wait).unwrap_or_else(|_| chrono::Duration::hours(1));
                        DeliveryOutcome::Retry { status, error, next_at }
                    }
                }
            },
        };
        if let Err(e) = self.store.finish_delivery(d.id, outcome).await {
            // The lease runs out and the delivery is taken up again (receivers deduplicate by id).
            tracing::error!(error = %e, delivery = d.id, "cannot record a delivery's outcome");
        }
    }

    /// Issue #11: one attempt to re-send a push to a relay target — the stored body byte for
    /// byte, with the original Content-Type and the target's headers. Any 2xx is success.
    async fn relay(&self, target: &RelayTarget, d: &ClaimedDelivery) -> Result<u16, (Option<u16>, String)> {
        let fail = |e: String| (None, e);
        let push_id = xiansuo_store::outbox::relay_push_id(d)
            .ok_or_else(|| fail(format!("relay delivery {} names no push", d.id)))?;
        let push = match self.store.push(push_id).await {
            Ok(Some(p)) => p,
            Ok(None) => return Err(fail(format!("push {push_id} is no longer in the push log"))),
            Err(e) => return Err(fail(format!("cannot read push {push_id} from the push log: {e}"))),
        };
        let mut request = self.client.post(&target.url);
        if let Some(ct) = &push.content_type {
            request = request.header("content-type", ct.as_str());
        }
        for (name, value) in &target.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.body(push.body).send().await.map_err(|e| fail(describe(&e, self.delivery.timeout)))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let text = response.text().await.unwrap_or_default();
            return Err((Some(status), format!("HTTP {status}: {}", excerpt(&text))));
        }
        Ok(status)
    }

    /// One attempt; the HTTP status on success, or the status (if any) and what went wrong.
    async fn send(&self, sink: &SinkConfig, d: &ClaimedDelivery) -> Result<u16, (Option<u16>, String)> {
        let now = xiansuo_domain::now();
        let fail = |e: String| (None, e);
        let request = match sink.kind {
            SinkKind::Webhook => {
                let body = serde_json::to_vec(&message::envelope(d, self.public_url.as_deref()))
                    .map_err(|e| fail(format!("cannot encode the event: {e}")))?;
                let id = message::event_id(d.event_id);
                let timestamp = now.timestamp();
                let key = self.keys.get(&sink.name).ok_or_else(|| fail("no webhook key".into()))?;
                let signature = sign::standard_webhook(key, &id, timestamp, &body).map_err(fail)?;
                self.client
                    .post(&sink.url)
                    .header("content-type", "application/json")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", signature)
                    .body(body)
            }
            SinkKind::Wecom => {
                let (_, text) = message::markdown(d, self.public_url.as_deref());
                self.client.post(&sink.url).json(&json!({ "msgtype": "markdown", "markdown": { "content": text } }))
            }
            SinkKind::Dingtalk => {
                let (title, text) = message::markdown(d, self.public_url.as_deref());
                let url = match &sink.secret {
                    Some(secret) => sign::dingtalk_url(&sink.url, secret, now.timestamp_millis()).map_err(fail)?,
                    None => sink.url.clone(),
                };
                self.client
                    .post(url)
                    .json(&json!({ "msgtype": "markdown", "markdown": { "title": title, "text": text } }))
            }
            SinkKind::Feishu => {
                let (title, text) = message::markdown(d, self.public_url.as_deref());
                let mut body = json!({
                    "msg_type": "interactive",
                    "card": {
                        "header": { "title": { "tag": "plain_text", "content": title } },
                        "elements": [ { "tag": "markdown", "content": text } ]
                    }
                });
                if let Some(secret) = &sink.secret {
                    let ts = now.timestamp();
                    body["timestamp"] = json!(ts.to_string());
                    body["sign"] = json!(sign::feishu(secret, ts).map_err(fail)?);
                }
                self.client.post(&sink.url).json(&body)
            }
        };
        let response = request.send().await.map_err(|e| fail(describe(&e, self.delivery.timeout)))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err((Some(status), format!("HTTP {status}: {}", excerpt(&text))));
        }
        // Robots answer 200 with an error code in the body.
        if sink.kind != SinkKind::Webhook
            && let Ok(answer) = serde_json::from_str::<serde_json::Value>(&text)
        {
            let code = ["errcode", "code", "StatusCode"].iter().find_map(|k| answer.get(*k).and_then(|v| v.as_i64()));
            if let Some(code) = code.filter(|c| *c != 0) {
                return Err((Some(status), format!("the robot answered code {code}: {}", excerpt(&text))));
            }
        }
        Ok(status)
    }
}

/// A request error without its URL (robot URLs carry their access tokens).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", timeout.as_millis());
    }
    // The innermost cause says it best ("Connection refused (os error 111)").
    let mut cause: &dyn std::error::Error = e;
    while let Some(s) = cause.source() {
        cause = s;
    }
    let kind = if e.is_connect() { "cannot connect" } else { "request failed" };
    let outer = e.to_string();
    let outer = outer.split(" for url").next().unwrap_or("");
    let text = if std::ptr::addr_eq(cause, e as &dyn std::error::Error) {
        format!("{kind}: {outer}")
    } else {
        format!("{kind}: {cause}")
    };
    excerpt(&text)
}

fn excerpt(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    if text.chars().count() > 300 { format!("{t}…") } else { t }
}

/// A random number in [0, 1) (for jitter); 1.0 (no spread) when the system has no randomness.
fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 1.0,
    }
}

/// When a delivery made at `now` after `attempts` failures is next due (for the admin page).
pub fn next_attempt(delivery: &DeliveryConfig, now: Instant, attempts: u32) -> Instant {
    now + chrono::Duration::from_std(Worker::backoff(delivery, attempts, 1.0))
        .unwrap_or_else(|_| chrono::Duration::hours(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let d = DeliveryConfig {
            backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(60),
            ..DeliveryConfig::default()
        };
        assert_eq!(Worker::backoff(&d, 1, 1.0), Duration::from_secs(5));
        assert_eq!(Worker::backoff(&d, 2, 1.0), Duration::from_secs(10));
        assert_eq!(Worker::backoff(&d, 3, 0.0), Duration::from_secs(10));
        assert_eq!(Worker::backoff(&d, 10, 1.0), Duration::from_secs(60));
        assert_eq!(Worker::backoff(&d, 40, 1.0), Duration::from_secs(60));
        let r = random_unit();
        assert!((0.0..1.0).contains(&r));
    }
}
