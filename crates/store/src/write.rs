//! The writes a backend's single writer performs, shared by the backends so that each only
//! says how to apply one write and how to commit a batch.

use tokio::sync::oneshot;
use xiansuo_domain::{Instant, LeadChange, LeadEvent, LeadStatus, Role, User};

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
    Replay {
        push_id: i64,
        result: PushResult,
        at: Instant,
    },
    Setting {
        key: String,
        value: String,
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
    /// An entry of the export log.
    Export(crate::NewExport),
}

pub enum Written {
    Push(PushRecorded),
    Setting(String),
    Imported,
    User(User),
    Event(LeadEvent),
    /// The id of a row written.
    Id(i64),
    Done,
}

impl Written {
    pub fn into_push(self) -> Result<PushRecorded, StoreError> {
        match self {
            Written::Push(p) => Ok(p),
            _ => Err(StoreError::Unavailable("the writer answered a push with something else".into())),
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
