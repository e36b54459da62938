//! Issue #8: builds the leads of queued pushes. In a burst the writer stores each push durably
//! and answers it at once, outcome `queued`, without building its leads (see
//! [`xiansuo_store::Queueing`] and `queue_pushes_above`); this task decodes the queued pushes
//! again from their stored bodies and query strings, under the source's configuration (as a
//! replay does), and has the writer build their leads, oldest first (with several PostgreSQL
//! writers, in lanes side by side that keep each lead's pushes in order). While the burst lasts it
//! takes a few at a time, so that the arriving pushes keep the writer; then as many as the writer
//! takes. The queue is the push log itself: a restart finds the queued pushes there and goes on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use xiansuo_store::{PushEntry, PushResult, QueuedPush, StoreError};

use crate::AppState;
use crate::push::decode_for_store;

/// Queued pushes applied in one write (per lane, see [`split`]) when no burst is under way: as
/// many as the writer builds in about [`CHUNK_TIME`] (pushes arriving meanwhile wait that long
/// behind it), between [`CHUNK_IN_BURST`] and this. Many, because each write commits once: a lead's index pages are
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
    /// How long the last chunk whose lanes were each applied in one write took per push (with
    /// several lanes side by side, a fraction of one writer's time per push).
    per_push: Option<Duration>,
}

impl Applier {
    /// Pushes per chunk outside a burst: [`CHUNK_TIME`] of the writer's time.
    /// With several lanes (PostgreSQL's writers), up to [`CHUNK`] for each, applied side by side.
    fn chunk(&self, lanes: usize) -> u32 {
        let most = CHUNK.saturating_mul(u32::try_from(lanes).unwrap_or(1).max(1));
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
    // One writer is left to the arriving pushes (and PostgreSQL's auto-assignment cursor, held
    // by each write that assigns leads, makes lanes of one group wait for each other anyway).
    let lanes = app.store.queueing().writers().saturating_sub(1).max(1);
    let (mut pushes, mut burst) = read_chunk(app, applier.chunk(lanes), &[]).await?;
    while !pushes.is_empty() {
        if burst {
            // A few pushes in one write: a burst's writers are the arriving pushes'.
            apply(app, &pushes, 1, applier).await?;
            tokio::time::sleep(PAUSE_IN_BURST).await;
            (pushes, burst) = read_chunk(app, applier.chunk(lanes), &[]).await?;
        } else {
            let applying: Vec<i64> = pushes.iter().map(|p| p.id).collect();
            let next = applier.chunk(lanes);
            let (applied, read) = tokio::join!(apply(app, &pushes, lanes, applier), read_chunk(app, next, &applying));
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
    let mut pushes = app.store.queued_pushes(if burst { CHUNK_IN_BURST } else { chunk }, applying).await?;
    let mut bytes = 0;
    let fits = pushes
        .iter()
        .take_while(|p| {
            bytes += p.body.len();
            bytes <= CHUNK_BYTES
        })
        .count();
    pushes.truncate(fits.max(1));
    Ok((pushes, burst))
}

/// Applies a chunk of queued pushes: one write for each of at most `lanes` lanes (see
/// [`split`]), side by side; a lane whose write fails is applied one push at a time.
async fn apply(app: &AppState, pushes: &[PushEntry], lanes: usize, applier: &mut Applier) -> Result<(), StoreError> {
    let decoded: Vec<QueuedPush> = pushes.iter().map(|p| decode_again(app, p)).collect();
    let about: Vec<Vec<About>> = pushes.iter().zip(&decoded).map(|(entry, push)| about(entry, push)).collect();
    let lanes = split(&about, lanes);
    let mut decoded: Vec<Option<QueuedPush>> = decoded.into_iter().map(Some).collect();
    let writes: Vec<Vec<QueuedPush>> =
        lanes.iter().map(|lane| lane.iter().filter_map(|&i| decoded[i].take()).collect()).collect();
    let started = Instant::now();
    let results = futures_util::future::join_all(writes.into_iter().map(|w| app.store.apply_queued_pushes(w))).await;
    // Timed before any lane falls back to one push at a time, and only if none did.
    let together = results.iter().all(Result::is_ok).then(|| started.elapsed());
    // Every lane's outcome is seen to (its leads announced) before an error stops the chunk:
    // the pushes left queued are read again.
    let mut failed = None;
    for (lane, result) in lanes.iter().zip(results) {
        let lane: Vec<&PushEntry> = lane.iter().map(|&i| &pushes[i]).collect();
        if let Err(e) = apply_lane(app, &lane, result, &mut applier.strikes).await {
            match failed {
                None => failed = Some(e),
                Some(_) => tracing::warn!(error = %e, "another lane of queued pushes failed too"),
            }
        }
    }
    if let Some(took) = together {
        applier.per_push = Some(took / u32::try_from(pushes.len()).unwrap_or(u32::MAX).max(1));
    }
    failed.map_or(Ok(()), Err)
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

/// What a queued push is about, for [`split`]: the leads of its cards and events, and the
/// contacts its cards hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum About {
    /// A lead, as the writers find it: `(source, company, visitor id)`.
    Visitor(String, String, String),
    /// A contact (kind, normalized value): leads sharing one are flagged as possible duplicates
    /// of each other, which a lead built side by side with the other, each in a transaction not
    /// yet committed, would not see.
    Contact(&'static str, String),
}

fn about(entry: &PushEntry, push: &QueuedPush) -> Vec<About> {
    let visitor = |company: Option<&str>, visitor: &str| {
        About::Visitor(entry.source.clone(), company.unwrap_or_default().to_string(), visitor.to_string())
    };
    let mut out = Vec::new();
    if let PushResult::Cards { cards, .. } = &push.result {
        for card in cards {
            out.extend(card.visitor_static_id().map(|v| visitor(card.company_id(), v)));
            out.extend(card.contact_keys.iter().map(|(kind, value)| About::Contact(kind, value.clone())));
        }
    }
    out.extend(push.events.iter().map(|e| visitor(Some(&e.company_id), &e.visitor_id)));
    out
}

/// The chunk's pushes (indexes, oldest first; `about[i]`: what push `i` is about) in at most
/// `lanes` lanes, each in arrival order, applied side by side. Pushes about one lead or one
/// contact share a lane, so that none overtakes an earlier one about the same lead (a later
/// card wins) and leads sharing a contact see each other; any other push goes to the shortest
/// lane. A push about what two lanes hold joins them into one. One lane (SQLite's one writer, or
/// a burst): the chunk in its order.
fn split(about: &[Vec<About>], lanes: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); lanes.max(1)];
    let mut lane_of: HashMap<&About, usize> = HashMap::new();
    for (i, keys) in about.iter().enumerate() {
        let mut held: Vec<usize> = keys.iter().filter_map(|k| lane_of.get(k).copied()).collect();
        held.sort_unstable();
        held.dedup();
        let lane = match held.split_first() {
            Some((&first, others)) => {
                for &other in others {
                    let moved = std::mem::take(&mut out[other]);
                    out[first].extend(moved);
                    lane_of.values_mut().filter(|l| **l == other).for_each(|l| *l = first);
                }
                out[first].sort_unstable();
                first
            }
            None => (0..out.len()).min_by_key(|&l| out[l].len()).unwrap_or(0),
        };
        for k in keys {
            lane_of.insert(k, lane);
        }
        out[lane].push(i);
    }
    out.retain(|lane| !lane.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str) -> About {
        About::Visitor("easyliao".into(), "c1".into(), id.into())
    }

    fn lane_of(lanes: &[Vec<usize>], i: usize) -> usize {
        lanes.iter().position(|l| l.contains(&i)).expect("every push in a lane")
    }

    #[test]
    fn pushes_about_one_lead_share_a_lane_in_their_order() {
        // a, b, a, c, (nothing), b
        let about = vec![vec![v("a")], vec![v("b")], vec![v("a")], vec![v("c")], vec![], vec![v("b")]];
        let lanes = split(&about, 3);
        assert_eq!(lane_of(&lanes, 0), lane_of(&lanes, 2));
        assert_eq!(lane_of(&lanes, 1), lane_of(&lanes, 5));
        assert_ne!(lane_of(&lanes, 0), lane_of(&lanes, 1));
        assert!(lanes.len() <= 3);
        for lane in &lanes {
            assert!(lane.windows(2).all(|w| w[0] < w[1]), "each lane in arrival order: {lane:?}");
        }
        assert_eq!(lanes.iter().map(Vec::len).sum::<usize>(), 6);
    }

    #[test]
    fn a_push_about_two_lanes_joins_them_and_a_shared_contact_is_one_lane() {
        // a, b, then one push about a and b (a vendor's push of two cards), then c and d sharing
        // a phone number.
        let phone = About::Contact("mobile", "13912345678".into());
        let about = vec![
            vec![v("a")],
            vec![v("b")],
            vec![v("a"), v("b")],
            vec![v("a")],
            vec![v("c"), phone.clone()],
            vec![v("d"), phone],
        ];
        let lanes = split(&about, 4);
        assert_eq!(lanes.iter().find(|l| l.contains(&0)), Some(&vec![0, 1, 2, 3]), "{lanes:?}");
        assert_eq!(lane_of(&lanes, 4), lane_of(&lanes, 5));
        assert_ne!(lane_of(&lanes, 4), lane_of(&lanes, 0));
    }

    #[test]
    fn one_lane_applies_the_chunk_in_its_order() {
        let about = vec![vec![v("a")], vec![v("b")], vec![v("a"), v("b")], vec![]];
        assert_eq!(split(&about, 1), vec![vec![0, 1, 2, 3]]);
        assert_eq!(split(&[], 4), Vec::<Vec<usize>>::new());
    }
}
