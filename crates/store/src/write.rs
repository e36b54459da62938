//! The writes a backend's single writer performs, shared by the backends so that each only
//! says how to apply one write and how to commit a batch.

use tokio::sync::oneshot;
use xiansuo_domain::Instant;

use crate::copy::{Cell, TableDef};
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
}

pub enum Written {
    Push(PushRecorded),
    Setting(String),
    Imported,
}

impl Written {
    pub fn into_push(self) -> Result<PushRecorded, StoreError> {
        match self {
            Written::Push(p) => Ok(p),
            _ => Err(StoreError::Unavailable("the writer answered a push with something else".into())),
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
