//! The optional spool (`spool_dir`): when the database cannot be reached, a push is appended to
//! a local folder — written, fsynced, renamed into place, the folder fsynced — and answered 202;
//! a background task stores the entries in arrival order once the database is back. While
//! entries wait, new pushes join the queue behind them, so a later card never lands before an
//! earlier one. Each entry is stored once: the database keeps the entry's id with the push, so
//! an entry stored just before a crash (and still on disk) is recognised when drained again.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use xiansuo_domain::Instant;
use xiansuo_store::{NewPush, PushResult, StoreError};

use crate::AppState;
use crate::push::decode_for_store;

/// What an entry's first line holds; the body follows it byte for byte.
#[derive(Serialize, Deserialize)]
struct Header {
    source: String,
    received_at_ms: i64,
    content_type: Option<String>,
    /// The query string without its token (entries written before it was kept have none).
    #[serde(default)]
    query: Option<String>,
}

pub struct Spool {
    dir: PathBuf,
    /// Entries on disk not yet stored.
    waiting: AtomicUsize,
    /// Orders entries written in the same millisecond.
    seq: AtomicU64,
    /// Appends and the drain take turns on the folder.
    lock: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
}

const SUFFIX: &str = ".push";

impl Spool {
    /// Opens (creating) the folder; entries left by an earlier run wait to be drained.
    pub fn open(dir: &Path) -> Result<Spool, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("spool_dir {}: cannot create the folder: {e}", dir.display()))?;
        let waiting = entries(dir).map_err(|e| format!("spool_dir {}: cannot read the folder: {e}", dir.display()))?;
        // Left-over temporary files were never answered 202: nothing relies on them.
        if let Ok(read) = std::fs::read_dir(dir) {
            for entry in read.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            waiting: AtomicUsize::new(waiting.len()),
            seq: AtomicU64::new(0),
            lock: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Whether entries wait: a new push then queues behind them.
    pub fn has_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Appends a push durably; returns its entry's id once it is on disk.
    pub async fn append(
        &self,
        source: &str,
        received_at: Instant,
        content_type: Option<&str>,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<String, String> {
        let _turn = self.lock.lock().await;
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let id = format!("{:013}-{seq:08}-{}", received_at.timestamp_millis(), crate::security::random_hex(4)?);
        let header = Header {
            source: source.to_string(),
            received_at_ms: received_at.timestamp_millis(),
            content_type: content_type.map(str::to_string),
            query: query.map(str::to_string),
        };
        let mut bytes = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
        bytes.extend_from_slice(body);
        let dir = self.dir.clone();
        let name = id.clone();
        tokio::task::spawn_blocking(move || write_durably(&dir, &name, &bytes))
            .await
            .map_err(|e| format!("the spool writer stopped: {e}"))?
            .map_err(|e| format!("cannot write to spool_dir {}: {e}", self.dir.display()))?;
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
        Ok(id)
    }

    /// Stores the waiting entries in order until the folder is empty or the database fails
    /// again; returns how many were stored.
    pub async fn drain(&self, app: &AppState) -> usize {
        let _turn = self.lock.lock().await;
        let Ok(names) = entries(&self.dir) else { return 0 };
        let mut stored = 0;
        for name in names {
            match self.store_entry(app, &name).await {
                Ok(()) => {
                    let path = self.dir.join(format!("{name}{SUFFIX}"));
                    if let Err(e) = std::fs::remove_file(&path).and_then(|()| sync_dir(&self.dir)) {
                        // Stored already: draining it again stores nothing (its id is kept).
                        tracing::error!(error = %e, entry = %name, "cannot remove a stored spool entry");
                        return stored;
                    }
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    stored += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, waiting = self.waiting(), "the spool waits for the database");
                    return stored;
                }
            }
        }
        stored
    }

    async fn store_entry(&self, app: &AppState, name: &str) -> Result<(), String> {
        let path = self.dir.join(format!("{name}{SUFFIX}"));
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let split = bytes.iter().position(|b| *b == b'\n').unwrap_or(bytes.len());
        let header: Header = serde_json::from_slice(&bytes[..split])
            .map_err(|e| format!("{} is not a spool entry: {e}", path.display()))?;
        let body = bytes.get(split + 1..).unwrap_or_default();
        let received_at = chrono::DateTime::from_timestamp_millis(header.received_at_ms).unwrap_or_default();
        let result = match app.sources.get(&header.source) {
            Some(source) => decode_for_store(source, body, header.content_type.as_deref(), header.query.as_deref()).0,
            None => PushResult::Rejected {
                error: format!("the source \"{}\" is no longer configured; add it back and replay", header.source),
            },
        };
        let push = |result| NewPush {
            source: header.source.clone(),
            received_at,
            content_type: header.content_type.clone(),
            body: body.to_vec(),
            query: header.query.clone(),
            result,
        };
        let recorded = match app.store.record_spooled_push(name, push(result)).await {
            Ok(recorded) => recorded,
            // Refused by the database: kept as rejected, as the push endpoint does.
            Err(StoreError::Invalid(reason)) => {
                let error = format!("the database refused the card: {reason}");
                app.store
                    .record_spooled_push(name, push(PushResult::Rejected { error }))
                    .await
                    .map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        app.stored(&recorded);
        Ok(())
    }

    /// Drains whenever an entry is appended, and every second while entries wait.
    pub fn start(self: Arc<Self>, app: AppState) {
        tokio::spawn(async move {
            loop {
                if self.has_waiting() {
                    self.drain(&app).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
            }
        });
    }
}

/// Entry ids on disk, in arrival order.
fn entries(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(SUFFIX)).map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(format!("{name}{SUFFIX}")))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::Header;

    #[test]
    fn entries_written_before_the_query_was_kept_still_read() {
        let old: Header = serde_json::from_str(r#"{"source":"easyliao","received_at_ms":1,"content_type":null}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((old.source.as_str(), old.query), ("easyliao", None));
    }
}
