//! The PostgreSQL store, for installations that outgrow one machine: several `xiansuo serve`
//! processes may share one database.
//!
//! Like the SQLite store, each process has one writer task that commits whatever has queued in
//! one transaction (group commit) and answers after the commit. Across processes, the identity
//! key's `INSERT … ON CONFLICT` makes concurrent pushes for one visitor end as one lead; a batch
//! that loses a deadlock against another process is retried whole.

/// Issue #6: assignment and the outbox.
pub mod outbox;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use xiansuo_domain::{
    CONTACT_FIELDS, FIELDS, FieldKind, Instant, Lead, LeadEvent, LeadStatus, Message, PushOutcomeKind, Role, Scoring,
    Sender, User,
};

use crate::copy::{Cell, ColumnKind, TableDef};
use crate::query::{Dialect, Param, group_cte, lead_batch_where, lead_page_sql, lead_where, limit_offset, push_where};
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

/// Any number: the advisory lock that serializes migrations of processes starting together.
const MIGRATION_LOCK: i64 = 0x0078_6961_6e73_756f;

pub struct PostgresStore {
    pool: Pool,
    jobs: mpsc::Sender<Job>,
    scoring: ScoringCell,
    /// Issue #6: the rules and sinks the writer applies.
    routing: std::sync::Arc<crate::outbox::RoutingCell>,
    /// Issue #8: when the writers queue pushes.
    queueing: std::sync::Arc<crate::write::Queueing>,
}

/// The error with its cause: `tokio_postgres::Error` alone displays as "db error", the server's
/// message being its source.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Unavailable(describe(&e))
    }
}

impl PostgresStore {
    /// Connects (at most `pool_size` connections), applies the migrations the database lacks,
    /// and starts `writers` writers. `write_queue` bounds the writes waiting for them.
    pub async fn open(
        url: &str,
        pool_size: usize,
        writers: usize,
        write_queue: usize,
    ) -> Result<PostgresStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Setup(format!("database_url is not a PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("xiansuo");
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Setup(format!("cannot set up the connection pool: {e}")))?;
        migrate(&pool).await?;
        let (jobs, queue) = mpsc::channel(write_queue.max(1));
        let scoring = ScoringCell::default();
        let routing = std::sync::Arc::new(crate::outbox::RoutingCell::default());
        let queue = std::sync::Arc::new(tokio::sync::Mutex::new(queue));
        let queueing = std::sync::Arc::new(crate::write::Queueing::with_several_writers(writers));
        for _ in 0..writers.max(1) {
            let writer = writer::run(
                pool.clone(),
                std::sync::Arc::clone(&queue),
                scoring.clone(),
                std::sync::Arc::clone(&queueing),
            );
            tokio::spawn(outbox::scope(std::sync::Arc::clone(&routing), writer));
        }
        Ok(PostgresStore { pool, jobs, scoring, routing, queueing })
    }

    async fn submit(&self, write: Write) -> Result<write::Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.try_send(Job { write, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Unavailable("the writer has stopped".into()),
        })?;
        write::answer(answer).await
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Unavailable(format!("cannot reach PostgreSQL: {e}")))
    }
}

/// Applies the migrations the database lacks, in one transaction holding an advisory lock, so
/// that processes starting at once migrate one after the other.
async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let setup =
        |e: tokio_postgres::Error| StoreError::Setup(format!("migrating the PostgreSQL database: {}", describe(&e)));
    let mut client = pool.get().await.map_err(|e| StoreError::Setup(format!("cannot connect to PostgreSQL: {e}")))?;
    let tx = client.transaction().await.map_err(setup)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(setup)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(setup)?;
    let current: i64 =
        tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await.map_err(setup)?.get(0);
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        tx.batch_execute(sql).await.map_err(setup)?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name])
            .await
            .map_err(setup)?;
        tracing::info!(version, name, "applied database migration");
    }
    // Issue #11: the vendor event ids earlier releases kept as `vendor_event.SOURCE.ID` settings
    // (the value: the push's id) move to `vendor_events`; run at every start, so that an instance
    // of an earlier release writing them during an upgrade loses none either. Rows naming a push
    // no longer in the log are dropped.
    let moved = tx
        .execute(
            "INSERT INTO vendor_events (source, event_id, push_id, received_at)
             SELECT p.source, substr(s.key, length('vendor_event.' || p.source || '.') + 1), p.id, p.received_at
             FROM settings s
             JOIN pushes p ON p.id = CASE WHEN s.value ~ '^[0-9]{1,18}$' THEN s.value::bigint END
             WHERE s.key LIKE 'vendor\\_event.%' AND starts_with(s.key, 'vendor_event.' || p.source || '.')
               AND length(s.key) > length('vendor_event.' || p.source || '.')
             ON CONFLICT (source, event_id) DO NOTHING",
            &[],
        )
        .await
        .map_err(setup)?;
    let removed = tx.execute("DELETE FROM settings WHERE key LIKE 'vendor\\_event.%'", &[]).await.map_err(setup)?;
    if removed > 0 {
        tracing::info!(moved, removed, "vendor event ids moved from the settings to vendor_events");
    }
    tx.commit().await.map_err(setup)
}

const DIALECT: Dialect = Dialect {
    placeholder: |n| format!("${n}"),
    like: "ILIKE",
    search: crate::query::SearchIndex::TermArray,
    china_hour: |col| format!("EXTRACT(HOUR FROM {col} AT TIME ZONE INTERVAL '+08:00')::int"),
    is_bool: |b| if b { "IS TRUE" } else { "IS FALSE" },
};

fn sql_params(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(t) => t as &(dyn ToSql + Sync),
            Param::Int(i) => i as &(dyn ToSql + Sync),
            Param::Time(t) => t as &(dyn ToSql + Sync),
        })
        .collect()
}

fn lead_select() -> String {
    let fields: Vec<String> = FIELDS.iter().map(|f| format!("l.{}", f.key)).collect();
    format!(
        "l.id, l.source, l.status, l.extra, l.received_at, l.updated_at, l.push_count, l.message_count,
         l.visitor_message_count,
         ARRAY(SELECT c.chat_id FROM lead_chats c WHERE c.lead_id = l.id ORDER BY c.first_seen_at, c.seq, c.chat_id), {}, l.owner_id, l.status_reason, l.mobile_from_chat, l.tel_from_chat, l.weixin_from_chat,
         l.qq_from_chat, l.email_from_chat, l.merged_into, l.score, l.score_reasons",
        fields.join(", ")
    )
}

const LEAD_FIXED_COLUMNS: usize = 10;

fn string_map(value: serde_json::Value) -> std::collections::BTreeMap<String, String> {
    serde_json::from_value(value).unwrap_or_default()
}

fn lead_from_row(row: &Row) -> Result<Lead, StoreError> {
    let mut lead = Lead {
        id: row.try_get(0)?,
        source: row.try_get(1)?,
        status: LeadStatus::parse(row.try_get(2)?).unwrap_or(LeadStatus::New),
        owner_id: row.try_get(LEAD_FIXED_COLUMNS + FIELDS.len())?,
        status_reason: row.try_get(LEAD_FIXED_COLUMNS + FIELDS.len() + 1)?,
        found_in_chat: {
            let mut found = Vec::new();
            for (i, field) in CONTACT_FIELDS.iter().enumerate() {
                if row.try_get::<_, bool>(LEAD_FIXED_COLUMNS + FIELDS.len() + 2 + i)? {
                    found.push(*field);
                }
            }
            found
        },
        fields: Default::default(),
        times: Default::default(),
        chat_ids: row.try_get(9)?,
        extra: string_map(row.try_get(3)?),
        received_at: row.try_get(4)?,
        updated_at: row.try_get(5)?,
        push_count: row.try_get(6)?,
        message_count: row.try_get(7)?,
        visitor_message_count: row.try_get(8)?,
        merged_into: row.try_get(LEAD_FIXED_COLUMNS + FIELDS.len() + 2 + CONTACT_FIELDS.len())?,
        score: i32::try_from(row.try_get::<_, i64>(LEAD_FIXED_COLUMNS + FIELDS.len() + 3 + CONTACT_FIELDS.len())?)
            .unwrap_or(0),
        score_reasons: serde_json::from_value(
            row.try_get(LEAD_FIXED_COLUMNS + FIELDS.len() + 4 + CONTACT_FIELDS.len())?,
        )
        .unwrap_or_default(),
    };
    for (i, f) in FIELDS.iter().enumerate() {
        let idx = LEAD_FIXED_COLUMNS + i;
        match f.kind {
            FieldKind::Text => {
                if let Some(v) = row.try_get::<_, Option<String>>(idx)? {
                    lead.fields.insert(f.key, v);
                }
            }
            FieldKind::Time => {
                if let Some(v) = row.try_get::<_, Option<Instant>>(idx)? {
                    lead.times.insert(f.key, v);
                }
            }
        }
    }
    Ok(lead)
}

/// A timeline row; `None` for a kind this release does not know (written by a newer one).
fn event_from_row(row: &Row) -> Result<Option<LeadEvent>, StoreError> {
    let kind: String = row.try_get(4)?;
    let detail: serde_json::Value = row.try_get(5)?;
    let Some(change) = change_from_detail(&kind, &detail) else { return Ok(None) };
    Ok(Some(LeadEvent {
        id: row.try_get(0)?,
        lead_id: row.try_get(1)?,
        at: row.try_get(2)?,
        user_id: row.try_get(3)?,
        change,
    }))
}

const PUSH_SELECT: &str = "p.id, p.source, p.received_at, p.content_type, p.body, p.outcome, p.error, p.accepted,
    p.ignored, p.replayed_at, p.replay_count,
    ARRAY(SELECT pl.lead_id FROM push_leads pl WHERE pl.push_id = p.id ORDER BY pl.lead_id), p.query";

fn push_from_row(row: &Row) -> Result<PushEntry, StoreError> {
    Ok(PushEntry {
        id: row.try_get(0)?,
        source: row.try_get(1)?,
        received_at: row.try_get(2)?,
        content_type: row.try_get(3)?,
        body: row.try_get(4)?,
        outcome: PushOutcomeKind::parse(row.try_get(5)?).unwrap_or(PushOutcomeKind::Rejected),
        error: row.try_get(6)?,
        accepted: row.try_get(7)?,
        ignored: row.try_get(8)?,
        replayed_at: row.try_get(9)?,
        replay_count: row.try_get(10)?,
        lead_ids: row.try_get(11)?,
        query: row.try_get(12)?,
    })
}

const USER_SELECT: &str = "id, name, role, password_hash, disabled, created_at FROM users";

fn user_from_row(row: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        role: Role::parse(row.try_get(2)?).unwrap_or(Role::Agent),
        password_hash: row.try_get(3)?,
        disabled: row.try_get(4)?,
        created_at: row.try_get(5)?,
    })
}

fn message_from_row(row: &Row) -> Result<Message, StoreError> {
    Ok(Message {
        recorder_id: row.try_get(0)?,
        chat_id: row.try_get(1)?,
        sender: Sender::parse(row.try_get(2)?).unwrap_or(Sender::Staff),
        from_id: row.try_get(3)?,
        message: row.try_get(4)?,
        kind: row.try_get(5)?,
        create_time: row.try_get(6)?,
        extra: string_map(row.try_get(7)?),
    })
}

fn cell_from_pg(row: &Row, i: usize, kind: ColumnKind) -> Result<Cell, StoreError> {
    Ok(match kind {
        ColumnKind::Int => row.try_get::<_, Option<i64>>(i)?.map_or(Cell::Null, Cell::Int),
        ColumnKind::Text => row.try_get::<_, Option<String>>(i)?.map_or(Cell::Null, Cell::Text),
        ColumnKind::Bytes => row.try_get::<_, Option<Vec<u8>>>(i)?.map_or(Cell::Null, Cell::Bytes),
        ColumnKind::Time => row.try_get::<_, Option<Instant>>(i)?.map_or(Cell::Null, Cell::Time),
        ColumnKind::Json => row.try_get::<_, Option<serde_json::Value>>(i)?.map_or(Cell::Null, Cell::Json),
        ColumnKind::Bool => row.try_get::<_, Option<bool>>(i)?.map_or(Cell::Null, Cell::Bool),
    })
}

/// A copied value typed for PostgreSQL: a NULL carries its column's type.
enum PgCell {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Time(Option<Instant>),
    Json(Option<serde_json::Value>),
    Bool(Option<bool>),
}

impl PgCell {
    fn new(cell: &Cell, kind: ColumnKind) -> PgCell {
        match (cell, kind) {
            (Cell::Int(v), ColumnKind::Bool) => PgCell::Bool(Some(*v != 0)),
            (Cell::Int(v), ColumnKind::Time) => PgCell::Time(chrono::DateTime::from_timestamp_millis(*v)),
            (Cell::Int(v), _) => PgCell::Int(Some(*v)),
            (Cell::Text(t), ColumnKind::Json) => PgCell::Json(serde_json::from_str(t).ok()),
            (Cell::Text(t), _) => PgCell::Text(Some(t.clone())),
            (Cell::Bytes(b), _) => PgCell::Bytes(Some(b.clone())),
            (Cell::Time(t), _) => PgCell::Time(Some(*t)),
            (Cell::Json(j), _) => PgCell::Json(Some(j.clone())),
            (Cell::Bool(b), _) => PgCell::Bool(Some(*b)),
            (Cell::Null, ColumnKind::Int) => PgCell::Int(None),
            (Cell::Null, ColumnKind::Text) => PgCell::Text(None),
            (Cell::Null, ColumnKind::Bytes) => PgCell::Bytes(None),
            (Cell::Null, ColumnKind::Time) => PgCell::Time(None),
            (Cell::Null, ColumnKind::Json) => PgCell::Json(None),
            (Cell::Null, ColumnKind::Bool) => PgCell::Bool(None),
        }
    }

    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            PgCell::Int(v) => v,
            PgCell::Text(v) => v,
            PgCell::Bytes(v) => v,
            PgCell::Time(v) => v,
            PgCell::Json(v) => v,
            PgCell::Bool(v) => v,
        }
    }
}

/// A lead list's total, and whether it is exact ([`crate::count`]): from the per-day report
/// when it answers the filter, else the matches counted up to the cap.
async fn count_leads(tx: &tokio_postgres::Transaction<'_>, query: &LeadQuery) -> Result<(u64, bool), StoreError> {
    async fn capped_count(tx: &tokio_postgres::Transaction<'_>, q: &LeadQuery) -> Result<(u64, bool), StoreError> {
        let (where_, params) = lead_where(q, &DIALECT);
        let counted: i64 =
            tx.query_one(&crate::count::capped_count_sql(&where_), &sql_params(&params)).await?.try_get(0)?;
        Ok(crate::count::capped(counted))
    }
    let Some(days) = crate::count::days_count(query, &DIALECT) else { return capped_count(tx, query).await };
    let whole: i64 = tx.query_one(&days.sql, &sql_params(&days.params)).await?.try_get(0)?;
    let (mut total, mut exact) = (u64::try_from(whole).unwrap_or(0), true);
    for scan in &days.scans {
        let (n, e) = capped_count(tx, scan).await?;
        total += n;
        exact &= e;
    }
    Ok((total, exact))
}

/// How a lead list with a search `q` that has index terms reads its leads (issue 8). Counting
/// the matches and reading the page each went through the index's candidates (a query whose
/// terms are common, such as `8888` whose one term `888` 34,000 of a million leads hold, read
/// them twice: 230 ms each).
enum SearchMatches {
    /// Every match (at most [`crate::count::COUNT_CAP`]), found in one pass over the candidates:
    /// the page is read from these.
    Matches(Vec<i64>),
    /// More matches than the cap: the page is read by the list's own query.
    Dense,
}

/// `None` when the list has no search, or its `q` has no index terms (then the `LIKE`s decide).
async fn search_matches(
    tx: &tokio_postgres::Transaction<'_>,
    query: &LeadQuery,
) -> Result<Option<SearchMatches>, StoreError> {
    let Some(text) = query.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
    if crate::search::query_terms(text).is_empty() {
        return Ok(None);
    }
    let (where_, params) = lead_where(query, &DIALECT);
    let sql = format!("SELECT l.id FROM leads l {where_} LIMIT {}", crate::count::COUNT_CAP + 1);
    let ids = tx
        .query(&sql, &sql_params(&params))
        .await?
        .iter()
        .map(|r| r.try_get::<_, i64>(0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(if ids.len() as u64 > crate::count::COUNT_CAP {
        SearchMatches::Dense
    } else {
        SearchMatches::Matches(ids)
    }))
}

/// A read-only REPEATABLE READ transaction: every query in it sees the same leads.
async fn snapshot(client: &mut deadpool_postgres::Client) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

impl PostgresStore {
    /// The report of a filter (see [`crate::reports::plan`]): one pass over its leads, or the
    /// per-day table for its whole days and the leads of partial days, in one REPEATABLE READ
    /// transaction so that all of them see the same leads. Rows are streamed: folded in as they
    /// arrive, never all held at once.
    async fn report(&self, query: &LeadQuery, top: usize, use_days: bool) -> Result<LeadStats, StoreError> {
        use futures_util::TryStreamExt;
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        // The report's queries cost enough for PostgreSQL to compile them (JIT), which took
        // 77–185 ms per filtered report at 1,000,000 leads and saved less than that: they are
        // sent once each, so the compiled code is never reused.
        //
        // random_page_cost 1.1 (the default is 4, for spinning disks): a filtered report reads
        // a tenth of a million leads or more, and at 4 PostgreSQL read them through a bitmap of
        // the table's pages or the whole table rather than the covering index leads_report
        // (measured at 1,000,000 leads: status=won over all time 409 → 253 ms of the server's
        // time, an owner over 90 days 777 → 296 ms, a province over all time 737 → 418 ms;
        // short ranges 5–20 ms slower). Reports run on a warm cache: the index fits in memory.
        tx.batch_execute("SET LOCAL jit = off; SET LOCAL random_page_cost = 1.1").await?;
        let plan = crate::reports::plan(query, use_days);
        let mut agg = Aggregator::default();
        for scan in &plan.scans {
            let (where_, params) = lead_where(scan, &DIALECT);
            let params = sql_params(&params);
            let sql = format!("SELECT {} FROM leads l {where_}", fact_select());
            let rows = tx.query_raw(&sql, params.iter().copied()).await?;
            futures_util::pin_mut!(rows);
            while let Some(r) = rows.try_next().await? {
                let mut values = [None; COLUMN_DIMS];
                for (i, v) in values.iter_mut().enumerate() {
                    *v = r.try_get::<_, Option<&str>>(FACT_FIXED + i)?;
                }
                agg.add(&FactRow {
                    received_at: r.try_get(0)?,
                    status: r.try_get(1)?,
                    owner_id: r.try_get(2)?,
                    mobile: r.try_get(3)?,
                    tag_name: r.try_get(4)?,
                    // With the per-day table, follow-ups come from their own query below.
                    followed_at: if plan.days.is_some() { None } else { r.try_get(5)? },
                    values,
                });
            }
        }
        if let Some((first, end)) = plan.days {
            let (first, end) = (first.map(|d| d as i32), end.map(|d| d as i32));
            let sql = format!(
                "{DAYS_SELECT} WHERE d.leads > 0 AND ($1::int IS NULL OR d.day >= $1) AND ($2::int IS NULL OR d.day < $2)"
            );
            let params: [&(dyn ToSql + Sync); 2] = [&first, &end];
            let row = |r: &tokio_postgres::Row| -> Result<DayRow, tokio_postgres::Error> {
                let mut row = [0; 7];
                for (i, v) in row.iter_mut().enumerate() {
                    *v = r.try_get(4 + i)?;
                }
                Ok(row)
            };
            // Changes no writer has folded into report_days yet (migration 0013), then the
            // table, in this transaction's one snapshot.
            let pending = crate::reports::pending_days(
                "report_pending",
                "($1::int IS NULL OR p.day >= $1) AND ($2::int IS NULL OR p.day < $2)",
            );
            for r in tx.query(&pending, &params).await? {
                let (day, dim): (i32, i32) = (r.try_get(0)?, r.try_get(1)?);
                agg.add_pending_day(i64::from(dim), i64::from(day), r.try_get(2)?, r.try_get(3)?, row(&r)?);
            }
            let rows = tx.query_raw(&sql, params.iter().copied()).await?;
            futures_util::pin_mut!(rows);
            while let Some(r) = rows.try_next().await? {
                let (dim, day): (i32, i32) = (r.try_get(0)?, r.try_get(1)?);
                agg.add_day(i64::from(dim), i64::from(day), r.try_get(2)?, r.try_get(3)?, row(&r)?);
            }
        }
        if let Some(q) = &plan.follow_up {
            let (where_, params) = lead_where(q, &DIALECT);
            let params = sql_params(&params);
            let and = if where_.is_empty() { "WHERE" } else { "AND" };
            let sql = format!(
                "SELECT l.owner_id, l.received_at, l.followed_at FROM leads l {where_} {and} l.followed_at IS NOT NULL"
            );
            let rows = tx.query_raw(&sql, params.iter().copied()).await?;
            futures_util::pin_mut!(rows);
            while let Some(r) = rows.try_next().await? {
                let (received, first): (Instant, Instant) = (r.try_get(1)?, r.try_get(2)?);
                agg.follow_up(r.try_get(0)?, (first - received).num_seconds());
            }
        }
        tx.commit().await?;
        Ok(agg.finish(top))
    }
}

#[async_trait]
impl Store for PostgresStore {
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
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {PUSH_SELECT} FROM pushes p WHERE p.outcome = 'queued' AND p.id <> ALL($2)
                 ORDER BY p.id LIMIT $1"
            ))
            .await?;
        client.query(&stmt, &[&i64::from(limit), &except]).await?.iter().map(push_from_row).collect()
    }

    fn queueing(&self) -> &crate::write::Queueing {
        &self.queueing
    }

    async fn push(&self, id: i64) -> Result<Option<PushEntry>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("SELECT {PUSH_SELECT} FROM pushes p WHERE p.id = $1")).await?;
        client.query_opt(&stmt, &[&id]).await?.as_ref().map(push_from_row).transpose()
    }

    async fn list_pushes(&self, query: &PushQuery) -> Result<Page<PushEntry>, StoreError> {
        let client = self.client().await?;
        let (where_, params) = push_where(query, &DIALECT);
        let params = sql_params(&params);
        let total: i64 = client.query_one(&format!("SELECT count(*) FROM pushes p {where_}"), &params).await?.get(0);
        let sql = format!(
            "SELECT {PUSH_SELECT} FROM pushes p {where_} ORDER BY p.id DESC {}",
            limit_offset(query.page, query.per_page)
        );
        let items = client.query(&sql, &params).await?.iter().map(push_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { total: total as u64, total_exact: true, page: query.page, per_page: query.per_page, items })
    }

    async fn list_leads(&self, query: &LeadQuery) -> Result<Page<Lead>, StoreError> {
        let mut client = self.client().await?;
        // One snapshot: the total and the page see the same leads.
        let tx = snapshot(&mut client).await?;
        let page_sql =
            |where_: &str| lead_page_sql(&lead_select(), where_, query.sort, query.page, query.per_page, &DIALECT);
        let (total, total_exact, rows) = match search_matches(&tx, query).await? {
            Some(SearchMatches::Matches(ids)) => {
                (ids.len() as u64, true, tx.query(&page_sql("WHERE l.id = ANY($1)"), &[&ids]).await?)
            }
            found => {
                let (total, exact) = match found {
                    // Past the cap the page keeps the index's condition: PostgreSQL then chooses
                    // between the list's order and the candidates (matches all among the oldest
                    // leads: the list's order alone read 980,000 leads, 3.6 s).
                    Some(_) => (crate::count::COUNT_CAP, false),
                    None => count_leads(&tx, query).await?,
                };
                let (where_, params) = lead_where(query, &DIALECT);
                (total, exact, tx.query(&page_sql(&where_), &sql_params(&params)).await?)
            }
        };
        let items = rows.iter().map(lead_from_row).collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(Page { total, total_exact, page: query.page, per_page: query.per_page, items })
    }

    async fn lead(&self, id: i64) -> Result<Option<LeadDetail>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("SELECT {} FROM leads l WHERE l.id = $1", lead_select())).await?;
        let Some(row) = client.query_opt(&stmt, &[&id]).await? else { return Ok(None) };
        let lead = lead_from_row(&row)?;
        let stmt = client
            .prepare_cached(&format!(
                "{} SELECT recorder_id, chat_id, sender, from_id, message, type, create_time, extra
                 FROM messages WHERE lead_id IN (SELECT id FROM grp) ORDER BY create_time IS NULL, create_time, id",
                group_cte("$1")
            ))
            .await?;
        let messages = client.query(&stmt, &[&id]).await?.iter().map(message_from_row).collect::<Result<_, _>>()?;
        let stmt = client
            .prepare_cached(
                &format!("{} SELECT DISTINCT p.id, p.received_at, p.outcome FROM push_leads pl JOIN pushes p ON p.id = pl.push_id
                 WHERE pl.lead_id IN (SELECT id FROM grp) ORDER BY p.id", group_cte("$1")),
            )
            .await?;
        let pushes = client
            .query(&stmt, &[&id])
            .await?
            .iter()
            .map(|r| {
                Ok(PushSummary {
                    id: r.try_get(0)?,
                    received_at: r.try_get(1)?,
                    outcome: PushOutcomeKind::parse(r.try_get(2)?).unwrap_or(PushOutcomeKind::Accepted),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Some(LeadDetail { lead, messages, pushes }))
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
        let client = self.client().await?;
        let total: i64 = client
            .query_one("SELECT count(*) FROM audit_log WHERE $1::text IS NULL OR action = $1", &[&query.action])
            .await?
            .try_get(0)?;
        let sql = format!(
            "SELECT id, at, user_id, actor, action, target, detail, ip FROM audit_log
             WHERE $1::text IS NULL OR action = $1 ORDER BY id DESC {}",
            limit_offset(query.page, query.per_page)
        );
        let mut items = Vec::new();
        for r in client.query(&sql, &[&query.action]).await? {
            items.push(crate::AuditRecord {
                id: r.try_get(0)?,
                entry: crate::AuditEntry {
                    at: r.try_get(1)?,
                    user_id: r.try_get(2)?,
                    actor: r.try_get(3)?,
                    action: r.try_get(4)?,
                    target: r.try_get(5)?,
                    detail: r.try_get(6)?,
                    ip: r.try_get(7)?,
                },
            });
        }
        Ok(Page { total: total as u64, total_exact: true, page: query.page, per_page: query.per_page, items })
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached("SELECT value FROM settings WHERE key = $1").await?;
        Ok(client.query_opt(&stmt, &[&key]).await?.map(|r| r.try_get(0)).transpose()?)
    }

    async fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        let write = Write::SetSetting { key: key.to_string(), value: value.map(str::to_string) };
        self.submit(write).await.map(|_| ())
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        Ok(client.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?.get(0))
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
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("SELECT {USER_SELECT} WHERE id = $1")).await?;
        client.query_opt(&stmt, &[&id]).await?.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("SELECT {USER_SELECT} WHERE name = $1")).await?;
        client.query_opt(&stmt, &[&name]).await?.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_api_token(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("SELECT {USER_SELECT} WHERE api_token_hash = $1")).await?;
        client.query_opt(&stmt, &[&token_hash]).await?.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("SELECT {USER_SELECT} ORDER BY name")).await?;
        client.query(&stmt, &[]).await?.iter().map(user_from_row).collect()
    }

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        self.submit(Write::CreateSession(session)).await.map(|_| ())
    }

    async fn session(&self, token_hash: &str, now: Instant) -> Result<Option<Session>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT s.csrf, s.expires_at, u.id, u.name, u.role, u.password_hash, u.disabled, u.created_at
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.expires_at > $2 AND NOT u.disabled",
            )
            .await?;
        let Some(row) = client.query_opt(&stmt, &[&token_hash, &now]).await? else { return Ok(None) };
        let user = User {
            id: row.try_get(2)?,
            name: row.try_get(3)?,
            role: Role::parse(row.try_get(4)?).unwrap_or(Role::Agent),
            password_hash: row.try_get(5)?,
            disabled: row.try_get(6)?,
            created_at: row.try_get(7)?,
        };
        Ok(Some(Session { user, csrf: row.try_get(0)?, expires_at: row.try_get(1)? }))
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
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "{} SELECT id, lead_id, at, user_id, kind, detail FROM lead_events
                 WHERE lead_id IN (SELECT id FROM grp) ORDER BY at, id",
                group_cte("$1")
            ))
            .await?;
        let mut events = Vec::new();
        for row in client.query(&stmt, &[&lead_id]).await? {
            // A kind this release does not know (written by a newer one) is left out.
            if let Some(event) = event_from_row(&row)? {
                events.push(event);
            }
        }
        Ok(events)
    }

    fn set_scoring(&self, scoring: Scoring) {
        self.scoring.set(scoring);
    }

    async fn duplicates(&self, lead_id: i64) -> Result<Vec<Duplicate>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "{} SELECT o.lead_id, o.kind, o.value, l.merged_into FROM lead_contacts c
                 JOIN lead_contacts o ON o.kind = c.kind AND o.value = c.value
                 JOIN leads l ON l.id = o.lead_id
                 WHERE c.lead_id IN (SELECT id FROM grp) AND o.lead_id NOT IN (SELECT id FROM grp)
                 AND (SELECT count(*) FROM (SELECT 1 FROM lead_contacts x WHERE x.kind = c.kind AND x.value = c.value
                      LIMIT {common}) AS holders) <= {common_max}
                 ORDER BY o.lead_id DESC LIMIT 500",
                group_cte("$1"),
                common = xiansuo_domain::COMMON_CONTACT_LEADS + 1,
                common_max = xiansuo_domain::COMMON_CONTACT_LEADS
            ))
            .await?;
        let shared = client.query(&stmt, &[&lead_id]).await?;
        let parent = client.prepare_cached("SELECT merged_into FROM leads WHERE id = $1").await?;
        let mut roots: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
        let mut found: Vec<(i64, Vec<(String, String)>)> = Vec::new();
        let mut me = None;
        // Only merged leads are followed up to the lead they show on (the lead asked about, too).
        let merged = shared
            .iter()
            .filter(|r| r.try_get::<_, Option<i64>>(3).ok().flatten().is_some())
            .filter_map(|r| r.try_get::<_, i64>(0).ok());
        for id in std::iter::once(lead_id).chain(merged) {
            if roots.contains_key(&id) {
                continue;
            }
            let mut root = id;
            for _ in 0..64 {
                match client.query_opt(&parent, &[&root]).await? {
                    Some(row) => match row.try_get::<_, Option<i64>>(0)? {
                        Some(p) if p != root => root = p,
                        _ => break,
                    },
                    None => break,
                }
            }
            roots.insert(id, root);
            me.get_or_insert(root);
        }
        let me = me.unwrap_or(lead_id);
        for row in &shared {
            let (other, kind, value): (i64, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let other = roots.get(&other).copied().unwrap_or(other);
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
        let dismissed =
            client.prepare_cached("SELECT 1 FROM duplicate_dismissals WHERE lead_a = $1 AND lead_b = $2").await?;
        let load = client.prepare_cached(&format!("SELECT {} FROM leads l WHERE l.id = $1", lead_select())).await?;
        // The 50 most recent are enough to act on (a number many leads share lists no more).
        found.truncate(50);
        let mut duplicates = Vec::new();
        for (other, contacts) in found {
            if client.query_opt(&dismissed, &[&me.min(other), &me.max(other)]).await?.is_some() {
                continue;
            }
            if let Some(row) = client.query_opt(&load, &[&other]).await? {
                duplicates.push(Duplicate { lead: lead_from_row(&row)?, contacts });
            }
        }
        duplicates.sort_by(|a, b| b.lead.received_at.cmp(&a.lead.received_at).then(b.lead.id.cmp(&a.lead.id)));
        Ok(duplicates)
    }

    async fn lead_ids(&self, after: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached("SELECT id FROM leads WHERE id > $1 ORDER BY id LIMIT $2").await?;
        let rows = client.query(&stmt, &[&after, &i64::from(limit)]).await?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
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
        let client = self.client().await?;
        let sql = format!(
            "SELECT {} FROM {} {} ORDER BY {}",
            table.column_list(),
            table.name,
            table.range_filter(|n| format!("${n}")),
            table.order_by
        );
        let rows = if table.range_key.is_some() {
            client.query(&sql, &[&lo, &hi]).await?
        } else {
            client.query(&sql, &[]).await?
        };
        rows.iter()
            .map(|row| table.columns.iter().enumerate().map(|(i, (_, kind))| cell_from_pg(row, i, *kind)).collect())
            .collect()
    }

    async fn copy_in(&self, table: &TableDef, rows: Vec<Vec<Cell>>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let placeholders: Vec<String> = (1..=table.columns.len()).map(|i| format!("${i}")).collect();
        let sql = format!("INSERT INTO {} ({}) VALUES ({})", table.name, table.column_list(), placeholders.join(", "));
        let stmt = tx.prepare(&sql).await?;
        for row in &rows {
            let values: Vec<PgCell> =
                row.iter().zip(&table.columns).map(|(cell, (_, kind))| PgCell::new(cell, *kind)).collect();
            let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(PgCell::as_sql).collect();
            tx.execute(&stmt, &params).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn table_stats(&self, table: &TableDef) -> Result<(i64, Option<i64>), StoreError> {
        let client = self.client().await?;
        let max = table.range_key.map_or("NULL::bigint".to_string(), |k| format!("MAX({k})"));
        let row = client.query_one(&format!("SELECT count(*), {max} FROM {}", table.name), &[]).await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    async fn after_copy(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        // Every table whose rows have a serial id: new rows continue after the copied ones.
        for table in crate::copy::tables().iter().filter(|t| t.columns.first().is_some_and(|(c, _)| *c == "id")) {
            let name = table.name;
            client
                .batch_execute(&format!(
                    "SELECT setval(pg_get_serial_sequence('{name}', 'id'), COALESCE((SELECT MAX(id) FROM {name}), 1),
                                   (SELECT MAX(id) IS NOT NULL FROM {name}))"
                ))
                .await?;
        }
        Ok(())
    }

    async fn record_export(&self, export: NewExport) -> Result<i64, StoreError> {
        self.submit(Write::Export(export)).await?.into_id()
    }

    async fn list_exports(&self, page: u32, per_page: u32) -> Result<Page<ExportEntry>, StoreError> {
        let client = self.client().await?;
        let total: i64 = client.query_one("SELECT count(*) FROM exports", &[]).await?.try_get(0)?;
        let sql = format!(
            "SELECT id, at, user_id, actor, via, format, columns, filter, rows, completed FROM exports
             ORDER BY id DESC {}",
            limit_offset(page, per_page)
        );
        let items = client
            .query(&sql, &[])
            .await?
            .iter()
            .map(|r| {
                Ok(ExportEntry {
                    id: r.try_get(0)?,
                    export: NewExport {
                        at: r.try_get(1)?,
                        user_id: r.try_get(2)?,
                        actor: r.try_get(3)?,
                        via: r.try_get(4)?,
                        format: r.try_get(5)?,
                        columns: serde_json::from_value(r.try_get(6)?).unwrap_or_default(),
                        filter: r.try_get(7)?,
                        rows: r.try_get(8)?,
                        completed: r.try_get(9)?,
                    },
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Page { total: total as u64, total_exact: true, page, per_page, items })
    }

    async fn lead_batch(
        &self,
        query: &LeadQuery,
        after: Option<LeadCursor>,
        limit: u32,
    ) -> Result<Vec<Lead>, StoreError> {
        let client = self.client().await?;
        let (where_, params, order) = lead_batch_where(query, after, &DIALECT);
        let sql = format!("SELECT {} FROM leads l {where_} ORDER BY {order} LIMIT {limit}", lead_select());
        client.query(&sql, &sql_params(&params)).await?.iter().map(lead_from_row).collect()
    }

    async fn lead_stats(&self, query: &LeadQuery, top: usize) -> Result<LeadStats, StoreError> {
        self.report(query, top, true).await
    }

    async fn lead_stats_scanned(&self, query: &LeadQuery, top: usize) -> Result<LeadStats, StoreError> {
        self.report(query, top, false).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.jobs.is_closed() {
            return Err(StoreError::Unavailable("the writer has stopped".into()));
        }
        self.client().await?.query_one("SELECT 1", &[]).await.map(|_| ()).map_err(StoreError::from)
    }
}
