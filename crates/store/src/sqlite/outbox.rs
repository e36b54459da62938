//! Issue #6 in SQLite: assignment of new leads and the outbox, written by the writer thread in
//! the transaction of the change (see `crate::outbox`).

use std::cell::RefCell;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};
use xiansuo_domain::routing::{Decision, EventKind, Routing, Target};
use xiansuo_domain::{Card, Instant, LeadChange};

use super::{SqliteStore, instant};
use crate::outbox::{
    AssignmentPreview, ClaimedDelivery, DeliveryCount, DeliveryOutcome, DeliveryQuery, DeliveryRow, DeliveryStatus,
    OPEN_STATUSES, Outbox, OutboxWrite, OutboxWritten, Redeliver, RoutingCell, SNAPSHOT_FIELDS, Snapshot,
    assigned_change, event_data, pick_member,
};
use crate::write::{Apply, Write, Written};
use crate::{Actor, Page, StoreError};

thread_local! {
    /// The routing of the store whose writer runs on this thread.
    static CURRENT: RefCell<Option<Arc<RoutingCell>>> = const { RefCell::new(None) };
}

/// Installs a store's routing on its writer thread (called once, as the thread starts).
pub(super) fn install(cell: Arc<RoutingCell>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(cell));
}

fn current() -> Arc<Routing> {
    CURRENT.with(|c| c.borrow().as_ref().map(|cell| cell.get())).unwrap_or_default()
}

fn ms(t: Instant) -> i64 {
    t.timestamp_millis()
}

/// Hook of `store_card`: a new lead is assigned (owner map, then rules), then announced
/// (`lead.created`, already with its owner, then `lead.assigned`); an updated one is announced
/// (`lead.updated`).
pub fn card_stored(conn: &Connection, how: &Apply, lead_id: i64, created: bool, card: &Card) -> Result<(), StoreError> {
    let routing = current();
    if routing.is_empty() {
        return Ok(());
    }
    if !created {
        let change = json!({ "push_id": how.push_id, "replay": how.fill_only });
        return enqueue_with(conn, &routing, EventKind::Updated, lead_id, change, how.at);
    }
    let decisions = routing.decisions(how.source, card, how.received);
    let mut assigned = None;
    for decision in &decisions {
        let Some((user_id, user_name)) = resolve(conn, decision, true)? else { continue };
        conn.prepare_cached("UPDATE leads SET owner_id = ?2 WHERE id = ?1")?.execute(params![lead_id, user_id])?;
        let change = LeadChange::AutoAssigned { to: user_id, rule: decision.rule.to_string() };
        conn.prepare_cached(
            "INSERT INTO lead_events (lead_id, at, user_id, kind, detail) VALUES (?1, ?2, NULL, ?3, ?4)",
        )?
        .execute(params![
            lead_id,
            ms(how.at),
            change.kind(),
            crate::write::change_detail(&change).to_string()
        ])?;
        assigned = Some(assigned_change(None, Some((user_id, &user_name)), Some(decision.rule), false, None));
        break;
    }
    enqueue_with(conn, &routing, EventKind::Created, lead_id, json!({ "push_id": how.push_id }), how.at)?;
    match assigned {
        Some(change) => enqueue_with(conn, &routing, EventKind::Assigned, lead_id, change, how.at),
        None => Ok(()),
    }
}

/// Issue #11, hook of `record_push`: the push is queued for each relay target of its source, in
/// the push's own transaction (so a relay exists if and only if the push was kept). `skip`: a push kept without its body (over
/// `max_body_bytes`), or whose signature did not hold.
pub fn push_recorded(conn: &Connection, push_id: i64, source: &str, skip: bool) -> Result<(), StoreError> {
    let routing = current();
    let Some(targets) = routing.relays.get(source).filter(|t| !t.is_empty()) else { return Ok(()) };
    if skip {
        return Ok(());
    }
    let now = ms(xiansuo_domain::now());
    conn.prepare_cached(
        "INSERT INTO outbox_events (lead_id, kind, created_at, payload, push_id) VALUES (0, ?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        EventKind::Relay.as_str(),
        now,
        crate::outbox::relay_payload(push_id, source).to_string(),
        push_id
    ])?;
    let event_id = conn.last_insert_rowid();
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries (event_id, sink, lead_id, status, attempts, next_at, updated_at)
         VALUES (?1, ?2, 0, 'pending', 0, ?3, ?3)",
    )?;
    for target in targets {
        insert.execute(params![event_id, target, now])?;
    }
    Ok(())
}

/// Hook of `update_lead`: a status change or a new owner is announced.
pub fn lead_changed(
    conn: &Connection,
    lead_id: i64,
    by: Actor,
    change: &LeadChange,
    at: Instant,
) -> Result<(), StoreError> {
    let routing = current();
    if routing.sinks.is_empty() {
        return Ok(());
    }
    let by_user = user_ref(conn, Some(by.user_id))?;
    let by_ref = by_user.as_ref().map(|(id, n)| (*id, n.as_str()));
    match change {
        LeadChange::Status { from, to, reason } => {
            let change = json!({
                "from": from.as_str(), "to": to.as_str(), "reason": reason,
                "by": crate::outbox::user_json(by_ref),
            });
            enqueue_with(conn, &routing, EventKind::StatusChanged, lead_id, change, at)
        }
        LeadChange::Owner { from, to, claimed } => {
            let (from, to) = (user_ref(conn, *from)?, user_ref(conn, *to)?);
            let change = assigned_change(
                from.as_ref().map(|(id, n)| (*id, n.as_str())),
                to.as_ref().map(|(id, n)| (*id, n.as_str())),
                None,
                *claimed,
                by_ref,
            );
            enqueue_with(conn, &routing, EventKind::Assigned, lead_id, change, at)
        }
        _ => Ok(()),
    }
}

/// Writes an event about a lead for every sink that wants it, in the caller's transaction (the
/// merge of issue #5 calls this with [`EventKind::Merged`]). Nothing is written when no sink
/// wants it.
pub fn enqueue(conn: &Connection, kind: EventKind, lead_id: i64, change: Value) -> Result<(), StoreError> {
    let routing = current();
    enqueue_with(conn, &routing, kind, lead_id, change, xiansuo_domain::now())
}

fn enqueue_with(
    conn: &Connection,
    routing: &Routing,
    kind: EventKind,
    lead_id: i64,
    change: Value,
    at: Instant,
) -> Result<(), StoreError> {
    if routing.sinks.is_empty() {
        return Ok(());
    }
    let Some(snapshot) = snapshot(conn, lead_id)? else { return Ok(()) };
    let tags = snapshot.tags();
    let sinks: Vec<&str> =
        routing.sinks.iter().filter(|s| s.wants(kind, &snapshot.source, &tags)).map(|s| s.name.as_str()).collect();
    if sinks.is_empty() {
        return Ok(());
    }
    let data = event_data(&snapshot, change);
    conn.prepare_cached("INSERT INTO outbox_events (lead_id, kind, created_at, payload) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![lead_id, kind.as_str(), ms(at), data.to_string()])?;
    let event_id = conn.last_insert_rowid();
    let now = ms(xiansuo_domain::now());
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries (event_id, sink, lead_id, status, attempts, next_at, updated_at)
         VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4)",
    )?;
    for sink in sinks {
        insert.execute(params![event_id, sink, lead_id, now])?;
    }
    Ok(())
}

static SNAPSHOT_SQL: LazyLock<String> = LazyLock::new(|| {
    let fields: Vec<String> = SNAPSHOT_FIELDS.iter().map(|f| format!("l.{f}")).collect();
    format!(
        "SELECT l.source, l.status, l.status_reason, l.owner_id, u.name, l.received_at, l.updated_at, {}
         FROM leads l LEFT JOIN users u ON u.id = l.owner_id WHERE l.id = ?1",
        fields.join(", ")
    )
});

fn snapshot(conn: &Connection, lead_id: i64) -> Result<Option<Snapshot>, StoreError> {
    Ok(conn
        .prepare_cached(&SNAPSHOT_SQL)?
        .query_row([lead_id], |r| {
            let owner = match (r.get::<_, Option<i64>>(3)?, r.get::<_, Option<String>>(4)?) {
                (Some(id), Some(name)) => Some((id, name)),
                _ => None,
            };
            let mut fields = Vec::with_capacity(SNAPSHOT_FIELDS.len());
            for i in 0..SNAPSHOT_FIELDS.len() {
                fields.push(r.get::<_, Option<String>>(7 + i)?);
            }
            Ok(Snapshot {
                id: lead_id,
                source: r.get(0)?,
                status: r.get(1)?,
                status_reason: r.get(2)?,
                owner,
                received_at: instant(r.get(5)?),
                updated_at: instant(r.get(6)?),
                fields,
            })
        })
        .optional()?)
}

fn user_ref(conn: &Connection, id: Option<i64>) -> Result<Option<(i64, String)>, StoreError> {
    let Some(id) = id else { return Ok(None) };
    let name: Option<String> =
        conn.prepare_cached("SELECT name FROM users WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
    Ok(name.map(|n| (id, n)))
}

/// The enabled user a decision assigns to, if any can be had. `advance`: move the group's
/// round-robin cursor (in the writer); the dry run only reads.
fn resolve(conn: &Connection, decision: &Decision, advance: bool) -> Result<Option<(i64, String)>, StoreError> {
    match &decision.target {
        Target::User(name) => Ok(conn
            .prepare_cached("SELECT id, name FROM users WHERE name = ?1 AND NOT disabled")?
            .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?),
        Target::Group { name, members, strategy } => {
            let mut enabled = Vec::new();
            let mut find = conn.prepare_cached("SELECT id, name FROM users WHERE name = ?1 AND NOT disabled")?;
            for m in members {
                if let Some(u) =
                    find.query_row([m], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).optional()?
                {
                    enabled.push(u);
                }
            }
            let last: Option<i64> = conn
                .prepare_cached("SELECT last_user_id FROM assignment_cursors WHERE group_name = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()?
                .flatten();
            let mut count = conn.prepare_cached(&format!(
                "SELECT count(*) FROM leads WHERE owner_id = ?1 AND status IN ({})",
                OPEN_STATUSES.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
            ))?;
            let mut loads = std::collections::HashMap::new();
            if *strategy == xiansuo_domain::routing::Strategy::LeastLoaded {
                for (id, _) in &enabled {
                    loads.insert(*id, count.query_row([id], |r| r.get::<_, i64>(0))?);
                }
            }
            let Some(chosen) =
                pick_member(*strategy, &enabled, last, |id| loads.get(&id).copied().unwrap_or(0)).cloned()
            else {
                return Ok(None);
            };
            if advance {
                conn.prepare_cached(
                    "INSERT INTO assignment_cursors (group_name, last_user_id) VALUES (?1, ?2)
                     ON CONFLICT (group_name) DO UPDATE SET last_user_id = excluded.last_user_id",
                )?
                .execute(params![name, chosen.0])?;
            }
            Ok(Some(chosen))
        }
    }
}

/// The worker's writes, applied by the writer.
pub fn apply(conn: &Connection, write: &OutboxWrite) -> Result<Written, StoreError> {
    Ok(Written::Outbox(match write {
        OutboxWrite::Claim { now, lease_until, limit } => {
            let ids: Vec<(i64, i64, String, i64, i64)> = conn
                .prepare_cached(
                    "UPDATE deliveries SET lease_until = ?2 WHERE id IN (
                         SELECT d.id FROM deliveries d
                         WHERE d.status = 'pending' AND d.next_at <= ?1
                           AND (d.lease_until IS NULL OR d.lease_until <= ?1)
                           AND (d.lead_id = 0 OR NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.status = 'pending'
                                           AND e.sink = d.sink AND e.lead_id = d.lead_id AND e.id < d.id))
                         ORDER BY d.next_at, d.id LIMIT ?3)
                     RETURNING id, event_id, sink, lead_id, attempts",
                )?
                .query_map(params![ms(*now), ms(*lease_until), *limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut claimed = Vec::with_capacity(ids.len());
            let mut event = conn.prepare_cached("SELECT kind, created_at, payload FROM outbox_events WHERE id = ?1")?;
            for (id, event_id, sink, lead_id, attempts) in ids {
                let (kind, created_at, payload): (String, i64, String) =
                    event.query_row([event_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                let Some(kind) = EventKind::from_stored(&kind) else { continue };
                claimed.push(ClaimedDelivery {
                    id,
                    event_id,
                    sink,
                    lead_id,
                    kind,
                    attempts,
                    created_at: instant(created_at),
                    payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                });
            }
            claimed.sort_by_key(|c| c.id);
            OutboxWritten::Claimed(claimed)
        }
        OutboxWrite::Finish { id, outcome } => {
            let now = ms(xiansuo_domain::now());
            match outcome {
                DeliveryOutcome::Delivered { status, at } => conn
                    .prepare_cached(
                        "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = ?2,
                             last_status = ?3, last_error = NULL, lease_until = NULL, updated_at = ?4 WHERE id = ?1",
                    )?
                    .execute(params![id, ms(*at), status, now])?,
                DeliveryOutcome::Retry { status, error, next_at } => conn
                    .prepare_cached(
                        "UPDATE deliveries SET attempts = attempts + 1, next_at = ?2, last_status = ?3,
                             last_error = ?4, lease_until = NULL, updated_at = ?5 WHERE id = ?1",
                    )?
                    .execute(params![id, ms(*next_at), status, error, now])?,
                DeliveryOutcome::Dead { status, error, at } => conn
                    .prepare_cached(
                        "UPDATE deliveries SET status = 'dead', attempts = attempts + 1, last_status = ?2,
                             last_error = ?3, lease_until = NULL, updated_at = ?4 WHERE id = ?1",
                    )?
                    .execute(params![id, status, error, ms(*at)])?,
            };
            OutboxWritten::Finished
        }
        OutboxWrite::Redeliver { which, at } => {
            let n = match which {
                Redeliver::One(id) => conn
                    .prepare_cached(
                        "UPDATE deliveries SET status = 'pending', attempts = 0, next_at = ?2, lease_until = NULL,
                             updated_at = ?2 WHERE id = ?1 AND status = 'dead'",
                    )?
                    .execute(params![id, ms(*at)])?,
                Redeliver::AllDeadOf(sink) => conn
                    .prepare_cached(
                        "UPDATE deliveries SET status = 'pending', attempts = 0, next_at = ?2, lease_until = NULL,
                             updated_at = ?2 WHERE sink = ?1 AND status = 'dead'",
                    )?
                    .execute(params![sink, ms(*at)])?,
            };
            OutboxWritten::Redelivered(n as u64)
        }
    }))
}

fn delivery_from_row(r: &Row) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.get(0)?,
        event_id: r.get(1)?,
        sink: r.get(2)?,
        lead_id: r.get(3)?,
        kind: r.get(4)?,
        status: DeliveryStatus::parse(&r.get::<_, String>(5)?).unwrap_or(DeliveryStatus::Pending),
        attempts: r.get(6)?,
        next_at: instant(r.get(7)?),
        last_error: r.get(8)?,
        last_status: r.get(9)?,
        delivered_at: r.get::<_, Option<i64>>(10)?.map(instant),
        created_at: instant(r.get(11)?),
        push_id: r.get(12)?,
    })
}

fn outbox_written(w: Written) -> Result<OutboxWritten, StoreError> {
    match w {
        Written::Outbox(o) => Ok(o),
        _ => Err(StoreError::Unavailable("the writer answered an outbox write with something else".into())),
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    fn set_routing(&self, routing: Routing) {
        self.routing.set(routing);
    }

    async fn next_delivery_due(&self) -> Result<Option<Instant>, StoreError> {
        self.read(|conn| {
            let due: Option<i64> = conn.query_row(
                // Only the first pending delivery of each (sink, lead) can be due: the others wait
                // for it, and the worker looks again when it finishes.
                "SELECT MIN(MAX(d.next_at, COALESCE(d.lease_until, 0))) FROM deliveries d WHERE d.status = 'pending'
                   AND (d.lead_id = 0 OR NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.status = 'pending'
                                   AND e.sink = d.sink AND e.lead_id = d.lead_id AND e.id < d.id))",
                [],
                |r| r.get(0),
            )?;
            Ok(due.map(instant))
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        now: Instant,
        lease_until: Instant,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        match outbox_written(self.submit(Write::Outbox(OutboxWrite::Claim { now, lease_until, limit })).await?)? {
            OutboxWritten::Claimed(c) => Ok(c),
            _ => Err(StoreError::Unavailable("the writer answered a claim with something else".into())),
        }
    }

    async fn finish_delivery(&self, id: i64, outcome: DeliveryOutcome) -> Result<(), StoreError> {
        outbox_written(self.submit(Write::Outbox(OutboxWrite::Finish { id, outcome })).await?).map(|_| ())
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Page<DeliveryRow>, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let (where_, params) = delivery_where(&query);
            let total: i64 = conn
                .prepare_cached(&format!("SELECT count(*) FROM deliveries d {where_}"))?
                .query_row(rusqlite::params_from_iter(params.iter()), |r| r.get(0))?;
            let per_page = query.per_page.clamp(1, 200);
            let offset = i64::from(query.page.max(1) - 1) * i64::from(per_page);
            let sql = format!(
                "SELECT d.id, d.event_id, d.sink, d.lead_id, e.kind, d.status, d.attempts, d.next_at, d.last_error,
                        d.last_status, d.delivered_at, e.created_at, e.push_id
                 FROM deliveries d JOIN outbox_events e ON e.id = d.event_id {where_}
                 ORDER BY d.id DESC LIMIT {per_page} OFFSET {offset}"
            );
            let items = conn
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(params.iter()), delivery_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Page { total: total as u64, total_exact: true, page: query.page.max(1), per_page, items })
        })
        .await
    }

    async fn relay_deliveries(&self, push_ids: &[i64]) -> Result<Vec<DeliveryRow>, StoreError> {
        if push_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(push_ids).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT d.id, d.event_id, d.sink, d.lead_id, e.kind, d.status, d.attempts, d.next_at, d.last_error,
                            d.last_status, d.delivered_at, e.created_at, e.push_id
                     FROM outbox_events e JOIN deliveries d ON d.event_id = e.id
                     WHERE e.push_id IN (SELECT value FROM json_each(?1))
                     ORDER BY d.id",
                )?
                .query_map([ids], delivery_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>, StoreError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached("SELECT sink, status, count(*) FROM deliveries GROUP BY sink, status ORDER BY sink")?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|(sink, status, count)| {
                    Some(DeliveryCount { sink, status: DeliveryStatus::parse(&status)?, count })
                })
                .collect())
        })
        .await
    }

    async fn redeliver(&self, which: Redeliver, at: Instant) -> Result<u64, StoreError> {
        match outbox_written(self.submit(Write::Outbox(OutboxWrite::Redeliver { which, at })).await?)? {
            OutboxWritten::Redelivered(n) => Ok(n),
            _ => Err(StoreError::Unavailable("the writer answered a redelivery with something else".into())),
        }
    }

    async fn preview_assignment(&self, decisions: &[Decision<'_>]) -> Result<Option<AssignmentPreview>, StoreError> {
        let owned: Vec<(String, Target)> = decisions.iter().map(|d| (d.rule.to_string(), d.target.clone())).collect();
        self.read(move |conn| {
            for (rule, target) in &owned {
                let decision = Decision { rule, target: target.clone() };
                if let Some((user_id, user_name)) = resolve(conn, &decision, false)? {
                    return Ok(Some(AssignmentPreview { rule: rule.clone(), user_id, user_name }));
                }
            }
            Ok(None)
        })
        .await
    }
}

/// `WHERE …` of a delivery list, with its parameters.
fn delivery_where(query: &DeliveryQuery) -> (String, Vec<rusqlite::types::Value>) {
    let mut clauses = Vec::new();
    let mut params: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(sink) = &query.sink {
        params.push(sink.clone().into());
        clauses.push(format!("d.sink = ?{}", params.len()));
    }
    if let Some(status) = query.status {
        params.push(status.as_str().to_string().into());
        clauses.push(format!("d.status = ?{}", params.len()));
    }
    if let Some(lead) = query.lead_id {
        params.push(lead.into());
        clauses.push(format!("d.lead_id = ?{}", params.len()));
    }
    let where_ = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    (where_, params)
}
