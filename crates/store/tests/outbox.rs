//! Issue #6 in the store, on both backends (`sqlite::name`, `postgres::name`): assignment of new
//! leads inside the push's transaction, the outbox written with its change (and only then),
//! per-lead ordering of claims, retries, dead deliveries and redelivery.

use std::sync::Arc;

use serde_json::json;
use tempfile::TempDir;
use xiansuo_domain::routing::{Condition, EventKind, MatchField, Routing, Rule, SinkFilter, Strategy, Target};
use xiansuo_domain::{Card, Instant, LeadChange, LeadStatus, Role};
use xiansuo_store::outbox::{DeliveryOutcome, DeliveryQuery, DeliveryStatus, Redeliver};
use xiansuo_store::postgres::PostgresStore;
use xiansuo_store::sqlite::SqliteStore;
use xiansuo_store::testing::{TestDatabase, throwaway_postgres};
use xiansuo_store::{Actor, LeadUpdate, NewPush, PushResult, Store, UserChange};

macro_rules! suite {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Env::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Env::postgres().await).await;
                }
            )+
        }
    };
}

suite!(
    rules_assign_new_leads_and_the_timeline_names_the_rule,
    round_robin_skips_disabled_users_and_least_loaded_counts_open_leads,
    events_are_written_with_their_change_and_only_then,
    claims_keep_each_leads_order_and_retries_wait,
    dead_deliveries_can_be_redelivered,
    nothing_is_written_without_routing,
    a_merge_is_announced_and_a_refused_one_is_not,
    relays_are_queued_with_their_push_and_do_not_wait_for_each_other,
);

#[allow(dead_code)] // held for their Drop: the folder and the database go with the test
enum Db {
    Sqlite(TempDir),
    Postgres(TestDatabase),
}

/// `store` first: dropped before its database.
struct Env {
    store: Arc<dyn Store>,
    _db: Db,
}

impl Env {
    async fn sqlite() -> Env {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = SqliteStore::open(&dir.path().join("x.db"), 256).expect("open SQLite");
        Env { store: Arc::new(store), _db: Db::Sqlite(dir) }
    }

    async fn postgres() -> Env {
        let db = throwaway_postgres().await;
        let store = PostgresStore::open(&db.url, 4, 1, 256).await.expect("open PostgreSQL");
        Env { store: Arc::new(store), _db: Db::Postgres(db) }
    }
}

fn now() -> Instant {
    xiansuo_domain::now()
}

fn card(visitor: &str, pairs: &[(&'static str, &str)]) -> Card {
    let mut c = Card::default();
    c.fields.insert("company_id", "c1".into());
    c.fields.insert("visitor_static_id", visitor.into());
    for (k, v) in pairs {
        c.fields.insert(k, v.to_string());
    }
    c
}

fn push(cards: Vec<Card>) -> NewPush {
    NewPush {
        source: "easyliao".into(),
        received_at: now(),
        content_type: Some("application/json".into()),
        body: b"{}".to_vec(),
        query: None,
        result: PushResult::Cards { cards, ignored: 0 },
    }
}

async fn lead_of(store: &Arc<dyn Store>, c: Card) -> i64 {
    store.record_push(push(vec![c])).await.expect("record_push").leads[0].id
}

async fn user(store: &Arc<dyn Store>, name: &str) -> i64 {
    store.create_user(name, Role::Agent, "x").await.expect("create_user").id
}

fn sink(name: &str, events: &[EventKind]) -> SinkFilter {
    SinkFilter { name: name.into(), events: events.to_vec(), sources: vec![], tags: vec![] }
}

async fn owner(store: &Arc<dyn Store>, id: i64) -> Option<i64> {
    store.lead(id).await.expect("lead").expect("a lead").lead.owner_id
}

async fn rules_assign_new_leads_and_the_timeline_names_the_rule(env: Env) {
    let s = &env.store;
    let li = user(s, "li").await;
    let wang = user(s, "wang").await;
    let zhao = user(s, "zhao").await;
    s.set_routing(Routing {
        rules: vec![
            Rule {
                name: "山西".into(),
                conditions: vec![Condition::Field { field: MatchField::Province, values: vec!["山西".into()] }],
                target: Target::User("li".into()),
            },
            Rule {
                name: "雅思".into(),
                conditions: vec![Condition::Keyword(vec!["雅思".into()])],
                target: Target::User("wang".into()),
            },
        ],
        owner_map: [("AI-9".to_string(), "zhao".to_string())].into(),
        sinks: vec![sink("crm", &[])],
        ..Default::default()
    });
    let a = lead_of(s, card("v1", &[("province", "山西省"), ("keyword", "雅思")])).await;
    let b = lead_of(s, card("v2", &[("province", "河北省"), ("keyword", "雅思培训")])).await;
    let c = lead_of(s, card("v3", &[("province", "山西省"), ("user_id", "AI-9")])).await;
    let d = lead_of(s, card("v4", &[("province", "河北省")])).await;
    assert_eq!(owner(s, a).await, Some(li));
    assert_eq!(owner(s, b).await, Some(wang));
    assert_eq!(owner(s, c).await, Some(zhao), "the vendor's owner wins over the rules");
    assert_eq!(owner(s, d).await, None, "no rule: the pool");
    // A later push does not reassign.
    lead_of(s, card("v1", &[("user_id", "AI-9")])).await;
    assert_eq!(owner(s, a).await, Some(li));

    let events = s.lead_events(a).await.expect("lead_events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].user_id, None);
    assert_eq!(events[0].change, LeadChange::AutoAssigned { to: li, rule: "山西".into() });
    let events = s.lead_events(c).await.expect("lead_events");
    assert_eq!(events[0].change, LeadChange::AutoAssigned { to: zhao, rule: "owner_map".into() });

    // A disabled user is skipped: the next matching rule (none here) decides.
    s.update_user(li, UserChange::Disabled(true)).await.expect("disable");
    let e = lead_of(s, card("v5", &[("province", "山西省")])).await;
    assert_eq!(owner(s, e).await, None);

    // The outbox: created then assigned for a, with the rule; created only for d.
    let list = s
        .list_deliveries(&DeliveryQuery { lead_id: Some(a), page: 1, per_page: 50, ..Default::default() })
        .await
        .expect("list_deliveries");
    let kinds: Vec<&str> = list.items.iter().rev().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, vec!["lead.created", "lead.assigned", "lead.updated"]);
    let claimed = s.claim_deliveries(now(), now() + chrono::Duration::seconds(60), 100).await.expect("claim");
    let assigned = claimed.iter().find(|c| c.lead_id == a && c.kind == EventKind::Created).expect("created of a");
    assert_eq!(assigned.payload["lead"]["province"], json!("山西省"));
    assert_eq!(assigned.payload["lead"]["owner"]["name"], json!("li"), "created after the rules assigned it");
    assert_eq!(assigned.payload["lead"]["id"], json!(a));
}

async fn round_robin_skips_disabled_users_and_least_loaded_counts_open_leads(env: Env) {
    let s = &env.store;
    let ids: Vec<i64> = futures_ids(s, &["a", "b", "c"]).await;
    let members: Vec<String> = ["a", "b", "c"].iter().map(|x| x.to_string()).collect();
    let group = |strategy| Target::Group { name: "g".into(), members: members.clone(), strategy };
    s.set_routing(Routing {
        rules: vec![
            Rule {
                name: "rr".into(),
                conditions: vec![Condition::Field { field: MatchField::City, values: vec!["rr".into()] }],
                target: group(Strategy::RoundRobin),
            },
            Rule {
                name: "ll".into(),
                conditions: vec![Condition::Field { field: MatchField::City, values: vec!["ll".into()] }],
                target: group(Strategy::LeastLoaded),
            },
        ],
        ..Default::default()
    });
    let mut got = Vec::new();
    for i in 0..4 {
        got.push(owner(s, lead_of(s, card(&format!("r{i}"), &[("city", "rr")])).await).await);
    }
    assert_eq!(got, vec![Some(ids[0]), Some(ids[1]), Some(ids[2]), Some(ids[0])]);
    s.update_user(ids[1], UserChange::Disabled(true)).await.expect("disable b");
    let next = owner(s, lead_of(s, card("r4", &[("city", "rr")])).await).await;
    assert_eq!(next, Some(ids[2]), "b is disabled: skipped");

    // Loads now: a 2, b 1 (disabled), c 2. Closing one of a's leads makes a the least loaded.
    let a_lead = lead_of(s, card("r0", &[])).await;
    let admin = Actor { user_id: ids[0], admin: true };
    s.update_lead(a_lead, admin, LeadUpdate::Status { to: LeadStatus::Won, reason: None }, now())
        .await
        .expect("status");
    let ll = owner(s, lead_of(s, card("l0", &[("city", "ll")])).await).await;
    assert_eq!(ll, Some(ids[0]));
    let ll = owner(s, lead_of(s, card("l1", &[("city", "ll")])).await).await;
    assert_eq!(ll, Some(ids[0]), "a: 2 open, c: 2 open, a first in order");
    let ll = owner(s, lead_of(s, card("l2", &[("city", "ll")])).await).await;
    assert_eq!(ll, Some(ids[2]));

    // The dry run reads the same decision without moving the cursor.
    let routing = Routing {
        rules: vec![Rule { name: "rr".into(), conditions: vec![], target: group(Strategy::RoundRobin) }],
        ..Default::default()
    };
    let c = card("x", &[]);
    let decisions = routing.decisions("easyliao", &c, now());
    let first = s.preview_assignment(&decisions).await.expect("preview").expect("someone");
    let again = s.preview_assignment(&decisions).await.expect("preview").expect("someone");
    assert_eq!(first, again);
    assert_eq!(first.user_id, ids[0], "after c comes a");
}

async fn futures_ids(s: &Arc<dyn Store>, names: &[&str]) -> Vec<i64> {
    let mut out = Vec::new();
    for n in names {
        out.push(user(s, n).await);
    }
    out
}

async fn events_are_written_with_their_change_and_only_then(env: Env) {
    let s = &env.store;
    let li = user(s, "li").await;
    s.set_routing(Routing {
        sinks: vec![
            sink("all", &[]),
            sink("status", &[EventKind::StatusChanged]),
            SinkFilter { name: "vip".into(), events: vec![], sources: vec![], tags: vec!["VIP".into()] },
            SinkFilter { name: "other-source".into(), events: vec![], sources: vec!["x".into()], tags: vec![] },
        ],
        ..Default::default()
    });
    let lead = lead_of(s, card("v1", &[("ntag_name", "VIP")])).await;
    let agent = Actor { user_id: li, admin: false };
    // Refused changes (an agent on a pool lead) leave no event.
    let refused =
        s.update_lead(lead, agent, LeadUpdate::Status { to: LeadStatus::Contacted, reason: None }, now()).await;
    assert!(refused.is_err());
    s.update_lead(lead, agent, LeadUpdate::Claim, now()).await.expect("claim");
    s.update_lead(lead, agent, LeadUpdate::Status { to: LeadStatus::Contacted, reason: None }, now())
        .await
        .expect("status");
    s.update_lead(lead, agent, LeadUpdate::Note { text: "called".into() }, now()).await.expect("note");
    // A failed push (no company id) writes nothing either.
    let mut bad = card("v2", &[]);
    bad.fields.remove("company_id");
    assert!(s.record_push(push(vec![bad])).await.is_err());

    let counts = s.delivery_counts().await.expect("counts");
    let count = |sink: &str| counts.iter().filter(|c| c.sink == sink).map(|c| c.count).sum::<i64>();
    assert_eq!(count("all"), 3, "created, assigned (claim), status_changed: {counts:?}");
    assert_eq!(count("status"), 1);
    assert_eq!(count("vip"), 3);
    assert_eq!(count("other-source"), 0);
    let claimed = s.claim_deliveries(now(), now() + chrono::Duration::seconds(60), 100).await.expect("claim");
    // One per (sink, lead): the oldest.
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    let status = claimed.iter().find(|c| c.sink == "status").expect("status sink");
    assert_eq!(status.kind, EventKind::StatusChanged);
    assert_eq!(status.payload["change"]["from"], json!("new"));
    assert_eq!(status.payload["change"]["to"], json!("contacted"));
    assert_eq!(status.payload["change"]["by"]["name"], json!("li"));
    assert_eq!(status.payload["lead"]["owner"]["name"], json!("li"));
}

async fn claims_keep_each_leads_order_and_retries_wait(env: Env) {
    let s = &env.store;
    s.set_routing(Routing { sinks: vec![sink("a", &[]), sink("b", &[])], ..Default::default() });
    let one = lead_of(s, card("v1", &[])).await;
    lead_of(s, card("v1", &[("name", "张三")])).await;
    let two = lead_of(s, card("v2", &[])).await;
    let lease = now() + chrono::Duration::seconds(60);
    let first = s.claim_deliveries(now(), lease, 100).await.expect("claim");
    let seen: Vec<(String, i64, EventKind)> = first.iter().map(|c| (c.sink.clone(), c.lead_id, c.kind)).collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.iter().all(|(_, _, k)| *k == EventKind::Created), "updates wait for creations: {seen:?}");
    // Leased: not claimed again.
    assert!(s.claim_deliveries(now(), lease, 100).await.expect("claim").is_empty());
    // Sink a delivers lead one's creation; sink b fails it (retry later).
    let a1 = first.iter().find(|c| c.sink == "a" && c.lead_id == one).expect("a/one");
    let b1 = first.iter().find(|c| c.sink == "b" && c.lead_id == one).expect("b/one");
    s.finish_delivery(a1.id, DeliveryOutcome::Delivered { status: Some(200), at: now() }).await.expect("finish");
    let later = now() + chrono::Duration::seconds(30);
    s.finish_delivery(b1.id, DeliveryOutcome::Retry { status: Some(500), error: "HTTP 500".into(), next_at: later })
        .await
        .expect("finish");
    let next = s.claim_deliveries(now(), lease, 100).await.expect("claim");
    let seen: Vec<(String, i64, EventKind)> = next.iter().map(|c| (c.sink.clone(), c.lead_id, c.kind)).collect();
    assert_eq!(seen, vec![("a".to_string(), one, EventKind::Updated)], "b waits for its retry; two is leased");
    let due = s.next_delivery_due().await.expect("next due").expect("something pending");
    assert!(due > now(), "the earliest is leased or waiting");
    assert!(due <= later, "b's retry is due then");
    // At the retry time, b's creation comes again, with its attempt counted.
    let retry = s.claim_deliveries(later, later + chrono::Duration::seconds(60), 100).await.expect("claim");
    let b_again = retry.iter().find(|c| c.sink == "b" && c.lead_id == one).expect("b/one again");
    assert_eq!(b_again.kind, EventKind::Created);
    assert_eq!(b_again.attempts, 1);
    let rows = s
        .list_deliveries(&DeliveryQuery {
            sink: Some("b".into()),
            lead_id: Some(two),
            page: 1,
            per_page: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(rows.total, 1);
}

async fn dead_deliveries_can_be_redelivered(env: Env) {
    let s = &env.store;
    s.set_routing(Routing { sinks: vec![sink("a", &[])], ..Default::default() });
    lead_of(s, card("v1", &[])).await;
    let c = s.claim_deliveries(now(), now() + chrono::Duration::seconds(60), 10).await.expect("claim");
    assert_eq!(c.len(), 1);
    s.finish_delivery(c[0].id, DeliveryOutcome::Dead { status: None, error: "timed out".into(), at: now() })
        .await
        .expect("finish");
    let dead = s
        .list_deliveries(&DeliveryQuery {
            status: Some(DeliveryStatus::Dead),
            page: 1,
            per_page: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(dead.total, 1);
    assert_eq!(dead.items[0].last_error.as_deref(), Some("timed out"));
    assert_eq!(dead.items[0].attempts, 1);
    assert!(s.claim_deliveries(now(), now(), 10).await.expect("claim").is_empty());
    assert_eq!(s.redeliver(Redeliver::One(c[0].id), now()).await.expect("redeliver"), 1);
    assert_eq!(s.redeliver(Redeliver::One(c[0].id), now()).await.expect("redeliver"), 0, "only dead ones");
    let again = s.claim_deliveries(now(), now() + chrono::Duration::seconds(60), 10).await.expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 0);
    assert_eq!(again[0].event_id, c[0].event_id, "the same event, the same id for the receiver");
    s.finish_delivery(again[0].id, DeliveryOutcome::Dead { status: None, error: "x".into(), at: now() })
        .await
        .expect("finish");
    assert_eq!(s.redeliver(Redeliver::AllDeadOf("a".into()), now()).await.expect("redeliver"), 1);
}

async fn nothing_is_written_without_routing(env: Env) {
    let s = &env.store;
    let lead = lead_of(s, card("v1", &[])).await;
    let admin = s.create_user("boss", Role::Admin, "x").await.expect("user");
    s.update_lead(lead, Actor::of(&admin), LeadUpdate::Assign { to: Some(admin.id) }, now()).await.expect("assign");
    assert!(s.delivery_counts().await.expect("counts").is_empty());
    assert_eq!(s.next_delivery_due().await.expect("due"), None);
}

async fn a_merge_is_announced_and_a_refused_one_is_not(env: Env) {
    let s = &env.store;
    s.set_routing(Routing { sinks: vec![sink("merges", &[EventKind::Merged])], ..Default::default() });
    let keep = lead_of(s, card("keep", &[])).await;
    let other = lead_of(s, card("other", &[("mobile", "13800001111")])).await;
    let admin = s.create_user("boss", Role::Admin, "x").await.expect("create_user").id;
    let agent = user(s, "li").await;
    assert!(s.merge_leads(keep, other, Actor { user_id: agent, admin: false }, now()).await.is_err());
    let counts = s.delivery_counts().await.expect("counts");
    assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 0, "a refused merge announces nothing: {counts:?}");
    s.merge_leads(keep, other, Actor { user_id: admin, admin: true }, now()).await.expect("merge");
    let claimed = s.claim_deliveries(now(), now() + chrono::Duration::seconds(60), 100).await.expect("claim");
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].kind, EventKind::Merged);
    assert_eq!(claimed[0].payload["change"]["merged_lead_id"], json!(other));
    assert_eq!(claimed[0].payload["change"]["filled"], json!(["mobile"]));
    assert_eq!(claimed[0].payload["lead"]["mobile"], json!("13800001111"), "the kept lead, after the merge");
}

/// Issue #11: each push of a source with relay targets is queued for every target in the push's
/// transaction (a body-less refusal is not); relays of one target do not wait for each other.
async fn relays_are_queued_with_their_push_and_do_not_wait_for_each_other(env: Env) {
    let s = &env.store;
    s.set_routing(Routing {
        relays: [("easyliao".to_string(), vec!["relay:easyliao:1".to_string(), "relay:easyliao:2".to_string()])].into(),
        ..Default::default()
    });
    let first = s.record_push(push(vec![card("v1", &[])])).await.expect("push").push_id;
    let rejected = NewPush { result: PushResult::Rejected { error: "bad".into() }, ..push(vec![]) };
    let second = s.record_push(rejected).await.expect("push").push_id;
    let refused = NewPush { body: Vec::new(), result: PushResult::Rejected { error: "413".into() }, ..push(vec![]) };
    let third = s.record_push(refused).await.expect("push").push_id;
    let other = NewPush { source: "other".into(), ..push(vec![card("v2", &[])]) };
    s.record_push(other).await.expect("push");

    // The push log reads a page of pushes' relays in one query: each push's, oldest first.
    for id in [first, second] {
        let rows = s.relay_deliveries(&[id]).await.expect("relay deliveries");
        let mut sinks: Vec<&str> = rows.iter().map(|d| d.sink.as_str()).collect();
        sinks.sort();
        assert_eq!(sinks, ["relay:easyliao:1", "relay:easyliao:2"], "push {id}");
        assert!(rows.iter().all(|d| d.push_id == Some(id) && d.kind == "push.relay" && d.lead_id == 0));
    }
    assert!(s.relay_deliveries(&[third]).await.expect("relay deliveries").is_empty(), "no body, nothing to relay");
    assert_eq!(s.delivery_counts().await.expect("counts").iter().map(|c| c.count).sum::<i64>(), 4);
    let of_page = s.relay_deliveries(&[third, second, first]).await.expect("relay deliveries");
    let all = s.list_deliveries(&DeliveryQuery { page: 1, per_page: 10, ..Default::default() }).await.expect("list");
    let mut every: Vec<i64> = all.items.iter().map(|d| d.id).collect();
    every.sort();
    assert_eq!(of_page.iter().map(|d| d.id).collect::<Vec<_>>(), every, "the page's pushes' relays, oldest first");
    assert!(s.relay_deliveries(&[]).await.expect("relay deliveries").is_empty());

    // All four are claimable at once (no ordering between pushes), and say which push they carry.
    let claimed = s.claim_deliveries(now(), now() + chrono::Duration::seconds(60), 10).await.expect("claim");
    assert_eq!(claimed.len(), 4);
    assert!(claimed.iter().all(|c| c.kind == EventKind::Relay));
    let mut pushes: Vec<i64> = claimed.iter().filter_map(xiansuo_store::outbox::relay_push_id).collect();
    pushes.sort();
    assert_eq!(pushes, [first, first, second, second]);
}
