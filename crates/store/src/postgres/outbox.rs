//! Issue #6 in PostgreSQL: assignment of new leads and the outbox, written by the writer task in
//! the transaction of the change (see `crate::outbox`). Several instances may share the
//! database: deliveries are claimed with `FOR UPDATE SKIP LOCKED` and a lease, and a group's
//! round-robin cursor is a locked row.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use serde_json::{Value, json};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use xiansuo_domain::routing::{Decision, EventKind, Routing, Strategy, Target};
use xiansuo_domain::{Card, Instant, LeadChange};

use super::PostgresStore;
use crate::outbox::{
    AssignmentPreview, ClaimedDelivery, DeliveryCount, DeliveryOutcome, DeliveryQuery, DeliveryRow, DeliveryStatus,
    OPEN_STATUSES, Outbox, OutboxWrite, OutboxWritten, Redeliver, RoutingCell, SNAPSHOT_FIELDS, Snapshot,
    assigned_change, event_data, pick_member,
};
use crate::write::{Apply, Write, Written, millis};
use crate::{Actor, Page, StoreError};

tokio::task_local! {
    /// The routing of the store whose writer task this is.
    static CURRENT: Arc<RoutingCell>;
}

/// Runs a store's writer with its routing installed.
pub(super) async fn scope<F: std::future::Future>(cell: Arc<RoutingCell>, writer: F) -> F::Output {
    CURRENT.scope(cell, writer).await
}

fn current() -> Arc<Routing> {
    CURRENT.try_with(|cell| cell.get()).unwrap_or_default()
}

type PgResult<T> = Result<T, tokio_postgres::Error>;

/// Hook of `store_card`: a new lead is assigned (owner map, then rules), then announced
/// (`lead.created`, already with its owner, then `lead.assigned`); an updated one is announced
/// (`lead.updated`).
pub async fn card_stored(
    tx: &Transaction<'_>,
    how: &Apply<'_>,
    lead_id: i64,
    created: bool,
    card: &Card,
) -> PgResult<()> {
    let routing = current();
    if routing.is_empty() {
        return Ok(());
    }
    if !created {
        let change = json!({ "push_id": how.push_id, "replay": how.fill_only });
        return enqueue_with(tx, &routing, EventKind::Updated, lead_id, change, how.at).await;
    }
    let decisions = routing.decisions(how.source, card, how.received);
    let mut assigned = None;
    for decision in &decisions {
        let Some((user_id, user_name)) = resolve(tx, decision, true).await? else { continue };
        tx.execute("UPDATE leads SET owner_id = $2 WHERE id = $1", &[&lead_id, &user_id]).await?;
        let change = LeadChange::AutoAssigned { to: user_id, rule: decision.rule.to_string() };
        let detail = crate::write::change_detail(&change);
        tx.execute(
            "INSERT INTO lead_events (lead_id, at, user_id, kind, detail) VALUES ($1, $2, NULL, $3, $4)",
            &[&lead_id, &millis(how.at), &change.kind(), &detail],
        )
        .await?;
        assigned = Some(assigned_change(None, Some((user_id, &user_name)), Some(decision.rule), false, None));
        break;
    }
    enqueue_with(tx, &routing, EventKind::Created, lead_id, json!({ "push_id": how.push_id }), how.at).await?;
    match assigned {
        Some(change) => enqueue_with(tx, &routing, EventKind::Assigned, lead_id, change, how.at).await,
        None => Ok(()),
    }
}

/// Issue #11, hook of `record_push`: the push is queued for each relay target of its source, in
/// the push's own transaction. `skip`: no body, or a bad signature.
pub async fn push_recorded(tx: &Transaction<'_>, push_id: i64, source: &str, skip: bool) -> PgResult<()> {
    let routing = current();
    let Some(targets) = routing.relays.get(source).filter(|t| !t.is_empty()) else { return Ok(()) };
    if skip {
        return Ok(());
    }
    let now = millis(xiansuo_domain::now());
    let stmt = tx
        .prepare_cached(
            "INSERT INTO outbox_events (lead_id, kind, created_at, payload, push_id) VALUES (0, $1, $2, $3, $4)
             RETURNING id",
        )
        .await?;
    let payload = crate::outbox::relay_payload(push_id, source);
    let event_id: i64 =
        tx.query_one(&stmt, &[&EventKind::Relay.as_str(), &now, &payload, &push_id]).await?.try_get(0)?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO deliveries (event_id, sink, lead_id, status, attempts, next_at, updated_at)
             SELECT $1, s, 0, 'pending', 0, $3, $3 FROM unnest($2::text[]) AS s",
        )
        .await?;
    tx.execute(&stmt, &[&event_id, targets, &now]).await?;
    Ok(())
}

/// Hook of `update_lead`: a status change or a new owner is announced.
pub async fn lead_changed(
    tx: &Transaction<'_>,
    lead_id: i64,
    by: Actor,
    change: &LeadChange,
    at: Instant,
) -> PgResult<()> {
    let routing = current();
    if routing.sinks.is_empty() {
        return Ok(());
    }
    let by_user = user_ref(tx, Some(by.user_id)).await?;
    let by_ref = by_user.as_ref().map(|(id, n)| (*id, n.as_str()));
    match change {
        LeadChange::Status { from, to, reason } => {
            let change = json!({
                "from": from.as_str(), "to": to.as_str(), "reason": reason,
                "by": crate::outbox::user_json(by_ref),
            });
            enqueue_with(tx, &routing, EventKind::StatusChanged, lead_id, change, at).await
        }
        LeadChange::Owner { from, to, claimed } => {
            let (from, to) = (user_ref(tx, *from).await?, user_ref(tx, *to).await?);
            let change = assigned_change(
                from.as_ref().map(|(id, n)| (*id, n.as_str())),
                to.as_ref().map(|(id, n)| (*id, n.as_str())),
                None,
                *claimed,
                by_ref,
            );
            enqueue_with(tx, &routing, EventKind::Assigned, lead_id, change, at).await
        }
        _ => Ok(()),
    }
}

/// Writes an event about a lead for every sink that wants it, in the caller's transaction (the
/// merge of issue #5 calls this with [`EventKind::Merged`]). Nothing is written when no sink
/// wants it.
pub async fn enqueue(tx: &Transaction<'_>, kind: EventKind, lead_id: i64, change: Value) -> PgResult<()> {
    let routing = current();
    enqueue_with(tx, &routing, kind, lead_id, change, xiansuo_domain::now()).await
}

async fn enqueue_with(
    tx: &Transaction<'_>,
    routing: &Routing,
    kind: EventKind,
    lead_id: i64,
    change: Value,
    at: Instant,
) -> PgResult<()> {
    if routing.sinks.is_empty() {
        return Ok(());
    }
    let Some(snapshot) = snapshot(tx, lead_id).await? else { return Ok(()) };
    let tags = snapshot.tags();
    let sinks: Vec<&str> =
        routing.sinks.iter().filter(|s| s.wants(kind, &snapshot.source, &tags)).map(|s| s.name.as_str()).collect();
    if sinks.is_empty() {
        return Ok(());
    }
    let data = event_data(&snapshot, change);
    let stmt = tx
        .prepare_cached(
            "INSERT INTO outbox_events (lead_id, kind, created_at, payload) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .await?;
    let event_id: i64 = tx.query_one(&stmt, &[&lead_id, &kind.as_str(), &millis(at), &data]).await?.try_get(0)?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO deliveries (event_id, sink, lead_id, status, attempts, next_at, updated_at)
             SELECT $1, s, $3, 'pending', 0, $4, $4 FROM unnest($2::text[]) AS s",
        )
        .await?;
    tx.execute(&stmt, &[&event_id, &sinks, &lead_id, &xiansuo_domain::now()]).await?;
    Ok(())
}

static SNAPSHOT_SQL: LazyLock<String> = LazyLock::new(|| {
    let fields: Vec<String> = SNAPSHOT_FIELDS.iter().map(|f| format!("l.{f}")).collect();
    format!(
        "SELECT l.source, l.status, l.status_reason, l.owner_id, u.name, l.received_at, l.updated_at, {}
         FROM leads l LEFT JOIN users u ON u.id = l.owner_id WHERE l.id = $1",
        fields.join(", ")
    )
});

async fn snapshot(tx: &Transaction<'_>, lead_id: i64) -> PgResult<Option<Snapshot>> {
    let stmt = tx.prepare_cached(&SNAPSHOT_SQL).await?;
    let Some(r) = tx.query_opt(&stmt, &[&lead_id]).await? else { return Ok(None) };
    let owner = match (r.try_get::<_, Option<i64>>(3)?, r.try_get::<_, Option<String>>(4)?) {
        (Some(id), Some(name)) => Some((id, name)),
        _ => None,
    };
    let mut fields = Vec::with_capacity(SNAPSHOT_FIELDS.len());
    for i in 0..SNAPSHOT_FIELDS.len() {
        fields.push(r.try_get::<_, Option<String>>(7 + i)?);
    }
    Ok(Some(Snapshot {
        id: lead_id,
        source: r.try_get(0)?,
        status: r.try_get(1)?,
        status_reason: r.try_get(2)?,
        owner,
        received_at: r.try_get(5)?,
        updated_at: r.try_get(6)?,
        fields,
    }))
}

async fn user_ref(tx: &Transaction<'_>, id: Option<i64>) -> PgResult<Option<(i64, String)>> {
    let Some(id) = id else { return Ok(None) };
    let row = tx.query_opt("SELECT name FROM users WHERE id = $1", &[&id]).await?;
    Ok(match row {
        Some(r) => Some((id, r.try_get(0)?)),
        None => None,
    })
}

/// The enabled user a decision assigns to, if any can be had. `advance`: move the group's
/// round-robin cursor (its row locked, so instances take turns); the dry run only reads.
async fn resolve(tx: &Transaction<'_>, decision: &Decision<'_>, advance: bool) -> PgResult<Option<(i64, String)>> {
    match &decision.target {
        Target::User(name) => {
            let row = tx.query_opt("SELECT id, name FROM users WHERE name = $1 AND NOT disabled", &[name]).await?;
            Ok(match row {
                Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
                None => None,
            })
        }
        Target::Group { name, members, strategy } => {
            let rows = tx
                .query(
                    "SELECT u.id, u.name FROM unnest($1::text[]) WITH ORDINALITY AS m(name, n)
                     JOIN users u ON u.name = m.name AND NOT u.disabled ORDER BY m.n",
                    &[members],
                )
                .await?;
            let mut enabled = Vec::with_capacity(rows.len());
            for r in rows {
                enabled.push((r.try_get::<_, i64>(0)?, r.try_get::<_, String>(1)?));
            }
            if enabled.is_empty() {
                return Ok(None);
            }
            let last: Option<i64> = if advance {
                tx.execute(
                    "INSERT INTO assignment_cursors (group_name) VALUES ($1) ON CONFLICT (group_name) DO NOTHING",
                    &[name],
                )
                .await?;
                tx.query_one("SELECT last_user_id FROM assignment_cursors WHERE group_name = $1 FOR UPDATE", &[name])
                    .await?
                    .try_get(0)?
            } else {
                match tx.query_opt("SELECT last_user_id FROM assignment_cursors WHERE group_name = $1", &[name]).await?
                {
                    Some(r) => r.try_get(0)?,
                    None => None,
                }
            };
            let mut loads = std::collections::HashMap::new();
            if *strategy == Strategy::LeastLoaded {
                let ids: Vec<i64> = enabled.iter().map(|(id, _)| *id).collect();
                let statuses: Vec<&str> = OPEN_STATUSES.to_vec();
                for r in tx
                    .query(
                        "SELECT owner_id, count(*) FROM leads WHERE owner_id = ANY($1) AND status = ANY($2)
                         GROUP BY owner_id",
                        &[&ids, &statuses],
                    )
                    .await?
                {
                    loads.insert(r.try_get::<_, i64>(0)?, r.try_get::<_, i64>(1)?);
                }
            }
            let Some(chosen) =
                pick_member(*strategy, &enabled, last, |id| loads.get(&id).copied().unwrap_or(0)).cloned()
            else {
                return Ok(None);
            };
            if advance {
                tx.execute("UPDATE assignment_cursors SET last_user_id = $2 WHERE group_name = $1", &[name, &chosen.0])
                    .await?;
            }
            Ok(Some(chosen))
        }
    }
}

fn status_param(status: &Option<u16>) -> Option<i64> {
    status.map(i64::from)
}

/// The worker's writes, applied by the writer.
pub async fn apply(tx: &Transaction<'_>, write: &OutboxWrite) -> PgResult<Written> {
    Ok(Written::Outbox(match write {
        OutboxWrite::Claim { now, lease_until, limit } => {
            let limit = *limit as i64;
            let rows = tx
                .query(
                    "UPDATE deliveries SET lease_until = $2 WHERE id IN (
                         SELECT d.id FROM deliveries d
                         WHERE d.status = 'pending' AND d.next_at <= $1
                           AND (d.lease_until IS NULL OR d.lease_until <= $1)
                           AND (d.lead_id = 0 OR NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.status = 'pending'
                                           AND e.sink = d.sink AND e.lead_id = d.lead_id AND e.id < d.id))
                         ORDER BY d.next_at, d.id LIMIT $3
                         FOR UPDATE SKIP LOCKED)
                     RETURNING id, event_id, sink, lead_id, attempts,
                         (SELECT kind FROM outbox_events e WHERE e.id = event_id),
                         (SELECT created_at FROM outbox_events e WHERE e.id = event_id),
                         (SELECT payload FROM outbox_events e WHERE e.id = event_id)",
                    &[&millis(*now), &millis(*lease_until), &limit],
                )
                .await?;
            let mut claimed = Vec::with_capacity(rows.len());
            for r in rows {
                let Some(kind) = EventKind::from_stored(r.try_get(5)?) else { continue };
                claimed.push(ClaimedDelivery {
                    id: r.try_get(0)?,
                    event_id: r.try_get(1)?,
                    sink: r.try_get(2)?,
                    lead_id: r.try_get(3)?,
                    kind,
                    attempts: r.try_get(4)?,
                    created_at: r.try_get(6)?,
                    payload: r.try_get(7)?,
                });
            }
            claimed.sort_by_key(|c| c.id);
            OutboxWritten::Claimed(claimed)
        }
        OutboxWrite::Finish { id, outcome } => {
            let now = xiansuo_domain::now();
            match outcome {
                DeliveryOutcome::Delivered { status, at } => {
                    tx.execute(
                        "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = $2,
                             last_status = $3, last_error = NULL, lease_until = NULL, updated_at = $4 WHERE id = $1",
                        &[id, &millis(*at), &status_param(status), &now],
                    )
                    .await?
                }
                DeliveryOutcome::Retry { status, error, next_at } => {
                    tx.execute(
                        "UPDATE deliveries SET attempts = attempts + 1, next_at = $2, last_status = $3,
                             last_error = $4, lease_until = NULL, updated_at = $5 WHERE id = $1",
                        &[id, &millis(*next_at), &status_param(status), error, &now],
                    )
                    .await?
                }
                DeliveryOutcome::Dead { status, error, at } => {
                    tx.execute(
                        "UPDATE deliveries SET status = 'dead', attempts = attempts + 1, last_status = $2,
                             last_error = $3, lease_until = NULL, updated_at = $4 WHERE id = $1",
                        &[id, &status_param(status), error, &millis(*at)],
                    )
                    .await?
                }
            };
            OutboxWritten::Finished
        }
        OutboxWrite::Redeliver { which, at } => {
            let at = millis(*at);
            let n = match which {
                Redeliver::One(id) => {
                    tx.execute(
                        "UPDATE deliveries SET status = 'pending', attempts = 0, next_at = $2, lease_until = NULL,
                             updated_at = $2 WHERE id = $1 AND status = 'dead'",
                        &[id, &at],
                    )
                    .await?
                }
                Redeliver::AllDeadOf(sink) => {
                    tx.execute(
                        "UPDATE deliveries SET status = 'pending', attempts = 0, next_at = $2, lease_until = NULL,
                             updated_at = $2 WHERE sink = $1 AND status = 'dead'",
                        &[sink, &at],
                    )
                    .await?
                }
            };
            OutboxWritten::Redelivered(n)
        }
    }))
}

fn delivery_from_row(r: &Row) -> Result<DeliveryRow, StoreError> {
    Ok(DeliveryRow {
        id: r.try_get(0)?,
        event_id: r.try_get(1)?,
        sink: r.try_get(2)?,
        lead_id: r.try_get(3)?,
        kind: r.try_get(4)?,
        status: DeliveryStatus::parse(r.try_get(5)?).unwrap_or(DeliveryStatus::Pending),
        attempts: r.try_get(6)?,
        next_at: r.try_get(7)?,
        last_error: r.try_get(8)?,
        last_status: r.try_get(9)?,
        delivered_at: r.try_get(10)?,
        created_at: r.try_get(11)?,
        push_id: r.try_get(12)?,
    })
}

fn outbox_written(w: Written) -> Result<OutboxWritten, StoreError> {
    match w {
        Written::Outbox(o) => Ok(o),
        _ => Err(StoreError::Unavailable("the writer answered an outbox write with something else".into())),
    }
}

#[async_trait]
impl Outbox for PostgresStore {
    fn set_routing(&self, routing: Routing) {
        self.routing.set(routing);
    }

    async fn next_delivery_due(&self) -> Result<Option<Instant>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                // Only the first pending delivery of each (sink, lead) can be due: the others wait
                // for it, and the worker looks again when it finishes.
                "SELECT MIN(GREATEST(d.next_at, COALESCE(d.lease_until, d.next_at))) FROM deliveries d
                 WHERE d.status = 'pending' AND (d.lead_id = 0 OR NOT EXISTS (SELECT 1 FROM deliveries e
                     WHERE e.status = 'pending' AND e.sink = d.sink AND e.lead_id = d.lead_id AND e.id < d.id))",
                &[],
            )
            .await?;
        Ok(row.try_get(0)?)
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
        let client = self.client().await?;
        let status = query.status.map(|s| s.as_str());
        let params: [&(dyn ToSql + Sync); 3] = [&query.sink, &status, &query.lead_id];
        let where_ = "WHERE ($1::text IS NULL OR d.sink = $1) AND ($2::text IS NULL OR d.status = $2)
                        AND ($3::bigint IS NULL OR d.lead_id = $3)";
        let total: i64 =
            client.query_one(&format!("SELECT count(*) FROM deliveries d {where_}"), &params).await?.try_get(0)?;
        let per_page = query.per_page.clamp(1, 200);
        let offset = i64::from(query.page.max(1) - 1) * i64::from(per_page);
        let sql = format!(
            "SELECT d.id, d.event_id, d.sink, d.lead_id, e.kind, d.status, d.attempts, d.next_at, d.last_error,
                    d.last_status, d.delivered_at, e.created_at, e.push_id
             FROM deliveries d JOIN outbox_events e ON e.id = d.event_id {where_}
             ORDER BY d.id DESC LIMIT {per_page} OFFSET {offset}"
        );
        let items = client.query(&sql, &params).await?.iter().map(delivery_from_row).collect::<Result<_, _>>()?;
        Ok(Page { total: total as u64, total_exact: true, page: query.page.max(1), per_page, items })
    }

    async fn relay_deliveries(&self, push_ids: &[i64]) -> Result<Vec<DeliveryRow>, StoreError> {
        if push_ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT d.id, d.event_id, d.sink, d.lead_id, e.kind, d.status, d.attempts, d.next_at, d.last_error,
                        d.last_status, d.delivered_at, e.created_at, e.push_id
                 FROM outbox_events e JOIN deliveries d ON d.event_id = e.id
                 WHERE e.push_id = ANY($1)
                 ORDER BY d.id",
            )
            .await?;
        client.query(&stmt, &[&push_ids]).await?.iter().map(delivery_from_row).collect()
    }

    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT sink, status, count(*) FROM deliveries GROUP BY sink, status ORDER BY sink", &[])
            .await?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(status) = DeliveryStatus::parse(r.try_get(1)?) {
                out.push(DeliveryCount { sink: r.try_get(0)?, status, count: r.try_get(2)? });
            }
        }
        Ok(out)
    }

    async fn redeliver(&self, which: Redeliver, at: Instant) -> Result<u64, StoreError> {
        match outbox_written(self.submit(Write::Outbox(OutboxWrite::Redeliver { which, at })).await?)? {
            OutboxWritten::Redelivered(n) => Ok(n),
            _ => Err(StoreError::Unavailable("the writer answered a redelivery with something else".into())),
        }
    }

    async fn preview_assignment(&self, decisions: &[Decision<'_>]) -> Result<Option<AssignmentPreview>, StoreError> {
        let mut client = self.client().await?;
        // A transaction that is never committed: nothing the preview reads is changed.
        let tx = client.transaction().await?;
        for decision in decisions {
            if let Some((user_id, user_name)) = resolve(&tx, decision, false).await? {
                return Ok(Some(AssignmentPreview { rule: decision.rule.to_string(), user_id, user_name }));
            }
        }
        Ok(None)
    }
}
