//! The writes a backend's single writer performs, shared by the backends so that each only
//! says how to apply one write and how to commit a batch.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::oneshot;
use xiansuo_domain::{
    CONTACT_FIELDS, Card, FIELDS, FieldKind, Instant, Lead, LeadChange, LeadEvent, LeadStatus, Role, Score,
    ScoreInputs, Scoring, Sender, User, score,
};

use crate::copy::{Cell, TableDef};
use crate::{Actor, LeadUpdate, NewSession, UserChange};
use crate::{NewPush, PushRecorded, PushResult, StoreError};

/// `t` to the millisecond, the precision SQLite keeps: PostgreSQL stores (and compares) times
/// so truncated too, so that a time reads back the same from either backend.
pub fn millis(t: Instant) -> Instant {
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Most writes committed together: bounds the time one batch holds its locks.
pub const MAX_BATCH: usize = 512;

pub enum Write {
    Push(NewPush),
    /// Issue #11: a vendor's push, with its event id and its visitors' events.
    VendorPush {
        push: NewPush,
        vendor: crate::VendorPush,
    },
    Audit(crate::AuditEntry),
    /// Folds the per-day report's pending changes into `report_days` now (the writers also do
    /// it on their own, [`crate::reports::FOLD_EVERY`]).
    FoldReports,
    /// A push kept in the local spool while the database was unavailable: stored once, whatever
    /// number of times the spool is drained (the entry's id is kept with it).
    SpooledPush {
        spool_id: String,
        push: NewPush,
    },
    Replay {
        push_id: i64,
        result: PushResult,
        at: Instant,
    },
    /// Issue #8: builds the leads of queued pushes (stored while the writer was behind) from
    /// their bodies, decoded again, in the order given; a push no longer queued is left as it is
    /// and answered as stored. One write, so that one writer applies them in order.
    ApplyQueued(Vec<crate::QueuedPush>),
    Setting {
        key: String,
        value: String,
    },
    /// Sets (or with `None` removes) a setting, whatever it held.
    SetSetting {
        key: String,
        value: Option<String>,
    },
    /// Rows of `xiansuo copy`, written as they are.
    Import {
        table: TableDef,
        rows: Vec<Vec<Cell>>,
    },
    CreateUser {
        name: String,
        role: Role,
        password_hash: String,
        at: Instant,
    },
    UpdateUser {
        id: i64,
        change: UserChange,
    },
    CreateSession(NewSession),
    DeleteSession {
        token_hash: String,
    },
    UpdateLead {
        lead_id: i64,
        by: Actor,
        update: LeadUpdate,
        at: Instant,
    },
    MergeLeads {
        keep: i64,
        merge: i64,
        by: Actor,
        at: Instant,
    },
    UnmergeLead {
        merged: i64,
        by: Actor,
        at: Instant,
    },
    DismissDuplicate {
        lead: i64,
        other: i64,
        by: Actor,
        at: Instant,
    },
    /// Indexes a stored lead's contacts again and rescores it (`xiansuo reindex`); records no
    /// timeline entries.
    IndexLead {
        lead_id: i64,
        contact_keys: Vec<(&'static str, String)>,
        intent_words: Vec<String>,
    },
    /// Issue #6: the delivery worker's claims and outcomes (`crate::outbox`).
    Outbox(crate::outbox::OutboxWrite),
    /// An entry of the export log.
    Export(crate::NewExport),
}

pub enum Written {
    Push(PushRecorded),
    Pushes(Vec<PushRecorded>),
    VendorPush(crate::VendorRecorded),
    Setting(String),
    Imported,
    User(User),
    Event(LeadEvent),
    Outbox(crate::outbox::OutboxWritten),
    /// The id of a row written.
    Id(i64),
    /// Pending report changes folded into `report_days`.
    Folded(u64),
    Done,
}

impl Written {
    pub fn into_push(self) -> Result<PushRecorded, StoreError> {
        match self {
            Written::Push(p) => Ok(p),
            _ => Err(StoreError::Unavailable("the writer answered a push with something else".into())),
        }
    }

    pub fn into_pushes(self) -> Result<Vec<PushRecorded>, StoreError> {
        match self {
            Written::Pushes(p) => Ok(p),
            _ => Err(StoreError::Unavailable("the writer answered queued pushes with something else".into())),
        }
    }

    pub fn into_vendor_push(self) -> Result<crate::VendorRecorded, StoreError> {
        match self {
            Written::VendorPush(p) => Ok(p),
            _ => Err(StoreError::Unavailable("the writer answered a vendor's push with something else".into())),
        }
    }

    pub fn into_user(self) -> Result<User, StoreError> {
        match self {
            Written::User(u) => Ok(u),
            _ => Err(StoreError::Unavailable("the writer answered a user with something else".into())),
        }
    }

    pub fn into_event(self) -> Result<LeadEvent, StoreError> {
        match self {
            Written::Event(e) => Ok(e),
            _ => Err(StoreError::Unavailable("the writer answered a lead change with something else".into())),
        }
    }

    pub fn into_id(self) -> Result<i64, StoreError> {
        match self {
            Written::Id(id) => Ok(id),
            _ => Err(StoreError::Unavailable("the writer answered an insert with something else".into())),
        }
    }

    pub fn into_setting(self) -> Result<String, StoreError> {
        match self {
            Written::Setting(s) => Ok(s),
            _ => Err(StoreError::Unavailable("the writer answered a setting with something else".into())),
        }
    }
}

/// Issue #8: how the writer keeps up with a burst. When more pushes carrying cards wait in one
/// batch than `queue_above`, the writer stores each durably (the push, its vendor event, its
/// relays) and answers it at once, `queued`, without building its leads; while any push is
/// queued, later pushes (and visitors' events) are queued behind it, so that cards still land
/// in arrival order. The web layer's applier builds the queued pushes' leads right after
/// ([`Write::ApplyQueued`]), oldest first, slowly while the burst lasts.
#[derive(Debug)]
pub struct Queueing {
    above: AtomicUsize,
    /// When a batch last queued because it held more than `above` pushes: for a second after,
    /// every push queues, so that none overtakes those queued by another PostgreSQL writer's
    /// batch not yet committed. In ms since `epoch`, plus one (0: never).
    last_over: AtomicU64,
    /// When a batch last held more than `max(above, BURST_FLOOR)` pushes that did not pile up
    /// behind the applier's own write: the applier slows down for a second after.
    last_burst: AtomicU64,
    /// A monotonic clock: a wall clock set back prolongs nothing.
    epoch: std::time::Instant,
    /// Whether several writers commit side by side (PostgreSQL): only then is the window after an
    /// over-full batch needed. A single writer (SQLite) orders every batch itself.
    several_writers: bool,
    /// How many writes of queued pushes may be applied side by side: this instance's writers.
    writers: usize,
}

/// How long the windows of [`Queueing`] last after the batch that opened them.
const WINDOW: std::time::Duration = std::time::Duration::from_secs(1);
/// A batch slows the applier down only past this many pushes, whatever `above` (with `above` 0
/// every push queues, but the applier gives way only in a real burst).
const BURST_FLOOR: usize = 16;
/// `above` of a store that never queues.
const NEVER: usize = usize::MAX;

impl Default for Queueing {
    /// Never queues: a store opened by a command other than `serve` (which alone runs the
    /// applier) builds every push's leads at once.
    fn default() -> Self {
        Queueing {
            above: AtomicUsize::new(NEVER),
            last_over: AtomicU64::new(0),
            last_burst: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            several_writers: false,
            writers: 1,
        }
    }
}

impl Queueing {
    /// For a backend whose writers commit side by side (`writers` of this instance; other
    /// instances may write to the same database too).
    pub fn with_several_writers(writers: usize) -> Queueing {
        Queueing { several_writers: true, writers: writers.max(1), ..Queueing::default() }
    }

    /// How many writes of queued pushes the applier may have applied side by side: one per
    /// writer (each such write is a writer's batch of its own).
    pub fn writers(&self) -> usize {
        self.writers
    }

    /// `queue_pushes_above` of the configuration: 0 queues every push.
    pub fn set_above(&self, above: usize) {
        self.above.store(above, Ordering::Relaxed);
    }

    /// What the batch's pushes need: `None`, nothing to decide (no push, or a store that never
    /// queues); `Some(true)`, queued: the batch holds more than `above` pushes with cards, or (with
    /// several writers) another did in the last second; `Some(false)`, queued only if pushes queued earlier still wait
    /// (the backend asks the database, within the batch's transaction, as [`QUEUED_WAITING`]).
    /// `after_apply`: the writer's previous batch applied queued pushes (see [`Queueing::in_burst`]).
    pub fn burst(&self, batch: &[Job], after_apply: bool) -> Option<bool> {
        let above = self.above.load(Ordering::Relaxed);
        let is_push = |w: &Write| matches!(w, Write::Push(_) | Write::VendorPush { .. } | Write::SpooledPush { .. });
        if above == NEVER || !batch.iter().any(|job| is_push(&job.write)) {
            return None;
        }
        let pushes = batch.iter().filter(|job| carries_cards(&job.write)).count();
        let over = pushes > above;
        if over {
            self.last_over.store(self.now(), Ordering::Relaxed);
        }
        if pushes > above.max(BURST_FLOOR) && !after_apply {
            self.last_burst.store(self.now(), Ordering::Relaxed);
        }
        Some(over || (self.several_writers && self.within(&self.last_over)))
    }

    /// Whether a burst (a batch of more than `max(above, 16)` pushes, not piled up behind the
    /// applier's own write) came in the last second: the applier then leaves the writer to the
    /// arriving pushes but for a trickle.
    pub fn in_burst(&self) -> bool {
        self.within(&self.last_burst)
    }

    /// Ms since `epoch`, plus one (0 means never).
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1).saturating_add(1)
    }

    fn within(&self, mark: &AtomicU64) -> bool {
        let at = mark.load(Ordering::Relaxed);
        at > 0 && self.now() < at.saturating_add(WINDOW.as_millis() as u64)
    }
}

/// Whether a batch applies queued pushes: the pushes that pile up behind it are no burst.
pub fn applies_queued(batch: &[Job]) -> bool {
    batch.iter().any(|job| matches!(job.write, Write::ApplyQueued(_)))
}

/// Whether any push waits in the queue (both backends; the pushes' outcome index answers it).
pub const QUEUED_WAITING: &str = "SELECT EXISTS (SELECT 1 FROM pushes WHERE outcome = 'queued')";

/// A push whose cards would become leads (what [`Queueing`] counts).
pub fn carries_cards(write: &Write) -> bool {
    match write {
        Write::Push(push) | Write::VendorPush { push, .. } | Write::SpooledPush { push, .. } => has_cards(push),
        _ => false,
    }
}

pub fn has_cards(push: &NewPush) -> bool {
    matches!(&push.result, PushResult::Cards { cards, .. } if !cards.is_empty())
}

/// A replay of a push whose leads are not built yet: it would build them fill-only.
pub fn queued_conflict(push_id: i64) -> StoreError {
    StoreError::Conflict(format!(
        "push {push_id} is queued: its leads are being built; replay it once its outcome is no longer queued"
    ))
}

/// A write and where its result goes (answered only after the batch's commit).
pub struct Job {
    pub write: Write,
    pub reply: oneshot::Sender<Result<Written, StoreError>>,
}

impl Job {
    pub fn answer(self, result: Result<Written, StoreError>) {
        // A caller that went away (client disconnected) no longer needs the answer.
        let _ = self.reply.send(result);
    }
}

/// Waits for the writer's answer to a submitted job.
pub async fn answer(rx: oneshot::Receiver<Result<Written, StoreError>>) -> Result<Written, StoreError> {
    rx.await.map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
}

/// A timeline change as stored: its kind and a JSON detail.
pub fn change_detail(change: &LeadChange) -> serde_json::Value {
    match change {
        LeadChange::Status { from, to, reason } => {
            serde_json::json!({ "from": from.as_str(), "to": to.as_str(), "reason": reason })
        }
        LeadChange::Owner { from, to, claimed } => serde_json::json!({ "from": from, "to": to, "claimed": claimed }),
        LeadChange::Note { text } => serde_json::json!({ "text": text }),
        LeadChange::Duplicate { leads, contacts } => serde_json::json!({
            "leads": leads,
            "contacts": contacts.iter().map(|(k, v)| serde_json::json!({ "kind": k, "value": v })).collect::<Vec<_>>(),
        }),
        LeadChange::Merged { other, filled } => serde_json::json!({ "other": other, "filled": filled }),
        LeadChange::MergedInto { into } => serde_json::json!({ "into": into }),
        LeadChange::Unmerged { other } => serde_json::json!({ "other": other }),
        LeadChange::Dismissed { other } => serde_json::json!({ "other": other }),
        LeadChange::AutoAssigned { to, rule } => serde_json::json!({ "to": to, "rule": rule }),
        LeadChange::VendorEvent { vendor, event, text, push_id } => {
            serde_json::json!({ "vendor": vendor, "event": event, "text": text, "push_id": push_id })
        }
    }
}

/// A stored timeline change read back; `None` for a kind this release does not know.
pub fn change_from_detail(kind: &str, detail: &serde_json::Value) -> Option<LeadChange> {
    let status = |k: &str| detail.get(k).and_then(|v| v.as_str()).and_then(LeadStatus::parse);
    let text = |k: &str| detail.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let id = |k: &str| detail.get(k).and_then(serde_json::Value::as_i64);
    Some(match kind {
        "status" => LeadChange::Status { from: status("from")?, to: status("to")?, reason: text("reason") },
        "owner" => LeadChange::Owner {
            from: id("from"),
            to: id("to"),
            claimed: detail.get("claimed").and_then(serde_json::Value::as_bool).unwrap_or(false),
        },
        "note" => LeadChange::Note { text: text("text")? },
        "duplicate" => LeadChange::Duplicate {
            leads: detail.get("leads")?.as_array()?.iter().filter_map(serde_json::Value::as_i64).collect(),
            contacts: detail
                .get("contacts")?
                .as_array()?
                .iter()
                .filter_map(|c| Some((c.get("kind")?.as_str()?.to_string(), c.get("value")?.as_str()?.to_string())))
                .collect(),
        },
        "merged" => LeadChange::Merged {
            other: id("other")?,
            filled: detail
                .get("filled")
                .and_then(serde_json::Value::as_array)
                .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        },
        "merged_into" => LeadChange::MergedInto { into: id("into")? },
        "unmerged" => LeadChange::Unmerged { other: id("other")? },
        "dismissed" => LeadChange::Dismissed { other: id("other")? },
        "auto_assign" => LeadChange::AutoAssigned { to: id("to")?, rule: text("rule")? },
        "vendor_event" => LeadChange::VendorEvent {
            vendor: text("vendor")?,
            event: text("event").unwrap_or_default(),
            text: text("text")?,
            push_id: id("push_id").unwrap_or(0),
        },
        _ => return None,
    })
}

/// What a lead update changes, given the lead's current status and owner, or why it may not:
/// an agent touches only their own leads (a lead of someone else's does not exist for them) and
/// claims from the pool before working a lead; a claim of an owned lead is a conflict.
pub fn plan_update(
    update: &LeadUpdate,
    by: Actor,
    status: LeadStatus,
    owner: Option<i64>,
) -> Result<LeadChange, StoreError> {
    if !by.admin {
        match (update, owner) {
            (_, Some(o)) if o != by.user_id => return Err(StoreError::NotFound("lead".into())),
            (LeadUpdate::Assign { .. }, _) => return Err(StoreError::Conflict("只有管理员可以分配线索".into())),
            (LeadUpdate::Status { .. } | LeadUpdate::Note { .. }, None) => {
                return Err(StoreError::Conflict("请先认领这条线索，再跟进".into()));
            }
            _ => {}
        }
    }
    Ok(match update {
        LeadUpdate::Status { to, reason } => {
            LeadChange::Status { from: status, to: *to, reason: if to.needs_reason() { reason.clone() } else { None } }
        }
        LeadUpdate::Assign { to } => LeadChange::Owner { from: owner, to: *to, claimed: false },
        LeadUpdate::Claim => match owner {
            None => LeadChange::Owner { from: None, to: Some(by.user_id), claimed: true },
            Some(o) if o == by.user_id => return Err(StoreError::Conflict("你已经认领了这条线索".into())),
            Some(_) => return Err(StoreError::Conflict("这条线索已被他人认领".into())),
        },
        LeadUpdate::Note { text } => LeadChange::Note { text: text.clone() },
    })
}

/// How a push's cards are applied (both backends).
pub struct Apply<'a> {
    pub push_id: i64,
    pub source: &'a str,
    /// `received_at` of a lead the push creates.
    pub received: Instant,
    /// `updated_at` of the leads it touches.
    pub at: Instant,
    /// Fill empty fields only (a replay, older than what later pushes stored): a stored value is
    /// never replaced.
    pub fill_only: bool,
}

/// Checks a merge of `merge` into `keep` (both as stored) and says which of `keep`'s fields
/// the merge fills: those empty on `keep` and set on `merge`.
pub fn plan_merge(by: Actor, keep: &Lead, merge: &Lead) -> Result<Vec<&'static str>, StoreError> {
    if !by.admin {
        return Err(StoreError::Conflict("只有管理员可以合并线索".into()));
    }
    if keep.id == merge.id {
        return Err(StoreError::Conflict("不能把线索合并到它自己".into()));
    }
    for lead in [keep, merge] {
        if let Some(into) = lead.merged_into {
            return Err(StoreError::Conflict(format!("线索 {} 已合并到线索 {into}：请在线索 {into} 上操作", lead.id)));
        }
    }
    Ok(FIELDS
        .iter()
        .filter(|f| match f.kind {
            FieldKind::Text => !keep.fields.contains_key(f.key) && merge.fields.contains_key(f.key),
            FieldKind::Time => !keep.times.contains_key(f.key) && merge.times.contains_key(f.key),
        })
        .map(|f| f.key)
        .collect())
}

/// The fields a merge filled, from `keep`'s timeline entries (newest first) for `merged`.
pub fn filled_by_merge(events: &[LeadEvent], merged: i64) -> Vec<String> {
    events
        .iter()
        .find_map(|e| match &e.change {
            LeadChange::Merged { other, filled } if *other == merged => Some(filled.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The timeline entry for contacts a push newly shares with other leads: (lead, kind, value).
pub fn duplicate_change(matches: &[(i64, &'static str, String)]) -> Option<LeadChange> {
    if matches.is_empty() {
        return None;
    }
    let mut leads: Vec<i64> = Vec::new();
    let mut contacts: Vec<(String, String)> = Vec::new();
    for (lead, kind, value) in matches {
        if !leads.contains(lead) {
            leads.push(*lead);
        }
        let contact = (kind.to_string(), value.clone());
        if !contacts.contains(&contact) {
            contacts.push(contact);
        }
    }
    Some(LeadChange::Duplicate { leads, contacts })
}

/// The contact kinds, as the contact field keys `lead_contacts.kind` holds.
pub fn contact_kind(kind: &str) -> Option<&'static str> {
    CONTACT_FIELDS.iter().copied().find(|k| *k == kind)
}

/// What a new lead holds once its first card is stored, computed from the card alone. The
/// writers insert a new lead whole (counts and score included) instead of inserting it and then
/// counting and scoring it in three more statements: most pushes bring a new visitor (issue #8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewLeadTally {
    /// Messages stored: the first of each recorder id, as the unique key keeps them.
    pub messages: i64,
    pub visitor_messages: i64,
    /// Distinct chats: the card's own and those its messages name.
    pub chats: i64,
}

impl NewLeadTally {
    pub fn of(card: &Card) -> NewLeadTally {
        let mut seen = std::collections::HashSet::new();
        let (mut messages, mut visitor_messages) = (0, 0);
        for m in &card.messages {
            if seen.insert(m.recorder_id.as_str()) {
                messages += 1;
                if m.sender == Sender::Visitor {
                    visitor_messages += 1;
                }
            }
        }
        let chats: std::collections::HashSet<&str> =
            card.chat_id().into_iter().chain(card.messages.iter().filter_map(|m| m.chat_id.as_deref())).collect();
        NewLeadTally { messages, visitor_messages, chats: chats.len() as i64 }
    }

    /// The score inputs of the new lead, as [`ScoreRow`] would read them back after the insert.
    pub fn score_row(&self, card: &Card) -> ScoreRow {
        ScoreRow {
            intent_words: Vec::new(),
            visitor_messages: self.visitor_messages,
            chats: self.chats,
            tag_id: card.fields.get("ntag_id").cloned(),
            tag_name: card.fields.get("ntag_name").cloned(),
            found_in_chat: CONTACT_FIELDS
                .iter()
                .any(|c| !card.fields.contains_key(*c) && card.found_in_chat.contains_key(*c)),
            has_mobile: card.contact_keys.iter().any(|(kind, _)| *kind == "mobile"),
            has_other_contact: card.contact_keys.iter().any(|(kind, _)| *kind != "mobile"),
        }
    }
}

/// What a lead's score is computed from, as stored, and the intent words it has now.
pub struct ScoreRow {
    pub intent_words: Vec<String>,
    pub visitor_messages: i64,
    pub chats: i64,
    pub tag_id: Option<String>,
    pub tag_name: Option<String>,
    pub found_in_chat: bool,
    pub has_mobile: bool,
    pub has_other_contact: bool,
}

/// The score of a stored lead, with the intent words of new messages added; returns the score
/// and the intent words to store.
pub fn rescore(row: ScoreRow, new_words: Vec<String>, scoring: &Scoring) -> (Score, Vec<String>) {
    let mut words = row.intent_words;
    for w in new_words {
        if !words.contains(&w) {
            words.push(w);
        }
    }
    let inputs = ScoreInputs {
        has_valid_mobile: row.has_mobile,
        has_other_contact: row.has_other_contact,
        found_in_chat: row.found_in_chat,
        visitor_messages: row.visitor_messages,
        intent_words: words.clone(),
        chats: row.chats,
        tag_id: row.tag_id,
        tag_name: row.tag_name,
    };
    (score(&inputs, scoring), words)
}

/// The scoring in force, shared by the store handle (which sets it) and its writer.
#[derive(Clone, Default)]
pub struct ScoringCell(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Scoring>>>);

impl ScoringCell {
    pub fn set(&self, scoring: Scoring) {
        if let Ok(mut current) = self.0.write() {
            *current = std::sync::Arc::new(scoring);
        }
    }

    pub fn get(&self) -> std::sync::Arc<Scoring> {
        self.0.read().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(write: Write) -> Job {
        Job { write, reply: oneshot::channel().0 }
    }

    fn push_with(cards: usize) -> Job {
        job(Write::Push(NewPush {
            source: "s".into(),
            received_at: chrono::Utc::now(),
            content_type: None,
            body: Vec::new(),
            query: None,
            result: PushResult::Cards { cards: vec![Card::default(); cards], ignored: 0 },
        }))
    }

    fn pushes(n: usize) -> Vec<Job> {
        (0..n).map(|_| push_with(1)).collect()
    }

    #[test]
    fn a_store_that_never_queues_decides_nothing() {
        let q = Queueing::default();
        assert_eq!(q.burst(&pushes(600), false), None);
        assert!(!q.in_burst());
    }

    #[test]
    fn an_over_full_batch_queues_and_opens_the_window() {
        let q = Queueing::with_several_writers(4);
        q.set_above(4);
        // No push: nothing to decide.
        assert_eq!(q.burst(&[job(Write::FoldReports)], false), None);
        // Few pushes: queued only if some wait (asked of the database).
        assert_eq!(q.burst(&pushes(4), false), Some(false));
        // More than `above`: queued, and for a second every push queues...
        assert_eq!(q.burst(&pushes(5), false), Some(true));
        assert_eq!(q.burst(&pushes(1), false), Some(true));
        // ... but 5 is no burst for the applier (under BURST_FLOOR).
        assert!(!q.in_burst());
        assert_eq!(q.burst(&pushes(17), false), Some(true));
        assert!(q.in_burst());
        // One writer orders its batches itself: no window.
        let q = Queueing::default();
        q.set_above(4);
        assert_eq!(q.burst(&pushes(5), false), Some(true));
        assert_eq!(q.burst(&pushes(1), false), Some(false));
        // Pushes without cards do not count.
        let q = Queueing::default();
        q.set_above(0);
        assert_eq!(q.burst(&[push_with(0)], false), Some(false));
        assert_eq!(q.burst(&[push_with(2)], false), Some(true));
    }

    #[test]
    fn pushes_piled_up_behind_the_applier_are_no_burst() {
        let q = Queueing::default();
        q.set_above(16);
        assert_eq!(q.burst(&pushes(40), true), Some(true), "still queued");
        assert!(!q.in_burst(), "but the applier keeps going");
        assert_eq!(q.burst(&pushes(40), false), Some(true));
        assert!(q.in_burst());
        assert!(applies_queued(&[job(Write::ApplyQueued(Vec::new()))]));
        assert!(!applies_queued(&pushes(2)));
    }
}
