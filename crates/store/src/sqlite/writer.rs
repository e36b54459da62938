//! The single writer: one thread owns the write connection and commits whatever has queued
//! (up to [`MAX_BATCH`] jobs) in one transaction (group commit), answering each job after the
//! commit. A failing job does not undo the others (see [`commit_batch`]). About once a second
//! it also folds the per-day report's pending changes into `report_days` (migration 0013).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};

use rusqlite::{Connection, OptionalExtension, params};
use xiansuo_domain::{
    COMMON_CONTACT_LEADS, CONTACT_FIELDS, Card, FIELDS, FieldKind, Instant, Lead, LeadChange, LeadEvent, LeadStatus,
    PushOutcomeKind, Scoring, Sender, User, field_index,
};

use crate::copy::{Cell, TableDef};
use crate::query::summarize;
use crate::reports::{DAYS_COLUMNS, FOLD_UPSERT, FoldSchedule, pending_days};
use crate::write::{
    Apply, Job, MAX_BATCH, NewLeadTally, QUEUED_WAITING, Queueing, ScoreRow, ScoringCell, Write, Written,
    applies_queued, change_detail, duplicate_change, filled_by_merge, has_cards, plan_merge, plan_update,
    queued_conflict, rescore,
};
use crate::{
    Actor, LeadUpdate, LeadWritten, NewPush, PushRecorded, PushResult, QueuedPush, StoreError, UserChange, VendorPush,
    VendorRecorded,
};

/// Runs until every sender is dropped, then returns after committing what was queued (and
/// folding the report changes it made).
pub fn run(
    mut conn: Connection,
    jobs: Receiver<Job>,
    scoring: ScoringCell,
    queueing: &Queueing,
    restart_wal: &AtomicBool,
) {
    let mut schedule = FoldSchedule::default();
    // Issue #8: whether the last batch applied queued pushes (see Queueing::burst).
    let mut applied_last = false;
    loop {
        let first = match schedule.wait() {
            Some(wait) => match jobs.recv_timeout(wait) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    schedule.tried(fold_now(&mut conn));
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let burst = queueing.burst(&batch, applied_last);
        applied_last = applies_queued(&batch);
        let queue = match burst {
            None => false,
            Some(burst) => {
                burst
                    || queued_waiting(&conn).unwrap_or_else(|e| {
                        // Unknown: queueing keeps the arrival order either way.
                        tracing::warn!(error = %e, "cannot tell whether pushes are queued; this batch's are");
                        true
                    })
            }
        };
        commit_batch(&mut conn, batch, &scoring.get(), queue);
        schedule.committed();
        if restart_wal.swap(false, Ordering::AcqRel) {
            // Between two batches no write is under way: a checkpoint here can copy the last
            // frames, and the next batch then begins the WAL again (see checkpoint_while).
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "WAL checkpoint failed; it is tried again");
            }
        }
        if schedule.due() {
            schedule.tried(fold_now(&mut conn));
        }
    }
    if schedule.unfolded() {
        fold_now(&mut conn);
    }
    tracing::debug!("writer stopped: no more senders");
}

/// Whether pushes stored while the writer was behind still wait for their leads (issue #8).
fn queued_waiting(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn.prepare_cached(QUEUED_WAITING)?.query_row([], |r| r.get(0))?)
}

/// Folds the report's pending changes in a transaction of its own; whether it did. A failure is
/// logged and loses nothing: the changes stay pending, reports still add them, the next fold
/// retries.
fn fold_now(conn: &mut Connection) -> bool {
    let folded = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(StoreError::from)
        .and_then(|tx| {
            let n = fold_report_days(&tx)?;
            tx.commit()?;
            Ok(n)
        });
    match folded {
        Ok(n) => {
            tracing::trace!(rows = n, "report changes folded");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "folding the report's pending changes failed; they stay pending");
            false
        }
    }
}

/// Adds the pending changes of the per-day report (`report_pending`, appended by the triggers
/// of migration 0013) to `report_days` and removes them, in the caller's transaction (the
/// writer is the only one: nothing can be appended between the two statements). Returns the
/// rows of `report_days` written.
fn fold_report_days(conn: &Connection) -> Result<u64, StoreError> {
    static FOLD: LazyLock<String> = LazyLock::new(|| {
        format!("INSERT INTO report_days ({DAYS_COLUMNS}) {} {FOLD_UPSERT}", pending_days("report_pending", "true"))
    });
    let written = conn.prepare_cached(&FOLD)?.execute([])?;
    conn.prepare_cached("DELETE FROM report_pending")?.execute([])?;
    Ok(written as u64)
}

/// Commits the batch's jobs together; answers each after the commit. Jobs rarely fail, so the
/// batch is first applied plainly; only when a job fails is it rolled back and applied again,
/// each job in its own savepoint so that the failing one does not undo the others. (A savepoint
/// copies every page a job touches into a sub-journal first: it cost a fifth of the writer's
/// time when every job had one, issue #8.)
/// `queue`: the batch's pushes are stored and answered without their leads ([`Queueing`]).
fn commit_batch(conn: &mut Connection, batch: Vec<Job>, scoring: &Scoring, queue: bool) {
    if batch.len() > 1 {
        match commit_plainly(conn, &batch, scoring, queue) {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    job.answer(Ok(result));
                }
                return;
            }
            Err(e) => tracing::debug!(error = %e, "a write of the batch failed; applying each write in a savepoint"),
        }
    }
    commit_in_savepoints(conn, batch, scoring, queue);
}

/// The whole batch in one transaction, without savepoints: committed only if every job holds.
fn commit_plainly(
    conn: &mut Connection,
    batch: &[Job],
    scoring: &Scoring,
    queue: bool,
) -> Result<Vec<Written>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let results = batch.iter().map(|job| apply(&tx, &job.write, scoring, queue)).collect::<Result<Vec<_>, _>>()?;
    index_pending_terms(&tx)?;
    tx.commit()?;
    Ok(results)
}

/// Applies each job in its own savepoint and commits them together; answers after the commit.
fn commit_in_savepoints(conn: &mut Connection, batch: Vec<Job>, scoring: &Scoring, queue: bool) {
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, "cannot begin a write transaction");
            for job in batch {
                job.answer(Err(StoreError::Unavailable(format!("cannot begin a transaction: {e}"))));
            }
            return;
        }
    };
    let mut results: Vec<Result<Written, StoreError>> = Vec::with_capacity(batch.len());
    for job in &batch {
        // Each job's leads indexed in its savepoint: a lead the index cannot take fails its job alone.
        results.push(in_savepoint(&tx, |c| {
            let written = apply(c, &job.write, scoring, queue)?;
            index_pending_terms(c)?;
            Ok(written)
        }));
        // Some errors (disk full, I/O) roll the whole transaction back, not just the savepoint:
        // then nothing of the batch will be committed, and every job is answered so.
        if tx.is_autocommit() {
            tracing::error!("a write error rolled back the whole batch");
            drop(tx);
            for job in batch {
                job.answer(Err(StoreError::Unavailable("a write error rolled back the batch".into())));
            }
            return;
        }
    }
    match tx.commit() {
        Ok(()) => {
            for (job, result) in batch.into_iter().zip(results) {
                job.answer(result);
            }
        }
        Err(e) => {
            // Nothing of the batch is durable: every job is answered with an error.
            tracing::error!(error = %e, "write batch commit failed");
            for job in batch {
                job.answer(Err(StoreError::Unavailable(format!("the commit failed: {e}"))));
            }
        }
    }
}

/// Writes the search terms of the leads the transaction inserted or changed (noted in
/// `lead_terms_pending` by the triggers of migration 20) into the search index, all at once, and
/// clears the notes: called before every commit of a write batch (and at start-up), so committed
/// leads are always searchable (the report fold, which commits on its own, changes no lead). One write per batch rather than per lead: FTS5 flushes its in-memory terms to a
/// new segment at every savepoint, and every statement that fires a trigger opens one.
pub(super) fn index_pending_terms(conn: &Connection) -> Result<(), StoreError> {
    let pending: bool =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM lead_terms_pending)")?.query_row([], |r| r.get(0))?;
    if !pending {
        return Ok(());
    }
    let stale = conn
        .prepare_cached("SELECT lead_id FROM lead_terms_pending WHERE in_index = 1")?
        .query_map([], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut remove = conn.prepare_cached("DELETE FROM lead_terms WHERE rowid = ?1")?;
    for id in stale {
        remove.execute([id])?;
    }
    conn.prepare_cached(
        "INSERT INTO lead_terms (rowid, terms) SELECT l.id, xiansuo_search_terms(l.name, l.mobile, l.tel, l.weixin, \
         l.qq, l.email, l.visitor_static_id, l.keyword, l.note, l.city) FROM lead_terms_pending p JOIN leads l ON l.id = p.lead_id",
    )?
    .execute([])?;
    conn.prepare_cached("DELETE FROM lead_terms_pending")?.execute([])?;
    Ok(())
}

fn apply(conn: &Connection, write: &Write, scoring: &Scoring, queue: bool) -> Result<Written, StoreError> {
    match write {
        Write::Push(push) => record_push(conn, push, scoring, queue && has_cards(push)).map(Written::Push),
        Write::VendorPush { push, vendor } => {
            record_vendor_push(conn, push, vendor, scoring, queue).map(Written::VendorPush)
        }
        Write::Audit(e) => {
            conn.prepare_cached(
                "INSERT INTO audit_log (at, user_id, actor, action, target, detail, ip) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![ms(e.at), e.user_id, e.actor, e.action, e.target, e.detail.to_string(), e.ip])?;
            Ok(Written::Done)
        }
        Write::FoldReports => fold_report_days(conn).map(Written::Folded),
        Write::SpooledPush { spool_id, push } => {
            let stored: Option<i64> = conn
                .prepare_cached("SELECT id FROM pushes WHERE spool_id = ?1")?
                .query_row([spool_id], |r| r.get(0))
                .optional()?;
            if let Some(push_id) = stored {
                return stored_push(conn, push_id).map(Written::Push);
            }
            let recorded = record_push(conn, push, scoring, queue && has_cards(push))?;
            conn.prepare_cached("UPDATE pushes SET spool_id = ?2 WHERE id = ?1")?
                .execute(params![recorded.push_id, spool_id])?;
            Ok(Written::Push(recorded))
        }
        Write::Replay { push_id, result, at } => replay_push(conn, *push_id, result, *at, scoring).map(Written::Push),
        Write::ApplyQueued(pushes) => {
            pushes.iter().map(|push| apply_queued(conn, push, scoring)).collect::<Result<_, _>>().map(Written::Pushes)
        }
        Write::MergeLeads { keep, merge, by, at } => {
            merge_leads(conn, *keep, *merge, *by, *at, scoring).map(Written::Event)
        }
        Write::UnmergeLead { merged, by, at } => unmerge_lead(conn, *merged, *by, *at, scoring).map(Written::Event),
        Write::DismissDuplicate { lead, other, by, at } => {
            dismiss_duplicate(conn, *lead, *other, *by, *at).map(Written::Event)
        }
        Write::IndexLead { lead_id, contact_keys, intent_words } => {
            index_contacts(conn, *lead_id, contact_keys, None)?;
            rescore_lead(conn, *lead_id, intent_words.clone(), scoring)?;
            Ok(Written::Done)
        }
        Write::Setting { key, value } => setting_or_insert(conn, key, value).map(Written::Setting),
        Write::SetSetting { key, value: Some(value) } => {
            conn.prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?;
            Ok(Written::Done)
        }
        Write::SetSetting { key, value: None } => {
            conn.prepare_cached("DELETE FROM settings WHERE key = ?1")?.execute([key])?;
            Ok(Written::Done)
        }
        Write::Import { table, rows } => import_rows(conn, table, rows).map(|()| Written::Imported),
        Write::CreateUser { name, role, password_hash, at } => {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (name) DO NOTHING",
                )?
                .execute(params![name, role.as_str(), password_hash, ms(*at)])?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("a user named \"{name}\" exists already")));
            }
            let id = conn.last_insert_rowid();
            Ok(Written::User(User {
                id,
                name: name.clone(),
                role: *role,
                password_hash: password_hash.clone(),
                disabled: false,
                created_at: *at,
            }))
        }
        Write::UpdateUser { id, change } => {
            let changed = match change {
                UserChange::Disabled(d) => {
                    conn.prepare_cached("UPDATE users SET disabled = ?2 WHERE id = ?1")?.execute(params![id, d])?
                }
                UserChange::Password(hash) => conn
                    .prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
                    .execute(params![id, hash])?,
                UserChange::ApiToken(hash) => conn
                    .prepare_cached("UPDATE users SET api_token_hash = ?2 WHERE id = ?1")?
                    .execute(params![id, hash])?,
            };
            if changed == 0 {
                return Err(StoreError::NotFound(format!("user {id}")));
            }
            if matches!(change, UserChange::Disabled(true) | UserChange::Password(_)) {
                conn.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?.execute([id])?;
            }
            Ok(Written::Done)
        }
        Write::CreateSession(s) => {
            conn.prepare_cached(
                "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![s.token_hash, s.user_id, s.csrf, ms(s.created_at), ms(s.expires_at)])?;
            // Expired sessions go whenever a new one is made.
            conn.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?.execute([ms(s.created_at)])?;
            Ok(Written::Done)
        }
        Write::DeleteSession { token_hash } => {
            conn.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?.execute([token_hash])?;
            Ok(Written::Done)
        }
        Write::UpdateLead { lead_id, by, update, at } => {
            update_lead(conn, *lead_id, *by, update, *at).map(Written::Event)
        }
        Write::Outbox(w) => super::outbox::apply(conn, w),
        Write::Export(e) => {
            let columns = serde_json::to_string(&e.columns).unwrap_or_else(|_| "[]".into());
            conn.prepare_cached(
                "INSERT INTO exports (at, user_id, actor, via, format, columns, filter, rows, completed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                ms(e.at),
                e.user_id,
                e.actor,
                e.via,
                e.format,
                columns,
                e.filter.to_string(),
                e.rows,
                e.completed
            ])?;
            Ok(Written::Id(conn.last_insert_rowid()))
        }
    }
}

fn update_lead(
    conn: &Connection,
    lead_id: i64,
    by: Actor,
    update: &LeadUpdate,
    at: Instant,
) -> Result<LeadEvent, StoreError> {
    let current: Option<(String, Option<i64>)> = conn
        .prepare_cached("SELECT status, owner_id FROM leads WHERE id = ?1")?
        .query_row([lead_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (status, owner) = current.ok_or_else(|| StoreError::NotFound(format!("lead {lead_id}")))?;
    let status = LeadStatus::parse(&status).unwrap_or(LeadStatus::New);
    let change = plan_update(update, by, status, owner)?;
    match &change {
        LeadChange::Status { to, reason, .. } => {
            conn.prepare_cached("UPDATE leads SET status = ?2, status_reason = ?3 WHERE id = ?1")?.execute(params![
                lead_id,
                to.as_str(),
                reason
            ])?;
        }
        LeadChange::Owner { to, .. } => {
            conn.prepare_cached("UPDATE leads SET owner_id = ?2 WHERE id = ?1")?.execute(params![lead_id, to])?;
        }
        _ => {}
    }
    conn.prepare_cached("INSERT INTO lead_events (lead_id, at, user_id, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![lead_id, ms(at), by.user_id, change.kind(), change_detail(&change).to_string()])?;
    let event_id = conn.last_insert_rowid();
    super::outbox::lead_changed(conn, lead_id, by, &change, at)?; // issue #6: outbound event
    Ok(LeadEvent { id: event_id, lead_id, at, user_id: Some(by.user_id), change })
}

fn import_rows(conn: &Connection, table: &TableDef, rows: &[Vec<Cell>]) -> Result<(), StoreError> {
    let placeholders: Vec<String> = (1..=table.columns.len()).map(|i| format!("?{i}")).collect();
    let sql = format!("INSERT INTO {} ({}) VALUES ({})", table.name, table.column_list(), placeholders.join(", "));
    let mut insert = conn.prepare_cached(&sql)?;
    for row in rows {
        let values: Vec<rusqlite::types::Value> = row.iter().map(sqlite_value).collect();
        insert.execute(rusqlite::params_from_iter(values))?;
    }
    Ok(())
}

/// A copied value as SQLite stores it: times as epoch milliseconds, JSON as text.
pub fn sqlite_value(cell: &Cell) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match cell {
        Cell::Null => Value::Null,
        Cell::Int(i) => Value::Integer(*i),
        Cell::Text(t) => Value::Text(t.clone()),
        Cell::Bytes(b) => Value::Blob(b.clone()),
        Cell::Time(t) => Value::Integer(t.timestamp_millis()),
        Cell::Json(j) => Value::Text(j.to_string()),
        Cell::Bool(b) => Value::Integer(i64::from(*b)),
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    match work(conn) {
        Ok(v) => {
            conn.prepare_cached("RELEASE job")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

fn ms(t: Instant) -> i64 {
    t.timestamp_millis()
}

/// `queued`: the push is only kept (outcome `queued`); [`apply_queued`] builds its leads.
fn record_push(conn: &Connection, push: &NewPush, scoring: &Scoring, queued: bool) -> Result<PushRecorded, StoreError> {
    let (outcome, error, accepted, ignored) = summarize(&push.result);
    let outcome = if queued { PushOutcomeKind::Queued } else { outcome };
    conn.prepare_cached(
        "INSERT INTO pushes (source, received_at, content_type, body, outcome, error, accepted, ignored, query)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        push.source,
        ms(push.received_at),
        push.content_type,
        push.body,
        outcome.as_str(),
        error,
        accepted as i64,
        ignored as i64,
        push.query
    ])?;
    let push_id = conn.last_insert_rowid();
    // Issue #11: the push's relays, in its transaction.
    super::outbox::push_recorded(conn, push_id, &push.source, !relayable(push))?;
    if queued {
        return Ok(PushRecorded { push_id, outcome, accepted, ignored, leads: Vec::new() });
    }
    let how =
        Apply { push_id, source: &push.source, received: push.received_at, at: push.received_at, fill_only: false };
    let leads = store_cards(conn, &how, &push.result, scoring)?;
    Ok(PushRecorded { push_id, outcome, accepted, ignored, leads })
}

/// Issue #11: a vendor's push. Its event id is claimed before anything is stored (a second copy,
/// even in the same batch, finds it and stores nothing), then the push is stored and the claim
/// names it, then its visitors' events go into the timelines of their leads: one transaction.
fn record_vendor_push(
    conn: &Connection,
    push: &NewPush,
    vendor: &VendorPush,
    scoring: &Scoring,
    queue: bool,
) -> Result<VendorRecorded, StoreError> {
    if let Some(event_id) = &vendor.event_id {
        let claimed = conn
            .prepare_cached(
                "INSERT INTO vendor_events (source, event_id, push_id, received_at) VALUES (?1, ?2, NULL, ?3)
                 ON CONFLICT (source, event_id) DO NOTHING",
            )?
            .execute(params![push.source, event_id, ms(push.received_at)])?
            == 1;
        if !claimed {
            // The push that carried it first (if it is still in the push log).
            let first: Option<i64> = conn
                .prepare_cached(
                    "SELECT p.id FROM vendor_events v JOIN pushes p ON p.id = v.push_id
                     WHERE v.source = ?1 AND v.event_id = ?2",
                )?
                .query_row(params![push.source, event_id], |r| r.get(0))
                .optional()?;
            if let Some(first) = first {
                return Ok(VendorRecorded { recorded: stored_push(conn, first)?, retry: true, events: Vec::new() });
            }
        }
    }
    // Issue #8: a visitor's event queues too (its lead may be among the queued pushes).
    let queued = queue && (has_cards(push) || !vendor.events.is_empty());
    let recorded = record_push(conn, push, scoring, queued)?;
    if let Some(event_id) = &vendor.event_id {
        conn.prepare_cached(
            "UPDATE vendor_events SET push_id = ?3, received_at = ?4 WHERE source = ?1 AND event_id = ?2",
        )?
        .execute(params![push.source, event_id, recorded.push_id, ms(push.received_at)])?;
    }
    let events = if queued {
        Vec::new()
    } else {
        record_visitor_events(conn, &push.source, recorded.push_id, push.received_at, &vendor.events)?
    };
    Ok(VendorRecorded { recorded, retry: false, events })
}

/// Issue #11: visitors' events into the timelines of their leads (those that have one).
fn record_visitor_events(
    conn: &Connection,
    source: &str,
    push_id: i64,
    at: Instant,
    visitor_events: &[xiansuo_domain::VisitorEvent],
) -> Result<Vec<LeadEvent>, StoreError> {
    let mut events = Vec::new();
    for e in visitor_events {
        let lead: Option<i64> = conn
            .prepare_cached("SELECT id FROM leads WHERE source = ?1 AND company_id = ?2 AND visitor_static_id = ?3")?
            .query_row(params![source, e.company_id, e.visitor_id], |r| r.get(0))
            .optional()?;
        if let Some(lead_id) = lead {
            let change = LeadChange::VendorEvent {
                vendor: e.vendor.clone(),
                event: e.event.clone(),
                text: e.text.clone(),
                push_id,
            };
            events.push(record_event(conn, lead_id, None, &change, at)?);
        }
    }
    Ok(events)
}

/// What a push stored, read back (a spool entry drained a second time).
fn stored_push(conn: &Connection, push_id: i64) -> Result<PushRecorded, StoreError> {
    let (outcome, accepted, ignored): (String, i64, i64) = conn
        .prepare_cached("SELECT outcome, accepted, ignored FROM pushes WHERE id = ?1")?
        .query_row([push_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let leads = conn
        .prepare_cached("SELECT lead_id, created FROM push_leads WHERE push_id = ?1 ORDER BY lead_id")?
        .query_map([push_id], |r| Ok(LeadWritten { id: r.get(0)?, created: r.get(1)?, duplicates: Vec::new() }))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(PushRecorded {
        push_id,
        outcome: xiansuo_domain::PushOutcomeKind::parse(&outcome).unwrap_or(xiansuo_domain::PushOutcomeKind::Accepted),
        accepted: usize::try_from(accepted).unwrap_or(0),
        ignored: usize::try_from(ignored).unwrap_or(0),
        leads,
    })
}

fn replay_push(
    conn: &Connection,
    push_id: i64,
    result: &PushResult,
    at: Instant,
    scoring: &Scoring,
) -> Result<PushRecorded, StoreError> {
    let (source, received, outcome) = push_state(conn, push_id)?;
    if outcome == PushOutcomeKind::Queued.as_str() {
        return Err(queued_conflict(push_id));
    }
    let (outcome, error, accepted, ignored) = summarize(result);
    conn.prepare_cached(
        "UPDATE pushes SET outcome = ?2, error = ?3, accepted = ?4, ignored = ?5,
                replayed_at = ?6, replay_count = replay_count + 1
         WHERE id = ?1",
    )?
    .execute(params![push_id, outcome.as_str(), error, accepted as i64, ignored as i64, ms(at)])?;
    // A replayed body is older than what later pushes stored: it fills gaps, never overwrites;
    // a lead it creates was received when the push was.
    let how = Apply { push_id, source: &source, received: instant_of(received), at, fill_only: true };
    let leads = store_cards(conn, &how, result, scoring)?;
    Ok(PushRecorded { push_id, outcome, accepted, ignored, leads })
}

/// A stored push's source, arrival (ms) and outcome.
fn push_state(conn: &Connection, push_id: i64) -> Result<(String, i64, String), StoreError> {
    conn.prepare_cached("SELECT source, received_at, outcome FROM pushes WHERE id = ?1")?
        .query_row([push_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("push {push_id}")))
}

/// Issue #8: builds a queued push's leads from its cards (decoded again from the stored body),
/// as if it had just arrived — the leads are received when the push was — and sets its outcome.
/// A push no longer queued (applied already) is answered as stored: applying is idempotent.
fn apply_queued(conn: &Connection, push: &QueuedPush, scoring: &Scoring) -> Result<PushRecorded, StoreError> {
    let QueuedPush { push_id, ref result, ref events } = *push;
    let (source, received, outcome) = push_state(conn, push_id)?;
    if outcome != PushOutcomeKind::Queued.as_str() {
        return stored_push(conn, push_id);
    }
    let (outcome, error, accepted, ignored) = summarize(result);
    conn.prepare_cached("UPDATE pushes SET outcome = ?2, error = ?3, accepted = ?4, ignored = ?5 WHERE id = ?1")?
        .execute(params![push_id, outcome.as_str(), error, accepted as i64, ignored as i64])?;
    let received = instant_of(received);
    let how = Apply { push_id, source: &source, received, at: received, fill_only: false };
    let leads = store_cards(conn, &how, result, scoring)?;
    record_visitor_events(conn, &source, push_id, received, events)?;
    Ok(PushRecorded { push_id, outcome, accepted, ignored, leads })
}

fn instant_of(ms: i64) -> Instant {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn store_cards(
    conn: &Connection,
    how: &Apply,
    result: &PushResult,
    scoring: &Scoring,
) -> Result<Vec<LeadWritten>, StoreError> {
    let PushResult::Cards { cards, .. } = result else { return Ok(Vec::new()) };
    cards.iter().map(|card| store_card(conn, how, card, scoring)).collect()
}

/// The lead table's columns written from a card, in [`FIELDS`] order.
fn field_columns() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().map(|f| f.key)
}

/// The statement that inserts a lead whole: every field, the five found-in-chat marks, then
/// source, extra, received_at, updated_at, its counts and its score ([`NewLeadTally`]). Built
/// once: the statement cache finds it by its text.
static INSERT_LEAD_SQL: LazyLock<String> = LazyLock::new(|| {
    let n = FIELDS.len();
    let mut columns: Vec<String> = field_columns().map(str::to_string).collect();
    columns.extend(CONTACT_FIELDS.iter().map(|c| format!("{c}_from_chat")));
    let placeholders: Vec<String> = (1..=n + CONTACT_FIELDS.len() + 10).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO leads ({}, source, extra, received_at, updated_at, push_count, message_count,
             visitor_message_count, score, score_reasons, intent_words) VALUES ({})",
        columns.join(", "),
        placeholders.join(", ")
    )
});
static UPDATE_LEAD_SQL: LazyLock<String> = LazyLock::new(|| update_lead_sql(false));
static FILL_LEAD_SQL: LazyLock<String> = LazyLock::new(|| update_lead_sql(true));

/// The statement that merges a card into a stored lead: fields in [`FIELDS`] order, then extra,
/// updated_at, the id, and the five contacts found in the chat.
fn update_lead_sql(fill_only: bool) -> String {
    let n = FIELDS.len();
    // An empty value never erases: absent fields are NULL and COALESCE keeps the old.
    // Filling only (a replay), the stored value comes first.
    let found_param = |c: &str| n + 4 + CONTACT_FIELDS.iter().position(|f| *f == c).unwrap_or(0);
    let sets: Vec<String> = field_columns()
        .enumerate()
        .map(|(i, c)| {
            // Contact fields: a contact found in the chat fills only an empty field, and is
            // marked; a value on a card replaces it and clears the mark.
            if CONTACT_FIELDS.contains(&c) {
                let (v, f) = (i + 1, found_param(c));
                return if fill_only {
                    format!(
                        "{c} = COALESCE({c}, ?{v}, ?{f}), {c}_from_chat = CASE WHEN {c} IS NOT NULL THEN {c}_from_chat \
                         WHEN ?{v} IS NOT NULL THEN 0 WHEN ?{f} IS NOT NULL THEN 1 ELSE {c}_from_chat END"
                    )
                } else {
                    format!(
                        "{c} = COALESCE(?{v}, {c}, ?{f}), {c}_from_chat = CASE WHEN ?{v} IS NOT NULL THEN 0 \
                         WHEN {c} IS NULL AND ?{f} IS NOT NULL THEN 1 ELSE {c}_from_chat END"
                    )
                };
            }
            if fill_only {
                format!("{c} = COALESCE({c}, ?{})", i + 1)
            } else {
                format!("{c} = COALESCE(?{}, {c})", i + 1)
            }
        })
        .collect();
    let extra_merge =
        if fill_only { format!("json_patch(?{}, extra)", n + 1) } else { format!("json_patch(extra, ?{})", n + 1) };
    format!(
        "UPDATE leads SET {}, extra = {extra_merge}, updated_at = ?{} WHERE id = ?{}",
        sets.join(", "),
        n + 2,
        n + 3
    )
}

fn store_card(conn: &Connection, how: &Apply, card: &Card, scoring: &Scoring) -> Result<LeadWritten, StoreError> {
    let (push_id, source, at) = (how.push_id, how.source, how.at);
    let (Some(company_id), Some(visitor)) = (card.company_id(), card.visitor_static_id()) else {
        // The decoder refuses such cards; this guards the identity key all the same.
        return Err(StoreError::Unavailable("a card without company_id or visitor_static_id reached the store".into()));
    };
    let existing: Option<(i64, Option<i64>)> = conn
        .prepare_cached(
            "SELECT id, merged_into FROM leads WHERE source = ?1 AND company_id = ?2 AND visitor_static_id = ?3",
        )?
        .query_row(params![source, company_id, visitor], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    // The counts of a lead merged into another are counted on that one (and up) too.
    let counted = match existing {
        Some((id, Some(_))) => lineage(conn, id)?,
        _ => Vec::new(),
    };

    let values: Vec<rusqlite::types::Value> = FIELDS
        .iter()
        .map(|f| match f.kind {
            FieldKind::Text => card.fields.get(f.key).cloned().into(),
            FieldKind::Time => card.times.get(f.key).map(|t| ms(*t)).into(),
        })
        .collect();
    let extra = serde_json::to_string(&card.extra).map_err(|e| StoreError::Unavailable(e.to_string()))?;

    // A new lead is inserted with its counts and score; what the inserts below then add to a
    // lead is counted beyond this.
    let mut tally = None;
    let (lead_id, created) = match existing {
        None => {
            let counted = NewLeadTally::of(card);
            let (score, words) = rescore(counted.score_row(card), scoring.intent_words_in(&card.messages), scoring);
            tally = Some(counted);
            let sql: &str = &INSERT_LEAD_SQL;
            // A new lead: a contact found in the chat fills what the card leaves empty.
            let mut params: Vec<rusqlite::types::Value> = values;
            for c in CONTACT_FIELDS {
                if let (Some(i), Some(found)) = (field_index(c), card.found_in_chat.get(c))
                    && !card.fields.contains_key(c)
                {
                    params[i] = found.clone().into();
                }
            }
            params.extend(CONTACT_FIELDS.iter().map(|c| {
                rusqlite::types::Value::from(!card.fields.contains_key(c) && card.found_in_chat.contains_key(c))
            }));
            params.push(source.to_string().into());
            params.push(extra.into());
            params.push(ms(how.received).into());
            params.push(ms(at).into());
            params.push(1i64.into()); // this push
            params.push(counted.messages.into());
            params.push(counted.visitor_messages.into());
            params.push(i64::from(score.value).into());
            params.push(
                serde_json::to_string(&score.reasons).map_err(|e| StoreError::Unavailable(e.to_string()))?.into(),
            );
            params.push(serde_json::to_string(&words).map_err(|e| StoreError::Unavailable(e.to_string()))?.into());
            conn.prepare_cached(sql)?.execute(rusqlite::params_from_iter(params))?;
            (conn.last_insert_rowid(), true)
        }
        Some((id, _)) => {
            let sql: &str = if how.fill_only { &FILL_LEAD_SQL } else { &UPDATE_LEAD_SQL };
            let mut params: Vec<rusqlite::types::Value> = values;
            params.push(extra.into());
            params.push(ms(at).into());
            params.push(id.into());
            params.extend(
                CONTACT_FIELDS.iter().map(|c| rusqlite::types::Value::from(card.found_in_chat.get(c).cloned())),
            );
            conn.prepare_cached(sql)?.execute(rusqlite::params_from_iter(params))?;
            (id, false)
        }
    };

    let linked = conn
        .prepare_cached(
            "INSERT INTO push_leads (push_id, lead_id, created) VALUES (?1, ?2, ?3) ON CONFLICT (push_id, lead_id) DO NOTHING",
        )?
        .execute(params![push_id, lead_id, created])?;
    if linked == 1 && !created {
        let mut count = conn.prepare_cached("UPDATE leads SET push_count = push_count + 1 WHERE id = ?1")?;
        count.execute([lead_id])?;
        for id in &counted {
            count.execute([id])?;
        }
    }

    // `seq` keeps the order chats were first seen in, within this push too.
    let mut add_chat = conn.prepare_cached(
        "INSERT INTO lead_chats (lead_id, chat_id, first_seen_at, seq)
         VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM lead_chats WHERE lead_id = ?1))
         ON CONFLICT (lead_id, chat_id) DO NOTHING",
    )?;
    let chat_ids = card.chat_id().into_iter().chain(card.messages.iter().filter_map(|m| m.chat_id.as_deref()));
    for chat_id in chat_ids {
        add_chat.execute(params![lead_id, chat_id, ms(at)])?;
    }

    let mut add_message = conn.prepare_cached(
        "INSERT INTO messages (lead_id, recorder_id, chat_id, sender, from_id, message, type, create_time, extra)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (lead_id, recorder_id) DO NOTHING",
    )?;
    let (mut added, mut added_by_visitor) = (0i64, 0i64);
    for m in &card.messages {
        let extra = serde_json::to_string(&m.extra).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let inserted = add_message.execute(params![
            lead_id,
            m.recorder_id,
            m.chat_id,
            m.sender.as_str(),
            m.from_id,
            m.message,
            m.kind,
            m.create_time.map(ms),
            extra
        ])?;
        if inserted == 1 {
            added += 1;
            if m.sender == Sender::Visitor {
                added_by_visitor += 1;
            }
        }
    }
    // A new lead counted its messages when inserted: only a difference is added (none, unless
    // the tally and the unique key disagree).
    if let Some(t) = tally {
        added -= t.messages;
        added_by_visitor -= t.visitor_messages;
    }
    if added != 0 || added_by_visitor != 0 {
        let mut count = conn.prepare_cached(
            "UPDATE leads SET message_count = message_count + ?2, visitor_message_count = visitor_message_count + ?3 WHERE id = ?1",
        )?;
        count.execute(params![lead_id, added, added_by_visitor])?;
        for id in &counted {
            count.execute(params![id, added, added_by_visitor])?;
        }
    }
    let duplicates = index_contacts(conn, lead_id, &card.contact_keys, Some(at))?;
    if tally.is_none() {
        rescore_lead(conn, lead_id, scoring.intent_words_in(&card.messages), scoring)?;
    }
    super::outbox::card_stored(conn, how, lead_id, created, card)?; // issue #6: assignment, outbound events
    Ok(LeadWritten { id: lead_id, created, duplicates })
}

/// The leads `id` is merged into, nearest first (empty for a lead not merged). Merges never
/// make a cycle; the bound only guards against a database edited by hand.
fn lineage(conn: &Connection, id: i64) -> Result<Vec<i64>, StoreError> {
    let mut up = Vec::new();
    let mut parent_of = conn.prepare_cached("SELECT merged_into FROM leads WHERE id = ?1")?;
    let mut current = id;
    while up.len() < 64 {
        let parent: Option<i64> = parent_of.query_row([current], |r| r.get(0)).optional()?.flatten();
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
fn root_of(conn: &Connection, id: i64) -> Result<i64, StoreError> {
    Ok(lineage(conn, id)?.last().copied().unwrap_or(id))
}

/// The leads an admin said are not the same visitor as `lead`.
fn dismissed_with(conn: &Connection, lead: i64) -> Result<Vec<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT lead_b FROM duplicate_dismissals WHERE lead_a = ?1
             UNION SELECT lead_a FROM duplicate_dismissals WHERE lead_b = ?1",
        )?
        .query_map([lead], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?)
}

/// Indexes the card's contacts under the lead; returns the other leads (as shown: not merged
/// away, not dismissed) sharing one, and records newly shared contacts in the timeline.
/// With `record: None` (a reindex), nothing goes to the timeline.
fn index_contacts(
    conn: &Connection,
    lead_id: i64,
    contact_keys: &[(&'static str, String)],
    record: Option<Instant>,
) -> Result<Vec<i64>, StoreError> {
    if contact_keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO lead_contacts (kind, value, lead_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    // The leads sharing a contact, newest first, with what they were merged into (rare: only
    // those are followed up to the lead they show on). Bounded: a value that many leads share
    // is a placeholder ([`COMMON_CONTACT_LEADS`]) and costs the same as any other.
    let mut sharing = conn.prepare_cached(&format!(
        "SELECT c.lead_id, l.merged_into FROM lead_contacts c JOIN leads l ON l.id = c.lead_id
         WHERE c.kind = ?1 AND c.value = ?2 AND c.lead_id <> ?3 ORDER BY c.lead_id DESC LIMIT {COMMON_CONTACT_LEADS}"
    ))?;
    // (other lead, its merged_into, kind, value, the contact is new to this lead)
    let mut shared: Vec<(i64, Option<i64>, &'static str, &String, bool)> = Vec::new();
    for (kind, value) in contact_keys {
        let new = insert.execute(params![kind, value, lead_id])? == 1;
        let others = sharing
            .query_map(params![kind, value, lead_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<(i64, Option<i64>)>>>()?;
        if others.len() >= COMMON_CONTACT_LEADS {
            continue; // held by more than COMMON_CONTACT_LEADS leads with this one
        }
        shared.extend(others.into_iter().map(|(other, merged_into)| (other, merged_into, *kind, value, new)));
    }
    // Most cards share nothing: the lead's own root and its dismissals are read only when needed.
    if shared.is_empty() {
        return Ok(Vec::new());
    }
    let me = root_of(conn, lead_id)?;
    let not_duplicates = dismissed_with(conn, me)?;
    let mut duplicates: Vec<i64> = Vec::new();
    let mut newly: Vec<(i64, &'static str, String)> = Vec::new();
    for (other, merged_into, kind, value, new) in shared {
        let other = if merged_into.is_some() { root_of(conn, other)? } else { other };
        if other == me || not_duplicates.contains(&other) {
            continue;
        }
        if !duplicates.contains(&other) {
            duplicates.push(other);
        }
        if new {
            newly.push((other, kind, value.clone()));
        }
    }
    if let (Some(at), Some(change)) = (record, duplicate_change(&newly)) {
        record_event(conn, lead_id, None, &change, at)?;
    }
    Ok(duplicates)
}

fn record_event(
    conn: &Connection,
    lead_id: i64,
    user_id: Option<i64>,
    change: &LeadChange,
    at: Instant,
) -> Result<LeadEvent, StoreError> {
    conn.prepare_cached("INSERT INTO lead_events (lead_id, at, user_id, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![lead_id, ms(at), user_id, change.kind(), change_detail(change).to_string()])?;
    Ok(LeadEvent { id: conn.last_insert_rowid(), lead_id, at, user_id, change: change.clone() })
}

/// Recomputes a lead's score from what is stored, adding the intent words of new messages.
fn rescore_lead(conn: &Connection, lead_id: i64, new_words: Vec<String>, scoring: &Scoring) -> Result<(), StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT intent_words, visitor_message_count,
                    (SELECT count(*) FROM lead_chats WHERE lead_id = l.id), ntag_id, ntag_name,
                    mobile_from_chat OR tel_from_chat OR weixin_from_chat OR qq_from_chat OR email_from_chat,
                    EXISTS (SELECT 1 FROM lead_contacts WHERE lead_id = l.id AND kind = 'mobile'),
                    EXISTS (SELECT 1 FROM lead_contacts WHERE lead_id = l.id AND kind <> 'mobile')
             FROM leads l WHERE id = ?1",
        )?
        .query_row([lead_id], |r| {
            Ok(ScoreRow {
                intent_words: serde_json::from_str(&r.get::<_, String>(0)?).unwrap_or_default(),
                visitor_messages: r.get(1)?,
                chats: r.get(2)?,
                tag_id: r.get(3)?,
                tag_name: r.get(4)?,
                found_in_chat: r.get(5)?,
                has_mobile: r.get(6)?,
                has_other_contact: r.get(7)?,
            })
        })
        .optional()?;
    let Some(row) = row else { return Err(StoreError::NotFound(format!("lead {lead_id}"))) };
    let (score, words) = rescore(row, new_words, scoring);
    let reasons = serde_json::to_string(&score.reasons).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let words = serde_json::to_string(&words).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    conn.prepare_cached("UPDATE leads SET score = ?2, score_reasons = ?3, intent_words = ?4 WHERE id = ?1")?
        .execute(params![lead_id, score.value, reasons, words])?;
    Ok(())
}

fn setting_or_insert(conn: &Connection, key: &str, value: &str) -> Result<String, StoreError> {
    conn.prepare_cached("INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING")?
        .execute(params![key, value])?;
    Ok(conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")?.query_row([key], |r| r.get(0))?)
}

fn load_lead(conn: &Connection, id: i64) -> Result<Lead, StoreError> {
    conn.prepare_cached(&format!("SELECT {} FROM leads l WHERE l.id = ?1", super::lead_select()))?
        .query_row([id], super::lead_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("lead {id}")))
}

/// Adds (`sign` 1) or takes away (-1) `from`'s counts on each lead of `to`.
fn move_counts(conn: &Connection, from: &Lead, to: &[i64], sign: i64) -> Result<(), StoreError> {
    let mut update = conn.prepare_cached(
        "UPDATE leads SET push_count = push_count + ?2, message_count = message_count + ?3,
                visitor_message_count = visitor_message_count + ?4 WHERE id = ?1",
    )?;
    for id in to {
        update.execute(params![
            id,
            sign * from.push_count,
            sign * from.message_count,
            sign * from.visitor_message_count
        ])?;
    }
    Ok(())
}

fn merge_leads(
    conn: &Connection,
    keep: i64,
    merge: i64,
    by: Actor,
    at: Instant,
    scoring: &Scoring,
) -> Result<LeadEvent, StoreError> {
    let (kept, merged) = (load_lead(conn, keep)?, load_lead(conn, merge)?);
    let filled = plan_merge(by, &kept, &merged)?;
    for field in &filled {
        // The column names come from FIELDS, never from input.
        conn.prepare_cached(&format!(
            "UPDATE leads SET {field} = (SELECT {field} FROM leads WHERE id = ?2) WHERE id = ?1"
        ))?
        .execute([keep, merge])?;
    }
    move_counts(conn, &merged, &[keep], 1)?;
    conn.prepare_cached("UPDATE leads SET merged_into = ?2 WHERE id = ?1")?.execute([merge, keep])?;
    let filled = filled.iter().map(|f| f.to_string()).collect();
    record_event(conn, merge, Some(by.user_id), &LeadChange::MergedInto { into: keep }, at)?;
    let change = serde_json::json!({ "merged_lead_id": merge, "filled": filled, "by_user_id": by.user_id });
    let event = record_event(conn, keep, Some(by.user_id), &LeadChange::Merged { other: merge, filled }, at)?;
    rescore_lead(conn, keep, Vec::new(), scoring)?;
    // Issue #6: `lead.merged` goes out through the outbox, in this transaction.
    super::outbox::enqueue(conn, xiansuo_domain::routing::EventKind::Merged, keep, change)?;
    Ok(event)
}

fn unmerge_lead(
    conn: &Connection,
    merged: i64,
    by: Actor,
    at: Instant,
    scoring: &Scoring,
) -> Result<LeadEvent, StoreError> {
    if !by.admin {
        return Err(StoreError::Conflict("只有管理员可以撤销合并".into()));
    }
    let lead = load_lead(conn, merged)?;
    let Some(parent) = lead.merged_into else {
        return Err(StoreError::Conflict(format!("线索 {merged} 没有被合并")));
    };
    let merges = conn
        .prepare_cached("SELECT id, lead_id, at, user_id, kind, detail FROM lead_events WHERE lead_id = ?1 AND kind = 'merged' ORDER BY id DESC")?
        .query_map([parent], super::event_from_row)?
        .filter_map(|e| e.transpose())
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for field in filled_by_merge(&merges, merged) {
        // Only what the merge filled, and only while it still holds the merged lead's value.
        if let Some(field) = FIELDS.iter().find(|f| f.key == field).map(|f| f.key) {
            conn.prepare_cached(&format!(
                "UPDATE leads SET {field} = NULL WHERE id = ?1 AND {field} = (SELECT {field} FROM leads WHERE id = ?2)"
            ))?
            .execute([parent, merged])?;
        }
    }
    let mut up = vec![parent];
    up.extend(lineage(conn, parent)?);
    move_counts(conn, &lead, &up, -1)?;
    conn.prepare_cached("UPDATE leads SET merged_into = NULL WHERE id = ?1")?.execute([merged])?;
    record_event(conn, parent, Some(by.user_id), &LeadChange::Unmerged { other: merged }, at)?;
    let event = record_event(conn, merged, Some(by.user_id), &LeadChange::Unmerged { other: parent }, at)?;
    rescore_lead(conn, parent, Vec::new(), scoring)?;
    rescore_lead(conn, merged, Vec::new(), scoring)?;
    Ok(event)
}

fn dismiss_duplicate(
    conn: &Connection,
    lead: i64,
    other: i64,
    by: Actor,
    at: Instant,
) -> Result<LeadEvent, StoreError> {
    if !by.admin {
        return Err(StoreError::Conflict("只有管理员可以处理重复线索".into()));
    }
    if lead == other {
        return Err(StoreError::Conflict("一条线索不是它自己的重复".into()));
    }
    load_lead(conn, lead)?;
    load_lead(conn, other)?;
    conn.prepare_cached(
        "INSERT INTO duplicate_dismissals (lead_a, lead_b, user_id, at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    )?
    .execute(params![lead.min(other), lead.max(other), by.user_id, ms(at)])?;
    record_event(conn, other, Some(by.user_id), &LeadChange::Dismissed { other: lead }, at)?;
    record_event(conn, lead, Some(by.user_id), &LeadChange::Dismissed { other }, at)
}

/// Issue #11: a push is relayed when it has a body and passed authentication.
fn relayable(push: &NewPush) -> bool {
    let unauthenticated = matches!(&push.result, crate::PushResult::Rejected { error } if error.starts_with(crate::UNAUTHENTICATED_PREFIX));
    !push.body.is_empty() && !unauthenticated
}
