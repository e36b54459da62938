//! The embedded SQLite store: one writer thread doing group commits ([`writer`]), and a small
//! pool of read connections beside it (WAL lets them read while it writes).
//!
//! Durability: WAL with `synchronous=FULL`, so a commit is on disk before a push is answered.

mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::DateTime;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params_from_iter, types::Value};
use tokio::sync::oneshot;
use xiansuo_domain::{FIELDS, FieldKind, Instant, Lead, LeadStatus, Message, PushOutcomeKind, Sender};

use crate::{
    LeadDetail, LeadQuery, LeadSort, NewPush, Page, PushEntry, PushQuery, PushRecorded, PushResult, PushSummary, Store,
    StoreError,
};
use writer::Job;

/// Schema versions, applied in order, each once. Never edit a released one: add the next.
const MIGRATIONS: &[(i64, &str, &str)] = &[(1, "init", include_str!("migrations/0001_init.sql"))];

/// Read connections kept open between requests.
const IDLE_READERS: usize = 8;

pub struct SqliteStore {
    jobs: SyncSender<Job>,
    readers: Arc<ReadPool>,
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
        migrate(&mut conn).map_err(|e| StoreError::Setup(format!("database {}: {e}", path.display())))?;
        conn.set_prepared_statement_cache_capacity(64);

        let (jobs, queue) = sync_channel(write_queue);
        std::thread::Builder::new()
            .name("xiansuo-writer".into())
            .spawn(move || writer::run(conn, queue))
            .map_err(|e| StoreError::Setup(format!("cannot start the writer thread: {e}")))?;
        let readers = Arc::new(ReadPool { path: path.to_path_buf(), idle: Mutex::new(Vec::new()) });
        Ok(SqliteStore { jobs, readers })
    }

    fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => StoreError::Overloaded,
            TrySendError::Disconnected(_) => StoreError::Unavailable("the writer has stopped".into()),
        })
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

fn instant(ms: i64) -> Instant {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// `SELECT` list of a lead row, read back by [`lead_from_row`].
fn lead_select() -> String {
    let fields: Vec<&str> = FIELDS.iter().map(|f| f.key).collect();
    format!(
        "l.id, l.source, l.status, l.extra, l.received_at, l.updated_at, l.push_count, l.message_count,
         l.visitor_message_count, (SELECT group_concat(chat_id, char(31)) FROM (SELECT chat_id FROM lead_chats
         WHERE lead_id = l.id ORDER BY first_seen_at, chat_id)), {}",
        fields.iter().map(|f| format!("l.{f}")).collect::<Vec<_>>().join(", ")
    )
}

const LEAD_FIXED_COLUMNS: usize = 10;

fn lead_from_row(row: &Row) -> rusqlite::Result<Lead> {
    let mut lead = Lead {
        id: row.get(0)?,
        source: row.get(1)?,
        status: LeadStatus::parse(&row.get::<_, String>(2)?).unwrap_or(LeadStatus::New),
        fields: Default::default(),
        times: Default::default(),
        chat_ids: Vec::new(),
        extra: serde_json::from_str(&row.get::<_, String>(3)?).unwrap_or_default(),
        received_at: instant(row.get(4)?),
        updated_at: instant(row.get(5)?),
        push_count: row.get(6)?,
        message_count: row.get(7)?,
        visitor_message_count: row.get(8)?,
    };
    if let Some(chats) = row.get::<_, Option<String>>(9)? {
        lead.chat_ids = chats.split('\u{1f}').map(str::to_string).collect();
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
    (SELECT group_concat(lead_id) FROM push_leads WHERE push_id = p.id)";

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
        lead_ids: lead_ids.map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect()).unwrap_or_default(),
    })
}

fn offset(page: u32, per_page: u32) -> i64 {
    i64::from(page.max(1) - 1) * i64::from(per_page)
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Columns `q` searches.
const SEARCHED: &[&str] =
    &["name", "mobile", "tel", "weixin", "qq", "email", "visitor_static_id", "keyword", "note", "city"];

fn lead_filter(q: &LeadQuery) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    let mut eq = |column: &str, value: &Option<String>, clauses: &mut Vec<String>| {
        if let Some(v) = value {
            params.push(v.clone().into());
            clauses.push(format!("l.{column} = ?{}", params.len()));
        }
    };
    eq("source", &q.source, &mut clauses);
    eq("province", &q.province, &mut clauses);
    eq("city", &q.city, &mut clauses);
    eq("search_engine", &q.search_engine, &mut clauses);
    eq("ntag_id", &q.ntag_id, &mut clauses);
    eq("user_id", &q.user_id, &mut clauses);
    eq("status", &q.status.map(|s| s.as_str().to_string()), &mut clauses);
    if let Some(from) = q.from {
        params.push(from.timestamp_millis().into());
        clauses.push(format!("l.received_at >= ?{}", params.len()));
    }
    if let Some(to) = q.to {
        params.push(to.timestamp_millis().into());
        clauses.push(format!("l.received_at < ?{}", params.len()));
    }
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        params.push(like_pattern(text).into());
        let n = params.len();
        let any: Vec<String> = SEARCHED.iter().map(|c| format!("l.{c} LIKE ?{n} ESCAPE '\\'")).collect();
        clauses.push(format!("({})", any.join(" OR ")));
    }
    let where_ = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    (where_, params)
}

fn order_by(sort: LeadSort) -> &'static str {
    match sort {
        LeadSort::ReceivedDesc => "l.received_at DESC, l.id DESC",
        LeadSort::ReceivedAsc => "l.received_at ASC, l.id ASC",
        LeadSort::UpdatedDesc => "l.updated_at DESC, l.id DESC",
        LeadSort::UpdatedAsc => "l.updated_at ASC, l.id ASC",
        LeadSort::CreateTimeDesc => "l.create_time IS NULL, l.create_time DESC, l.id DESC",
        LeadSort::CreateTimeAsc => "l.create_time IS NULL, l.create_time ASC, l.id ASC",
    }
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
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Push { push, reply })?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
    }

    async fn replay_push(&self, push_id: i64, result: PushResult, at: Instant) -> Result<PushRecorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Replay { push_id, result, at, reply })?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
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
            let mut clauses = Vec::new();
            let mut params: Vec<Value> = Vec::new();
            if let Some(o) = query.outcome {
                params.push(o.as_str().to_string().into());
                clauses.push(format!("p.outcome = ?{}", params.len()));
            }
            if let Some(s) = &query.source {
                params.push(s.clone().into());
                clauses.push(format!("p.source = ?{}", params.len()));
            }
            let where_ = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
            let total: i64 = conn
                .prepare_cached(&format!("SELECT count(*) FROM pushes p {where_}"))?
                .query_row(params_from_iter(params.iter()), |r| r.get(0))?;
            let sql = format!(
                "SELECT {PUSH_SELECT} FROM pushes p {where_} ORDER BY p.id DESC LIMIT {} OFFSET {}",
                query.per_page,
                offset(query.page, query.per_page)
            );
            let items = conn
                .prepare_cached(&sql)?
                .query_map(params_from_iter(params.iter()), push_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Page { total: total as u64, page: query.page, per_page: query.per_page, items })
        })
        .await
    }

    async fn list_leads(&self, query: &LeadQuery) -> Result<Page<Lead>, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let (where_, params) = lead_filter(&query);
            let total: i64 = conn
                .prepare_cached(&format!("SELECT count(*) FROM leads l {where_}"))?
                .query_row(params_from_iter(params.iter()), |r| r.get(0))?;
            let sql = format!(
                "SELECT {} FROM leads l {where_} ORDER BY {} LIMIT {} OFFSET {}",
                lead_select(),
                order_by(query.sort),
                query.per_page,
                offset(query.page, query.per_page)
            );
            let items = conn
                .prepare_cached(&sql)?
                .query_map(params_from_iter(params.iter()), lead_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Page { total: total as u64, page: query.page, per_page: query.per_page, items })
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
            let messages = conn
                .prepare_cached(
                    "SELECT recorder_id, chat_id, sender, from_id, message, type, create_time, extra
                     FROM messages WHERE lead_id = ?1 ORDER BY create_time IS NULL, create_time, id",
                )?
                .query_map([id], message_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let pushes = conn
                .prepare_cached(
                    "SELECT p.id, p.received_at, p.outcome FROM push_leads pl JOIN pushes p ON p.id = pl.push_id
                     WHERE pl.lead_id = ?1 ORDER BY p.id",
                )?
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
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Setting { key: key.to_string(), value: value.to_string(), reply })?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ())?)).await
    }
}
