//! Issue #8: builds the leads of queued pushes. In a burst the writer stores each push durably
//! and answers it at once, outcome `queued`, without building its leads (see
//! [`xiansuo_store::Queueing`] and `queue_pushes_above`); this task decodes the queued pushes
//! again from their stored bodies, under the source's configuration (as a replay does), and has
//! the writer build their leads, oldest first. While the burst lasts it takes a few at a time,
//! so that the arriving pushes keep the writer; then as many as the writer takes. The queue is
//! the push log itself: a restart finds the queued pushes there and goes on.

use std::time::Duration;

use xiansuo_store::{PushEntry, PushRecorded, PushResult, StoreError};

use crate::AppState;
use crate::push::decode_for_store;

/// Queued pushes applied in one write when no burst is under way. Big, because each write
/// commits once: a lead's index pages are shared with its neighbours' in the batch.
const CHUNK: u32 = 256;
/// While a burst lasts: this many per write, then a pause. About 80 pushes a second, a few
/// per cent of a core: leads still appear, and the arriving pushes keep the writer.
const CHUNK_IN_BURST: u32 = 8;
const PAUSE_IN_BURST: Duration = Duration::from_millis(100);
/// How long the task sleeps with nothing queued when nobody wakes it (pushes queued by another
/// instance on the same PostgreSQL database, say).
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// After the database failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Starts the task; `app.applier` is notified when a push is answered `queued`.
pub fn start(app: AppState) {
    tokio::spawn(async move {
        loop {
            match drain(&app).await {
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
/// decoded while the writer applies the last one, so that the writer is never idle.
async fn drain(app: &AppState) -> Result<(), StoreError> {
    let (mut pushes, mut burst) = read_chunk(app, 0).await?;
    while let Some(&(last, _)) = pushes.last() {
        if burst {
            apply(app, pushes).await?;
            tokio::time::sleep(PAUSE_IN_BURST).await;
            (pushes, burst) = read_chunk(app, 0).await?;
        } else {
            let (applied, read) = tokio::join!(apply(app, pushes), read_chunk(app, last));
            applied?;
            (pushes, burst) = read?;
        }
    }
    Ok(())
}

/// The next queued pushes after `after`, decoded; and whether a burst is under way (then a few).
async fn read_chunk(app: &AppState, after: i64) -> Result<(Vec<(i64, PushResult)>, bool), StoreError> {
    let burst = app.store.queueing().in_burst();
    let pushes = app.store.queued_pushes(after, if burst { CHUNK_IN_BURST } else { CHUNK }).await?;
    Ok((pushes.iter().map(|p| (p.id, decode_again(app, p))).collect(), burst))
}

/// Applies decoded queued pushes in one write; when the database refuses a card, one by one,
/// keeping a push whose card it refuses as rejected (as the push endpoint does).
async fn apply(app: &AppState, decoded: Vec<(i64, PushResult)>) -> Result<(), StoreError> {
    let applied = match app.store.apply_queued_pushes(decoded.clone()).await {
        Ok(applied) => applied,
        Err(StoreError::Invalid(_)) if decoded.len() > 1 => {
            let mut applied = Vec::with_capacity(decoded.len());
            for push in decoded {
                applied.extend(apply_alone(app, push).await?);
            }
            applied
        }
        Err(StoreError::Invalid(reason)) => {
            let push_id = decoded.first().map_or(0, |(id, _)| *id);
            refused(app, push_id, &reason).await?
        }
        Err(e) => return Err(e),
    };
    announce(app, &applied);
    Ok(())
}

async fn apply_alone(app: &AppState, (push_id, result): (i64, PushResult)) -> Result<Vec<PushRecorded>, StoreError> {
    match app.store.apply_queued_pushes(vec![(push_id, result)]).await {
        Err(StoreError::Invalid(reason)) => refused(app, push_id, &reason).await,
        other => other,
    }
}

async fn refused(app: &AppState, push_id: i64, reason: &str) -> Result<Vec<PushRecorded>, StoreError> {
    tracing::warn!(push_id, %reason, "the database refused a queued push's card; the push is kept as rejected");
    let error = format!("the database refused the card: {reason}");
    app.store.apply_queued_pushes(vec![(push_id, PushResult::Rejected { error })]).await
}

/// The push's cards under today's configuration of its source.
fn decode_again(app: &AppState, push: &PushEntry) -> PushResult {
    match app.sources.get(&push.source) {
        Some(source) => decode_for_store(source, &push.body, push.content_type.as_deref()).0,
        None => PushResult::Rejected {
            error: format!("the source \"{}\" is no longer configured; add it back and replay", push.source),
        },
    }
}

/// The console's live inbox hears of the leads created (no console listening is fine).
fn announce(app: &AppState, applied: &[PushRecorded]) {
    for lead in applied.iter().flat_map(|p| &p.leads).filter(|l| l.created) {
        let _ = app.new_leads.send(lead.id);
    }
}
