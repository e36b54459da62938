//! Issue #8: builds the leads of queued pushes. In a burst the writer stores each push durably
//! and answers it at once, outcome `queued`, without building its leads (see
//! [`xiansuo_store::Queueing`] and `queue_pushes_above`); this task decodes the queued pushes
//! again from their stored bodies and query strings, under the source's configuration (as a
//! replay does), and has the writer build their leads, oldest first. While the burst lasts it
//! takes a few at a time, so that the arriving pushes keep the writer; then as many as the writer
//! takes. The queue is the push log itself: a restart finds the queued pushes there and goes on.

use std::collections::HashMap;
use std::time::Duration;

use xiansuo_store::{PushEntry, PushRecorded, PushResult, QueuedPush, StoreError};

use crate::AppState;
use crate::push::decode_for_store;

/// Queued pushes applied in one write when no burst is under way. Big, because each write
/// commits once: a lead's index pages are shared with its neighbours' in the batch.
const CHUNK: usize = 256;
/// While a burst lasts: this many per write, then a pause. About 80 pushes a second, a few
/// per cent of a core: leads still appear, and the arriving pushes keep the writer.
const CHUNK_IN_BURST: usize = 8;
const PAUSE_IN_BURST: Duration = Duration::from_millis(100);
/// How long the task sleeps with nothing queued when nobody wakes it (pushes queued by another
/// instance on the same PostgreSQL database, say).
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// After the database failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// A push whose leads fail to build this many times in a row, alone and with the database
/// answering, is kept as rejected (with the error) rather than holding up every push behind it.
const STRIKES: u32 = 3;

/// Starts the task; `app.applier` is notified when a push is answered `queued`.
pub fn start(app: AppState) {
    tokio::spawn(async move {
        let mut strikes = HashMap::new();
        loop {
            match drain(&app, &mut strikes).await {
                Ok(()) => {
                    let _ = tokio::time::timeout(IDLE_CHECK, app.applier.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "building the leads of queued pushes waits for the database");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    });
}

/// Applies the queued pushes until none is left. Outside a burst, the next chunk is read and
/// decoded while the writer applies the last one, so that the writer is never idle. Each read
/// starts from the oldest queued push (leaving out the chunk being applied): with several
/// PostgreSQL writers, push ids do not commit in order.
pub async fn drain(app: &AppState, strikes: &mut HashMap<i64, u32>) -> Result<(), StoreError> {
    let (mut pushes, mut burst) = read_chunk(app, &[]).await?;
    while !pushes.is_empty() {
        if burst {
            apply(app, pushes, strikes).await?;
            tokio::time::sleep(PAUSE_IN_BURST).await;
            (pushes, burst) = read_chunk(app, &[]).await?;
        } else {
            let applying: Vec<i64> = pushes.iter().map(|p| p.push_id).collect();
            let (applied, read) = tokio::join!(apply(app, pushes, strikes), read_chunk(app, &applying));
            applied?;
            (pushes, burst) = read?;
        }
    }
    Ok(())
}

/// The oldest queued pushes but those in `applying`, decoded; and whether a burst is under way
/// (then only a few).
async fn read_chunk(app: &AppState, applying: &[i64]) -> Result<(Vec<QueuedPush>, bool), StoreError> {
    let burst = app.store.queueing().in_burst();
    let limit = if burst { CHUNK_IN_BURST } else { CHUNK };
    let wanted = u32::try_from(limit + applying.len()).unwrap_or(u32::MAX);
    let pushes = app.store.queued_pushes(wanted).await?;
    let decoded =
        pushes.iter().filter(|p| !applying.contains(&p.id)).take(limit).map(|p| decode_again(app, p)).collect();
    Ok((decoded, burst))
}

/// Applies decoded queued pushes in one write; if that fails, one by one, so that a push the
/// database refuses (or that fails again and again while the database answers) is kept as
/// rejected, as the push endpoint would have, instead of holding up the queue.
async fn apply(app: &AppState, pushes: Vec<QueuedPush>, strikes: &mut HashMap<i64, u32>) -> Result<(), StoreError> {
    let several = pushes.len() > 1;
    match app.store.apply_queued_pushes(pushes.clone()).await {
        Ok(applied) => {
            announce(app, &applied);
            return Ok(());
        }
        Err(StoreError::Overloaded) => return Err(StoreError::Overloaded),
        Err(e) if !several => return apply_alone_failed(app, pushes.into_iter().next(), e, strikes).await,
        Err(e) => tracing::debug!(error = %e, "applying queued pushes together failed; one by one"),
    }
    for push in pushes {
        match app.store.apply_queued_pushes(vec![push.clone()]).await {
            Ok(applied) => announce(app, &applied),
            Err(e) => apply_alone_failed(app, Some(push), e, strikes).await?,
        }
    }
    Ok(())
}

/// A queued push failed alone: refused by the database, or failing while the database answers
/// [`STRIKES`] times, it is kept as rejected; otherwise the error is the caller's (try later).
async fn apply_alone_failed(
    app: &AppState,
    push: Option<QueuedPush>,
    error: StoreError,
    strikes: &mut HashMap<i64, u32>,
) -> Result<(), StoreError> {
    let Some(push) = push else { return Ok(()) };
    let reason = match error {
        StoreError::Invalid(reason) => format!("the database refused the card: {reason}"),
        StoreError::Overloaded => return Err(StoreError::Overloaded),
        other => {
            app.store.ping().await?;
            let n = strikes.entry(push.push_id).or_insert(0);
            *n += 1;
            if *n < STRIKES {
                return Err(other);
            }
            format!("its leads could not be built ({STRIKES} tries): {other}")
        }
    };
    strikes.remove(&push.push_id);
    tracing::warn!(push_id = push.push_id, %reason, "a queued push is kept as rejected");
    let rejected =
        QueuedPush { push_id: push.push_id, result: PushResult::Rejected { error: reason }, events: Vec::new() };
    app.store.apply_queued_pushes(vec![rejected]).await.map(|_| ())
}

/// The push's cards (and visitor's events) under today's configuration of its source. A push
/// whose source is no longer configured is kept as rejected: add the source back and replay it.
fn decode_again(app: &AppState, push: &PushEntry) -> QueuedPush {
    let (result, events) = match app.sources.get(&push.source) {
        Some(source) => {
            let (result, _, events) =
                decode_for_store(source, &push.body, push.content_type.as_deref(), push.query.as_deref());
            (result, events)
        }
        None => (
            PushResult::Rejected {
                error: format!("the source \"{}\" is no longer configured; add it back and replay", push.source),
            },
            Vec::new(),
        ),
    };
    QueuedPush { push_id: push.id, result, events }
}

/// The console's live inbox (and the outbox's worker) hear of the leads created; no one
/// listening is fine.
fn announce(app: &AppState, applied: &[PushRecorded]) {
    for lead in applied.iter().flat_map(|p| &p.leads).filter(|l| l.created) {
        let _ = app.new_leads.send(lead.id);
    }
}
