//! Issue #8: builds the leads of queued pushes. In a burst the writer stores each push durably
//! and answers it at once, outcome `queued`, without building its leads (see
//! [`xiansuo_store::Queueing`] and `queue_pushes_above`); this task decodes the queued pushes
//! again from their stored bodies and query strings, under the source's configuration (as a
//! replay does), and has the writer build their leads, oldest first. While the burst lasts it
//! takes a few at a time, so that the arriving pushes keep the writer; then as many as the writer
//! takes. The queue is the push log itself: a restart finds the queued pushes there and goes on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use xiansuo_store::{PushEntry, PushResult, QueuedPush, StoreError};

use crate::AppState;
use crate::push::decode_for_store;

/// Queued pushes applied in one write when no burst is under way: as many as the writer builds
/// in about [`CHUNK_TIME`] (pushes arriving meanwhile wait that long behind it), between
/// [`CHUNK_IN_BURST`] and this. Many, because each write commits once: a lead's index pages are
/// shared with its neighbours' in the batch.
const CHUNK: u32 = 256;
const CHUNK_TIME: Duration = Duration::from_millis(50);
/// … and at most this many bytes of bodies (pushes of up to `max_body_bytes` each), at least one.
const CHUNK_BYTES: usize = 8 << 20;
/// While a burst lasts: this many per write, then a pause. About 80 pushes a second, a few
/// per cent of a core: leads still appear, and the arriving pushes keep the writer.
const CHUNK_IN_BURST: u32 = 8;
const PAUSE_IN_BURST: Duration = Duration::from_millis(100);
/// How long the task sleeps with nothing queued when nobody wakes it (pushes queued by another
/// instance on the same PostgreSQL database, say).
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// After the database failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// A push whose leads fail to build alone, with the database answering, on this many tries
/// each at least [`STRIKE_SPACING`] after the last (over two minutes, so that a passing
/// failure — a lock held, a disk briefly full — rejects nothing), is kept as rejected with the
/// error rather than holding up every push behind it.
const STRIKES: u32 = 3;
const STRIKE_SPACING: Duration = Duration::from_secs(60);

/// Pushes that failed alone: how many counted failures, and when the last was counted.
type Strikes = HashMap<i64, (u32, Option<Instant>)>;

/// What the task keeps between chunks.
#[derive(Default)]
struct Applier {
    strikes: Strikes,
    /// How long the writer took per push in the last chunk applied together.
    per_push: Option<Duration>,
}

impl Applier {
    /// Pushes per chunk outside a burst: [`CHUNK_TIME`] of the writer's time.
    /// With several writers (PostgreSQL), up to [`CHUNK`] for each, applied side by side.
    fn chunk(&self, writers: usize) -> u32 {
        let most = CHUNK.saturating_mul(u32::try_from(writers).unwrap_or(1).max(1));
        let fits = |per: Duration| CHUNK_TIME.as_micros() / per.as_micros().max(1);
        self.per_push.map_or(CHUNK_IN_BURST, |per| u32::try_from(fits(per)).unwrap_or(most)).clamp(CHUNK_IN_BURST, most)
    }
}

/// Starts the task; `app.applier` is notified when a push is answered `queued`.
pub fn start(app: AppState) {
    tokio::spawn(async move {
        let mut applier = Applier::default();
        loop {
            match drain(&app, &mut applier).await {
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

/// Applies the queued pushes until none is left. Outside a burst, the next chunk is read while
/// the writer applies the last one, so that the writer is never idle. Each read starts from the
/// oldest queued push (leaving out the chunk being applied): with several PostgreSQL writers,
/// push ids do not commit in order.
async fn drain(app: &AppState, applier: &mut Applier) -> Result<(), StoreError> {
    let writers = app.store.queueing().writers();
    let (mut pushes, mut burst) = read_chunk(app, applier.chunk(writers), &[]).await?;
    while !pushes.is_empty() {
        if burst {
            apply(app, &pushes, applier).await?;
            tokio::time::sleep(PAUSE_IN_BURST).await;
            (pushes, burst) = read_chunk(app, applier.chunk(writers), &[]).await?;
        } else {
            let applying: Vec<i64> = pushes.iter().map(|p| p.id).collect();
            let next = applier.chunk(writers);
            let (applied, read) = tokio::join!(apply(app, &pushes, applier), read_chunk(app, next, &applying));
            applied?;
            (pushes, burst) = read?;
        }
    }
    Ok(())
}

/// Up to `chunk` of the oldest queued pushes but those in `applying`; and whether a burst is
/// under way (then only a few).
async fn read_chunk(app: &AppState, chunk: u32, applying: &[i64]) -> Result<(Vec<PushEntry>, bool), StoreError> {
    let burst = app.store.queueing().in_burst();
    let most_bytes = CHUNK_BYTES.saturating_mul(app.store.queueing().writers());
    let mut pushes = app.store.queued_pushes(if burst { CHUNK_IN_BURST } else { chunk }, applying).await?;
    let mut bytes = 0;
    let fits = pushes
        .iter()
        .take_while(|p| {
            bytes += p.body.len();
            bytes <= most_bytes
        })
        .count();
    pushes.truncate(fits.max(1));
    Ok((pushes, burst))
}

/// Applies a chunk of queued pushes: one write for each lane of each round (see [`rounds`]),
/// the lanes of a round side by side; a lane whose write fails is applied one push at a time.
async fn apply(app: &AppState, pushes: &[PushEntry], applier: &mut Applier) -> Result<(), StoreError> {
    let decoded: Vec<QueuedPush> = pushes.iter().map(|p| decode_again(app, p)).collect();
    let started = Instant::now();
    let about: Vec<Vec<Visitor>> = pushes.iter().zip(&decoded).map(|(entry, push)| visitors(entry, push)).collect();
    for round in rounds(&about, app.store.queueing().writers()) {
        let writes = round.iter().map(|lane| {
            let lane_pushes: Vec<QueuedPush> = lane.iter().map(|&i| decoded[i].clone()).collect();
            app.store.apply_queued_pushes(lane_pushes)
        });
        let results = futures_util::future::join_all(writes).await;
        // Every lane's outcome is seen to (its leads announced) before an error stops the
        // chunk: the pushes left queued are read again, the next round's among them.
        let mut failed = None;
        for (lane, result) in round.iter().zip(results) {
            let lane: Vec<&PushEntry> = lane.iter().map(|&i| &pushes[i]).collect();
            if let Err(e) = apply_lane(app, &lane, result, &mut applier.strikes).await {
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    let n = u32::try_from(pushes.len()).unwrap_or(u32::MAX).max(1);
    applier.per_push = Some(started.elapsed() / n);
    Ok(())
}

/// What became of one write of queued pushes: announced when stored; if it failed, the pushes
/// are applied one by one, so that a push the database refuses (or that keeps failing while the
/// database answers, see [`STRIKES`]) is kept as rejected, as the push endpoint would have,
/// instead of holding up the queue.
async fn apply_lane(
    app: &AppState,
    pushes: &[&PushEntry],
    written: Result<Vec<xiansuo_store::PushRecorded>, StoreError>,
    strikes: &mut Strikes,
) -> Result<(), StoreError> {
    match written {
        Ok(applied) => {
            for p in pushes {
                strikes.remove(&p.id);
            }
            applied.iter().for_each(|p| app.stored(p));
            return Ok(());
        }
        Err(StoreError::Overloaded) => return Err(StoreError::Overloaded),
        Err(e) if pushes.len() == 1 => return failed_alone(app, pushes[0], e, strikes).await,
        Err(e) => tracing::debug!(error = %e, "applying queued pushes together failed; one by one"),
    }
    for push in pushes {
        match app.store.apply_queued_pushes(vec![decode_again(app, push)]).await {
            Ok(applied) => {
                strikes.remove(&push.id);
                applied.iter().for_each(|p| app.stored(p));
            }
            Err(e) => failed_alone(app, push, e, strikes).await?,
        }
    }
    Ok(())
}

/// Who a queued push is about: its cards' and events' visitors, as `(source, company, visitor)`.
/// Two pushes about one visitor are applied in their order, in one write; pushes about
/// different visitors may be applied side by side (by several PostgreSQL writers), as pushes
/// arriving together are.
fn visitors(entry: &PushEntry, push: &QueuedPush) -> Vec<Visitor> {
    let key = |company: Option<&str>, visitor: &str| {
        (entry.source.clone(), company.unwrap_or_default().to_string(), visitor.to_string())
    };
    let mut out: Vec<Visitor> = match &push.result {
        PushResult::Cards { cards, .. } => {
            cards.iter().filter_map(|c| c.visitor_static_id().map(|v| key(c.company_id(), v))).collect()
        }
        PushResult::Rejected { .. } => Vec::new(),
    };
    out.extend(push.events.iter().map(|e| key(Some(&e.company_id), &e.visitor_id)));
    out
}

/// A visitor, as `(source, company, visitor id)`.
type Visitor = (String, String, String);

/// The chunk's pushes (indexes, oldest first; `about[i]`: the visitors of push `i`) as rounds of
/// at most `writers` lanes: every push about a visitor goes to the lane holding that visitor's
/// earlier pushes, any other to the shortest lane. A push about visitors of two lanes starts a
/// new round, applied once the lanes of the last one are stored, so that no push overtakes an
/// earlier one about the same visitor. One writer (SQLite): one round of one lane, the chunk in
/// its order.
fn rounds(about: &[Vec<Visitor>], writers: usize) -> Vec<Vec<Vec<usize>>> {
    let writers = writers.max(1);
    let mut rounds = Vec::new();
    let mut lanes: Vec<Vec<usize>> = vec![Vec::new(); writers];
    let mut lane_of: HashMap<&Visitor, usize> = HashMap::new();
    for (i, keys) in about.iter().enumerate() {
        let mut held: Vec<usize> = keys.iter().filter_map(|k| lane_of.get(k).copied()).collect();
        held.sort_unstable();
        held.dedup();
        if held.len() > 1 {
            rounds.push(std::mem::replace(&mut lanes, vec![Vec::new(); writers]));
            lane_of.clear();
            held.clear();
        }
        let shortest = || (0..writers).min_by_key(|&l| lanes[l].len()).unwrap_or(0);
        let lane = held.first().copied().unwrap_or_else(shortest);
        for k in keys {
            lane_of.insert(k, lane);
        }
        lanes[lane].push(i);
    }
    rounds.push(lanes);
    rounds.into_iter().map(|r| r.into_iter().filter(|l| !l.is_empty()).collect()).collect()
}

/// A queued push failed alone. Refused by the database, or failing while the database answers
/// on [`STRIKES`] tries spaced [`STRIKE_SPACING`] apart, it is kept as rejected; otherwise the
/// error is the caller's (the task tries again in a second).
async fn failed_alone(
    app: &AppState,
    push: &PushEntry,
    error: StoreError,
    strikes: &mut Strikes,
) -> Result<(), StoreError> {
    let reason = match error {
        StoreError::Invalid(reason) => format!("the database refused the card: {reason}"),
        StoreError::Overloaded => return Err(StoreError::Overloaded),
        other => {
            app.store.ping().await?;
            let now = Instant::now();
            let (n, last) = strikes.entry(push.id).or_insert((0, None));
            if last.is_none_or(|at| now.duration_since(at) >= STRIKE_SPACING) {
                *n += 1;
                *last = Some(now);
            }
            if *n < STRIKES {
                return Err(other);
            }
            format!("its leads could not be built ({STRIKES} tries over {} s): {other}", 2 * STRIKE_SPACING.as_secs())
        }
    };
    strikes.remove(&push.id);
    tracing::warn!(push_id = push.id, %reason, "a queued push is kept as rejected");
    let rejected = QueuedPush { push_id: push.id, result: PushResult::Rejected { error: reason }, events: Vec::new() };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str) -> Visitor {
        ("easyliao".into(), "c1".into(), id.into())
    }

    #[test]
    fn pushes_about_one_visitor_share_a_lane_in_their_order() {
        // a, b, a, c, (no visitor), b
        let about = vec![vec![v("a")], vec![v("b")], vec![v("a")], vec![v("c")], vec![], vec![v("b")]];
        let rounds = rounds(&about, 4);
        assert_eq!(rounds.len(), 1, "{rounds:?}");
        let lane_of = |i: usize| rounds[0].iter().position(|l| l.contains(&i)).unwrap();
        assert_eq!(lane_of(0), lane_of(2));
        assert_eq!(lane_of(1), lane_of(5));
        assert_ne!(lane_of(0), lane_of(1));
        for lane in &rounds[0] {
            assert!(lane.windows(2).all(|w| w[0] < w[1]), "each lane in arrival order: {lane:?}");
        }
        assert_eq!(rounds[0].iter().map(Vec::len).sum::<usize>(), 6);
        assert!(rounds[0].len() <= 4);
    }

    #[test]
    fn a_push_about_visitors_of_two_lanes_waits_for_both() {
        // a, b, then one push about a and b (a vendor's push of two cards), then a again.
        let about = vec![vec![v("a")], vec![v("b")], vec![v("a"), v("b")], vec![v("a")]];
        let rounds = rounds(&about, 4);
        assert_eq!(rounds.len(), 2, "{rounds:?}");
        let first: Vec<usize> = rounds[0].iter().flatten().copied().collect();
        assert_eq!(first.len(), 2);
        assert!(first.contains(&0) && first.contains(&1));
        assert_eq!(rounds[1], vec![vec![2, 3]]);
    }

    #[test]
    fn one_writer_applies_the_chunk_in_one_write() {
        let about = vec![vec![v("a")], vec![v("b")], vec![v("a"), v("b")], vec![]];
        assert_eq!(rounds(&about, 1), vec![vec![vec![0, 1, 2, 3]]]);
        assert_eq!(rounds(&[], 4), vec![Vec::<Vec<usize>>::new()]);
    }
}
