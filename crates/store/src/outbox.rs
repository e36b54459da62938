//! Issue #6: assignment on new leads, and the outbox of outbound events.
//!
//! Every event (`lead.created`, `lead.updated`, `lead.status_changed`, `lead.assigned`,
//! `lead.merged`) is written by the store's writer **in the transaction of the change itself**:
//! one `outbox_events` row plus one `deliveries` row per sink that wants it. So an event exists
//! if and only if its change was committed. The delivery worker (`crates/workers`) claims due
//! deliveries, sends them, and records the outcome through [`Outbox`].
//!
//! The writer finds the configured [`Routing`] through [`RoutingCell`]: the SQLite writer thread
//! and the PostgreSQL writer task each have their store's cell installed (see `current()` in
//! `sqlite::outbox` and `postgres::outbox`), so the hooks in `store_card` and `update_lead` are
//! one call each and no writer signature changed.
//!
//! For other features that change leads inside the writer (the merge of issue #5), call
//! `sqlite::outbox::enqueue(conn, EventKind::Merged, lead_id, detail)` /
//! `postgres::outbox::enqueue(tx, EventKind::Merged, lead_id, detail).await` in the same
//! transaction: it snapshots the lead and writes the event for every sink that wants it.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use xiansuo_domain::routing::{EventKind, Routing, Strategy};
use xiansuo_domain::{CHINA_TIME, Instant};

use crate::{Page, StoreError};

/// The routing a store's writer applies; replaced at start-up by [`Outbox::set_routing`].
#[derive(Debug, Default)]
pub struct RoutingCell(RwLock<Arc<Routing>>);

impl RoutingCell {
    pub fn get(&self) -> Arc<Routing> {
        match self.0.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn set(&self, routing: Routing) {
        let mut slot = match self.0.write() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(routing);
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// The sink answered 2xx (and, for robots, errcode 0).
    Delivered,
    /// Every attempt failed; an admin may redeliver it.
    Dead,
}

impl DeliveryStatus {
    pub const ALL: &'static [DeliveryStatus] =
        &[DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

/// A delivery the worker claimed: the event to send and to which sink.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub event_id: i64,
    pub sink: String,
    pub lead_id: i64,
    pub kind: EventKind,
    /// Attempts made before this one.
    pub attempts: i64,
    pub created_at: Instant,
    /// The event's `data`: the lead as it was, and what changed.
    pub payload: Value,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered { status: Option<u16>, at: Instant },
    Retry { status: Option<u16>, error: String, next_at: Instant },
    Dead { status: Option<u16>, error: String, at: Instant },
}

/// A delivery as the admin page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: i64,
    pub sink: String,
    pub lead_id: i64,
    pub kind: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_at: Instant,
    pub last_error: Option<String>,
    pub last_status: Option<i64>,
    pub delivered_at: Option<Instant>,
    pub created_at: Instant,
    /// Issue #11: the push a relay delivery re-sends (`None` for lead events).
    pub push_id: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub sink: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub lead_id: Option<i64>,
    pub page: u32,
    pub per_page: u32,
}

/// Deliveries per sink and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCount {
    pub sink: String,
    pub status: DeliveryStatus,
    pub count: i64,
}

/// Which dead deliveries to send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeliver {
    One(i64),
    AllDeadOf(String),
}

/// The writes of the outbox, applied by the store's writer.
#[derive(Debug, Clone)]
pub enum OutboxWrite {
    Claim { now: Instant, lease_until: Instant, limit: usize },
    Finish { id: i64, outcome: DeliveryOutcome },
    Redeliver { which: Redeliver, at: Instant },
}

#[derive(Debug)]
pub enum OutboxWritten {
    Claimed(Vec<ClaimedDelivery>),
    Finished,
    Redelivered(u64),
}

/// Who a new lead would go to (the dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentPreview {
    pub rule: String,
    pub user_id: i64,
    pub user_name: String,
}

/// The outbox and assignment side of a store.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// The rules and sinks the writer applies from now on (set at start-up).
    fn set_routing(&self, routing: Routing);

    /// When the next pending delivery is due (or its lease ends), if any.
    async fn next_delivery_due(&self) -> Result<Option<Instant>, StoreError>;

    /// Leases up to `limit` due deliveries until `lease_until`: for each (sink, lead) only the
    /// oldest pending one, so a lead's events reach a sink in order.
    async fn claim_deliveries(
        &self,
        now: Instant,
        lease_until: Instant,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    async fn finish_delivery(&self, id: i64, outcome: DeliveryOutcome) -> Result<(), StoreError>;

    /// Newest first.
    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Page<DeliveryRow>, StoreError>;

    /// Issue #11: the relay deliveries of these pushes, oldest first, in one query (the push log
    /// shows each push's relays: one query per push cost most of its page's time, issue 8).
    async fn relay_deliveries(&self, push_ids: &[i64]) -> Result<Vec<DeliveryRow>, StoreError>;

    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>, StoreError>;

    /// Dead deliveries back to pending, due now, attempts from zero; returns how many.
    async fn redeliver(&self, which: Redeliver, at: Instant) -> Result<u64, StoreError>;

    /// Who the first decision that can be had would assign to, reading only (the dry run).
    async fn preview_assignment(
        &self,
        decisions: &[xiansuo_domain::routing::Decision<'_>],
    ) -> Result<Option<AssignmentPreview>, StoreError>;
}

/// Issue #11: the payload of a relay event (`push.relay`): which push to re-send. The body and
/// its Content-Type are read from the push log when the delivery is attempted.
pub fn relay_payload(push_id: i64, source: &str) -> Value {
    json!({ "push_id": push_id, "source": source })
}

/// The push a claimed relay delivery re-sends.
pub fn relay_push_id(d: &ClaimedDelivery) -> Option<i64> {
    (d.kind == EventKind::Relay).then(|| d.payload.get("push_id").and_then(Value::as_i64)).flatten()
}

/// The canonical fields an event carries about its lead (those that have a value).
pub const SNAPSHOT_FIELDS: &[&str] = &[
    "name",
    "mobile",
    "tel",
    "weixin",
    "qq",
    "email",
    "sex",
    "country",
    "province",
    "city",
    "area",
    "keyword",
    "bidding_word",
    "search_engine",
    "search_host",
    "chat_url",
    "first_url",
    "ntag_id",
    "ntag_name",
    "subject_name",
    "school_name",
    "site_id",
    "site_name",
    "user_id",
    "user_real_name",
    "visitor_static_id",
    "company_id",
    "chat_id",
    "note",
];

/// A lead as an event describes it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: i64,
    pub source: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub owner: Option<(i64, String)>,
    pub received_at: Instant,
    pub updated_at: Instant,
    /// [`SNAPSHOT_FIELDS`] in order, `None` when empty.
    pub fields: Vec<Option<String>>,
}

/// An instant as the API prints it: RFC 3339, China time.
pub fn china_time(t: Instant) -> String {
    t.with_timezone(&CHINA_TIME).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

impl Snapshot {
    fn field(&self, key: &str) -> Option<&str> {
        let i = SNAPSHOT_FIELDS.iter().position(|k| *k == key)?;
        self.fields.get(i).and_then(|v| v.as_deref())
    }

    /// Tag name and id, for the sinks' `tags` filter.
    pub fn tags(&self) -> Vec<&str> {
        ["ntag_name", "ntag_id"].iter().filter_map(|k| self.field(k)).collect()
    }

    pub fn to_json(&self) -> Value {
        let mut lead = Map::new();
        lead.insert("id".into(), json!(self.id));
        lead.insert("source".into(), json!(self.source));
        lead.insert("status".into(), json!(self.status));
        lead.insert("status_reason".into(), json!(self.status_reason));
        lead.insert("owner".into(), user_json(self.owner.as_ref().map(|(id, name)| (*id, name.as_str()))));
        for (key, value) in SNAPSHOT_FIELDS.iter().zip(&self.fields) {
            if let Some(v) = value {
                lead.insert((*key).into(), json!(v));
            }
        }
        lead.insert("received_at".into(), json!(china_time(self.received_at)));
        lead.insert("updated_at".into(), json!(china_time(self.updated_at)));
        Value::Object(lead)
    }
}

/// `{"id": 3, "name": "li"}` or null.
pub fn user_json(user: Option<(i64, &str)>) -> Value {
    match user {
        Some((id, name)) => json!({ "id": id, "name": name }),
        None => Value::Null,
    }
}

/// The event's `data`: `{"lead": {...}, "change": {...}}`.
pub fn event_data(snapshot: &Snapshot, change: Value) -> Value {
    json!({ "lead": snapshot.to_json(), "change": change })
}

/// The enabled member a group's strategy picks. `members` are the group's enabled users in
/// the group's order (id, name); `last` the round-robin cursor; `load` a user's open leads.
pub fn pick_member(
    strategy: Strategy,
    members: &[(i64, String)],
    last: Option<i64>,
    load: impl Fn(i64) -> i64,
) -> Option<&(i64, String)> {
    match strategy {
        Strategy::RoundRobin => {
            let after = last.and_then(|l| members.iter().position(|(id, _)| *id == l));
            match after {
                Some(i) => members.get((i + 1) % members.len().max(1)),
                None => members.first(),
            }
        }
        Strategy::LeastLoaded => {
            let mut best: Option<(&(i64, String), i64)> = None;
            for m in members {
                let l = load(m.0);
                if best.is_none_or(|(_, b)| l < b) {
                    best = Some((m, l));
                }
            }
            best.map(|(m, _)| m)
        }
    }
}

/// Statuses whose leads count as a user's load.
pub const OPEN_STATUSES: &[&str] = &["new", "contacted", "interested"];

/// The `change` of a `lead.assigned` event.
pub fn assigned_change(
    from: Option<(i64, &str)>,
    to: Option<(i64, &str)>,
    rule: Option<&str>,
    claimed: bool,
    by: Option<(i64, &str)>,
) -> Value {
    json!({ "from": user_json(from), "to": user_json(to), "rule": rule, "claimed": claimed, "by": user_json(by) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<(i64, String)> {
        vec![(1, "li".into()), (2, "wang".into()), (5, "zhao".into())]
    }

    #[test]
    fn round_robin_takes_turns_and_skips_those_gone() {
        let m = members();
        let next = |last| pick_member(Strategy::RoundRobin, &m, last, |_| 0).map(|x| x.0);
        assert_eq!(next(None), Some(1));
        assert_eq!(next(Some(1)), Some(2));
        assert_eq!(next(Some(5)), Some(1));
        // The last one is no longer in the group (disabled): start again.
        assert_eq!(next(Some(9)), Some(1));
        assert_eq!(pick_member(Strategy::RoundRobin, &[], None, |_| 0), None);
    }

    #[test]
    fn least_loaded_takes_the_fewest_open_leads_first_in_order_on_ties() {
        let m = members();
        let loads = |id| match id {
            1 => 3,
            2 => 1,
            _ => 1,
        };
        assert_eq!(pick_member(Strategy::LeastLoaded, &m, None, loads).map(|x| x.0), Some(2));
        assert_eq!(pick_member(Strategy::LeastLoaded, &m, None, |_| 0).map(|x| x.0), Some(1));
    }
}
