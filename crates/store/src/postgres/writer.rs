//! The PostgreSQL writer task: group commit with a savepoint per write, and whole-batch retry
//! when the batch loses a deadlock or serialization conflict to another process. About once a
//! second a writer also folds the per-day report's pending changes into `report_days`
//! (migration 0013), one fold at a time across writers and instances.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::{Mutex, mpsc};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use xiansuo_domain::{
    COMMON_CONTACT_LEADS, CONTACT_FIELDS, Card, FIELDS, FieldKind, Instant, Lead, LeadChange, LeadEvent, LeadStatus,
    PushOutcomeKind, Scoring, Sender, User,
};

use super::describe;
use crate::query::summarize;
use crate::reports::{DAYS_COLUMNS, FOLD_UPSERT, FoldSchedule, pending_days};
use crate::write::{
    Apply, Job, MAX_BATCH, NewLeadTally, QUEUED_WAITING, Queueing, ScoreRow, ScoringCell, Write, Written,
    change_detail, contact_kind, duplicate_change, filled_by_merge, has_cards, millis, plan_merge, plan_update,
    queued_conflict, rescore,
};
use crate::{Actor, LeadUpdate, UserChange};
use crate::{LeadWritten, NewPush, PushRecorded, PushResult, QueuedPush, StoreError, VendorPush, VendorRecorded};

/// Attempts of one batch that keeps losing conflicts to other processes.
const ATTEMPTS: u32 = 5;

/// Any number: the advisory lock held by the one fold of report changes running at a time.
const FOLD_LOCK: i64 = 0x0078_6961_6e66_6f6c;

/// Why one write failed.
enum Failure {
    /// A conflict with another process: retry the whole batch.
    Conflict(tokio_postgres::Error),
    /// The connection or server failed: the batch cannot commit.
    Database(tokio_postgres::Error),
    /// This write alone is refused (e.g. replay of a push that does not exist).
    Refused(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        let conflict = e
            .code()
            .is_some_and(|c| *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE);
        // Class 22 (data exception, e.g. a NUL character in text) and class 23 (integrity
        // constraint violation) concern this write's data: it alone is refused, as in SQLite,
        // and the other writes of its batch commit.
        let data = e.code().is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"));
        if conflict {
            Failure::Conflict(e)
        } else if data {
            Failure::Refused(StoreError::Invalid(describe(&e)))
        } else {
            Failure::Database(e)
        }
    }
}

/// One of the store's writers: takes whatever has queued (up to [`MAX_BATCH`]) and commits it in
/// one transaction, answering each job after the commit. Several may run side by side on their
/// own connections (`postgres_writers`, four by default): PostgreSQL keeps concurrent
/// transactions apart (row locks; a deadlock between two batches retries one of them whole, as
/// between two instances). No row is written by every batch (the per-day report's changes are
/// appended and folded by one writer at a time), so they seldom wait for each other.
pub async fn run(pool: Pool, jobs: Arc<Mutex<mpsc::Receiver<Job>>>, scoring: ScoringCell, queueing: Arc<Queueing>) {
    let mut schedule = FoldSchedule::default();
    // Issue #8: whether this writer's last batch applied queued pushes (see Queueing::burst).
    let mut applied_last = false;
    loop {
        let (batch, burst) = {
            let mut queue = jobs.lock().await;
            let first = match schedule.wait() {
                Some(wait) => match tokio::time::timeout(wait, queue.recv()).await {
                    Ok(Some(job)) => job,
                    Ok(None) => break,
                    Err(_) => {
                        drop(queue);
                        schedule.tried(fold_now(&pool).await);
                        continue;
                    }
                },
                None => {
                    let Some(job) = queue.recv().await else { break };
                    job
                }
            };
            // A write of queued pushes ends its batch: the applier's next write, of other
            // visitors' pushes, goes to another writer, and both are applied side by side.
            let ends_batch = |job: &Job| matches!(job.write, Write::ApplyQueued(_));
            let mut full = ends_batch(&first);
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && !full {
                match queue.try_recv() {
                    Ok(job) => {
                        full = ends_batch(&job);
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            // Decided while this writer still holds the queue: a batch taken after this one
            // sees the window this one opens.
            let burst = queueing.burst(&batch, applied_last);
            // A write of queued pushes can only be the batch's last job.
            applied_last = full;
            (batch, burst)
        };
        let writes: Vec<&Write> = batch.iter().map(|j| &j.write).collect();
        match commit_batch(&pool, &writes, &scoring.get(), burst).await {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    job.answer(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "write batch failed");
                let message = match e {
                    StoreError::Unavailable(message) => message,
                    other => other.to_string(),
                };
                for job in batch {
                    job.answer(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
        schedule.committed();
        if schedule.due() {
            schedule.tried(fold_now(&pool).await);
        }
    }
    if schedule.unfolded() {
        fold_now(&pool).await;
    }
    tracing::debug!("writer stopped: no more senders");
}

/// Folds the report's pending changes in a transaction of its own, unless another writer (of
/// this or another instance) is folding; whether it did. A failure is logged and loses nothing:
/// the changes stay pending, reports still add them, the next fold retries.
async fn fold_now(pool: &Pool) -> bool {
    let folded = async {
        let mut client = pool
            .get()
            .await
            .map_err(|e| Failure::Refused(StoreError::Unavailable(format!("cannot reach PostgreSQL: {e}"))))?;
        let tx = client.transaction().await?;
        let folded = fold_report_days(&tx, false).await?;
        tx.commit().await?;
        Ok::<_, Failure>(folded)
    }
    .await;
    let error = match folded {
        Ok(Some(rows)) => {
            tracing::trace!(rows, "report changes folded");
            return true;
        }
        // Another fold is running; it may have begun before this writer's last commit.
        Ok(None) => return false,
        Err(Failure::Conflict(e) | Failure::Database(e)) => describe(&e),
        Err(Failure::Refused(e)) => e.to_string(),
    };
    tracing::warn!(error, "folding the report's pending changes failed; they stay pending");
    false
}

/// Adds the pending changes of the per-day report (`report_pending`, appended by the triggers
/// of migration 0013) to `report_days` and removes them, in one statement: exactly the rows it
/// deletes are added, whatever other writers append meanwhile. Its rows of `report_days` are
/// written in key order. One fold at a time (an advisory lock): `wait` says whether to wait for
/// a running one or return `None`. Returns the rows of `report_days` written.
async fn fold_report_days(tx: &Transaction<'_>, wait: bool) -> Result<Option<u64>, Failure> {
    static FOLD: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH moved AS (DELETE FROM report_pending RETURNING *) INSERT INTO report_days ({DAYS_COLUMNS}) {} \
             ORDER BY 1, 2, 3, 4 {FOLD_UPSERT}",
            pending_days("moved", "true")
        )
    });
    // A fold is small (about a second of changes): JIT compilation would cost more than it runs.
    tx.batch_execute("SET LOCAL jit = off").await?;
    if wait {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FOLD_LOCK]).await?;
    } else if !tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&FOLD_LOCK]).await?.try_get::<_, bool>(0)? {
        return Ok(None);
    }
    Ok(Some(tx.execute(FOLD.as_str(), &[]).await?))
}

/// `burst`: what [`Queueing::burst`] said of the batch.
async fn commit_batch(
    pool: &Pool,
    writes: &[&Write],
    scoring: &Scoring,
    burst: Option<bool>,
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_batch(pool, writes, scoring, burst).await {
            Ok(results) => return Ok(results),
            Err(Failure::Conflict(e)) if attempt < ATTEMPTS => {
                tracing::warn!(error = %describe(&e), attempt, "write batch conflicted with another process; retrying");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
            }
            Err(Failure::Conflict(e) | Failure::Database(e)) => return Err(StoreError::Unavailable(describe(&e))),
            Err(Failure::Refused(e)) => return Err(e),
        }
    }
}

/// Writes a batch in one transaction. Most batches refuse nothing, so they are written first
/// without savepoints: each savepoint that writes is a subtransaction, a round trip there and
/// back, and past 64 of them in one transaction every session's snapshots slow down. When a write
/// is refused, the transaction is dropped (rolled back) and the batch written again with a
/// savepoint around each write, so that the refusal undoes that write alone.
async fn try_batch(
    pool: &Pool,
    writes: &[&Write],
    scoring: &Scoring,
    burst: Option<bool>,
) -> Result<Vec<Result<Written, StoreError>>, Failure> {
    match write_batch(pool, writes, scoring, burst, false).await {
        Err(Failure::Refused(e)) if writes.len() == 1 => Ok(vec![Err(e)]),
        Err(Failure::Refused(_)) => write_batch(pool, writes, scoring, burst, true).await,
        written => written,
    }
}

/// One attempt at a batch; `isolate`: a savepoint around each write, whose refusal is then
/// that write's answer (without it, the first refusal fails the attempt).
async fn write_batch(
    pool: &Pool,
    writes: &[&Write],
    scoring: &Scoring,
    burst: Option<bool>,
    isolate: bool,
) -> Result<Vec<Result<Written, StoreError>>, Failure> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| Failure::Refused(StoreError::Unavailable(format!("cannot reach PostgreSQL: {e}"))))?;
    let tx = client.transaction().await?;
    // Issue #8: a batch's pushes are queued in a burst, or behind pushes queued earlier.
    let queue = match burst {
        None => false,
        Some(true) => true,
        Some(false) => tx.query_one(QUEUED_WAITING, &[]).await?.try_get(0)?,
    };
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        if !isolate {
            results.push(Ok(apply(&tx, write, scoring, queue).await?));
            continue;
        }
        tx.batch_execute("SAVEPOINT job").await?;
        match apply(&tx, write, scoring, queue).await {
            Ok(written) => {
                tx.batch_execute("RELEASE SAVEPOINT job").await?;
                results.push(Ok(written));
            }
            Err(Failure::Refused(e)) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job").await?;
                results.push(Err(e));
            }
            Err(other) => return Err(other),
        }
    }
    tx.commit().await?;
    Ok(results)
}

async fn apply(tx: &Transaction<'_>, write: &Write, scoring: &Scoring, queue: bool) -> Result<Written, Failure> {
    match write {
        Write::Push(push) => record_push(tx, push, scoring, queue && has_cards(push)).await.map(Written::Push),
        Write::VendorPush { push, vendor } => {
            record_vendor_push(tx, push, vendor, scoring, queue).await.map(Written::VendorPush)
        }
        Write::FoldReports => Ok(Written::Folded(fold_report_days(tx, true).await?.unwrap_or(0))),
        Write::Audit(e) => {
            tx.execute(
                "INSERT INTO audit_log (at, user_id, actor, action, target, detail, ip) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&millis(e.at), &e.user_id, &e.actor, &e.action, &e.target, &e.detail, &e.ip],
            )
            .await?;
            Ok(Written::Done)
        }
        Write::SpooledPush { spool_id, push } => {
            if let Some(row) = tx.query_opt("SELECT id FROM pushes WHERE spool_id = $1", &[spool_id]).await? {
                return stored_push(tx, row.try_get(0)?).await.map(Written::Push);
            }
            let recorded = record_push(tx, push, scoring, queue && has_cards(push)).await?;
            tx.execute("UPDATE pushes SET spool_id = $2 WHERE id = $1", &[&recorded.push_id, spool_id]).await?;
            Ok(Written::Push(recorded))
        }
        Write::Replay { push_id, result, at } => {
            replay_push(tx, *push_id, result, *at, scoring).await.map(Written::Push)
        }
        Write::ApplyQueued(pushes) => {
            let mut applied = Vec::with_capacity(pushes.len());
            for push in pushes {
                applied.push(apply_queued(tx, push, scoring).await?);
            }
            Ok(Written::Pushes(applied))
        }
        Write::MergeLeads { keep, merge, by, at } => {
            merge_leads(tx, *keep, *merge, *by, millis(*at), scoring).await.map(Written::Event)
        }
        Write::UnmergeLead { merged, by, at } => {
            unmerge_lead(tx, *merged, *by, millis(*at), scoring).await.map(Written::Event)
        }
        Write::DismissDuplicate { lead, other, by, at } => {
            dismiss_duplicate(tx, *lead, *other, *by, millis(*at)).await.map(Written::Event)
        }
        Write::IndexLead { lead_id, contact_keys, intent_words } => {
            index_contacts(tx, *lead_id, contact_keys, None).await?;
            rescore_lead(tx, *lead_id, intent_words.clone(), scoring).await?;
            Ok(Written::Done)
        }
        Write::Setting { key, value } => {
            let stmt = tx
                .prepare_cached("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .await?;
            tx.execute(&stmt, &[key, value]).await?;
            let row = tx.query_one("SELECT value FROM settings WHERE key = $1", &[key]).await?;
            Ok(Written::Setting(row.try_get(0)?))
        }
        Write::SetSetting { key, value: Some(value) } => {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[key, value],
            )
            .await?;
            Ok(Written::Done)
        }
        Write::SetSetting { key, value: None } => {
            tx.execute("DELETE FROM settings WHERE key = $1", &[key]).await?;
            Ok(Written::Done)
        }
        // `copy_in` writes directly in a transaction of its own (nothing else writes during a copy).
        Write::Import { .. } => {
            Err(Failure::Refused(StoreError::Unavailable("imports do not go through the PostgreSQL writer".into())))
        }
        Write::CreateUser { name, role, password_hash, at } => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (name) DO NOTHING RETURNING id",
                )
                .await?;
            let at = millis(*at);
            let row = tx.query_opt(&stmt, &[name, &role.as_str(), password_hash, &at]).await?.ok_or_else(|| {
                Failure::Refused(StoreError::Conflict(format!("a user named \"{name}\" exists already")))
            })?;
            Ok(Written::User(User {
                id: row.try_get(0)?,
                name: name.clone(),
                role: *role,
                password_hash: password_hash.clone(),
                disabled: false,
                created_at: at,
            }))
        }
        Write::UpdateUser { id, change } => {
            let changed = match change {
                UserChange::Disabled(d) => tx.execute("UPDATE users SET disabled = $2 WHERE id = $1", &[id, d]).await?,
                UserChange::Password(hash) => {
                    tx.execute("UPDATE users SET password_hash = $2 WHERE id = $1", &[id, hash]).await?
                }
                UserChange::ApiToken(hash) => {
                    tx.execute("UPDATE users SET api_token_hash = $2 WHERE id = $1", &[id, hash]).await?
                }
            };
            if changed == 0 {
                return Err(Failure::Refused(StoreError::NotFound(format!("user {id}"))));
            }
            if matches!(change, UserChange::Disabled(true) | UserChange::Password(_)) {
                tx.execute("DELETE FROM sessions WHERE user_id = $1", &[id]).await?;
            }
            Ok(Written::Done)
        }
        Write::CreateSession(s) => {
            let (created, expires) = (millis(s.created_at), millis(s.expires_at));
            tx.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&s.token_hash, &s.user_id, &s.csrf, &created, &expires],
            )
            .await?;
            // Expired sessions go whenever a new one is made.
            tx.execute("DELETE FROM sessions WHERE expires_at <= $1", &[&created]).await?;
            Ok(Written::Done)
        }
        Write::DeleteSession { token_hash } => {
            tx.execute("DELETE FROM sessions WHERE token_hash = $1", &[token_hash]).await?;
            Ok(Written::Done)
        }
        Write::UpdateLead { lead_id, by, update, at } => update_lead(tx, *lead_id, *by, update, millis(*at)).await,
        Write::Outbox(w) => Ok(super::outbox::apply(tx, w).await?),
        Write::Export(e) => {
            let columns = serde_json::json!(e.columns);
            let row = tx
                .query_one(
                    "INSERT INTO exports (at, user_id, actor, via, format, columns, filter, rows, completed)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    &[
                        &millis(e.at),
                        &e.user_id,
                        &e.actor,
                        &e.via,
                        &e.format,
                        &columns,
                        &e.filter,
                        &e.rows,
                        &e.completed,
                    ],
                )
                .await?;
            Ok(Written::Id(row.try_get(0)?))
        }
    }
}

async fn update_lead(
    tx: &Transaction<'_>,
    lead_id: i64,
    by: Actor,
    update: &LeadUpdate,
    at: Instant,
) -> Result<Written, Failure> {
    // FOR UPDATE: another instance's change to this lead waits, so a claim is decided once.
    let row = tx
        .query_opt("SELECT status, owner_id FROM leads WHERE id = $1 FOR UPDATE", &[&lead_id])
        .await?
        .ok_or_else(|| Failure::Refused(StoreError::NotFound(format!("lead {lead_id}"))))?;
    let status = LeadStatus::parse(row.try_get(0)?).unwrap_or(LeadStatus::New);
    let owner: Option<i64> = row.try_get(1)?;
    let change = plan_update(update, by, status, owner).map_err(Failure::Refused)?;
    match &change {
        LeadChange::Status { to, reason, .. } => {
            tx.execute(
                "UPDATE leads SET status = $2, status_reason = $3 WHERE id = $1",
                &[&lead_id, &to.as_str(), reason],
            )
            .await?;
        }
        LeadChange::Owner { to, .. } => {
            tx.execute("UPDATE leads SET owner_id = $2 WHERE id = $1", &[&lead_id, to]).await?;
        }
        _ => {}
    }
    let detail = change_detail(&change);
    let row = tx
        .query_one(
            "INSERT INTO lead_events (lead_id, at, user_id, kind, detail) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&lead_id, &at, &by.user_id, &change.kind(), &detail],
        )
        .await?;
    super::outbox::lead_changed(tx, lead_id, by, &change, at).await?; // issue #6: outbound event
    Ok(Written::Event(LeadEvent { id: row.try_get(0)?, lead_id, at, user_id: Some(by.user_id), change }))
}

/// `queued`: the push is only kept (outcome `queued`); [`apply_queued`] builds its leads.
async fn record_push(
    tx: &Transaction<'_>,
    push: &NewPush,
    scoring: &Scoring,
    queued: bool,
) -> Result<PushRecorded, Failure> {
    let (outcome, error, accepted, ignored) = summarize(&push.result);
    let outcome = if queued { PushOutcomeKind::Queued } else { outcome };
    let received_at = millis(push.received_at);
    let stmt = tx
        .prepare_cached(
            "INSERT INTO pushes (source, received_at, content_type, body, outcome, error, accepted, ignored, query)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .await?;
    let row = tx
        .query_one(
            &stmt,
            &[
                &push.source,
                &received_at,
                &push.content_type,
                &push.body,
                &outcome.as_str(),
                &error,
                &(accepted as i64),
                &(ignored as i64),
                &push.query,
            ],
        )
        .await?;
    let push_id: i64 = row.try_get(0)?;
    // Issue #11: the push's relays, in its transaction.
    super::outbox::push_recorded(tx, push_id, &push.source, !relayable(push)).await?;
    if queued {
        return Ok(PushRecorded { push_id, outcome, accepted, ignored, leads: Vec::new() });
    }
    let how = Apply { push_id, source: &push.source, received: received_at, at: received_at, fill_only: false };
    let leads = store_cards(tx, &how, &push.result, scoring).await?;
    Ok(PushRecorded { push_id, outcome, accepted, ignored, leads })
}

/// Issue #11: a vendor's push. Its event id is claimed before anything is stored: a copy of the
/// event being stored by another process at the same moment makes the claim wait for that
/// transaction, then find its row (a new statement sees what committed) and store nothing. Then
/// the push is stored and the claim names it, then its visitors' events go into the timelines of
/// their leads: one transaction.
async fn record_vendor_push(
    tx: &Transaction<'_>,
    push: &NewPush,
    vendor: &VendorPush,
    scoring: &Scoring,
    queue: bool,
) -> Result<VendorRecorded, Failure> {
    let received_at = millis(push.received_at);
    if let Some(event_id) = &vendor.event_id {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO vendor_events (source, event_id, push_id, received_at) VALUES ($1, $2, NULL, $3)
                 ON CONFLICT (source, event_id) DO NOTHING",
            )
            .await?;
        let claimed = tx.execute(&stmt, &[&push.source, event_id, &received_at]).await? == 1;
        if !claimed {
            // The push that carried it first (if it is still in the push log).
            let stmt = tx
                .prepare_cached(
                    "SELECT p.id FROM vendor_events v JOIN pushes p ON p.id = v.push_id
                     WHERE v.source = $1 AND v.event_id = $2",
                )
                .await?;
            if let Some(row) = tx.query_opt(&stmt, &[&push.source, event_id]).await? {
                let recorded = stored_push(tx, row.try_get(0)?).await?;
                return Ok(VendorRecorded { recorded, retry: true, events: Vec::new() });
            }
        }
    }
    // Issue #8: a visitor's event queues too (its lead may be among the queued pushes).
    let queued = queue && (has_cards(push) || !vendor.events.is_empty());
    let recorded = record_push(tx, push, scoring, queued).await?;
    if let Some(event_id) = &vendor.event_id {
        let stmt = tx
            .prepare_cached(
                "UPDATE vendor_events SET push_id = $3, received_at = $4 WHERE source = $1 AND event_id = $2",
            )
            .await?;
        tx.execute(&stmt, &[&push.source, event_id, &recorded.push_id, &received_at]).await?;
    }
    let events = if queued {
        Vec::new()
    } else {
        record_visitor_events(tx, &push.source, recorded.push_id, received_at, &vendor.events).await?
    };
    Ok(VendorRecorded { recorded, retry: false, events })
}

/// Issue #11: visitors' events into the timelines of their leads (those that have one).
async fn record_visitor_events(
    tx: &Transaction<'_>,
    source: &str,
    push_id: i64,
    at: Instant,
    visitor_events: &[xiansuo_domain::VisitorEvent],
) -> Result<Vec<LeadEvent>, Failure> {
    let mut events = Vec::new();
    for e in visitor_events {
        let stmt = tx
            .prepare_cached("SELECT id FROM leads WHERE source = $1 AND company_id = $2 AND visitor_static_id = $3")
            .await?;
        if let Some(row) = tx.query_opt(&stmt, &[&source, &e.company_id, &e.visitor_id]).await? {
            let change = LeadChange::VendorEvent {
                vendor: e.vendor.clone(),
                event: e.event.clone(),
                text: e.text.clone(),
                push_id,
            };
            events.push(record_event(tx, row.try_get(0)?, None, &change, at).await?);
        }
    }
    Ok(events)
}

/// What a push stored, read back (a spool entry drained a second time).
async fn stored_push(tx: &Transaction<'_>, push_id: i64) -> Result<PushRecorded, Failure> {
    let row = tx.query_one("SELECT outcome, accepted, ignored FROM pushes WHERE id = $1", &[&push_id]).await?;
    let (outcome, accepted, ignored): (String, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let mut leads = Vec::new();
    for r in
        tx.query("SELECT lead_id, created FROM push_leads WHERE push_id = $1 ORDER BY lead_id", &[&push_id]).await?
    {
        leads.push(LeadWritten { id: r.try_get(0)?, created: r.try_get(1)?, duplicates: Vec::new() });
    }
    Ok(PushRecorded {
        push_id,
        outcome: xiansuo_domain::PushOutcomeKind::parse(&outcome).unwrap_or(xiansuo_domain::PushOutcomeKind::Accepted),
        accepted: usize::try_from(accepted).unwrap_or(0),
        ignored: usize::try_from(ignored).unwrap_or(0),
        leads,
    })
}

async fn replay_push(
    tx: &Transaction<'_>,
    push_id: i64,
    result: &PushResult,
    at: Instant,
    scoring: &Scoring,
) -> Result<PushRecorded, Failure> {
    let queued = tx.query_opt("SELECT outcome = 'queued' FROM pushes WHERE id = $1", &[&push_id]).await?;
    if queued.map(|row| row.try_get::<_, bool>(0)).transpose()? == Some(true) {
        return Err(Failure::Refused(queued_conflict(push_id)));
    }
    let (outcome, error, accepted, ignored) = summarize(result);
    let at = millis(at);
    let stmt = tx
        .prepare_cached(
            "UPDATE pushes SET outcome = $2, error = $3, accepted = $4, ignored = $5,
                    replayed_at = $6, replay_count = replay_count + 1
             WHERE id = $1 RETURNING source, received_at",
        )
        .await?;
    let row = tx
        .query_opt(&stmt, &[&push_id, &outcome.as_str(), &error, &(accepted as i64), &(ignored as i64), &at])
        .await?
        .ok_or_else(|| Failure::Refused(StoreError::NotFound(format!("push {push_id}"))))?;
    let (source, received): (String, Instant) = (row.try_get(0)?, row.try_get(1)?);
    // A replayed body is older than what later pushes stored: it fills gaps, never overwrites;
    // a lead it creates was received when the push was.
    let how = Apply { push_id, source: &source, received, at, fill_only: true };
    let leads = store_cards(tx, &how, result, scoring).await?;
    Ok(PushRecorded { push_id, outcome, accepted, ignored, leads })
}

/// Issue #8: builds a queued push's leads from its cards (decoded again from the stored body),
/// as if it had just arrived — the leads are received when the push was — and sets its outcome.
/// A push no longer queued (applied already) is answered as stored: applying is idempotent.
async fn apply_queued(tx: &Transaction<'_>, push: &QueuedPush, scoring: &Scoring) -> Result<PushRecorded, Failure> {
    let QueuedPush { push_id, ref result, ref events } = *push;
    let (outcome, error, accepted, ignored) = summarize(result);
    let stmt = tx
        .prepare_cached(
            "UPDATE pushes SET outcome = $2, error = $3, accepted = $4, ignored = $5
             WHERE id = $1 AND outcome = 'queued' RETURNING source, received_at",
        )
        .await?;
    let row =
        tx.query_opt(&stmt, &[&push_id, &outcome.as_str(), &error, &(accepted as i64), &(ignored as i64)]).await?;
    let Some(row) = row else {
        if tx.query_opt("SELECT 1 FROM pushes WHERE id = $1", &[&push_id]).await?.is_none() {
            return Err(Failure::Refused(StoreError::NotFound(format!("push {push_id}"))));
        }
        return stored_push(tx, push_id).await;
    };
    let (source, received): (String, Instant) = (row.try_get(0)?, row.try_get(1)?);
    let how = Apply { push_id, source: &source, received, at: received, fill_only: false };
    let leads = store_cards(tx, &how, result, scoring).await?;
    record_visitor_events(tx, &source, push_id, received, events).await?;
    Ok(PushRecorded { push_id, outcome, accepted, ignored, leads })
}

async fn store_cards(
    tx: &Transaction<'_>,
    how: &Apply<'_>,
    result: &PushResult,
    scoring: &Scoring,
) -> Result<Vec<LeadWritten>, Failure> {
    let PushResult::Cards { cards, .. } = result else { return Ok(Vec::new()) };
    let mut written = Vec::with_capacity(cards.len());
    for card in cards {
        written.push(store_card(tx, how, card, scoring).await?);
    }
    Ok(written)
}

/// `INSERT … ON CONFLICT DO UPDATE` of a lead: an empty (NULL) value never erases, `extra`
/// merges, and `xmax = 0` tells an insert from an update.
/// Filling only (a replay), the stored value comes first. Contact fields take a contact found
/// in the chat (`$n+5…`) only while they are empty, and mark it; a value on a card replaces it.
fn upsert_lead_sql(fill_only: bool) -> String {
    let n = FIELDS.len();
    let columns: Vec<&str> = FIELDS.iter().map(|f| f.key).collect();
    let found = |c: &str| n + 5 + CONTACT_FIELDS.iter().position(|f| *f == c).unwrap_or(0);
    let mut insert_columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let mut values: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if CONTACT_FIELDS.contains(c) {
                format!("COALESCE(${}::text, ${}::text)", i + 1, found(c))
            } else {
                format!("${}", i + 1)
            }
        })
        .collect();
    for c in CONTACT_FIELDS {
        let v = columns.iter().position(|k| *k == c).unwrap_or(0) + 1;
        insert_columns.push(format!("{c}_from_chat"));
        values.push(format!("(${v}::text IS NULL AND ${}::text IS NOT NULL)", found(c)));
    }
    values.extend((n + 1..=n + 4).map(|i| format!("${i}")));
    // A new lead is inserted with its counts and score ([`NewLeadTally`]); an update leaves them
    // to the statements that count what it adds.
    values.extend((n + 10..=n + 15).map(|i| format!("${i}")));
    let sets: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let v = i + 1;
            match (CONTACT_FIELDS.contains(c), fill_only) {
                (true, false) => format!(
                    "{c} = COALESCE(${v}::text, leads.{c}, ${f}::text), {c}_from_chat = CASE WHEN ${v}::text IS NOT NULL THEN false \
                     WHEN leads.{c} IS NULL AND ${f}::text IS NOT NULL THEN true ELSE leads.{c}_from_chat END",
                    f = found(c)
                ),
                (true, true) => format!(
                    "{c} = COALESCE(leads.{c}, ${v}::text, ${f}::text), {c}_from_chat = CASE WHEN leads.{c} IS NOT NULL THEN leads.{c}_from_chat \
                     WHEN ${v}::text IS NOT NULL THEN false WHEN ${f}::text IS NOT NULL THEN true ELSE leads.{c}_from_chat END",
                    f = found(c)
                ),
                (false, true) => format!("{c} = COALESCE(leads.{c}, EXCLUDED.{c})"),
                (false, false) => format!("{c} = COALESCE(EXCLUDED.{c}, leads.{c})"),
            }
        })
        .collect();
    let extra = if fill_only { "EXCLUDED.extra || leads.extra" } else { "leads.extra || EXCLUDED.extra" };
    format!(
        "INSERT INTO leads ({}, source, extra, received_at, updated_at, push_count, message_count,
             visitor_message_count, score, score_reasons, intent_words) VALUES ({})
         ON CONFLICT (source, company_id, visitor_static_id) DO UPDATE SET {},
             extra = {extra}, updated_at = EXCLUDED.updated_at
         RETURNING id, (xmax = 0) AS created, merged_into",
        insert_columns.join(", "),
        values.join(", "),
        sets.join(", ")
    )
}

/// The chats of a lead stored before: `seq` keeps the order chats were first seen in, within
/// this push too. A statement of its own, after the upsert, so that it sees every chat committed
/// by then.
const CHATS_OF_STORED_LEAD: &str = "INSERT INTO lead_chats (lead_id, chat_id, first_seen_at, seq)
     SELECT $1, u.c, $3, (SELECT COALESCE(MAX(seq), 0) FROM lead_chats WHERE lead_id = $1) + u.n
     FROM unnest($2::text[]) WITH ORDINALITY AS u(c, n)
     ON CONFLICT DO NOTHING";

/// One statement for what every card writes (issue 8: PostgreSQL's time per push is its number
/// of statements, each a round trip and an executor start): the lead's upsert
/// ([`upsert_lead_sql`]), and with its id the push's link, a new lead's chats and the messages,
/// each `ON CONFLICT DO NOTHING`. Returns the lead's id, whether it was inserted, what it is merged
/// into, whether the push was linked now, and the messages added (all, and the visitor's).
/// Parameters after the upsert's (`n + 15`): the push, the chat ids, the time the chats were
/// seen, the messages' eight columns as arrays, and the visitor's sender value.
fn store_card_sql(fill_only: bool) -> String {
    let n = FIELDS.len();
    let p = |i: usize| format!("${}", n + 15 + i);
    format!(
        "WITH lead AS ({upsert}),
         linked AS (
             INSERT INTO push_leads (push_id, lead_id, created) SELECT {push}, id, created FROM lead
             ON CONFLICT DO NOTHING RETURNING 1),
         chats AS (
             -- A new lead's chats, numbered in the order first seen. A lead that existed has its
             -- chats added by a statement of their own (CHATS_OF_STORED_LEAD): this statement's
             -- snapshot predates the upsert's wait for another writer's change of the same lead,
             -- and would not see the chats that writer added.
             INSERT INTO lead_chats (lead_id, chat_id, first_seen_at, seq)
             SELECT lead.id, u.c, {seen}, u.n
             FROM lead, unnest({chat_ids}::text[]) WITH ORDINALITY AS u(c, n)
             WHERE lead.created
             ON CONFLICT DO NOTHING),
         added AS (
             INSERT INTO messages (lead_id, recorder_id, chat_id, sender, from_id, message, type, create_time, extra)
             SELECT lead.id, m.* FROM lead, unnest({message_columns}) AS m
             ON CONFLICT (lead_id, recorder_id) DO NOTHING
             RETURNING sender)
         SELECT lead.id, lead.created, lead.merged_into, (SELECT count(*) FROM linked),
                (SELECT count(*) FROM added), (SELECT count(*) FROM added WHERE sender = {visitor})
         FROM lead",
        upsert = upsert_lead_sql(fill_only),
        push = p(1),
        chat_ids = p(2),
        seen = p(3),
        // recorder_id, chat_id, sender, from_id, message, type, create_time, extra
        message_columns = ["text", "text", "text", "text", "text", "text", "timestamptz", "jsonb"]
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{}::{t}[]", p(4 + i)))
            .collect::<Vec<_>>()
            .join(", "),
        visitor = p(12),
    )
}

async fn store_card(
    tx: &Transaction<'_>,
    how: &Apply<'_>,
    card: &Card,
    scoring: &Scoring,
) -> Result<LeadWritten, Failure> {
    let (push_id, at) = (how.push_id, how.at);
    if card.company_id().is_none() || card.visitor_static_id().is_none() {
        // The decoder refuses such cards; this guards the identity key all the same.
        return Err(Failure::Refused(StoreError::Unavailable(
            "a card without company_id or visitor_static_id reached the store".into(),
        )));
    }
    let texts: Vec<Option<&String>> = FIELDS.iter().map(|f| card.fields.get(f.key)).collect();
    let times: Vec<Option<Instant>> = FIELDS.iter().map(|f| card.times.get(f.key).map(|t| millis(*t))).collect();
    let extra =
        serde_json::to_value(&card.extra).map_err(|e| Failure::Refused(StoreError::Unavailable(e.to_string())))?;
    let source = how.source.to_string();
    let mut params: Vec<&(dyn ToSql + Sync)> = FIELDS
        .iter()
        .enumerate()
        .map(|(i, f)| match f.kind {
            FieldKind::Text => &texts[i] as &(dyn ToSql + Sync),
            FieldKind::Time => &times[i] as &(dyn ToSql + Sync),
        })
        .collect();
    params.push(&source);
    params.push(&extra);
    params.push(&how.received);
    params.push(&at);
    let found: Vec<Option<&String>> = CONTACT_FIELDS.iter().map(|c| card.found_in_chat.get(c)).collect();
    params.extend(found.iter().map(|f| f as &(dyn ToSql + Sync)));
    // Used only if the lead is new (the insert); an update ignores them.
    let tally = NewLeadTally::of(card);
    let (score, words) = rescore(tally.score_row(card), scoring.intent_words_in(&card.messages), scoring);
    let (score_value, one) = (i64::from(score.value), 1i64);
    let reasons =
        serde_json::to_value(&score.reasons).map_err(|e| Failure::Refused(StoreError::Unavailable(e.to_string())))?;
    let words = serde_json::to_value(&words).map_err(|e| Failure::Refused(StoreError::Unavailable(e.to_string())))?;
    params.extend([
        &one as &(dyn ToSql + Sync),
        &tally.messages,
        &tally.visitor_messages,
        &score_value,
        &reasons,
        &words,
    ]);
    let chat_ids: Vec<&str> =
        card.chat_id().into_iter().chain(card.messages.iter().filter_map(|m| m.chat_id.as_deref())).collect();
    let recorder_ids: Vec<&str> = card.messages.iter().map(|m| m.recorder_id.as_str()).collect();
    let chats: Vec<Option<&str>> = card.messages.iter().map(|m| m.chat_id.as_deref()).collect();
    let senders: Vec<&str> = card.messages.iter().map(|m| m.sender.as_str()).collect();
    let from_ids: Vec<Option<&str>> = card.messages.iter().map(|m| m.from_id.as_deref()).collect();
    let message_texts: Vec<&str> = card.messages.iter().map(|m| m.message.as_str()).collect();
    let kinds: Vec<Option<&str>> = card.messages.iter().map(|m| m.kind.as_deref()).collect();
    let created_at: Vec<Option<Instant>> = card.messages.iter().map(|m| m.create_time.map(millis)).collect();
    let extras: Vec<serde_json::Value> = card
        .messages
        .iter()
        .map(|m| serde_json::to_value(&m.extra).unwrap_or_else(|_| serde_json::json!({})))
        .collect();
    let visitor = Sender::Visitor.as_str();
    params.extend([
        &push_id as &(dyn ToSql + Sync),
        &chat_ids,
        &at,
        &recorder_ids,
        &chats,
        &senders,
        &from_ids,
        &message_texts,
        &kinds,
        &created_at,
        &extras,
        &visitor,
    ]);
    static SQL: LazyLock<[String; 2]> = LazyLock::new(|| [store_card_sql(false), store_card_sql(true)]);
    let stmt = tx.prepare_cached(&SQL[usize::from(how.fill_only)]).await?;
    let row = tx.query_one(&stmt, &params).await?;
    let (lead_id, created): (i64, bool) = (row.try_get(0)?, row.try_get(1)?);
    // The counts of a lead merged into another are counted on that one (and up) too.
    let counted = match row.try_get::<_, Option<i64>>(2)? {
        Some(_) => lineage(tx, lead_id).await?,
        None => Vec::new(),
    };
    let (linked, mut added, mut by_visitor): (i64, i64, i64) = (row.try_get(3)?, row.try_get(4)?, row.try_get(5)?);
    if !created && !chat_ids.is_empty() {
        let stmt = tx.prepare_cached(CHATS_OF_STORED_LEAD).await?;
        tx.execute(&stmt, &[&lead_id, &chat_ids, &at]).await?;
    }
    if linked == 1 && !created {
        let stmt = tx.prepare_cached("UPDATE leads SET push_count = push_count + 1 WHERE id = ANY($1)").await?;
        let ids: Vec<i64> = std::iter::once(lead_id).chain(counted.iter().copied()).collect();
        tx.execute(&stmt, &[&ids]).await?;
    }
    // A new lead counted its messages when inserted: only a difference is added.
    if created {
        added -= tally.messages;
        by_visitor -= tally.visitor_messages;
    }
    if added != 0 || by_visitor != 0 {
        let stmt = tx
            .prepare_cached(
                "UPDATE leads SET message_count = message_count + $2,
                        visitor_message_count = visitor_message_count + $3 WHERE id = ANY($1)",
            )
            .await?;
        let ids: Vec<i64> = std::iter::once(lead_id).chain(counted.iter().copied()).collect();
        tx.execute(&stmt, &[&ids, &added, &by_visitor]).await?;
    }
    let duplicates = index_contacts(tx, lead_id, &card.contact_keys, Some(at)).await?;
    if !created {
        rescore_lead(tx, lead_id, scoring.intent_words_in(&card.messages), scoring).await?;
    }
    super::outbox::card_stored(tx, how, lead_id, created, card).await?; // issue #6: assignment, outbound events
    Ok(LeadWritten { id: lead_id, created, duplicates })
}

/// The leads `id` is merged into, nearest first (empty for a lead not merged). Merges never
/// make a cycle; the bound only guards against a database edited by hand.
async fn lineage(tx: &Transaction<'_>, id: i64) -> Result<Vec<i64>, Failure> {
    let stmt = tx.prepare_cached("SELECT merged_into FROM leads WHERE id = $1").await?;
    let mut up = Vec::new();
    let mut current = id;
    while up.len() < 64 {
        let parent: Option<i64> = match tx.query_opt(&stmt, &[&current]).await? {
            Some(row) => row.try_get(0)?,
            None => None,
        };
        match parent {
            Some(p) if p != id && !up.contains(&p) => {
                up.push(p);
                current = p;
            }
            _ => break,
        }
    }
    Ok(up)
}

/// The lead a lead shows on: itself, or the lead it was merged into (at the top).
async fn root_of(tx: &Transaction<'_>, id: i64) -> Result<i64, Failure> {
    Ok(lineage(tx, id).await?.last().copied().unwrap_or(id))
}

/// The leads an admin said are not the same visitor as `lead`.
async fn dismissed_with(tx: &Transaction<'_>, lead: i64) -> Result<Vec<i64>, Failure> {
    let stmt = tx
        .prepare_cached(
            "SELECT lead_b FROM duplicate_dismissals WHERE lead_a = $1
             UNION SELECT lead_a FROM duplicate_dismissals WHERE lead_b = $1",
        )
        .await?;
    Ok(tx.query(&stmt, &[&lead]).await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
}

/// Indexes the card's contacts under the lead; returns the other leads (as shown: not merged
/// away, not dismissed) sharing one, and records newly shared contacts in the timeline.
/// With `record: None` (a reindex), nothing goes to the timeline.
async fn index_contacts(
    tx: &Transaction<'_>,
    lead_id: i64,
    contact_keys: &[(&'static str, String)],
    record: Option<Instant>,
) -> Result<Vec<i64>, Failure> {
    if contact_keys.is_empty() {
        return Ok(Vec::new());
    }
    let kinds: Vec<&str> = contact_keys.iter().map(|(k, _)| *k).collect();
    let values: Vec<&str> = contact_keys.iter().map(|(_, v)| v.as_str()).collect();
    // One statement (issue 8: a round trip less for every card with a contact): the contacts
    // stored now (`added`), then the leads sharing a contact, newest first, with what they were
    // merged into (rare: only those are followed up to the lead they show on). Bounded: a value
    // that many leads share is a placeholder ([`COMMON_CONTACT_LEADS`]) and costs the same as
    // any other. The lead's own contacts are not among the sharing ones (`lead_id <> $3`).
    let stmt = tx
        .prepare_cached(&format!(
            "WITH added AS (
                 INSERT INTO lead_contacts (kind, value, lead_id) SELECT k, v, $3 FROM unnest($1::text[], $2::text[]) AS u(k, v)
                 ON CONFLICT DO NOTHING RETURNING kind, value)
             SELECT true AS added, NULL::bigint AS lead_id, kind, value, NULL::bigint AS merged_into, 0::bigint AS sharing
             FROM added
             UNION ALL
             SELECT false, c.lead_id, c.kind, c.value, l.merged_into, count(*) OVER (PARTITION BY c.kind, c.value)
             FROM unnest($1::text[], $2::text[]) AS u(k, v)
             CROSS JOIN LATERAL (SELECT lead_id, kind, value FROM lead_contacts
                                 WHERE kind = u.k AND value = u.v AND lead_id <> $3
                                 ORDER BY lead_id DESC LIMIT {COMMON_CONTACT_LEADS}) c
             JOIN leads l ON l.id = c.lead_id
             ORDER BY added DESC, lead_id DESC"
        ))
        .await?;
    let rows = tx.query(&stmt, &[&kinds, &values, &lead_id]).await?;
    let mut new: Vec<(String, String)> = Vec::new();
    let mut others = Vec::new();
    for row in rows {
        if row.try_get::<_, bool>(0)? {
            new.push((row.try_get(2)?, row.try_get(3)?));
        } else if row.try_get::<_, i64>(5).is_ok_and(|n| n < COMMON_CONTACT_LEADS as i64) {
            others.push(row);
        }
    }
    if others.is_empty() {
        return Ok(Vec::new());
    }
    let me = root_of(tx, lead_id).await?;
    let not_duplicates = dismissed_with(tx, me).await?;
    let mut duplicates: Vec<i64> = Vec::new();
    let mut newly: Vec<(i64, &'static str, String)> = Vec::new();
    for row in others {
        let (other, kind, value): (i64, String, String) = (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
        let other = match row.try_get::<_, Option<i64>>(4)? {
            Some(_) => root_of(tx, other).await?,
            None => other,
        };
        if other == me || not_duplicates.contains(&other) {
            continue;
        }
        if !duplicates.contains(&other) {
            duplicates.push(other);
        }
        if let Some(kind) = contact_kind(&kind)
            && new.iter().any(|(k, v)| k == kind && *v == value)
        {
            newly.push((other, kind, value));
        }
    }
    if let (Some(at), Some(change)) = (record, duplicate_change(&newly)) {
        record_event(tx, lead_id, None, &change, at).await?;
    }
    Ok(duplicates)
}

async fn record_event(
    tx: &Transaction<'_>,
    lead_id: i64,
    user_id: Option<i64>,
    change: &LeadChange,
    at: Instant,
) -> Result<LeadEvent, Failure> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO lead_events (lead_id, at, user_id, kind, detail) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .await?;
    let row = tx.query_one(&stmt, &[&lead_id, &at, &user_id, &change.kind(), &change_detail(change)]).await?;
    Ok(LeadEvent { id: row.try_get(0)?, lead_id, at, user_id, change: change.clone() })
}

/// Recomputes a lead's score from what is stored, adding the intent words of new messages.
async fn rescore_lead(
    tx: &Transaction<'_>,
    lead_id: i64,
    new_words: Vec<String>,
    scoring: &Scoring,
) -> Result<(), Failure> {
    let stmt = tx
        .prepare_cached(
            "SELECT intent_words, visitor_message_count,
                    (SELECT count(*) FROM lead_chats WHERE lead_id = l.id), ntag_id, ntag_name,
                    mobile_from_chat OR tel_from_chat OR weixin_from_chat OR qq_from_chat OR email_from_chat,
                    EXISTS (SELECT 1 FROM lead_contacts WHERE lead_id = l.id AND kind = 'mobile'),
                    EXISTS (SELECT 1 FROM lead_contacts WHERE lead_id = l.id AND kind <> 'mobile')
             FROM leads l WHERE id = $1",
        )
        .await?;
    let row = tx
        .query_opt(&stmt, &[&lead_id])
        .await?
        .ok_or_else(|| Failure::Refused(StoreError::NotFound(format!("lead {lead_id}"))))?;
    let row = ScoreRow {
        intent_words: serde_json::from_value(row.try_get(0)?).unwrap_or_default(),
        visitor_messages: row.try_get(1)?,
        chats: row.try_get(2)?,
        tag_id: row.try_get(3)?,
        tag_name: row.try_get(4)?,
        found_in_chat: row.try_get(5)?,
        has_mobile: row.try_get(6)?,
        has_other_contact: row.try_get(7)?,
    };
    let (score, words) = rescore(row, new_words, scoring);
    let reasons = serde_json::to_value(&score.reasons).unwrap_or_else(|_| serde_json::json!([]));
    let words = serde_json::to_value(&words).unwrap_or_else(|_| serde_json::json!([]));
    let stmt =
        tx.prepare_cached("UPDATE leads SET score = $2, score_reasons = $3, intent_words = $4 WHERE id = $1").await?;
    tx.execute(&stmt, &[&lead_id, &i64::from(score.value), &reasons, &words]).await?;
    Ok(())
}

async fn load_lead(tx: &Transaction<'_>, id: i64) -> Result<Lead, Failure> {
    // FOR UPDATE: a merge and a push to the same lead from another instance take turns.
    let sql = format!("SELECT {} FROM leads l WHERE l.id = $1 FOR UPDATE", super::lead_select());
    let row = tx
        .query_opt(&sql, &[&id])
        .await?
        .ok_or_else(|| Failure::Refused(StoreError::NotFound(format!("lead {id}"))))?;
    super::lead_from_row(&row).map_err(Failure::Refused)
}

/// Adds (`sign` 1) or takes away (-1) `from`'s counts on each lead of `to`.
async fn move_counts(tx: &Transaction<'_>, from: &Lead, to: &[i64], sign: i64) -> Result<(), Failure> {
    tx.execute(
        "UPDATE leads SET push_count = push_count + $2, message_count = message_count + $3,
                visitor_message_count = visitor_message_count + $4 WHERE id = ANY($1)",
        &[&to, &(sign * from.push_count), &(sign * from.message_count), &(sign * from.visitor_message_count)],
    )
    .await?;
    Ok(())
}

async fn merge_leads(
    tx: &Transaction<'_>,
    keep: i64,
    merge: i64,
    by: Actor,
    at: Instant,
    scoring: &Scoring,
) -> Result<LeadEvent, Failure> {
    let (first, second) = (keep.min(merge), keep.max(merge));
    // Locked in id order, so two merges of the same pair cannot deadlock.
    let a = load_lead(tx, first).await?;
    let b = load_lead(tx, second).await?;
    let (kept, merged) = if a.id == keep { (a, b) } else { (b, a) };
    let filled = plan_merge(by, &kept, &merged).map_err(Failure::Refused)?;
    for field in &filled {
        // The column names come from FIELDS, never from input.
        tx.execute(
            &format!("UPDATE leads SET {field} = (SELECT {field} FROM leads WHERE id = $2) WHERE id = $1"),
            &[&keep, &merge],
        )
        .await?;
    }
    move_counts(tx, &merged, &[keep], 1).await?;
    tx.execute("UPDATE leads SET merged_into = $2 WHERE id = $1", &[&merge, &keep]).await?;
    let filled = filled.iter().map(|f| f.to_string()).collect();
    record_event(tx, merge, Some(by.user_id), &LeadChange::MergedInto { into: keep }, at).await?;
    let change = serde_json::json!({ "merged_lead_id": merge, "filled": filled, "by_user_id": by.user_id });
    let event = record_event(tx, keep, Some(by.user_id), &LeadChange::Merged { other: merge, filled }, at).await?;
    rescore_lead(tx, keep, Vec::new(), scoring).await?;
    // Issue #6: `lead.merged` goes out through the outbox, in this transaction.
    super::outbox::enqueue(tx, xiansuo_domain::routing::EventKind::Merged, keep, change).await?;
    Ok(event)
}

async fn unmerge_lead(
    tx: &Transaction<'_>,
    merged: i64,
    by: Actor,
    at: Instant,
    scoring: &Scoring,
) -> Result<LeadEvent, Failure> {
    if !by.admin {
        return Err(Failure::Refused(StoreError::Conflict("只有管理员可以撤销合并".into())));
    }
    let lead = load_lead(tx, merged).await?;
    let Some(parent) = lead.merged_into else {
        return Err(Failure::Refused(StoreError::Conflict(format!("线索 {merged} 没有被合并"))));
    };
    let rows = tx
        .query(
            "SELECT id, lead_id, at, user_id, kind, detail FROM lead_events
             WHERE lead_id = $1 AND kind = 'merged' ORDER BY id DESC",
            &[&parent],
        )
        .await?;
    let merges: Vec<LeadEvent> = rows.iter().filter_map(|r| super::event_from_row(r).ok().flatten()).collect();
    for field in filled_by_merge(&merges, merged) {
        // Only what the merge filled, and only while it still holds the merged lead's value.
        if let Some(field) = FIELDS.iter().find(|f| f.key == field).map(|f| f.key) {
            tx.execute(
                &format!(
                    "UPDATE leads SET {field} = NULL WHERE id = $1 AND {field} = (SELECT {field} FROM leads WHERE id = $2)"
                ),
                &[&parent, &merged],
            )
            .await?;
        }
    }
    let mut up = vec![parent];
    up.extend(lineage(tx, parent).await?);
    move_counts(tx, &lead, &up, -1).await?;
    tx.execute("UPDATE leads SET merged_into = NULL WHERE id = $1", &[&merged]).await?;
    record_event(tx, parent, Some(by.user_id), &LeadChange::Unmerged { other: merged }, at).await?;
    let event = record_event(tx, merged, Some(by.user_id), &LeadChange::Unmerged { other: parent }, at).await?;
    rescore_lead(tx, parent, Vec::new(), scoring).await?;
    rescore_lead(tx, merged, Vec::new(), scoring).await?;
    Ok(event)
}

async fn dismiss_duplicate(
    tx: &Transaction<'_>,
    lead: i64,
    other: i64,
    by: Actor,
    at: Instant,
) -> Result<LeadEvent, Failure> {
    if !by.admin {
        return Err(Failure::Refused(StoreError::Conflict("只有管理员可以处理重复线索".into())));
    }
    if lead == other {
        return Err(Failure::Refused(StoreError::Conflict("一条线索不是它自己的重复".into())));
    }
    for id in [lead, other] {
        if tx.query_opt("SELECT 1 FROM leads WHERE id = $1", &[&id]).await?.is_none() {
            return Err(Failure::Refused(StoreError::NotFound(format!("lead {id}"))));
        }
    }
    tx.execute(
        "INSERT INTO duplicate_dismissals (lead_a, lead_b, user_id, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        &[&lead.min(other), &lead.max(other), &by.user_id, &at],
    )
    .await?;
    record_event(tx, other, Some(by.user_id), &LeadChange::Dismissed { other: lead }, at).await?;
    record_event(tx, lead, Some(by.user_id), &LeadChange::Dismissed { other }, at).await
}

/// Issue #11: a push is relayed when it has a body and passed authentication.
fn relayable(push: &NewPush) -> bool {
    let unauthenticated = matches!(&push.result, crate::PushResult::Rejected { error } if error.starts_with(crate::UNAUTHENTICATED_PREFIX));
    !push.body.is_empty() && !unauthenticated
}
