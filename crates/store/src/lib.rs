//! Storage behind one interface, [`Store`]: [`sqlite::SqliteStore`] (embedded, the default) and
//! [`postgres::PostgresStore`] (for several instances on one database).
//!
//! Every write a push causes goes through [`Store::record_push`] and is durable (committed,
//! synced) when it returns `Ok`: the push endpoint answers 2xx only after that.

pub mod copy;
pub mod count;
pub mod outbox;
pub mod postgres;
mod query;
pub mod reports;
pub mod search;
pub mod sqlite;
#[cfg(feature = "test-support")]
pub mod testing;
mod write;

pub use write::{Queueing, change_detail};

use async_trait::async_trait;
use copy::{Cell, TableDef};
pub use reports::{ExportEntry, LeadCursor, LeadStats, NewExport};
use xiansuo_domain::{Card, Instant, Lead, LeadEvent, LeadStatus, Message, PushOutcomeKind, Role, Scoring, User};

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write queue is full: the caller should answer 503 with Retry-After.
    #[error("the write queue is full")]
    Overloaded,
    /// The database cannot be used right now (I/O error, disk full, writer stopped).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The change conflicts with what is stored (a taken user name, a lead already claimed).
    #[error("{0}")]
    Conflict(String),
    /// The database refuses this data (a constraint, a value out of its range): sending it again
    /// will not help.
    #[error("the database refused the data: {0}")]
    Invalid(String),
    /// Opening or migrating the database failed.
    #[error("{0}")]
    Setup(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{ConstraintViolation, TooBig};
        match e.sqlite_error_code() {
            Some(ConstraintViolation | TooBig) => StoreError::Invalid(e.to_string()),
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// What decoding made of a push body.
#[derive(Debug, Clone)]
pub enum PushResult {
    /// Cards to store (those of an accepted type) and the number ignored by the type filter.
    Cards { cards: Vec<Card>, ignored: usize },
    /// The body could not be decoded into valid cards; the message says why.
    Rejected { error: String },
}

/// Issue #11: the error of a push kept although its signature did not hold begins so; such a
/// push is not relayed (only pushes that pass authentication are).
pub const UNAUTHENTICATED_PREFIX: &str = "unauthenticated: ";

/// One authenticated push request, to be kept verbatim with its outcome.
#[derive(Debug, Clone)]
pub struct NewPush {
    pub source: String,
    pub received_at: Instant,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// The request's query string without its token (some vendors put card data there).
    pub query: Option<String>,
    pub result: PushResult,
}

/// Issue #11: what a vendor's push adds to [`NewPush`], written in the push's own transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VendorPush {
    /// The vendor's id of the event, the same when it resends it: a push whose event id the
    /// source has stored already is not stored again.
    pub event_id: Option<String>,
    /// Events without lead data naming their visitor: each becomes a timeline entry on the
    /// visitor's lead (same source, `company_id` and `visitor_static_id`), if there is one.
    pub events: Vec<xiansuo_domain::VisitorEvent>,
}

/// Issue #8: a queued push decoded again from its stored body, for
/// [`Store::apply_queued_pushes`].
#[derive(Debug, Clone)]
pub struct QueuedPush {
    pub push_id: i64,
    pub result: PushResult,
    /// The visitor's events it reports (a push without cards), as [`VendorPush::events`].
    pub events: Vec<xiansuo_domain::VisitorEvent>,
}

/// What the store did with a vendor's push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorRecorded {
    /// The push stored now, or (`retry`) the one stored first with this event id.
    pub recorded: PushRecorded,
    /// The event id was known: nothing was stored.
    pub retry: bool,
    /// The timeline entries the visitors' events made.
    pub events: Vec<LeadEvent>,
}

/// A lead a push wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadWritten {
    pub id: i64,
    /// The push created the lead (rather than updating an existing one).
    pub created: bool,
    /// Other leads (not merged away, not dismissed) that share a contact with this one:
    /// possible duplicates.
    pub duplicates: Vec<i64>,
}

/// What the store did with a push. Returned only after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRecorded {
    pub push_id: i64,
    pub outcome: PushOutcomeKind,
    pub accepted: usize,
    pub ignored: usize,
    pub leads: Vec<LeadWritten>,
}

/// A push log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEntry {
    pub id: i64,
    pub source: String,
    pub received_at: Instant,
    pub content_type: Option<String>,
    /// The request body, byte for byte.
    pub body: Vec<u8>,
    pub outcome: PushOutcomeKind,
    pub error: Option<String>,
    pub accepted: i64,
    pub ignored: i64,
    pub lead_ids: Vec<i64>,
    pub replayed_at: Option<Instant>,
    pub replay_count: i64,
    /// The request's query string without its token.
    pub query: Option<String>,
}

/// A push as the lead page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSummary {
    pub id: i64,
    pub received_at: Instant,
    pub outcome: PushOutcomeKind,
}

/// A lead with its transcript and the pushes that carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadDetail {
    pub lead: Lead,
    /// In time order (messages without a time last, in arrival order).
    pub messages: Vec<Message>,
    pub pushes: Vec<PushSummary>,
}

/// Another lead that shares a contact with the one asked about.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    pub lead: Lead,
    /// The shared contacts as (kind, normalized value), kind being the contact field's key.
    pub contacts: Vec<(String, String)>,
}

/// An entry of the audit log: who did what, to what, from where.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: Instant,
    pub user_id: Option<i64>,
    /// The user's name, `admin token` or `command line`.
    pub actor: String,
    /// `sign_in`, `sign_in_failed`, `sign_out`, `user_added`, `user_disabled`, `lead_merged`…
    pub action: String,
    /// What it was done to (`lead 12`, `user li`, `source easyliao`).
    pub target: Option<String>,
    pub detail: serde_json::Value,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub entry: AuditEntry,
}

/// An audit log page, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub page: u32,
    pub per_page: u32,
}

/// How to order a lead list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeadSort {
    #[default]
    ReceivedDesc,
    ReceivedAsc,
    UpdatedDesc,
    UpdatedAsc,
    CreateTimeDesc,
    CreateTimeAsc,
    ScoreDesc,
    ScoreAsc,
}

impl LeadSort {
    pub const NAMES: &'static [&'static str] =
        &["-received_at", "received_at", "-updated_at", "updated_at", "-create_time", "create_time", "-score", "score"];

    /// `received_at` ascending, `-received_at` descending, likewise `updated_at`, `create_time`
    /// and `score`.
    pub fn parse(s: &str) -> Option<LeadSort> {
        Some(match s {
            "-received_at" => LeadSort::ReceivedDesc,
            "received_at" => LeadSort::ReceivedAsc,
            "-updated_at" => LeadSort::UpdatedDesc,
            "updated_at" => LeadSort::UpdatedAsc,
            "-create_time" => LeadSort::CreateTimeDesc,
            "create_time" => LeadSort::CreateTimeAsc,
            "-score" => LeadSort::ScoreDesc,
            "score" => LeadSort::ScoreAsc,
            _ => return None,
        })
    }
}

/// Whose leads a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerFilter {
    /// The unassigned pool.
    Unassigned,
    User(i64),
}

/// A lead list filter. Empty fields filter nothing.
#[derive(Debug, Clone, Default)]
pub struct LeadQuery {
    /// Substring of name, mobile, tel, weixin, qq, email, visitor_static_id, keyword, note or
    /// city (ASCII letters case-insensitively).
    pub q: Option<String>,
    pub status: Option<LeadStatus>,
    pub source: Option<String>,
    pub province: Option<String>,
    pub city: Option<String>,
    pub search_engine: Option<String>,
    pub ntag_id: Option<String>,
    /// The summary tag, by id or (for cards that carry only a name) by name.
    pub tag: Option<String>,
    pub user_id: Option<String>,
    pub owner: Option<OwnerFilter>,
    /// An agent's visibility: only leads this user owns and the unassigned pool.
    pub visible_to: Option<i64>,
    /// Received at or after.
    pub from: Option<Instant>,
    /// Received before.
    pub to: Option<Instant>,
    /// Exact matches on canonical columns named in [`reports::FILTER_FIELDS`] (others are
    /// ignored): keyword, bidding_word, promotion_id, site_name, device_type, subject_name,
    /// school_name, search_host.
    pub fields: Vec<(&'static str, String)>,
    /// A landing page: `first_url` equal to it, or to it followed by a query or fragment.
    pub landing: Option<String>,
    /// The hour of day the lead was received, China time (0 to 23).
    pub hour: Option<u32>,
    /// Filters (names of [`reports::EMPTY_FILTERS`]) whose field must be empty: the leads the
    /// dashboard's "（未填）" segment of that dimension counts.
    pub empty: Vec<&'static str>,
    pub page: u32,
    pub per_page: u32,
    pub sort: LeadSort,
}

/// A push log filter.
#[derive(Debug, Clone, Default)]
pub struct PushQuery {
    pub outcome: Option<PushOutcomeKind>,
    pub source: Option<String>,
    pub page: u32,
    pub per_page: u32,
}

/// A console session, as the cookie's token finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    /// The token every state-changing form must carry.
    pub csrf: String,
    pub expires_at: Instant,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    /// SHA-256 of the cookie's token: a stolen database does not hold usable sessions.
    pub token_hash: String,
    pub user_id: i64,
    pub csrf: String,
    pub created_at: Instant,
    pub expires_at: Instant,
}

/// A change an admin makes to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChange {
    /// Disabling also ends the user's sessions.
    Disabled(bool),
    /// A new password hash; ends the user's sessions.
    Password(String),
    /// The SHA-256 of a new API token, or `None` to revoke it.
    ApiToken(Option<String>),
}

/// Who makes a change to a lead, and with what rights. The rights are checked inside the
/// transaction that makes the change, so a lead reassigned a moment before is not touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: i64,
    /// Admins may change any lead; agents their own, and claim from the pool.
    pub admin: bool,
}

impl Actor {
    pub fn of(user: &User) -> Actor {
        Actor { user_id: user.id, admin: user.is_admin() }
    }
}

/// A change a person makes to a lead; the store records it in the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadUpdate {
    Status {
        to: LeadStatus,
        reason: Option<String>,
    },
    /// Assign to a user, or back to the pool.
    Assign {
        to: Option<i64>,
    },
    /// Take an unassigned lead: a conflict when someone owns it already.
    Claim,
    Note {
        text: String,
    },
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub total: u64,
    /// False when `total` is a lower bound: a lead list whose matches were counted up to
    /// [`count::COUNT_CAP`] and went on ([`count`]). Other lists count exactly.
    pub total_exact: bool,
    pub page: u32,
    pub per_page: u32,
    pub items: Vec<T>,
}

/// The storage interface. SQLite implements it; a PostgreSQL implementation must need no
/// change elsewhere.
#[async_trait]
pub trait Store: outbox::Outbox + Send + Sync + 'static {
    /// Keeps a push verbatim with its outcome and stores its cards; returns after the commit.
    async fn record_push(&self, push: NewPush) -> Result<PushRecorded, StoreError>;

    /// [`Store::record_push`] for an entry of the local spool: a second call with the same
    /// `spool_id` stores nothing and answers what the first one stored.
    async fn record_spooled_push(&self, spool_id: &str, push: NewPush) -> Result<PushRecorded, StoreError>;

    /// Issue #11: [`Store::record_push`] for a vendor's push, in one transaction with its event
    /// id (claimed first: a known one stores nothing and answers the first push, `retry`, even
    /// when two copies race) and its visitors' events (timeline entries on known leads).
    async fn record_vendor_push(&self, push: NewPush, vendor: VendorPush) -> Result<VendorRecorded, StoreError>;

    /// Applies a stored push again with a new decoding (after a configuration change) and
    /// updates its outcome; returns after the commit.
    async fn replay_push(&self, push_id: i64, result: PushResult, at: Instant) -> Result<PushRecorded, StoreError>;

    /// Issue #8: builds the leads of queued pushes (see [`Queueing`]) from their cards, decoded
    /// again from their bodies, in the order given, and sets their outcomes, in one transaction
    /// (a refused card fails them all: apply them one by one then). A push no longer queued is
    /// answered as stored. Returns after the commit.
    async fn apply_queued_pushes(&self, pushes: Vec<QueuedPush>) -> Result<Vec<PushRecorded>, StoreError>;

    /// Issue #8: up to `limit` queued pushes, oldest first, with their bodies; but those in
    /// `except` (being applied).
    async fn queued_pushes(&self, limit: u32, except: &[i64]) -> Result<Vec<PushEntry>, StoreError>;

    /// Issue #8: when the writer queues pushes rather than building their leads at once.
    fn queueing(&self) -> &Queueing;

    async fn push(&self, id: i64) -> Result<Option<PushEntry>, StoreError>;

    async fn list_pushes(&self, query: &PushQuery) -> Result<Page<PushEntry>, StoreError>;

    async fn list_leads(&self, query: &LeadQuery) -> Result<Page<Lead>, StoreError>;

    async fn lead(&self, id: i64) -> Result<Option<LeadDetail>, StoreError>;

    /// Stores `value` under `key` unless a value is there already; returns the stored value.
    /// Used for generated tokens, which must survive restarts.
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError>;

    /// Adds an entry to the audit log.
    async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError>;

    async fn audit_log(&self, query: &AuditQuery) -> Result<Page<AuditRecord>, StoreError>;

    /// A setting's value.
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Sets a setting (or removes it, with `None`), whatever it held; returns after the commit.
    async fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), StoreError>;

    /// Cheap check that the database answers (for /healthz).
    async fn ping(&self) -> Result<(), StoreError>;

    /// The schema version the database is at (the last migration applied).
    async fn schema_version(&self) -> Result<i64, StoreError>;

    /// Creates a user; a conflict when the name is taken.
    async fn create_user(&self, name: &str, role: Role, password_hash: &str) -> Result<User, StoreError>;

    async fn update_user(&self, id: i64, change: UserChange) -> Result<(), StoreError>;

    async fn user(&self, id: i64) -> Result<Option<User>, StoreError>;

    async fn user_by_name(&self, name: &str) -> Result<Option<User>, StoreError>;

    /// The user whose API token hashes to this.
    async fn user_by_api_token(&self, token_hash: &str) -> Result<Option<User>, StoreError>;

    /// Every user, by name.
    async fn users(&self) -> Result<Vec<User>, StoreError>;

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError>;

    /// The live session of a token hash (`None` when unknown, expired, or its user disabled).
    async fn session(&self, token_hash: &str, now: Instant) -> Result<Option<Session>, StoreError>;

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;

    /// Applies a person's change to a lead and records it in the timeline, in one transaction.
    async fn update_lead(
        &self,
        lead_id: i64,
        by: Actor,
        update: LeadUpdate,
        at: Instant,
    ) -> Result<LeadEvent, StoreError>;

    /// A lead's timeline of people's changes, oldest first (with those of leads merged into it).
    async fn lead_events(&self, lead_id: i64) -> Result<Vec<LeadEvent>, StoreError>;

    /// The score's weights, from the configuration; used for every lead written from now on.
    fn set_scoring(&self, scoring: Scoring);

    /// Leads (not merged away, not dismissed) sharing a normalized contact with this one or
    /// with a lead merged into it, most recent first.
    async fn duplicates(&self, lead_id: i64) -> Result<Vec<Duplicate>, StoreError>;

    /// An admin merges `merge` into `keep`: `merge` leaves the lists, its messages, pushes and
    /// timeline show on `keep`, and `keep`'s empty fields take its values. Undone by
    /// [`Store::unmerge_lead`]. Returns `keep`'s timeline entry.
    async fn merge_leads(&self, keep: i64, merge: i64, by: Actor, at: Instant) -> Result<LeadEvent, StoreError>;

    /// Undoes the merge of `merged` into its lead: everything returns as it was, but for changes
    /// made since. Returns `merged`'s timeline entry.
    async fn unmerge_lead(&self, merged: i64, by: Actor, at: Instant) -> Result<LeadEvent, StoreError>;

    /// An admin says two leads sharing a contact are different visitors: they are no longer
    /// listed as duplicates of each other. Returns `lead`'s timeline entry.
    async fn dismiss_duplicate(&self, lead: i64, other: i64, by: Actor, at: Instant) -> Result<LeadEvent, StoreError>;

    /// Lead ids after `after`, in id order, at most `limit` (for walking every lead).
    async fn lead_ids(&self, after: i64, limit: u32) -> Result<Vec<i64>, StoreError>;

    /// Adds a stored lead's normalized contacts to the duplicate index and rescores it with the
    /// scoring in force (intent words added); nothing goes to the timeline.
    async fn index_lead(
        &self,
        lead_id: i64,
        contact_keys: Vec<(&'static str, String)>,
        intent_words: Vec<String>,
    ) -> Result<(), StoreError>;

    /// `xiansuo copy`: the rows of a table whose range key is in `lo..hi` (the whole table when
    /// it has none), in primary-key order.
    async fn copy_out(&self, table: &TableDef, lo: i64, hi: i64) -> Result<Vec<Vec<Cell>>, StoreError>;

    /// `xiansuo copy`: writes rows as they are (ids kept), in one transaction.
    async fn copy_in(&self, table: &TableDef, rows: Vec<Vec<Cell>>) -> Result<(), StoreError>;

    /// Row count and largest range key of a table.
    async fn table_stats(&self, table: &TableDef) -> Result<(i64, Option<i64>), StoreError>;

    /// After `copy_in`: makes new rows get ids after the copied ones.
    async fn after_copy(&self) -> Result<(), StoreError>;

    /// Records an export in the export log; returns its id.
    async fn record_export(&self, export: NewExport) -> Result<i64, StoreError>;

    /// The export log, newest first.
    async fn list_exports(&self, page: u32, per_page: u32) -> Result<Page<ExportEntry>, StoreError>;

    /// Up to `limit` leads of a filter after `after`, by `received_at` then id: oldest first
    /// when the query's sort is `received_at`, newest first otherwise. Streamed exports read the
    /// filter batch by batch this way (keyset paging: each batch costs the same however far in).
    async fn lead_batch(
        &self,
        query: &LeadQuery,
        after: Option<LeadCursor>,
        limit: u32,
    ) -> Result<Vec<Lead>, StoreError>;

    /// The dashboard's figures for a filter, with the `top` largest segments per dimension.
    /// Whole days of a filter on dates only come from the per-day table `report_days`.
    async fn lead_stats(&self, query: &LeadQuery, top: usize) -> Result<LeadStats, StoreError>;

    /// The same figures read from the leads alone (never from `report_days`): what the tests
    /// hold [`Store::lead_stats`] to.
    async fn lead_stats_scanned(&self, query: &LeadQuery, top: usize) -> Result<LeadStats, StoreError>;

    /// Folds the per-day report's pending changes into `report_days` now, waiting for a fold
    /// already running (the writers fold on their own about once a second; reports add what is
    /// pending, so this changes no figure). Returns the rows of `report_days` written.
    async fn fold_report_days(&self) -> Result<u64, StoreError>;
}
