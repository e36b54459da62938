//! The embedded SQLite store: one writer thread doing group commits ([`writer`]), and a small
//! pool of read connections beside it (WAL lets them read while it writes).
//!
//! Durability: WAL with `synchronous=FULL`, so a commit is on disk before a push is answered.

/// Issue #6: assignment and the outbox.
pub mod outbox;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::DateTime;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params_from_iter, types::Value};
use tokio::sync::oneshot;
use xiansuo_domain::{
    CONTACT_FIELDS, FIELDS, FieldKind, Instant, Lead, LeadEvent, LeadStatus, Message, PushOutcomeKind, Role, Scoring,
    Sender, User,
};

use crate::copy::{Cell, ColumnKind, TableDef};
use crate::query::{
    Dialect, Param, group_cte, lead_batch_where, lead_page_sql, lead_where, lead_where_unindexed, limit_offset,
    push_where,
};
use crate::reports::{
    Aggregator, COLUMN_DIMS, DAYS_SELECT, DayRow, ExportEntry, FACT_FIXED, FactRow, LeadCursor, LeadStats, NewExport,
    fact_select,
};
use crate::write::{self, Job, ScoringCell, Write, change_from_detail};
use crate::{Actor, LeadUpdate, NewSession, Session, UserChange};
use crate::{
    Duplicate, LeadDetail, LeadQuery, NewPush, Page, PushEntry, PushQuery, PushRecorded, PushResult, PushSummary,
    Store, StoreError,
};

/// Schema versions, applied in order, each once. Never edit a released one: add the next.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (2, "chat_order", include_str!("migrations/0002_chat_order.sql")),
    (3, "console", include_str!("migrations/0003_console.sql")),
    (4, "found_in_chat", include_str!("migrations/0004_found_in_chat.sql")),
    (5, "contacts", include_str!("migrations/0005_contacts.sql")),
    (6, "outbox", include_str!("migrations/0006_outbox.sql")),
    (7, "reports", include_str!("migrations/0007_reports.sql")),
    (8, "spool_audit", include_str!("migrations/0008_spool_audit.sql")),
    (9, "relay", include_str!("migrations/0009_relay.sql")),
    (10, "vendor_events", include_str!("migrations/0010_vendor_events.sql")),
    (11, "report_days", include_str!("migrations/0011_report_days.sql")),
    (12, "create_time_order", include_str!("migrations/0012_create_time_order.sql")),
    (13, "report_pending", include_str!("migrations/0013_report_pending.sql")),
    (14, "report_index_covering", include_str!("migrations/0014_report_index_covering.sql")),
    (15, "search_terms", include_str!("migrations/0015_search_terms.sql")),
    (16, "live_indexes", include_str!("migrations/0016_live_indexes.sql")),
    (17, "report_days_by_value", include_str!("migrations/0017_report_days_by_value.sql")),
    (18, "search_positions", include_str!("migrations/0018_search_positions.sql")),
    (19, "plpgsql_triggers", include_str!("migrations/0019_plpgsql_triggers.sql")),
    (20, "search_terms_per_batch", include_str!("migrations/0020_search_terms_per_batch.sql")),
    (21, "deliveries_by_event", include_str!("migrations/0021_deliveries_by_event.sql")),
    (22, "push_query", include_str!("migrations/0022_push_query.sql")),
    (23, "filter_indexes", include_str!("migrations/0023_filter_indexes.sql")),
];

/// Read connections kept open between requests.
const IDLE_READERS: usize = 8;

pub struct SqliteStore {
    jobs: SyncSender<Job>,
    /// False once the writer thread has ended (by a panic, say): /healthz then fails.
    writer_alive: Arc<std::sync::atomic::AtomicBool>,
    readers: Arc<ReadPool>,
    scoring: ScoringCell,
    /// Issue #6: the rules and sinks the writer applies.
    routing: Arc<crate::outbox::RoutingCell>,
    /// Issue #8: when the writer queues pushes.
    queueing: Arc<crate::write::Queueing>,
}

impl SqliteStore {
    /// The report of a filter (see [`crate::reports::plan`]): one pass over its leads, or the
    /// per-day table for its whole days and the leads of partial days. One read transaction,
    /// so that both see the same leads.
    async fn report(&self, query: &LeadQuery, top: usize, use_days: bool) -> Result<LeadStats, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let mut agg = Aggregator::default();
            // The table and the covering index exist once migration 0011 ran (INDEXED BY fails
            // if the index is missing, so it is named only when it is there).
            let has = |kind: &str, name: &str| -> Result<bool, StoreError> {
                Ok(tx
                    .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = ?1 AND name = ?2")?
                    .exists([kind, name])?)
            };
            let indexed = has("index", "leads_report")?;
            let plan = crate::reports::plan(&query, use_days && has("table", "report_days")?);
            for scan in &plan.scans {
                let (sql, params) = report_scan(scan, indexed);
                let mut stmt = tx.prepare_cached(&sql)?;
                let mut rows = stmt.query(params_from_iter(params.iter()))?;
                while let Some(r) = rows.next()? {
                    let status = text_ref(r, 1)?.unwrap_or("new");
                    let mut values = [None; COLUMN_DIMS];
                    for (i, v) in values.iter_mut().enumerate() {
                        *v = text_ref(r, FACT_FIXED + i)?;
                    }
                    agg.add(&FactRow {
                        received_at: instant(r.get(0)?),
                        status,
                        owner_id: r.get(2)?,
                        mobile: text_ref(r, 3)?,
                        tag_name: text_ref(r, 4)?,
                        // With the per-day table, follow-ups come from their own query below.
                        followed_at: if plan.days.is_some() { None } else { r.get::<_, Option<i64>>(5)?.map(instant) },
                        values,
                    });
                }
            }
            if let Some((first, end)) = plan.days {
                let mut range = String::from("true");
                let mut params = Vec::new();
                if let Some(f) = first {
                    params.push(f);
                    range.push_str(&format!(" AND {{t}}.day >= ?{}", params.len()));
                }
                if let Some(e) = end {
                    params.push(e);
                    range.push_str(&format!(" AND {{t}}.day < ?{}", params.len()));
                }
                let row = |r: &rusqlite::Row| -> rusqlite::Result<DayRow> {
                    let mut row = [0; 7];
                    for (i, v) in row.iter_mut().enumerate() {
                        *v = r.get(4 + i)?;
                    }
                    Ok(row)
                };
                // Changes the writer has not folded into report_days yet (migration 0013), then
                // the table, in this transaction's one snapshot.
                if has("table", "report_pending")? {
                    let sql = crate::reports::pending_days("report_pending", &range.replace("{t}", "p"));
                    let mut stmt = tx.prepare_cached(&sql)?;
                    let mut rows = stmt.query(params_from_iter(params.iter()))?;
                    while let Some(r) = rows.next()? {
                        agg.add_pending_day(r.get(1)?, r.get(0)?, r.get(2)?, r.get(3)?, row(r)?);
                    }
                }
                let sql = format!("{DAYS_SELECT} WHERE d.leads > 0 AND {}", range.replace("{t}", "d"));
                let mut stmt = tx.prepare_cached(&sql)?;
                let mut rows = stmt.query(params_from_iter(params.iter()))?;
                while let Some(r) = rows.next()? {
                    agg.add_day(r.get(0)?, r.get(1)?, text_ref(r, 2)?.unwrap_or(""), text_ref(r, 3)?.unwrap_or(""), row(r)?);
                }
            }
            if let Some(q) = &plan.follow_up {
                let (where_, params) = lead_where(q, &DIALECT);
                let and = if where_.is_empty() { "WHERE" } else { "AND" };
                let hint = if has("index", "leads_followed")? { "INDEXED BY leads_followed" } else { "" };
                let sql = format!(
                    "SELECT l.owner_id, l.received_at, l.followed_at FROM leads l {hint} {where_} {and} l.followed_at IS NOT NULL"
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                let mut rows = stmt.query(params_from_iter(sql_params(params).iter()))?;
                while let Some(r) = rows.next()? {
                    let (received, first): (i64, i64) = (r.get(1)?, r.get(2)?);
                    agg.follow_up(r.get(0)?, (instant(first) - instant(received)).num_seconds());
                }
            }
            Ok(agg.finish(top))
        })
        .await
    }
}

/// The query of a report's pass over the leads of `scan`, and its parameters. The covering index
/// answers it alone unless the filter reads other columns (then a plain scan beats an index scan
/// that looks up every row); `indexed`: whether the index exists.
fn report_scan(scan: &LeadQuery, indexed: bool) -> (String, Vec<Value>) {
    let (where_, params) = lead_where(scan, &DIALECT);
    let hint = if indexed && crate::reports::covered(scan) { "INDEXED BY leads_report" } else { "" };
    (format!("SELECT {} FROM leads l {hint} {where_}", fact_select()), sql_params(params))
}

impl SqliteStore {
    /// Opens (creating it and its folder when absent) and migrates the database at `path`, and
    /// starts the writer. `write_queue` bounds the jobs waiting for the writer.
    pub fn open(path: &Path, write_queue: usize) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Setup(format!("cannot create the data folder {}: {e}", dir.display())))?;
        }
        let setup = |e: rusqlite::Error| StoreError::Setup(format!("database {}: {e}", path.display()));
        let mut conn = Connection::open(path).map_err(setup)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 10000;",
        )
        .map_err(setup)?;
        register_search_terms(&conn).map_err(setup)?;
        migrate(&mut conn).map_err(|e| StoreError::Setup(format!("database {}: {e}", path.display())))?;
        // Leads a migration changed get their search terms now (the writer does it before each commit).
        conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::from)
            .and_then(|tx| {
                writer::index_pending_terms(&tx)?;
                Ok(tx.commit()?)
            })
            .map_err(|e| StoreError::Setup(format!("database {}: indexing leads for search: {e}", path.display())))?;
        conn.set_prepared_statement_cache_capacity(64);
        // The writer's statements are prepared once and run with new values each time. Without a
        // stable plan, SQLite re-prepares a statement whose plan could depend on a value (one
        // compared against a partial index's condition) every time it is run: a tenth of the
        // writer's time (issue #8).
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(setup)?;
        // Checkpoints run on a thread of their own (below), not inside a write's commit; the WAL
        // file is cut back to this size when it starts over.
        // A 64 MiB page cache (SQLite's default is 2 MiB) keeps the index pages that pushes
        // touch at random (city, keyword, contacts…) in memory between batches. Statement
        // journals (a statement that fires triggers, such as the per-day report's, keeps one to
        // undo itself) and sorts stay in memory rather than in temporary files.
        conn.execute_batch(
            "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864; PRAGMA cache_size = -65536;
             PRAGMA temp_store = MEMORY;",
        )
        .map_err(setup)?;
        let checkpointer = Connection::open(path).map_err(setup)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(1)).map_err(setup)?;

        let (jobs, queue) = sync_channel(write_queue);
        // Set by the checkpoint thread when the WAL should start over (see checkpoint_while).
        let restart_wanted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let restart_asked = Arc::clone(&restart_wanted);
        let writer_alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let alive_guard = AliveGuard(Arc::clone(&writer_alive));
        let scoring = ScoringCell::default();
        let writer_scoring = scoring.clone();
        let routing = Arc::new(crate::outbox::RoutingCell::default());
        let writer_routing = Arc::clone(&routing);
        let queueing = Arc::new(crate::write::Queueing::default());
        let writer_queueing = Arc::clone(&queueing);
        std::thread::Builder::new()
            .name("xiansuo-writer".into())
            .spawn(move || {
                let _alive = alive_guard;
                outbox::install(writer_routing);
                writer::run(conn, queue, writer_scoring, &writer_queueing, &restart_asked)
            })
            .map_err(|e| StoreError::Setup(format!("cannot start the writer thread: {e}")))?;
        let writer_running = Arc::clone(&writer_alive);
        std::thread::Builder::new()
            .name("xiansuo-checkpoint".into())
            .spawn(move || checkpoint_while(checkpointer, &writer_running, &restart_wanted))
            .map_err(|e| StoreError::Setup(format!("cannot start the checkpoint thread: {e}")))?;
        let readers = Arc::new(ReadPool { path: path.to_path_buf(), idle: Mutex::new(Vec::new()) });
        Ok(SqliteStore { jobs, writer_alive, readers, scoring, routing, queueing })
    }

    /// Queues a write for the writer and waits for its answer, which comes after the commit.
    async fn submit(&self, write: Write) -> Result<write::Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.try_send(Job { write, reply }).map_err(|e| match e {
            TrySendError::Full(_) => StoreError::Overloaded,
            TrySendError::Disconnected(_) => StoreError::Unavailable("the writer has stopped".into()),
        })?;
        write::answer(answer).await
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || pool.with(work))
            .await
            .map_err(|e| StoreError::Unavailable(format!("a read task failed: {e}")))?
    }
}

/// `xiansuo_search_terms(value, …)`: the search terms of a lead's values ([`crate::search`]),
/// called by the writer before each commit (migration 20) on the connection that writes leads;
/// and `xiansuo_index_later(id)`, which the triggers noting a changed lead call (it returns the
/// id): registered on that connection alone, so that another program writing `leads` gets "no
/// such function" instead of leaving the search index behind.
fn register_search_terms(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "xiansuo_index_later",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| ctx.get::<i64>(0),
    )?;
    conn.create_scalar_function(
        "xiansuo_search_terms",
        -1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let mut values = Vec::with_capacity(ctx.len());
            for i in 0..ctx.len() {
                values.push(ctx.get::<Option<String>>(i)?);
            }
            Ok(crate::search::sqlite_terms(values.iter().map(Option::as_deref)))
        },
    )
}

/// Marks the writer as ended when its thread ends, however it ends.
struct AliveGuard(Arc<std::sync::atomic::AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Applies the migrations the database lacks, each in its own transaction.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    let current: i64 = conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, chrono::Utc::now().timestamp_millis()],
        )?;
        tx.commit()?;
        tracing::info!(version, name, "applied database migration");
    }
    carry_over_vendor_events(conn)
}

/// Issue #11: the vendor event ids earlier releases kept as `vendor_event.SOURCE.ID` settings
/// (the value: the push's id) move to `vendor_events`; run at every start, so that an instance
/// of an earlier release writing them during an upgrade loses none either. Rows naming a push no
/// longer in the log are dropped.
fn carry_over_vendor_events(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let moved = tx.execute(
        "INSERT INTO vendor_events (source, event_id, push_id, received_at)
         SELECT p.source, substr(s.key, length('vendor_event.' || p.source || '.') + 1), p.id, p.received_at
         FROM settings s JOIN pushes p ON p.id = CAST(s.value AS INTEGER)
         WHERE s.key LIKE 'vendor_event.%' AND substr(s.key, 1, length('vendor_event.' || p.source || '.')) = 'vendor_event.' || p.source || '.'
           AND length(s.key) > length('vendor_event.' || p.source || '.')
         ON CONFLICT (source, event_id) DO NOTHING",
        [],
    )?;
    let removed = tx.execute("DELETE FROM settings WHERE key LIKE 'vendor_event.%'", [])?;
    tx.commit()?;
    if removed > 0 {
        tracing::info!(moved, removed, "vendor event ids moved from the settings to vendor_events");
    }
    Ok(())
}

struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn with<T>(&self, work: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.idle.lock().map_err(|_| StoreError::Unavailable("read pool poisoned".into()))?.pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c
            }
        };
        let result = work(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_READERS
        {
            idle.push(conn);
        }
        result
    }
}

/// How often the WAL is copied back into the database file while the writer runs.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// WAL frames (pages of 4 KiB) past which the checkpointer makes the WAL start over.
pub const WAL_RESTART_FRAMES: i64 = 4096;

/// Copies what the writer committed from the WAL into the database file, without waiting for
/// readers or the writer (`PASSIVE`), until the writer stops (closing the last connection then
/// checkpoints what is left). A failed checkpoint loses nothing: the WAL keeps every commit.
///
/// Under sustained writes a checkpoint running beside the writer never catches up with it, and
/// SQLite only starts the WAL over when a write begins after one has: the WAL grew by every page
/// written (7 GB while 100,000 pushes were stored, and reads slowed down tenfold searching its
/// index). A `RESTART` checkpoint from here would have to catch the writer between two batches,
/// which it hardly ever does. So once the WAL holds more than [`WAL_RESTART_FRAMES`], this sets
/// `restart`, and the writer, between two batches, copies the few frames left itself
/// ([`writer::run`]): its next write begins the WAL again (the file is cut back to
/// `journal_size_limit`). A reader still on an old snapshot (a long export) can hold that off;
/// it is asked again.
fn checkpoint_while(
    conn: Connection,
    writer_alive: &std::sync::atomic::AtomicBool,
    restart: &std::sync::atomic::AtomicBool,
) {
    while writer_alive.load(std::sync::atomic::Ordering::Acquire) {
        std::thread::sleep(CHECKPOINT_EVERY);
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
            Ok(frames) if frames > WAL_RESTART_FRAMES => restart.store(true, std::sync::atomic::Ordering::Release),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; it is tried again"),
        }
    }
}

fn instant(ms: i64) -> Instant {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// `SELECT` list of a lead row, read back by [`lead_from_row`].
fn lead_select() -> String {
    let fields: Vec<&str> = FIELDS.iter().map(|f| f.key).collect();
    format!(
        "l.id, l.source, l.status, l.extra, l.received_at, l.updated_at, l.push_count, l.message_count,
         l.visitor_message_count, (SELECT json_group_array(chat_id) FROM (SELECT chat_id FROM lead_chats
         WHERE lead_id = l.id ORDER BY first_seen_at, seq, chat_id)), {}, l.owner_id, l.status_reason, l.mobile_from_chat, l.tel_from_chat, l.weixin_from_chat,
         l.qq_from_chat, l.email_from_chat, l.merged_into, l.score, l.score_reasons",
        fields.iter().map(|f| format!("l.{f}")).collect::<Vec<_>>().join(", ")
    )
}

const LEAD_FIXED_COLUMNS: usize = 10;

fn lead_from_row(row: &Row) -> rusqlite::Result<Lead> {
    let mut lead = Lead {
        id: row.get(0)?,
        source: row.get(1)?,
        status: LeadStatus::parse(&row.get::<_, String>(2)?).unwrap_or(LeadStatus::New),
        owner_id: row.get(LEAD_FIXED_COLUMNS + FIELDS.len())?,
        status_reason: row.get(LEAD_FIXED_COLUMNS + FIELDS.len() + 1)?,
        found_in_chat: {
            let mut found = Vec::new();
            for (i, field) in CONTACT_FIELDS.iter().enumerate() {
                if row.get::<_, bool>(LEAD_FIXED_COLUMNS + FIELDS.len() + 2 + i)? {
                    found.push(*field);
                }
            }
            found
        },
        fields: Default::default(),
        times: Default::default(),
        chat_ids: Vec::new(),
        extra: serde_json::from_str(&row.get::<_, String>(3)?).unwrap_or_default(),
        received_at: instant(row.get(4)?),
        updated_at: instant(row.get(5)?),
        push_count: row.get(6)?,
        message_count: row.get(7)?,
        visitor_message_count: row.get(8)?,
        merged_into: row.get(LEAD_FIXED_COLUMNS + FIELDS.len() + 2 + CONTACT_FIELDS.len())?,
        score: row.get(LEAD_FIXED_COLUMNS + FIELDS.len() + 3 + CONTACT_FIELDS.len())?,
        score_reasons: serde_json::from_str(
            &row.get::<_, String>(LEAD_FIXED_COLUMNS + FIELDS.len() + 4 + CONTACT_FIELDS.len())?,
        )
        .unwrap_or_default(),
    };
    if let Some(chats) = row.get::<_, Option<String>>(9)? {
        lead.chat_ids = serde_json::from_str(&chats).unwrap_or_default();
    }
    for (i, f) in FIELDS.iter().enumerate() {
        let idx = LEAD_FIXED_COLUMNS + i;
        match f.kind {
            FieldKind::Text => {
                if let Some(v) = row.get::<_, Option<String>>(idx)? {
                    lead.fields.insert(f.key, v);
                }
            }
            FieldKind::Time => {
                if let Some(v) = row.get::<_, Option<i64>>(idx)? {
                    lead.times.insert(f.key, instant(v));
                }
            }
        }
    }
    Ok(lead)
}

const PUSH_SELECT: &str = "p.id, p.source, p.received_at, p.content_type, p.body, p.outcome, p.error, p.accepted,
    p.ignored, p.replayed_at, p.replay_count,
    (SELECT json_group_array(lead_id) FROM (SELECT lead_id FROM push_leads WHERE push_id = p.id ORDER BY lead_id)),
    p.query";

fn push_from_row(row: &Row) -> rusqlite::Result<PushEntry> {
    let lead_ids: Option<String> = row.get(11)?;
    Ok(PushEntry {
        id: row.get(0)?,
        source: row.get(1)?,
        received_at: instant(row.get(2)?),
        content_type: row.get(3)?,
        body: row.get(4)?,
        outcome: PushOutcomeKind::parse(&row.get::<_, String>(5)?).unwrap_or(PushOutcomeKind::Rejected),
        error: row.get(6)?,
        accepted: row.get(7)?,
        ignored: row.get(8)?,
        replayed_at: row.get::<_, Option<i64>>(9)?.map(instant),
        replay_count: row.get(10)?,
        lead_ids: lead_ids.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default(),
        query: row.get(12)?,
    })
}

const DIALECT: Dialect = Dialect {
    placeholder: |n| format!("?{n}"),
    like: "LIKE",
    search: crate::query::SearchIndex::Fts5,
    china_hour: |col| format!("((({col} + 28800000) % 86400000 + 86400000) % 86400000 / 3600000)"),
    is_bool: |b| if b { "= true" } else { "= false" },
};

/// How a lead list with a search `q` reads its leads (issue 8: a word that 40 % of a million
/// leads hold took 3.4 s, the search index handing over 400,000 candidates, each looked up and
/// sorted, for a page of 50).
enum SearchPlan {
    /// No search, or the index holds its terms for few leads: the list's own query, the index
    /// narrowing it.
    Indexed,
    /// Every match (at most [`crate::count::COUNT_CAP`]), found by reading the index's
    /// candidates in its order: the page is read from these.
    Matches(Vec<i64>),
    /// More matches than the cap: dense enough to read the list in its order, by `LIKE` alone.
    Dense,
}

/// Candidates of the search index beyond which a search reads them in the index's order.
const COMMON_CANDIDATES: i64 = 5_000;

fn search_plan(conn: &Connection, query: &LeadQuery) -> Result<SearchPlan, StoreError> {
    let Some(text) = query.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(SearchPlan::Indexed);
    };
    let terms = crate::search::query_terms(text);
    if terms.is_empty() {
        return Ok(SearchPlan::Indexed);
    }
    let fts = crate::search::fts5_phrase(text);
    let candidates: i64 = conn
        .prepare_cached("SELECT count(*) FROM (SELECT rowid FROM lead_terms WHERE lead_terms MATCH ?1 LIMIT ?2)")?
        .query_row(rusqlite::params![fts, COMMON_CANDIDATES], |r| r.get(0))?;
    if candidates < COMMON_CANDIDATES {
        return Ok(SearchPlan::Indexed);
    }
    // The candidates in the index's order, each looked up and checked, stopping past the cap.
    let (where_, params) = lead_where_unindexed(query, &DIALECT);
    let conditions = where_.strip_prefix("WHERE ").unwrap_or("true");
    let sql = format!(
        "SELECT l.id FROM lead_terms CROSS JOIN leads l ON l.id = lead_terms.rowid \
         WHERE lead_terms MATCH ?{} AND {conditions} LIMIT {}",
        params.len() + 1,
        crate::count::COUNT_CAP + 1
    );
    let mut values = sql_params(params);
    values.push(Value::Text(fts));
    let ids = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(values.iter()), |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(if ids.len() as u64 > crate::count::COUNT_CAP { SearchPlan::Dense } else { SearchPlan::Matches(ids) })
}

/// A lead list's total, and whether it is exact ([`crate::count`]): from the per-day report
/// when it answers the filter, else the matches counted up to the cap.
fn count_leads(conn: &Connection, query: &LeadQuery) -> rusqlite::Result<(u64, bool)> {
    let capped_count = |q: &LeadQuery| -> rusqlite::Result<(u64, bool)> {
        let (where_, params) = lead_where(q, &DIALECT);
        let counted: i64 = conn
            .prepare_cached(&crate::count::capped_count_sql(&where_))?
            .query_row(params_from_iter(sql_params(params).iter()), |r| r.get(0))?;
        Ok(crate::count::capped(counted))
    };
    let Some(days) = crate::count::days_count(query, &DIALECT) else { return capped_count(query) };
    let whole: i64 =
        conn.prepare_cached(&days.sql)?.query_row(params_from_iter(sql_params(days.params).iter()), |r| r.get(0))?;
    let (mut total, mut exact) = (u64::try_from(whole).unwrap_or(0), true);
    for scan in &days.scans {
        let (n, e) = capped_count(scan)?;
        total += n;
        exact &= e;
    }
    Ok((total, exact))
}

fn sql_params(params: Vec<Param>) -> Vec<Value> {
    params
        .into_iter()
        .map(|p| match p {
            Param::Text(t) => Value::Text(t),
            Param::Int(i) => Value::Integer(i),
            Param::Time(t) => Value::Integer(t.timestamp_millis()),
        })
        .collect()
}

/// A text column borrowed from its row (`None` for NULL or anything not text).
fn text_ref<'r>(r: &'r Row, i: usize) -> rusqlite::Result<Option<&'r str>> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Text(t) => std::str::from_utf8(t).ok(),
        _ => None,
    })
}

fn cell_from_sqlite(row: &Row, i: usize, kind: ColumnKind) -> rusqlite::Result<Cell> {
    use rusqlite::types::ValueRef;
    Ok(match (row.get_ref(i)?, kind) {
        (ValueRef::Null, _) => Cell::Null,
        (ValueRef::Integer(v), ColumnKind::Time) => Cell::Time(instant(v)),
        (ValueRef::Integer(v), ColumnKind::Bool) => Cell::Bool(v != 0),
        (ValueRef::Integer(v), _) => Cell::Int(v),
        (ValueRef::Text(t), ColumnKind::Json) => {
            Cell::Json(serde_json::from_slice(t).unwrap_or_else(|_| serde_json::json!({})))
        }
        (ValueRef::Text(t), _) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        (ValueRef::Blob(b), _) => Cell::Bytes(b.to_vec()),
        (ValueRef::Real(r), _) => Cell::Text(r.to_string()),
    })
}

const USER_SELECT: &str = "id, name, role, password_hash, disabled, created_at FROM users";

fn user_from_row(row: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        role: Role::parse(&row.get::<_, String>(2)?).unwrap_or(Role::Agent),
        password_hash: row.get(3)?,
        disabled: row.get(4)?,
        created_at: instant(row.get(5)?),
    })
}

/// A timeline row; `None` for a kind this release does not know (written by a newer one).
fn event_from_row(row: &Row) -> rusqlite::Result<Option<LeadEvent>> {
    let (id, lead_id, at, user_id): (i64, i64, i64, Option<i64>) = (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
    let kind: String = row.get(4)?;
    let detail: serde_json::Value = serde_json::from_str(&row.get::<_, String>(5)?).unwrap_or_default();
    Ok(change_from_detail(&kind, &detail).map(|change| LeadEvent { id, lead_id, at: instant(at), user_id, change }))
}

fn message_from_row(row: &Row) -> rusqlite::Result<Message> {
    Ok(Message {
        recorder_id: row.get(0)?,
        chat_id: row.get(1)?,
        sender: Sender::parse(&row.get::<_, String>(2)?).unwrap_or(Sender::Staff),
        from_id: row.get(3)?,
        message: row.get(4)?,
        kind: row.get(5)?,
        create_time: row.get::<_, Option<i64>>(6)?.map(instant),
        extra: serde_json::from_str(&row.get::<_, String>(7)?).unwrap_or_default(),
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn record_push(&self, push: NewPush) -> Result<PushRecorded, StoreError> {
        self.submit(Write::Push(push)).await?.into_push()
    }

    async fn record_spooled_push(&self, spool_id: &str, push: NewPush) -> Result<PushRecorded, StoreError> {
        self.submit(Write::SpooledPush { spool_id: spool_id.to_string(), push }).await?.into_push()
    }

    async fn record_vendor_push(
        &self,
        push: NewPush,
        vendor: crate::VendorPush,
    ) -> Result<crate::VendorRecorded, StoreError> {
        self.submit(Write::VendorPush { push, vendor }).await?.into_vendor_push()
    }

    async fn replay_push(&self, push_id: i64, result: PushResult, at: Instant) -> Result<PushRecorded, StoreError> {
        self.submit(Write::Replay { push_id, result, at }).await?.into_push()
    }

    async fn apply_queued_pushes(&self, pushes: Vec<crate::QueuedPush>) -> Result<Vec<PushRecorded>, StoreError> {
        self.submit(Write::ApplyQueued(pushes)).await?.into_pushes()
    }

    async fn queued_pushes(&self, limit: u32, except: &[i64]) -> Result<Vec<PushEntry>, StoreError> {
        let except = serde_json::to_string(except).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {PUSH_SELECT} FROM pushes p WHERE p.outcome = 'queued'
                     AND p.id NOT IN (SELECT value FROM json_each(?2)) ORDER BY p.id LIMIT ?1"
                ))?
                .query_map(rusqlite::params![limit, except], push_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    fn queueing(&self) -> &crate::write::Queueing {
        &self.queueing
    }

    async fn push(&self, id: i64) -> Result<Option<PushEntry>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {PUSH_SELECT} FROM pushes p WHERE p.id = ?1"))?
                .query_row([id], push_from_row)
                .optional()?)
        })
        .await
    }

    async fn list_pushes(&self, query: &PushQuery) -> Result<Page<PushEntry>, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let (where_, params) = push_where(&query, &DIALECT);
            let params = sql_params(params);
            let total: i64 = conn
                .prepare_cached(&format!("SELECT count(*) FROM pushes p {where_}"))?
                .query_row(params_from_iter(params.iter()), |r| r.get(0))?;
            let sql = format!(
                "SELECT {PUSH_SELECT} FROM pushes p {where_} ORDER BY p.id DESC {}",
                limit_offset(query.page, query.per_page)
            );
            let items = conn
                .prepare_cached(&sql)?
                .query_map(params_from_iter(params.iter()), push_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Page { total: total as u64, total_exact: true, page: query.page, per_page: query.per_page, items })
        })
        .await
    }

    async fn list_leads(&self, query: &LeadQuery) -> Result<Page<Lead>, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            // One read transaction: the total and the page see the same leads.
            let tx = conn.unchecked_transaction()?;
            let (total, total_exact, where_, params) = match search_plan(&tx, &query)? {
                SearchPlan::Indexed => {
                    let (total, exact) = count_leads(&tx, &query)?;
                    let (where_, params) = lead_where(&query, &DIALECT);
                    (total, exact, where_, sql_params(params))
                }
                SearchPlan::Matches(ids) => {
                    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                    let where_ = "WHERE l.id IN (SELECT value FROM json_each(?1))".to_string();
                    (ids.len() as u64, true, where_, vec![Value::Text(format!("[{list}]"))])
                }
                SearchPlan::Dense => {
                    let (where_, params) = lead_where_unindexed(&query, &DIALECT);
                    (crate::count::COUNT_CAP, false, where_, sql_params(params))
                }
            };
            let sql = lead_page_sql(&lead_select(), &where_, query.sort, query.page, query.per_page, &DIALECT);
            let items = tx
                .prepare_cached(&sql)?
                .query_map(params_from_iter(params.iter()), lead_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Page { total, total_exact, page: query.page, per_page: query.per_page, items })
        })
        .await
    }

    async fn lead(&self, id: i64) -> Result<Option<LeadDetail>, StoreError> {
        self.read(move |conn| {
            let lead = conn
                .prepare_cached(&format!("SELECT {} FROM leads l WHERE l.id = ?1", lead_select()))?
                .query_row([id], lead_from_row)
                .optional()?;
            let Some(lead) = lead else { return Ok(None) };
            // With the messages and pushes of leads merged into it.
            let group = group_cte("?1");
            let messages = conn
                .prepare_cached(&format!(
                    "{group} SELECT recorder_id, chat_id, sender, from_id, message, type, create_time, extra
                     FROM messages WHERE lead_id IN (SELECT id FROM grp) ORDER BY create_time IS NULL, create_time, id"
                ))?
                .query_map([id], message_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let pushes = conn
                .prepare_cached(&format!(
                    "{group} SELECT DISTINCT p.id, p.received_at, p.outcome FROM push_leads pl JOIN pushes p ON p.id = pl.push_id
                     WHERE pl.lead_id IN (SELECT id FROM grp) ORDER BY p.id"
                ))?
                .query_map([id], |r| {
                    Ok(PushSummary {
                        id: r.get(0)?,
                        received_at: instant(r.get(1)?),
                        outcome: PushOutcomeKind::parse(&r.get::<_, String>(2)?).unwrap_or(PushOutcomeKind::Accepted),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(LeadDetail { lead, messages, pushes }))
        })
        .await
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.submit(Write::Setting { key: key.to_string(), value: value.to_string() }).await?.into_setting()
    }

    async fn audit(&self, entry: crate::AuditEntry) -> Result<(), StoreError> {
        self.submit(Write::Audit(entry)).await.map(|_| ())
    }

    async fn fold_report_days(&self) -> Result<u64, StoreError> {
        match self.submit(Write::FoldReports).await? {
            write::Written::Folded(rows) => Ok(rows),
            _ => Err(StoreError::Unavailable("the writer answered a fold with something else".into())),
        }
    }

    async fn audit_log(&self, query: &crate::AuditQuery) -> Result<Page<crate::AuditRecord>, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let total: i64 = conn
                .prepare_cached("SELECT count(*) FROM audit_log WHERE ?1 IS NULL OR action = ?1")?
                .query_row([&query.action], |r| r.get(0))?;
            let sql = format!(
                "SELECT id, at, user_id, actor, action, target, detail, ip FROM audit_log
                 WHERE ?1 IS NULL OR action = ?1 ORDER BY id DESC {}",
                limit_offset(query.page, query.per_page)
            );
            let items = conn
                .prepare_cached(&sql)?
                .query_map([&query.action], |r| {
                    Ok(crate::AuditRecord {
                        id: r.get(0)?,
                        entry: crate::AuditEntry {
                            at: instant(r.get(1)?),
                            user_id: r.get(2)?,
                            actor: r.get(3)?,
                            action: r.get(4)?,
                            target: r.get(5)?,
                            detail: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                            ip: r.get(7)?,
                        },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Page { total: total as u64, total_exact: true, page: query.page, per_page: query.per_page, items })
        })
        .await
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        let write = Write::SetSetting { key: key.to_string(), value: value.map(str::to_string) };
        self.submit(write).await.map(|_| ())
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            Ok(conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?)
        })
        .await
    }

    async fn create_user(&self, name: &str, role: Role, password_hash: &str) -> Result<User, StoreError> {
        let write = Write::CreateUser {
            name: name.to_string(),
            role,
            password_hash: password_hash.to_string(),
            at: xiansuo_domain::now(),
        };
        self.submit(write).await?.into_user()
    }

    async fn update_user(&self, id: i64, change: UserChange) -> Result<(), StoreError> {
        self.submit(Write::UpdateUser { id, change }).await.map(|_| ())
    }

    async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {USER_SELECT} WHERE id = ?1"))?
                .query_row([id], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {USER_SELECT} WHERE name = ?1"))?
                .query_row([name], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn user_by_api_token(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        let hash = token_hash.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {USER_SELECT} WHERE api_token_hash = ?1"))?
                .query_row([hash], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {USER_SELECT} ORDER BY name"))?
                .query_map([], user_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        self.submit(Write::CreateSession(session)).await.map(|_| ())
    }

    async fn session(&self, token_hash: &str, now: Instant) -> Result<Option<Session>, StoreError> {
        let hash = token_hash.to_string();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT s.csrf, s.expires_at, s.user_id FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND NOT u.disabled",
                )?
                .query_row(rusqlite::params![hash, now.timestamp_millis()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })
                .optional()?;
            let Some((csrf, expires_at, user_id)) = row else { return Ok(None) };
            let user = conn
                .prepare_cached(&format!("SELECT {USER_SELECT} WHERE id = ?1"))?
                .query_row([user_id], user_from_row)?;
            Ok(Some(Session { user, csrf, expires_at: instant(expires_at) }))
        })
        .await
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.submit(Write::DeleteSession { token_hash: token_hash.to_string() }).await.map(|_| ())
    }

    async fn update_lead(
        &self,
        lead_id: i64,
        by: Actor,
        update: LeadUpdate,
        at: Instant,
    ) -> Result<LeadEvent, StoreError> {
        self.submit(Write::UpdateLead { lead_id, by, update, at }).await?.into_event()
    }

    async fn lead_events(&self, lead_id: i64) -> Result<Vec<LeadEvent>, StoreError> {
        self.read(move |conn| {
            let events = conn
                .prepare_cached(&format!(
                    "{} SELECT id, lead_id, at, user_id, kind, detail FROM lead_events
                     WHERE lead_id IN (SELECT id FROM grp) ORDER BY at, id",
                    group_cte("?1")
                ))?
                .query_map([lead_id], event_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(events.into_iter().flatten().collect())
        })
        .await
    }

    fn set_scoring(&self, scoring: Scoring) {
        self.scoring.set(scoring);
    }

    async fn duplicates(&self, lead_id: i64) -> Result<Vec<Duplicate>, StoreError> {
        self.read(move |conn| {
            let shared: Vec<(i64, String, String)> = conn
                .prepare_cached(&format!(
                    "{} SELECT o.lead_id, o.kind, o.value FROM lead_contacts c
                     JOIN lead_contacts o ON o.kind = c.kind AND o.value = c.value
                     WHERE c.lead_id IN (SELECT id FROM grp) AND o.lead_id NOT IN (SELECT id FROM grp)
                     AND (SELECT count(*) FROM (SELECT 1 FROM lead_contacts x WHERE x.kind = c.kind AND x.value = c.value
                          LIMIT {common}) AS holders) <= {common_max}
                     ORDER BY o.lead_id DESC LIMIT 500",
                    group_cte("?1"),
                common = xiansuo_domain::COMMON_CONTACT_LEADS + 1,
                common_max = xiansuo_domain::COMMON_CONTACT_LEADS
                ))?
                .query_map([lead_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut parent = conn.prepare_cached("SELECT merged_into FROM leads WHERE id = ?1")?;
            let mut root = |mut id: i64| -> rusqlite::Result<i64> {
                for _ in 0..64 {
                    match parent.query_row([id], |r| r.get::<_, Option<i64>>(0)).optional()?.flatten() {
                        Some(p) if p != id => id = p,
                        _ => break,
                    }
                }
                Ok(id)
            };
            let me = root(lead_id)?;
            let mut found: Vec<(i64, Vec<(String, String)>)> = Vec::new();
            for (other, kind, value) in shared {
                let other = root(other)?;
                if other == me {
                    continue;
                }
                match found.iter_mut().find(|(id, _)| *id == other) {
                    Some((_, contacts)) if !contacts.contains(&(kind.clone(), value.clone())) => {
                        contacts.push((kind, value))
                    }
                    Some(_) => {}
                    None => found.push((other, vec![(kind, value)])),
                }
            }
            let mut is_dismissed =
                conn.prepare_cached("SELECT 1 FROM duplicate_dismissals WHERE lead_a = ?1 AND lead_b = ?2")?;
            let mut load = conn.prepare_cached(&format!("SELECT {} FROM leads l WHERE l.id = ?1", lead_select()))?;
            // The 50 most recent are enough to act on (a number many leads share lists no more).
            found.truncate(50);
            let mut duplicates = Vec::new();
            for (other, contacts) in found {
                if is_dismissed.exists([me.min(other), me.max(other)])? {
                    continue;
                }
                if let Some(lead) = load.query_row([other], lead_from_row).optional()? {
                    duplicates.push(Duplicate { lead, contacts });
                }
            }
            duplicates.sort_by(|a, b| b.lead.received_at.cmp(&a.lead.received_at).then(b.lead.id.cmp(&a.lead.id)));
            Ok(duplicates)
        })
        .await
    }

    async fn lead_ids(&self, after: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT id FROM leads WHERE id > ?1 ORDER BY id LIMIT ?2")?
                .query_map(rusqlite::params![after, limit], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?)
        })
        .await
    }

    async fn index_lead(
        &self,
        lead_id: i64,
        contact_keys: Vec<(&'static str, String)>,
        intent_words: Vec<String>,
    ) -> Result<(), StoreError> {
        self.submit(Write::IndexLead { lead_id, contact_keys, intent_words }).await.map(|_| ())
    }

    async fn merge_leads(&self, keep: i64, merge: i64, by: Actor, at: Instant) -> Result<LeadEvent, StoreError> {
        self.submit(Write::MergeLeads { keep, merge, by, at }).await?.into_event()
    }

    async fn unmerge_lead(&self, merged: i64, by: Actor, at: Instant) -> Result<LeadEvent, StoreError> {
        self.submit(Write::UnmergeLead { merged, by, at }).await?.into_event()
    }

    async fn dismiss_duplicate(&self, lead: i64, other: i64, by: Actor, at: Instant) -> Result<LeadEvent, StoreError> {
        self.submit(Write::DismissDuplicate { lead, other, by, at }).await?.into_event()
    }

    async fn copy_out(&self, table: &TableDef, lo: i64, hi: i64) -> Result<Vec<Vec<Cell>>, StoreError> {
        let table = table.clone();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {} FROM {} {} ORDER BY {}",
                table.column_list(),
                table.name,
                table.range_filter(|n| format!("?{n}")),
                table.order_by
            );
            let mut stmt = conn.prepare(&sql)?;
            let params: Vec<i64> = if table.range_key.is_some() { vec![lo, hi] } else { Vec::new() };
            let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
                table.columns.iter().enumerate().map(|(i, (_, kind))| cell_from_sqlite(row, i, *kind)).collect()
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn copy_in(&self, table: &TableDef, rows: Vec<Vec<Cell>>) -> Result<(), StoreError> {
        match self.submit(Write::Import { table: table.clone(), rows }).await? {
            write::Written::Imported => Ok(()),
            _ => Err(StoreError::Unavailable("the writer answered an import with something else".into())),
        }
    }

    async fn table_stats(&self, table: &TableDef) -> Result<(i64, Option<i64>), StoreError> {
        let table = table.clone();
        self.read(move |conn| {
            let max = table.range_key.map_or("NULL".to_string(), |k| format!("MAX({k})"));
            Ok(conn.query_row(&format!("SELECT count(*), {max} FROM {}", table.name), [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?)
        })
        .await
    }

    async fn after_copy(&self) -> Result<(), StoreError> {
        // INTEGER PRIMARY KEY columns continue after the largest id by themselves.
        Ok(())
    }

    async fn record_export(&self, export: NewExport) -> Result<i64, StoreError> {
        self.submit(Write::Export(export)).await?.into_id()
    }

    async fn list_exports(&self, page: u32, per_page: u32) -> Result<Page<ExportEntry>, StoreError> {
        self.read(move |conn| {
            let total: i64 = conn.query_row("SELECT count(*) FROM exports", [], |r| r.get(0))?;
            let sql = format!(
                "SELECT id, at, user_id, actor, via, format, columns, filter, rows, completed FROM exports
                 ORDER BY id DESC {}",
                limit_offset(page, per_page)
            );
            let items = conn
                .prepare_cached(&sql)?
                .query_map([], |r| {
                    Ok(ExportEntry {
                        id: r.get(0)?,
                        export: NewExport {
                            at: instant(r.get(1)?),
                            user_id: r.get(2)?,
                            actor: r.get(3)?,
                            via: r.get(4)?,
                            format: r.get(5)?,
                            columns: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                            filter: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
                            rows: r.get(8)?,
                            completed: r.get(9)?,
                        },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Page { total: total as u64, total_exact: true, page, per_page, items })
        })
        .await
    }

    async fn lead_batch(
        &self,
        query: &LeadQuery,
        after: Option<LeadCursor>,
        limit: u32,
    ) -> Result<Vec<Lead>, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let (where_, params, order) = lead_batch_where(&query, after, &DIALECT);
            let sql = format!("SELECT {} FROM leads l {where_} ORDER BY {order} LIMIT {limit}", lead_select());
            Ok(conn
                .prepare_cached(&sql)?
                .query_map(params_from_iter(sql_params(params).iter()), lead_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn lead_stats(&self, query: &LeadQuery, top: usize) -> Result<LeadStats, StoreError> {
        self.report(query, top, true).await
    }

    async fn lead_stats_scanned(&self, query: &LeadQuery, top: usize) -> Result<LeadStats, StoreError> {
        self.report(query, top, false).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if !self.writer_alive.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the writer has stopped".into()));
        }
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ())?)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with every migration applied (its folder lives as long as the first value).
    fn migrated_database() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.db");
        drop(SqliteStore::open(&path, 16).unwrap());
        let conn = Connection::open(&path).unwrap();
        (dir, conn)
    }

    /// SQLite's plan of a statement, one line per step.
    fn plan_of(conn: &Connection, sql: &str, params: Vec<Value>) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map(params_from_iter(params.iter()), |r| r.get(3)).unwrap().map(|r| r.unwrap()).collect()
    }

    /// A filtered report reads the covering index alone (migration 0014): SQLite's plan says
    /// `COVERING INDEX`, not a table row looked up for each lead of the range (what it did while
    /// `merged_into`, which every report filters on, was not in the index: 3–4 times slower at
    /// 1,000,000 leads).
    #[test]
    fn filtered_reports_read_the_covering_index_alone() {
        let (_dir, conn) = migrated_database();
        let from = DateTime::from_timestamp(1_780_000_000, 0);
        let queries = [
            LeadQuery { city: Some("广州市".into()), from, ..Default::default() },
            LeadQuery { search_engine: Some("百度".into()), ..Default::default() },
            LeadQuery { status: Some(LeadStatus::Won), ..Default::default() },
            LeadQuery { owner: Some(crate::OwnerFilter::Unassigned), visible_to: Some(3), ..Default::default() },
            LeadQuery { landing: Some("http://a.cn/x".into()), hour: Some(9), ..Default::default() },
            LeadQuery { empty: vec!["keyword", "landing"], tag: Some("7".into()), ..Default::default() },
        ];
        for q in &queries {
            let (sql, params) = report_scan(q, true);
            let plan = plan_of(&conn, &sql, params);
            assert!(plan.iter().any(|p| p.contains("COVERING INDEX leads_report")), "{q:?}: {plan:?}");
        }
    }

    /// A list filtered on two of the inbox's equality filters counts its matches from one
    /// filter index alone (migration 0023): the index entry holds the other filters' columns, so
    /// no lead row is read to check them (113 → 12 ms for `user_id` + `ntag_id` at a million
    /// leads, where 71,631 rows of that `user_id` were each read for their tag).
    #[test]
    fn combined_filters_count_from_one_index_alone() {
        let (_dir, conn) = migrated_database();
        let from = DateTime::from_timestamp(1_780_000_000, 0);
        let queries = [
            LeadQuery { user_id: Some("kf01".into()), ntag_id: Some("102".into()), ..Default::default() },
            LeadQuery {
                province: Some("山西省".into()),
                city: Some("太原市".into()),
                search_engine: Some("百度".into()),
                ..Default::default()
            },
            LeadQuery { tag: Some("102".into()), city: Some("太原市".into()), ..Default::default() },
            LeadQuery {
                status: Some(LeadStatus::New),
                owner: Some(crate::OwnerFilter::User(3)),
                source: Some("qiyu".into()),
                ..Default::default()
            },
            LeadQuery {
                owner: Some(crate::OwnerFilter::Unassigned),
                search_engine: Some("神马".into()),
                from,
                ..Default::default()
            },
            LeadQuery {
                visible_to: Some(3),
                status: Some(LeadStatus::Won),
                city: Some("广州市".into()),
                ..Default::default()
            },
        ];
        for q in &queries {
            let (where_, params) = lead_where(q, &DIALECT);
            let sql = crate::count::capped_count_sql(&where_);
            let plan = plan_of(&conn, &sql, sql_params(params));
            // A filter's own index (`leads_report`, read by received time, covers most of these
            // columns too, but reads every lead of the range).
            assert!(
                plan.iter()
                    .any(|p| p.starts_with("SEARCH l USING COVERING INDEX leads_") && !p.contains("leads_report")),
                "{q:?}: {plan:?}"
            );
            // The page: the same index, in the list's order (no sort), rows read for what it shows.
            let (where_, params) = lead_where(q, &DIALECT);
            let sql = lead_page_sql("l.id, l.name", &where_, crate::LeadSort::ReceivedDesc, 1, 50, &DIALECT);
            let plan = plan_of(&conn, &sql, sql_params(params));
            assert!(
                plan.iter().any(|p| p.starts_with("SEARCH l USING INDEX leads_") && !p.contains("leads_report"))
                    && !plan.iter().any(|p| p.contains("TEMP B-TREE")),
                "{q:?}: {plan:?}"
            );
            // A later page: its ids from that index alone, then their rows by id.
            let (where_, params) = lead_where(q, &DIALECT);
            let sql = lead_page_sql("l.id, l.name", &where_, crate::LeadSort::ReceivedDesc, 3, 50, &DIALECT);
            let plan = plan_of(&conn, &sql, sql_params(params));
            assert!(
                plan.iter()
                    .any(|p| p.starts_with("SEARCH l USING COVERING INDEX leads_") && !p.contains("leads_report"))
                    && plan.iter().any(|p| p.contains("USING INTEGER PRIMARY KEY"))
                    && !plan.iter().any(|p| p.starts_with("SCAN l")),
                "page 3 of {q:?}: {plan:?}"
            );
        }
    }
}
