//! The storage suite: every test below runs twice, against SQLite (a file in a temporary
//! folder) and against PostgreSQL (a throw-away database on the test server), as
//! `sqlite::name` and `postgres::name`. Both runs assert the same expected values, so the two
//! backends are held to one behaviour.
//!
//! PostgreSQL must be reachable: without it the `postgres::` tests fail, they never skip.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tempfile::TempDir;
use xiansuo_domain::{
    Card, Instant, Lead, LeadChange, LeadStatus, Message, PushOutcomeKind, Role, Sender, VisitorEvent,
};
use xiansuo_store::postgres::PostgresStore;
use xiansuo_store::reports::FollowUp;
use xiansuo_store::sqlite::SqliteStore;
use xiansuo_store::testing::{TestDatabase, throwaway_postgres};
use xiansuo_store::{Actor, AuditEntry, AuditQuery, LeadUpdate, NewSession, OwnerFilter, UserChange, VendorPush};
use xiansuo_store::{
    LeadDetail, LeadQuery, LeadSort, LeadWritten, NewPush, Page, PushEntry, PushQuery, PushRecorded, PushResult,
    PushSummary, QueuedPush, Store, StoreError,
};

/// Generates `sqlite::name` and `postgres::name` for every test function `name(env: Env)`.
macro_rules! suite {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Env::sqlite().await).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Env::postgres().await).await;
                }
            )+
        }
    };
}

suite!(
    a_lead_per_source_company_and_visitor,
    totals_of_common_searches,
    empty_values_never_erase,
    messages_are_unioned_by_recorder_id,
    chat_ids_keep_first_seen_order,
    push_count_counts_distinct_pushes,
    rejected_pushes_keep_body_and_error,
    ignored_pushes_store_no_lead,
    list_pushes_filters_and_pages,
    queued_pushes_are_applied_later_in_order,
    replay_updates_the_push_and_applies_cards,
    replay_of_a_missing_push_is_not_found,
    list_leads_search_text,
    search_follows_changed_values,
    list_leads_filters,
    list_leads_sorts_and_pages,
    lead_detail_and_missing_lead,
    setting_or_insert_keeps_the_first_value,
    ids_keep_their_exact_digits,
    times_are_kept_to_the_millisecond,
    concurrent_pushes_all_commit,
    a_failing_write_fails_alone,
    data_survives_reopening,
    a_replay_fills_gaps_and_never_overwrites,
    users_and_sessions,
    follow_up_rules_hold_inside_the_transaction,
    duplicates_link_leads_sharing_a_contact,
    a_contact_many_leads_hold_is_no_evidence,
    a_dismissed_pair_is_no_longer_listed,
    merge_keeps_everything_and_undo_restores_it,
    score_and_its_reasons_follow_each_push,
    a_new_lead_is_stored_counted_and_scored_at_once,
    tag_filter_by_id_or_name,
    a_spool_entry_is_stored_once,
    the_audit_log_keeps_entries_newest_first,
    vendor_event_ids_are_claimed_in_the_push_transaction,
    visitor_events_reach_known_leads_only,
    report_days_agree_with_the_leads,
    follow_up_figures_per_owner,
    hour_and_empty_filters,
);

/// Write queue of the stores under test: large enough for the concurrency tests.
const WRITE_QUEUE: usize = 1024;

/// Where a backend keeps its data; kept alive for as long as the test runs.
enum Db {
    Sqlite(TempDir),
    Postgres(TestDatabase),
}

impl Db {
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Db::Sqlite(dir) => {
                Arc::new(SqliteStore::open(&dir.path().join("xiansuo.db"), WRITE_QUEUE).expect("open the SQLite store"))
            }
            Db::Postgres(db) => {
                Arc::new(PostgresStore::open(&db.url, 8, 2, WRITE_QUEUE).await.expect("open the PostgreSQL store"))
            }
        }
    }
}

/// A store under test. `store` is declared first so that it is dropped before its database.
struct Env {
    store: Arc<dyn Store>,
    db: Db,
}

impl Env {
    async fn sqlite() -> Env {
        let db = Db::Sqlite(tempfile::tempdir().expect("a temporary folder"));
        Env { store: db.open().await, db }
    }

    async fn postgres() -> Env {
        let db = Db::Postgres(throwaway_postgres().await);
        Env { store: db.open().await, db }
    }
}

// ---------------------------------------------------------------------------------------------
// Building cards and pushes.

/// An instant from RFC 3339 text.
fn t(s: &str) -> Instant {
    DateTime::parse_from_rfc3339(s).expect("an RFC 3339 time").with_timezone(&Utc)
}

/// A fixed base instant plus `hours`.
fn hour(hours: i64) -> Instant {
    t("2024-05-01T00:00:00Z") + Duration::hours(hours)
}

fn card(company_id: &str, visitor_static_id: &str) -> Card {
    let mut card = Card::default();
    card.fields.insert("company_id", company_id.to_string());
    card.fields.insert("visitor_static_id", visitor_static_id.to_string());
    card
}

trait CardExt: Sized {
    fn set(self, key: &'static str, value: &str) -> Self;
    fn time(self, key: &'static str, value: Instant) -> Self;
    fn extra(self, key: &str, value: &str) -> Self;
    fn message(self, message: Message) -> Self;
}

impl CardExt for Card {
    fn set(mut self, key: &'static str, value: &str) -> Self {
        self.fields.insert(key, value.to_string());
        self
    }

    fn time(mut self, key: &'static str, value: Instant) -> Self {
        self.times.insert(key, value);
        self
    }

    fn extra(mut self, key: &str, value: &str) -> Self {
        self.extra.insert(key.to_string(), value.to_string());
        self
    }

    fn message(mut self, message: Message) -> Self {
        self.messages.push(message);
        self
    }
}

fn msg(recorder_id: &str, chat_id: Option<&str>, sender: Sender, text: &str, time: Option<Instant>) -> Message {
    Message {
        recorder_id: recorder_id.to_string(),
        chat_id: chat_id.map(str::to_string),
        sender,
        from_id: Some(match sender {
            Sender::Visitor => "01000000013100635537156211197954".to_string(),
            Sender::Staff => "hkzyzs-kf".to_string(),
        }),
        message: text.to_string(),
        kind: Some("RECORD_RECORD".to_string()),
        create_time: time,
        extra: BTreeMap::new(),
    }
}

fn cards_push(source: &str, received_at: Instant, cards: Vec<Card>) -> NewPush {
    NewPush {
        source: source.to_string(),
        received_at,
        content_type: Some("application/json".to_string()),
        body: br#"{"visitorStaticId":"..."}"#.to_vec(),
        query: None,
        result: PushResult::Cards { cards, ignored: 0 },
    }
}

fn rejected_push(source: &str, received_at: Instant, content_type: Option<&str>, body: &[u8], error: &str) -> NewPush {
    NewPush {
        source: source.to_string(),
        received_at,
        content_type: content_type.map(str::to_string),
        body: body.to_vec(),
        query: None,
        result: PushResult::Rejected { error: error.to_string() },
    }
}

async fn record(store: &Arc<dyn Store>, push: NewPush) -> PushRecorded {
    store.record_push(push).await.expect("record_push")
}

async fn detail(store: &Arc<dyn Store>, id: i64) -> LeadDetail {
    store.lead(id).await.expect("lead").unwrap_or_else(|| panic!("lead {id} exists"))
}

async fn push_entry(store: &Arc<dyn Store>, id: i64) -> PushEntry {
    store.push(id).await.expect("push").unwrap_or_else(|| panic!("push {id} exists"))
}

fn all_leads() -> LeadQuery {
    LeadQuery { per_page: 100, page: 1, ..Default::default() }
}

async fn leads(store: &Arc<dyn Store>, query: &LeadQuery) -> Page<Lead> {
    store.list_leads(query).await.expect("list_leads")
}

/// The visitor ids a lead query lists, in order, and its total.
async fn visitors(store: &Arc<dyn Store>, query: LeadQuery) -> (u64, Vec<String>) {
    let page = leads(store, &query).await;
    let ids = page.items.iter().map(|l| l.fields["visitor_static_id"].clone()).collect();
    (page.total, ids)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn text_map(items: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
    items.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

// ---------------------------------------------------------------------------------------------
// The tests.

async fn a_lead_per_source_company_and_visitor(env: Env) {
    let s = &env.store;
    let first = record(s, cards_push("easyliao", hour(1), vec![card("c1", "v1").set("name", "张三")])).await;
    assert_eq!(first.outcome, PushOutcomeKind::Accepted);
    assert_eq!((first.accepted, first.ignored), (1, 0));
    assert_eq!(first.leads.len(), 1);
    assert!(first.leads[0].created, "the first push for a visitor creates the lead");
    let id = first.leads[0].id;

    let second = record(s, cards_push("easyliao", hour(2), vec![card("c1", "v1").set("mobile", "13800138000")])).await;
    assert_ne!(second.push_id, first.push_id);
    assert_eq!(
        second.leads,
        vec![LeadWritten { id, created: false, duplicates: vec![] }],
        "the same visitor updates its lead"
    );

    let other_source = record(s, cards_push("easyliao-2", hour(3), vec![card("c1", "v1")])).await;
    let other_company = record(s, cards_push("easyliao", hour(4), vec![card("c2", "v1")])).await;
    let other_visitor = record(s, cards_push("easyliao", hour(5), vec![card("c1", "v2")])).await;
    let mut ids = HashSet::from([id]);
    for r in [&other_source, &other_company, &other_visitor] {
        assert_eq!(r.leads.len(), 1);
        assert!(r.leads[0].created, "another source, company or visitor is another lead");
        ids.insert(r.leads[0].id);
    }
    assert_eq!(ids.len(), 4);
    assert_eq!(leads(s, &all_leads()).await.total, 4);

    let lead = detail(s, id).await.lead;
    assert_eq!(lead.id, id);
    assert_eq!(lead.source, "easyliao");
    assert_eq!(lead.status, LeadStatus::New);
    assert_eq!(
        lead.fields,
        text_map(&[("company_id", "c1"), ("visitor_static_id", "v1"), ("name", "张三"), ("mobile", "13800138000")])
    );
    assert_eq!(lead.push_count, 2);
    assert_eq!(lead.received_at, hour(1), "received_at is the first push's");
    assert_eq!(lead.updated_at, hour(2), "updated_at is the last push's");

    let lead = detail(s, other_source.leads[0].id).await.lead;
    assert_eq!(lead.source, "easyliao-2");
    assert_eq!(lead.push_count, 1);
    assert_eq!(lead.fields.get("name"), None, "a lead of another source shares nothing");
}

async fn empty_values_never_erase(env: Env) {
    let s = &env.store;
    let first = card("c1", "v1")
        .set("name", "张三")
        .set("mobile", "13800138000")
        .set("city", "广州")
        .set("keyword", "会计培训")
        .time("create_time", t("2024-04-01T08:00:00Z"))
        .time("edit_time", t("2024-04-02T08:00:00.250Z"))
        .extra("crmzdy_88271217", "a")
        .extra("hideMobile", "1")
        .extra("skinName", "blue");
    let id = record(s, cards_push("easyliao", hour(1), vec![first])).await.leads[0].id;

    let second = card("c1", "v1")
        .set("name", "张三丰")
        .set("qq", "12345")
        .time("edit_time", t("2024-04-03T08:00:00Z"))
        .time("allocation_time", t("2024-04-04T08:00:00Z"))
        .extra("crmzdy_88271217", "b")
        .extra("copyWxTimes", "3");
    let written = record(s, cards_push("easyliao", hour(2), vec![second])).await;
    assert_eq!(written.leads, vec![LeadWritten { id, created: false, duplicates: vec![] }]);

    let expected_fields = text_map(&[
        ("company_id", "c1"),
        ("visitor_static_id", "v1"),
        ("name", "张三丰"),
        ("mobile", "13800138000"),
        ("city", "广州"),
        ("keyword", "会计培训"),
        ("qq", "12345"),
    ]);
    let expected_times = BTreeMap::from([
        ("create_time", t("2024-04-01T08:00:00Z")),
        ("edit_time", t("2024-04-03T08:00:00Z")),
        ("allocation_time", t("2024-04-04T08:00:00Z")),
    ]);
    let expected_extra: BTreeMap<String, String> =
        [("crmzdy_88271217", "b"), ("hideMobile", "1"), ("skinName", "blue"), ("copyWxTimes", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let lead = detail(s, id).await.lead;
    assert_eq!(lead.fields, expected_fields);
    assert_eq!(lead.times, expected_times);
    assert_eq!(lead.extra, expected_extra);

    // A card that says nothing but who the visitor is changes nothing but the bookkeeping.
    record(s, cards_push("easyliao", hour(3), vec![card("c1", "v1")])).await;
    let lead = detail(s, id).await.lead;
    assert_eq!(lead.fields, expected_fields);
    assert_eq!(lead.times, expected_times);
    assert_eq!(lead.extra, expected_extra);
    assert_eq!(lead.push_count, 3);
    assert_eq!(lead.received_at, hour(1));
    assert_eq!(lead.updated_at, hour(3));

    // The list reads the same lead as the detail.
    let page = leads(s, &all_leads()).await;
    assert_eq!(page.items, vec![lead]);
}

async fn messages_are_unioned_by_recorder_id(env: Env) {
    let s = &env.store;
    let ten = |sec: u32| Some(t("2024-04-13T08:49:00Z") + Duration::seconds(i64::from(sec)));
    let mut m1 = msg("r-1", Some("chat-9"), Sender::Visitor, "我的手机号是", ten(60));
    m1.extra.insert("senderName".to_string(), "访客".to_string());
    m1.kind = Some("RECORD_RICH_TEXT".to_string());
    m1.message = "<p>我的手机号是<br>138</p>".to_string();
    let m2 = msg("r-2", Some("chat-1"), Sender::Staff, "您好", ten(65));
    let m3 = msg("r-3", None, Sender::Visitor, "没有时间一", None);
    let mut m4 = msg("r-4", Some("chat-0"), Sender::Staff, "更早的一条", ten(0));
    m4.from_id = None;
    m4.kind = None;
    let m5 = msg("r-5", None, Sender::Visitor, "没有时间二", None);
    let m6 = msg("r-6", Some("chat-9"), Sender::Visitor, "和 r-1 同一秒", ten(60));

    let first = card("c1", "v1").set("chat_id", "chat-9").message(m1.clone()).message(m2.clone()).message(m3.clone());
    let id = record(s, cards_push("easyliao", hour(1), vec![first])).await.leads[0].id;
    let lead = detail(s, id).await;
    assert_eq!(lead.messages, vec![m1.clone(), m2.clone(), m3.clone()]);
    assert_eq!((lead.lead.message_count, lead.lead.visitor_message_count), (3, 2));

    // The second push repeats r-1 and r-2 (r-2 with other text: the first one stays).
    let mut m2_again = m2.clone();
    m2_again.message = "您好（改）".to_string();
    let second = card("c1", "v1")
        .set("chat_id", "chat-5")
        .message(m2_again)
        .message(m4.clone())
        .message(m5.clone())
        .message(m1.clone())
        .message(m6.clone());
    record(s, cards_push("easyliao", hour(2), vec![second])).await;
    let lead = detail(s, id).await;
    assert_eq!(
        lead.messages,
        vec![m4.clone(), m1.clone(), m6.clone(), m2.clone(), m3.clone(), m5.clone()],
        "by create_time (ties in arrival order), messages without a time last in arrival order"
    );
    assert_eq!((lead.lead.message_count, lead.lead.visitor_message_count), (6, 4));

    // Nothing new: the counts stay exact.
    let third = card("c1", "v1").message(m5.clone()).message(m4.clone());
    record(s, cards_push("easyliao", hour(3), vec![third])).await;
    let lead = detail(s, id).await;
    assert_eq!(lead.messages.len(), 6);
    assert_eq!((lead.lead.message_count, lead.lead.visitor_message_count), (6, 4));
    let listed = leads(s, &all_leads()).await.items;
    assert_eq!((listed[0].message_count, listed[0].visitor_message_count), (6, 4));
}

async fn chat_ids_keep_first_seen_order(env: Env) {
    let s = &env.store;
    // Within a push: the card's chat_id first, then the messages' chats in transcript order.
    // Deliberately not in lexicographic order.
    let first = card("c1", "v1")
        .set("chat_id", "chat-9")
        .message(msg("r-1", Some("chat-9"), Sender::Visitor, "a", None))
        .message(msg("r-2", Some("chat-1"), Sender::Staff, "b", None))
        .message(msg("r-3", None, Sender::Staff, "c", None));
    let id = record(s, cards_push("easyliao", hour(1), vec![first])).await.leads[0].id;
    assert_eq!(detail(s, id).await.lead.chat_ids, strings(&["chat-9", "chat-1"]));

    let second = card("c1", "v1")
        .set("chat_id", "chat-5")
        .message(msg("r-4", Some("chat-1"), Sender::Visitor, "d", None))
        .message(msg("r-5", Some("chat-0"), Sender::Visitor, "e", None));
    record(s, cards_push("easyliao", hour(2), vec![second])).await;
    let third = card("c1", "v1").set("chat_id", "chat-9");
    record(s, cards_push("easyliao", hour(3), vec![third])).await;

    let expected = strings(&["chat-9", "chat-1", "chat-5", "chat-0"]);
    assert_eq!(detail(s, id).await.lead.chat_ids, expected);
    assert_eq!(leads(s, &all_leads()).await.items[0].chat_ids, expected);
}

async fn push_count_counts_distinct_pushes(env: Env) {
    let s = &env.store;
    // One push whose batch holds visitor v1 twice (and v2 once).
    let batch = vec![
        card("c1", "v1").set("name", "张三").set("city", "广州"),
        card("c1", "v2"),
        card("c1", "v1").set("name", "张三丰").set("qq", "12345"),
    ];
    let first = record(s, cards_push("easyliao", hour(1), batch)).await;
    assert_eq!(first.accepted, 3);
    assert_eq!(first.leads.len(), 3);
    let (v1, v2) = (first.leads[0].id, first.leads[1].id);
    assert_ne!(v1, v2);
    assert_eq!(
        first.leads,
        vec![
            LeadWritten { id: v1, created: true, duplicates: vec![] },
            LeadWritten { id: v2, created: true, duplicates: vec![] },
            LeadWritten { id: v1, created: false, duplicates: vec![] }
        ]
    );
    let lead = detail(s, v1).await;
    assert_eq!(lead.lead.push_count, 1, "one push counts once, however many of its cards name the visitor");
    assert_eq!(lead.lead.fields.get("name").map(String::as_str), Some("张三丰"));
    assert_eq!(lead.lead.fields.get("city").map(String::as_str), Some("广州"));
    assert_eq!(lead.lead.fields.get("qq").map(String::as_str), Some("12345"));
    assert_eq!(push_entry(s, first.push_id).await.lead_ids, vec![v1, v2]);

    let second = record(s, cards_push("easyliao", hour(2), vec![card("c1", "v1")])).await;
    let third = record(s, cards_push("easyliao", hour(3), vec![card("c1", "v1"), card("c1", "v1")])).await;
    assert_eq!(
        third.leads,
        vec![
            LeadWritten { id: v1, created: false, duplicates: vec![] },
            LeadWritten { id: v1, created: false, duplicates: vec![] }
        ]
    );

    let lead = detail(s, v1).await;
    assert_eq!(lead.lead.push_count, 3);
    assert_eq!(
        lead.pushes,
        vec![
            PushSummary { id: first.push_id, received_at: hour(1), outcome: PushOutcomeKind::Accepted },
            PushSummary { id: second.push_id, received_at: hour(2), outcome: PushOutcomeKind::Accepted },
            PushSummary { id: third.push_id, received_at: hour(3), outcome: PushOutcomeKind::Accepted },
        ]
    );
    assert_eq!(detail(s, v2).await.lead.push_count, 1);
    assert_eq!(push_entry(s, third.push_id).await.lead_ids, vec![v1]);
}

async fn rejected_pushes_keep_body_and_error(env: Env) {
    let s = &env.store;
    // GBK bytes, NUL bytes, bytes that are not UTF-8, then every byte value.
    let mut body = b"name=\xd5\xc5\xc8\xfd&x=\x00\x00\xff\xfe{\"a\":\x00}".to_vec();
    body.extend(0u8..=255);
    body.extend(b"\x00");
    let error = "the body is not valid JSON: line 1, column 1: expected a key in double quotes, found `“`";
    let received_at = t("2024-05-01T10:00:00.123Z");
    let recorded =
        record(s, rejected_push("easyliao", received_at, Some("text/plain; charset=gbk"), &body, error)).await;
    assert_eq!(
        recorded,
        PushRecorded {
            push_id: recorded.push_id,
            outcome: PushOutcomeKind::Rejected,
            accepted: 0,
            ignored: 0,
            leads: vec![]
        }
    );
    let entry = push_entry(s, recorded.push_id).await;
    assert_eq!(
        entry,
        PushEntry {
            id: recorded.push_id,
            source: "easyliao".to_string(),
            received_at,
            content_type: Some("text/plain; charset=gbk".to_string()),
            body: body.clone(),
            outcome: PushOutcomeKind::Rejected,
            error: Some(error.to_string()),
            accepted: 0,
            ignored: 0,
            lead_ids: vec![],
            replayed_at: None,
            replay_count: 0,
            query: None,
        }
    );

    // An empty body without a content type (what a refused, too large push keeps).
    let empty = record(s, rejected_push("easyliao", hour(2), None, b"", "the body is larger than 2097152 bytes")).await;
    let entry = push_entry(s, empty.push_id).await;
    assert_eq!(entry.body, Vec::<u8>::new());
    assert_eq!(entry.content_type, None);
    assert_eq!(entry.error.as_deref(), Some("the body is larger than 2097152 bytes"));

    assert_eq!(leads(s, &all_leads()).await.total, 0, "a rejected push creates no lead");
    let listed = s.list_pushes(&PushQuery { page: 1, per_page: 10, ..Default::default() }).await.expect("list_pushes");
    assert_eq!(listed.total, 2);
    assert_eq!(listed.items[1].body, body, "the list returns the body byte for byte too");
}

async fn ignored_pushes_store_no_lead(env: Env) {
    let s = &env.store;
    let ignored =
        NewPush { result: PushResult::Cards { cards: vec![], ignored: 2 }, ..cards_push("easyliao", hour(1), vec![]) };
    let recorded = record(s, ignored).await;
    assert_eq!(
        recorded,
        PushRecorded {
            push_id: recorded.push_id,
            outcome: PushOutcomeKind::Ignored,
            accepted: 0,
            ignored: 2,
            leads: vec![]
        }
    );
    let entry = push_entry(s, recorded.push_id).await;
    assert_eq!(entry.outcome, PushOutcomeKind::Ignored);
    assert_eq!((entry.accepted, entry.ignored, entry.error), (0, 2, None));
    assert_eq!(entry.lead_ids, Vec::<i64>::new());
    assert_eq!(leads(s, &all_leads()).await.total, 0);

    // Some cards ignored, one accepted: the push is accepted and says how many it ignored.
    let mixed = NewPush {
        result: PushResult::Cards { cards: vec![card("c1", "v1")], ignored: 1 },
        ..cards_push("easyliao", hour(2), vec![])
    };
    let recorded = record(s, mixed).await;
    assert_eq!(recorded.outcome, PushOutcomeKind::Accepted);
    assert_eq!((recorded.accepted, recorded.ignored), (1, 1));
    let entry = push_entry(s, recorded.push_id).await;
    assert_eq!((entry.outcome, entry.accepted, entry.ignored), (PushOutcomeKind::Accepted, 1, 1));
    assert_eq!(leads(s, &all_leads()).await.total, 1);
}

/// Issue #8: in a burst (here every batch: `queue_pushes_above` 0) a push is stored and answered
/// `queued`, with no lead; later pushes queue behind it even once the burst is over; applying
/// builds the leads in arrival order, once, and the pushes are then accepted.
async fn queued_pushes_are_applied_later_in_order(env: Env) {
    let s = &env.store;
    s.queueing().set_above(0);
    let first = NewPush {
        // Kept with the body: a vendor may put card data in it (七鱼's appKey).
        query: Some("appKey=k1".into()),
        ..cards_push("a", hour(1), vec![card("c1", "v1").set("name", "甲").set("mobile", "13800138000")])
    };
    let first_result = first.result.clone();
    let queued = record(s, first).await;
    assert_eq!((queued.outcome, queued.accepted, queued.leads.len()), (PushOutcomeKind::Queued, 1, 0));
    // A vendor's event id is claimed when the push is queued: its resend is a retry of it.
    let with_event = VendorPush { event_id: Some("evt-q".into()), events: Vec::new() };
    let second = cards_push("a", hour(2), vec![card("c1", "v1").set("name", "乙"), card("c1", "v2")]);
    let second_result = second.result.clone();
    let vendor = s.record_vendor_push(second.clone(), with_event.clone()).await.expect("vendor push");
    assert_eq!((vendor.retry, vendor.recorded.outcome), (false, PushOutcomeKind::Queued));
    let resent = s.record_vendor_push(second, with_event).await.expect("resent");
    assert!(resent.retry);
    assert_eq!(resent.recorded.push_id, vendor.recorded.push_id);
    // Nothing rejected or ignored is queued.
    let refused = record(s, rejected_push("a", hour(3), None, b"x", "not JSON")).await;
    assert_eq!(refused.outcome, PushOutcomeKind::Rejected);
    // The burst is over, but pushes wait: this one queues behind them.
    s.queueing().set_above(1_000);
    let third = cards_push("a", hour(4), vec![card("c1", "v1").set("note", "第三")]);
    let third_result = third.result.clone();
    let behind = record(s, third).await;
    assert_eq!(behind.outcome, PushOutcomeKind::Queued);
    // A visitor's event (a push without cards) queues too: its lead is among the queued.
    let session_end = VisitorEvent {
        company_id: "c1".into(),
        visitor_id: "v1".into(),
        vendor: "qiyu".into(),
        event: "SESSION_END".into(),
        text: "会话结束".into(),
    };
    let event_only =
        NewPush { result: PushResult::Cards { cards: vec![], ignored: 0 }, ..cards_push("a", hour(4), vec![]) };
    let with_events = VendorPush { event_id: None, events: vec![session_end.clone()] };
    let event_push = s.record_vendor_push(event_only, with_events).await.expect("event push");
    assert_eq!((event_push.recorded.outcome, event_push.events.len()), (PushOutcomeKind::Queued, 0));
    let event_push = event_push.recorded;
    assert_eq!(leads(s, &all_leads()).await.total, 0, "no lead before the queued pushes are applied");

    let waiting = s.queued_pushes(10, &[]).await.expect("queued_pushes");
    let order: Vec<i64> = waiting.iter().map(|p| p.id).collect();
    assert_eq!(order, [queued.push_id, vendor.recorded.push_id, behind.push_id, event_push.push_id], "oldest first");
    assert!(waiting.iter().all(|p| p.outcome == PushOutcomeKind::Queued && !p.body.is_empty()));
    assert_eq!(waiting.iter().map(|p| p.query.as_deref()).collect::<Vec<_>>(), [Some("appKey=k1"), None, None, None]);
    assert_eq!(s.queued_pushes(1, &[]).await.expect("queued_pushes").len(), 1);
    let but_first: Vec<i64> =
        s.queued_pushes(2, &[queued.push_id]).await.expect("queued_pushes").iter().map(|p| p.id).collect();
    assert_eq!(but_first, [vendor.recorded.push_id, behind.push_id], "the oldest but those being applied");
    let queued_log = s
        .list_pushes(&PushQuery { outcome: Some(PushOutcomeKind::Queued), source: None, page: 1, per_page: 10 })
        .await
        .expect("list_pushes");
    assert_eq!(queued_log.total, 4);
    // A replay would build the leads fill-only: refused while the push is queued.
    let replay = s.replay_push(queued.push_id, first_result.clone(), hour(5)).await;
    assert!(matches!(replay, Err(StoreError::Conflict(ref m)) if m.contains("queued")), "{replay:?}");

    let applied = s
        .apply_queued_pushes(vec![
            queued_push(queued.push_id, first_result.clone()),
            queued_push(vendor.recorded.push_id, second_result),
            queued_push(behind.push_id, third_result),
            QueuedPush {
                events: vec![session_end],
                ..queued_push(event_push.push_id, PushResult::Cards { cards: vec![], ignored: 0 })
            },
        ])
        .await
        .expect("apply");
    assert_eq!(
        applied.iter().map(|p| p.outcome).collect::<Vec<_>>(),
        [[PushOutcomeKind::Accepted; 3].as_slice(), &[PushOutcomeKind::Ignored]].concat()
    );
    assert_eq!(applied.iter().map(|p| p.leads.len()).collect::<Vec<_>>(), [1, 2, 1, 0]);
    assert!(applied[0].leads[0].created && !applied[1].leads[0].created && applied[1].leads[1].created);
    let lead_id = applied[0].leads[0].id;
    let lead = detail(s, lead_id).await;
    // Later cards win, in arrival order; the lead was received when its first push was.
    assert_eq!(lead.lead.fields["name"], "乙");
    assert_eq!(lead.lead.fields["note"], "第三");
    assert_eq!(lead.lead.fields["mobile"], "13800138000");
    assert_eq!(lead.lead.received_at, hour(1));
    // The visitor's event reached the lead built before it.
    let timeline = s.lead_events(lead_id).await.expect("lead_events");
    assert!(
        timeline.iter().any(|e| matches!(&e.change, LeadChange::VendorEvent { event, push_id, .. } if event == "SESSION_END" && *push_id == event_push.push_id)),
        "{timeline:?}"
    );
    assert_eq!(lead.pushes.iter().map(|p| p.id).collect::<HashSet<_>>().len(), 3);
    assert_eq!(leads(s, &all_leads()).await.total, 2);
    assert!(s.queued_pushes(10, &[]).await.expect("queued_pushes").is_empty());
    let entry = push_entry(s, queued.push_id).await;
    assert_eq!((entry.outcome, entry.lead_ids.clone()), (PushOutcomeKind::Accepted, vec![lead_id]));
    // The lead is searchable (SQLite indexes the terms before the commit).
    let found = leads(s, &LeadQuery { q: Some("13800138000".into()), ..all_leads() }).await;
    assert_eq!(found.items.iter().map(|l| l.id).collect::<Vec<_>>(), [lead_id]);

    // Applying again changes nothing and answers what is stored.
    let again = s.apply_queued_pushes(vec![queued_push(queued.push_id, first_result)]).await.expect("apply again");
    assert_eq!((again[0].outcome, again[0].leads[0].id), (PushOutcomeKind::Accepted, lead_id));
    assert_eq!(leads(s, &all_leads()).await.total, 2);
    assert_eq!(detail(s, lead_id).await.lead.fields["name"], "乙");
    // Nothing queued any more, and (PostgreSQL's writers) a second after the last over-full
    // batch: a push builds its lead at once.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let now = record(s, cards_push("a", hour(6), vec![card("c1", "v3")])).await;
    assert_eq!((now.outcome, now.leads.len()), (PushOutcomeKind::Accepted, 1));
    // A push that does not exist.
    let missing =
        s.apply_queued_pushes(vec![queued_push(9_999_999, PushResult::Cards { cards: vec![], ignored: 0 })]).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
}

fn queued_push(push_id: i64, result: PushResult) -> QueuedPush {
    QueuedPush { push_id, result, events: Vec::new() }
}

async fn list_pushes_filters_and_pages(env: Env) {
    let s = &env.store;
    // (source, outcome) of each push, in the order they arrive.
    let plan = [
        ("a", PushOutcomeKind::Accepted),
        ("a", PushOutcomeKind::Rejected),
        ("b", PushOutcomeKind::Ignored),
        ("a", PushOutcomeKind::Accepted),
        ("b", PushOutcomeKind::Accepted),
        ("a", PushOutcomeKind::Rejected),
        ("a", PushOutcomeKind::Accepted),
        ("b", PushOutcomeKind::Ignored),
        ("a", PushOutcomeKind::Rejected),
        ("a", PushOutcomeKind::Accepted),
        ("a", PushOutcomeKind::Accepted),
    ];
    let mut pushes = Vec::new(); // (id, source, outcome)
    for (i, (source, outcome)) in plan.iter().enumerate() {
        let at = hour(i as i64);
        let push = match outcome {
            PushOutcomeKind::Accepted => cards_push(source, at, vec![card("c1", &format!("v{i}"))]),
            PushOutcomeKind::Ignored => {
                NewPush { result: PushResult::Cards { cards: vec![], ignored: 1 }, ..cards_push(source, at, vec![]) }
            }
            PushOutcomeKind::Rejected => rejected_push(source, at, None, b"not json", "not JSON"),
            PushOutcomeKind::Queued => panic!("this store builds every push's leads at once: nothing is queued"),
        };
        let recorded = record(s, push).await;
        assert_eq!(recorded.outcome, *outcome);
        pushes.push((recorded.push_id, source.to_string(), *outcome));
    }

    let check = |outcome: Option<PushOutcomeKind>, source: Option<&str>| {
        let expected: Vec<i64> = pushes
            .iter()
            .rev()
            .filter(|(_, src, out)| outcome.is_none_or(|o| o == *out) && source.is_none_or(|x| x == src))
            .map(|(id, _, _)| *id)
            .collect();
        let query = PushQuery { outcome, source: source.map(str::to_string), page: 1, per_page: 3 };
        (query, expected)
    };
    let cases = [
        (None, None),
        (Some(PushOutcomeKind::Accepted), None),
        (Some(PushOutcomeKind::Rejected), None),
        (Some(PushOutcomeKind::Ignored), None),
        (None, Some("a")),
        (None, Some("b")),
        (Some(PushOutcomeKind::Accepted), Some("b")),
        (Some(PushOutcomeKind::Ignored), Some("a")),
        (None, Some("nowhere")),
    ];
    for (outcome, source) in cases {
        let (mut query, expected) = check(outcome, source);
        let mut seen = Vec::new();
        for page in 1..=5 {
            query.page = page;
            let got = s.list_pushes(&query).await.expect("list_pushes");
            assert_eq!(got.total, expected.len() as u64, "total of {outcome:?} {source:?}");
            assert_eq!((got.page, got.per_page), (page, 3));
            assert!(got.items.len() <= 3);
            for item in &got.items {
                assert!(outcome.is_none_or(|o| o == item.outcome));
                assert!(source.is_none_or(|x| x == item.source));
            }
            seen.extend(got.items.iter().map(|p| p.id));
        }
        assert_eq!(seen, expected, "pages of {outcome:?} {source:?}, newest first");
    }
    // Known sizes, so that the filter itself is checked and not only its consistency.
    assert_eq!(check(None, None).1.len(), 11);
    assert_eq!(check(Some(PushOutcomeKind::Rejected), None).1.len(), 3);
    assert_eq!(check(None, Some("b")).1.len(), 3);

    // push(id) names the lead of an accepted push.
    let (id, _, _) = pushes[0];
    let entry = push_entry(s, id).await;
    let lead = leads(s, &LeadQuery { q: Some("v0".into()), ..all_leads() }).await.items;
    assert_eq!(entry.lead_ids, vec![lead[0].id]);
    assert!(s.push(i64::MAX).await.expect("push").is_none());
}

async fn replay_updates_the_push_and_applies_cards(env: Env) {
    let s = &env.store;
    let body = b"{\"visitorStaticId\":\"v1\" \xff}";
    let rejected = record(s, rejected_push("easyliao", hour(1), Some("application/json"), body, "bad JSON")).await;
    let id = rejected.push_id;

    let replayed = s
        .replay_push(id, PushResult::Cards { cards: vec![card("c1", "v1").set("name", "张三")], ignored: 0 }, hour(5))
        .await
        .expect("replay");
    assert_eq!(replayed.push_id, id);
    assert_eq!((replayed.outcome, replayed.accepted, replayed.ignored), (PushOutcomeKind::Accepted, 1, 0));
    assert_eq!(replayed.leads.len(), 1);
    assert!(replayed.leads[0].created);
    let lead_id = replayed.leads[0].id;
    let entry = push_entry(s, id).await;
    assert_eq!(
        entry,
        PushEntry {
            id,
            source: "easyliao".to_string(),
            received_at: hour(1),
            content_type: Some("application/json".to_string()),
            body: body.to_vec(),
            outcome: PushOutcomeKind::Accepted,
            error: None,
            accepted: 1,
            ignored: 0,
            lead_ids: vec![lead_id],
            replayed_at: Some(hour(5)),
            replay_count: 1,
            query: None,
        }
    );
    let lead = detail(s, lead_id).await;
    assert_eq!(lead.lead.source, "easyliao", "a replayed card belongs to the push's source");
    assert_eq!(lead.lead.fields.get("name").map(String::as_str), Some("张三"));
    assert_eq!(lead.lead.push_count, 1);
    assert_eq!(lead.lead.updated_at, hour(5));
    assert_eq!(lead.pushes, vec![PushSummary { id, received_at: hour(1), outcome: PushOutcomeKind::Accepted }]);

    // Replayed again: the same push updates the lead, and still counts once.
    let again = s
        .replay_push(id, PushResult::Cards { cards: vec![card("c1", "v1").set("qq", "12345")], ignored: 2 }, hour(6))
        .await
        .expect("replay");
    assert_eq!(again.leads, vec![LeadWritten { id: lead_id, created: false, duplicates: vec![] }]);
    assert_eq!((again.accepted, again.ignored), (1, 2));
    let lead = detail(s, lead_id).await.lead;
    assert_eq!(lead.push_count, 1);
    assert_eq!(lead.fields.get("name").map(String::as_str), Some("张三"));
    assert_eq!(lead.fields.get("qq").map(String::as_str), Some("12345"));
    let entry = push_entry(s, id).await;
    assert_eq!((entry.replay_count, entry.replayed_at, entry.ignored), (2, Some(hour(6)), 2));

    // Replayed into a rejection, then into an ignored push.
    let refused = s.replay_push(id, PushResult::Rejected { error: "still bad".into() }, hour(7)).await.expect("replay");
    assert_eq!((refused.outcome, refused.accepted, refused.ignored), (PushOutcomeKind::Rejected, 0, 0));
    assert_eq!(refused.leads, vec![]);
    let entry = push_entry(s, id).await;
    assert_eq!(
        (entry.outcome, entry.error.as_deref(), entry.replay_count, entry.replayed_at),
        (PushOutcomeKind::Rejected, Some("still bad"), 3, Some(hour(7)))
    );
    let ignored = s.replay_push(id, PushResult::Cards { cards: vec![], ignored: 1 }, hour(8)).await.expect("replay");
    assert_eq!((ignored.outcome, ignored.accepted, ignored.ignored), (PushOutcomeKind::Ignored, 0, 1));
    let entry = push_entry(s, id).await;
    assert_eq!(
        (entry.outcome, entry.error, entry.accepted, entry.ignored, entry.replay_count, entry.replayed_at),
        (PushOutcomeKind::Ignored, None, 0, 1, 4, Some(hour(8)))
    );
    assert_eq!(entry.body, body.to_vec(), "a replay never touches the body");
    assert_eq!(entry.received_at, hour(1));
    assert_eq!(leads(s, &all_leads()).await.total, 1);
}

async fn replay_of_a_missing_push_is_not_found(env: Env) {
    let s = &env.store;
    let missing =
        s.replay_push(424_242, PushResult::Cards { cards: vec![card("c1", "v1")], ignored: 0 }, hour(1)).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
    assert_eq!(leads(s, &all_leads()).await.total, 0, "the refused replay wrote nothing");

    // Refused next to other writes (likely in the same commit), it fails alone.
    let (missing, recorded) = tokio::join!(
        s.replay_push(424_243, PushResult::Rejected { error: "x".into() }, hour(2)),
        s.record_push(cards_push("easyliao", hour(2), vec![card("c1", "v2")])),
    );
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
    let recorded = recorded.expect("a push beside a refused replay");
    assert!(s.push(424_243).await.expect("push").is_none());
    assert_eq!(push_entry(s, recorded.push_id).await.replay_count, 0);
    assert_eq!(leads(s, &all_leads()).await.total, 1);
}

/// Eight leads for the list tests, v01…v08, received an hour apart (v01 at hour 1), and v02
/// updated again at hour 9.
async fn lead_fixture(s: &Arc<dyn Store>) {
    let cards = vec![
        card("c1", "v01")
            .set("name", "张三丰")
            .set("mobile", "13800138000")
            .set("email", "Alice.Smith@Example.com")
            .set("province", "广东")
            .set("city", "广州")
            .set("search_engine", "百度")
            .set("ntag_id", "7")
            .set("user_id", "kf-1")
            .time("create_time", t("2024-04-01T00:00:00Z")),
        card("c1", "v02")
            .set("name", "李四")
            .set("tel", "020-12345678")
            .set("keyword", "会计 培训")
            .set("province", "广东")
            .set("city", "深圳")
            .set("search_engine", "搜狗")
            .set("ntag_id", "8")
            .set("user_id", "kf-2")
            .time("create_time", t("2024-04-03T00:00:00Z")),
        card("c1", "v03")
            .set("name", "王五")
            .set("weixin", "wx_wangwu")
            .set("note", "优惠 50%")
            .set("province", "北京")
            .set("city", "北京")
            .set("search_engine", "百度")
            .set("ntag_id", "7")
            .set("user_id", "kf-1"),
        card("c1", "v04")
            .set("name", "张三")
            .set("qq", "12345")
            .set("note", "回访")
            .set("province", "广东")
            .set("city", "广州")
            .set("search_engine", "360")
            .set("ntag_id", "9")
            .set("user_id", "kf-3")
            .time("create_time", t("2024-04-02T00:00:00Z")),
        card("c1", "v05")
            .set("name", "赵六")
            .set("mobile", "13900139000")
            .set("email", "bob@example.org")
            .set("keyword", "ALICE")
            .set("province", "上海")
            .set("city", "上海")
            .set("search_engine", "神马")
            .set("user_id", "kf-2")
            .time("create_time", t("2024-04-05T00:00:00Z")),
        card("c1", "v06")
            .set("name", "钱七")
            .set("mobile", "13800001111")
            .set("keyword", "50 percent")
            .set("province", "浙江")
            .set("city", "杭州")
            .time("create_time", t("2024-04-04T00:00:00Z")),
        card("c1", "v07").set("name", "孙八").set("weixin", "wxawangwu").set("note", r"C:\temp 路径"),
        card("c1", "v08").set("name", "周九"),
    ];
    for (i, c) in cards.into_iter().enumerate() {
        // v04 comes from another source.
        let source = if i == 3 { "other" } else { "easyliao" };
        record(s, cards_push(source, hour(i as i64 + 1), vec![c])).await;
    }
    record(s, cards_push("easyliao", hour(9), vec![card("c1", "v02").set("mobile", "13700137000")])).await;
}

fn q(text: &str) -> LeadQuery {
    LeadQuery { q: Some(text.to_string()), sort: LeadSort::ReceivedAsc, ..all_leads() }
}

async fn list_leads_search_text(env: Env) {
    let s = &env.store;
    lead_fixture(s).await;
    let cases: &[(&str, &[&str])] = &[
        ("张三", &["v01", "v04"]),
        ("  张三  ", &["v01", "v04"]),
        ("三丰", &["v01"]),
        ("广州", &["v01", "v04"]),
        ("浙江", &[]), // province is not searched
        ("138001", &["v01"]),
        ("13800", &["v01", "v06"]),
        ("12345", &["v02", "v04"]), // tel and qq
        ("smith@EXAMPLE.com", &["v01"]),
        ("alice", &["v01", "v05"]),
        ("BOB@example.ORG", &["v05"]),
        ("%", &["v03"]),
        ("50%", &["v03"]),
        ("_", &["v03"]),
        ("wx_w", &["v03"]),
        ("wxaw", &["v07"]),
        (r":\t", &["v07"]),
        ("会计 培训", &["v02"]),
        ("v05", &["v05"]),
        ("回访", &["v04"]),
        ("no such text", &[]),
    ];
    for (text, expected) in cases {
        let (total, got) = visitors(s, q(text)).await;
        assert_eq!(got, strings(expected), "q = {text:?}");
        assert_eq!(total, expected.len() as u64, "total of q = {text:?}");
    }
    assert_eq!(visitors(s, q("")).await.0, 8, "an empty q filters nothing");
    assert_eq!(visitors(s, q("   ")).await.0, 8, "a blank q filters nothing");
}

/// The search index (migration 15) follows every change of a searched value: a later push that
/// changes a name or adds a mobile, a status change that does not touch them, many leads at once.
async fn search_follows_changed_values(env: Env) {
    let s = &env.store;
    let first = card("c1", "v1").set("name", "王小明").set("weixin", "WX_Wang2024");
    record(s, cards_push("easyliao", hour(0), vec![first, card("c1", "v2").set("name", "李小明")])).await;
    assert_eq!(visitors(s, q("小明")).await.1, strings(&["v1", "v2"]));
    assert_eq!(visitors(s, q("wang20")).await.1, strings(&["v1"]), "ASCII case aside");
    let later = card("c1", "v1").set("name", "王大明").set("mobile", "13912345678");
    let id = record(s, cards_push("easyliao", hour(1), vec![later])).await.leads[0].id;
    assert_eq!(visitors(s, q("小明")).await.1, strings(&["v2"]), "the old name is no longer found");
    assert_eq!(visitors(s, q("王大明")).await.1, strings(&["v1"]));
    assert_eq!(visitors(s, q("9123456")).await.1, strings(&["v1"]), "the new mobile");
    assert_eq!(visitors(s, q("Wang2024")).await.1, strings(&["v1"]), "a value the push left alone");
    let admin = Actor::of(&s.create_user("admin", Role::Admin, "h").await.unwrap());
    s.update_lead(id, admin, LeadUpdate::Status { to: LeadStatus::Won, reason: None }, hour(2)).await.unwrap();
    assert_eq!(visitors(s, q("王大明")).await.1, strings(&["v1"]));
    // Many leads in one batch: each is found by its own number, and only by it.
    let many: Vec<Card> =
        (0..300).map(|i| card("c2", &format!("m{i:03}")).set("mobile", &format!("1370000{i:04}"))).collect();
    record(s, cards_push("easyliao", hour(3), many)).await;
    assert_eq!(visitors(s, q("13700000123")).await.1, strings(&["m123"]));
    assert_eq!(visitors(s, q("1370000")).await.0, 300);
    // A lead inserted and changed in one transaction (two chats of one new visitor in one push),
    // and a stored lead changed twice in one push: the index holds the last values alone (it is
    // written once per batch, migration 20).
    let twice = vec![card("c3", "n1").set("name", "赵一"), card("c3", "n1").set("name", "钱二")];
    record(s, cards_push("easyliao", hour(4), twice)).await;
    assert_eq!(visitors(s, q("钱二")).await.1, strings(&["n1"]));
    assert_eq!(visitors(s, q("赵一")).await.0, 0, "the first name of a lead changed in its own batch");
    let again = vec![card("c1", "v2").set("name", "孙三"), card("c1", "v2").set("name", "周四")];
    record(s, cards_push("easyliao", hour(5), again)).await;
    assert_eq!(visitors(s, q("周四")).await.1, strings(&["v2"]));
    assert_eq!(visitors(s, q("孙三")).await.0, 0);
    assert_eq!(visitors(s, q("李小明")).await.0, 0);
}

async fn list_leads_filters(env: Env) {
    let s = &env.store;
    lead_fixture(s).await;
    let base = || LeadQuery { sort: LeadSort::ReceivedAsc, ..all_leads() };
    let some = |v: &str| Some(v.to_string());
    let cases: Vec<(&str, LeadQuery, &[&str])> = vec![
        ("nothing", base(), &["v01", "v02", "v03", "v04", "v05", "v06", "v07", "v08"]),
        (
            "status",
            LeadQuery { status: Some(LeadStatus::New), ..base() },
            &["v01", "v02", "v03", "v04", "v05", "v06", "v07", "v08"],
        ),
        ("source other", LeadQuery { source: some("other"), ..base() }, &["v04"]),
        (
            "source easyliao",
            LeadQuery { source: some("easyliao"), ..base() },
            &["v01", "v02", "v03", "v05", "v06", "v07", "v08"],
        ),
        ("source nowhere", LeadQuery { source: some("nowhere"), ..base() }, &[]),
        ("province", LeadQuery { province: some("广东"), ..base() }, &["v01", "v02", "v04"]),
        ("city", LeadQuery { city: some("广州"), ..base() }, &["v01", "v04"]),
        ("city is exact", LeadQuery { city: some("广"), ..base() }, &[]),
        ("search_engine", LeadQuery { search_engine: some("百度"), ..base() }, &["v01", "v03"]),
        ("ntag_id", LeadQuery { ntag_id: some("7"), ..base() }, &["v01", "v03"]),
        ("user_id", LeadQuery { user_id: some("kf-2"), ..base() }, &["v02", "v05"]),
        (
            "province and source",
            LeadQuery { province: some("广东"), source: some("easyliao"), ..base() },
            &["v01", "v02"],
        ),
        ("q and source", LeadQuery { q: some("张三"), source: some("other"), ..base() }, &["v04"]),
        ("q and city", LeadQuery { q: some("kf"), city: some("广州"), ..base() }, &[]),
        ("from is inclusive", LeadQuery { from: Some(hour(4)), ..base() }, &["v04", "v05", "v06", "v07", "v08"]),
        ("to is exclusive", LeadQuery { to: Some(hour(4)), ..base() }, &["v01", "v02", "v03"]),
        ("from and to", LeadQuery { from: Some(hour(3)), to: Some(hour(6)), ..base() }, &["v03", "v04", "v05"]),
        (
            "from between hours",
            LeadQuery { from: Some(hour(3) + Duration::milliseconds(1)), to: Some(hour(6)), ..base() },
            &["v04", "v05"],
        ),
        ("received, not updated", LeadQuery { from: Some(hour(9)), ..base() }, &[]),
        ("to before all", LeadQuery { to: Some(hour(1)), ..base() }, &[]),
    ];
    for (what, query, expected) in cases {
        let (total, got) = visitors(s, query).await;
        assert_eq!(got, strings(expected), "{what}");
        assert_eq!(total, expected.len() as u64, "total of {what}");
    }
}

async fn list_leads_sorts_and_pages(env: Env) {
    let s = &env.store;
    lead_fixture(s).await;
    let sorted = |sort| LeadQuery { sort, ..all_leads() };
    let cases: &[(LeadSort, &[&str])] = &[
        (LeadSort::ReceivedAsc, &["v01", "v02", "v03", "v04", "v05", "v06", "v07", "v08"]),
        (LeadSort::ReceivedDesc, &["v08", "v07", "v06", "v05", "v04", "v03", "v02", "v01"]),
        (LeadSort::UpdatedAsc, &["v01", "v03", "v04", "v05", "v06", "v07", "v08", "v02"]),
        (LeadSort::UpdatedDesc, &["v02", "v08", "v07", "v06", "v05", "v04", "v03", "v01"]),
        // Leads without a create_time come last in both directions.
        (LeadSort::CreateTimeAsc, &["v01", "v04", "v02", "v06", "v05", "v03", "v07", "v08"]),
        (LeadSort::CreateTimeDesc, &["v05", "v06", "v02", "v04", "v01", "v08", "v07", "v03"]),
    ];
    for (sort, expected) in cases {
        assert_eq!(visitors(s, sorted(*sort)).await.1, strings(expected), "{sort:?}");
    }
    assert_eq!(LeadSort::default(), LeadSort::ReceivedDesc);
    for name in LeadSort::NAMES {
        assert!(LeadSort::parse(name).is_some(), "{name}");
    }

    // Pages of 3, newest first by default.
    let mut seen = Vec::new();
    for page in 1..=4 {
        let got = leads(s, &LeadQuery { page, per_page: 3, ..Default::default() }).await;
        assert_eq!((got.total, got.page, got.per_page), (8, page, 3));
        let expected_len = [3, 3, 2, 0][page as usize - 1];
        assert_eq!(got.items.len(), expected_len, "page {page}");
        seen.extend(got.items.iter().map(|l| l.fields["visitor_static_id"].clone()));
    }
    assert_eq!(seen, strings(&["v08", "v07", "v06", "v05", "v04", "v03", "v02", "v01"]));
    // Every sort in pages of 3 (a later page finds its ids first, then reads their rows), and
    // with a filter: the pages make up the whole order.
    for (sort, expected) in cases {
        for province in [None, Some("广东")] {
            let query = LeadQuery { province: province.map(str::to_string), ..sorted(*sort) };
            let whole = visitors(s, query.clone()).await.1;
            if province.is_none() {
                assert_eq!(whole, strings(expected), "{sort:?}");
            }
            let mut paged = Vec::new();
            for page in 1..=3 {
                paged.extend(visitors(s, LeadQuery { page, per_page: 3, ..query.clone() }).await.1);
            }
            assert_eq!(paged, whole, "{sort:?} {province:?}");
        }
    }
    // Oldest vendor time first, in pages that cross from the leads with a time to those without
    // (read from the index in two parts and merged).
    let mut seen = Vec::new();
    for page in 1..=4 {
        let got = leads(s, &LeadQuery { page, per_page: 3, sort: LeadSort::CreateTimeAsc, ..Default::default() }).await;
        seen.extend(got.items.iter().map(|l| l.fields["visitor_static_id"].clone()));
    }
    assert_eq!(seen, strings(&["v01", "v04", "v02", "v06", "v05", "v03", "v07", "v08"]));

    // A filter, a sort and a page together.
    let query = LeadQuery {
        province: Some("广东".into()),
        sort: LeadSort::CreateTimeAsc,
        page: 2,
        per_page: 2,
        ..Default::default()
    };
    assert_eq!(visitors(s, query).await, (3, strings(&["v02"])));
}

async fn lead_detail_and_missing_lead(env: Env) {
    let s = &env.store;
    let m = msg("r-1", Some("chat-1"), Sender::Visitor, "你好", Some(hour(0)));
    let first = record(s, cards_push("easyliao", hour(1), vec![card("c1", "v1").message(m.clone())])).await;
    let ignored = record(
        s,
        NewPush { result: PushResult::Cards { cards: vec![], ignored: 1 }, ..cards_push("easyliao", hour(2), vec![]) },
    )
    .await;
    let second = record(s, cards_push("easyliao", hour(3), vec![card("c1", "v1").set("name", "张三")])).await;
    let id = first.leads[0].id;
    let lead = detail(s, id).await;
    assert_eq!(lead.messages, vec![m]);
    assert_eq!(
        lead.pushes,
        vec![
            PushSummary { id: first.push_id, received_at: hour(1), outcome: PushOutcomeKind::Accepted },
            PushSummary { id: second.push_id, received_at: hour(3), outcome: PushOutcomeKind::Accepted },
        ],
        "only the pushes that carried the visitor, oldest first (not push {})",
        ignored.push_id
    );
    assert_eq!(lead.lead.fields.get("name").map(String::as_str), Some("张三"));
    assert_eq!(lead.lead.chat_ids, strings(&["chat-1"]));
    assert!(s.lead(id + 1000).await.expect("lead").is_none());
    assert!(s.lead(-1).await.expect("lead").is_none());
    s.ping().await.expect("ping");
}

async fn setting_or_insert_keeps_the_first_value(env: Env) {
    let s = &env.store;
    assert_eq!(
        s.setting_or_insert("push_token.easyliao", "first-token-0123456789").await.unwrap(),
        "first-token-0123456789"
    );
    assert_eq!(
        s.setting_or_insert("push_token.easyliao", "second-token-987654321").await.unwrap(),
        "first-token-0123456789"
    );
    assert_eq!(s.setting_or_insert("admin_token", "管理-token").await.unwrap(), "管理-token");

    // Raced: every caller gets the one value that won.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = Arc::clone(s);
            tokio::spawn(async move { s.setting_or_insert("raced", &format!("value-{i}")).await.unwrap() })
        })
        .collect();
    let mut values = HashSet::new();
    for task in tasks {
        values.insert(task.await.unwrap());
    }
    assert_eq!(values.len(), 1, "{values:?}");
    let winner = values.into_iter().next().unwrap();
    assert!(winner.starts_with("value-"));
    assert_eq!(s.setting_or_insert("raced", "late").await.unwrap(), winner);

    // set_setting replaces and removes (token rotation).
    assert_eq!(s.setting("absent").await.unwrap(), None);
    s.set_setting("raced", Some("replaced")).await.unwrap();
    assert_eq!(s.setting("raced").await.unwrap().as_deref(), Some("replaced"));
    s.set_setting("new-key", Some("v")).await.unwrap();
    assert_eq!(s.setting("new-key").await.unwrap().as_deref(), Some("v"));
    s.set_setting("raced", None).await.unwrap();
    assert_eq!(s.setting("raced").await.unwrap(), None);
}

async fn ids_keep_their_exact_digits(env: Env) {
    let s = &env.store;
    let visitor = "01000000013100635537156211197954";
    let mut m = msg("433328278485408768", Some("433328278485408769"), Sender::Visitor, "我的手机号是", None);
    m.from_id = Some(visitor.to_string());
    let c = card("000123", visitor)
        .set("chat_id", "433328278485408770")
        .set("ntag_id", "0042")
        .set("user_id", "007")
        .set("qq", "00012345")
        .set("site_id", "18446744073709551616")
        .message(m.clone());
    let id = record(s, cards_push("easyliao", hour(1), vec![c])).await.leads[0].id;

    let lead = detail(s, id).await;
    assert_eq!(lead.lead.fields["visitor_static_id"], visitor);
    assert_eq!(lead.lead.fields["company_id"], "000123");
    assert_eq!(lead.lead.fields["chat_id"], "433328278485408770");
    assert_eq!(lead.lead.fields["ntag_id"], "0042");
    assert_eq!(lead.lead.fields["user_id"], "007");
    assert_eq!(lead.lead.fields["qq"], "00012345");
    assert_eq!(lead.lead.fields["site_id"], "18446744073709551616");
    assert_eq!(lead.lead.chat_ids, strings(&["433328278485408770", "433328278485408769"]));
    assert_eq!(lead.messages, vec![m.clone()]);
    assert_eq!(lead.messages[0].recorder_id, "433328278485408768");

    // Ids are compared as strings: the same digits merge, others do not.
    let again = record(s, cards_push("easyliao", hour(2), vec![card("000123", visitor).message(m.clone())])).await;
    assert_eq!(again.leads, vec![LeadWritten { id, created: false, duplicates: vec![] }]);
    let near = card("123", visitor).message(msg("433328278485408800", None, Sender::Staff, "x", None));
    assert!(record(s, cards_push("easyliao", hour(3), vec![near])).await.leads[0].created);
    let lead = detail(s, id).await.lead;
    assert_eq!(lead.message_count, 1);

    let find = |ntag: &str| LeadQuery { ntag_id: Some(ntag.to_string()), ..all_leads() };
    assert_eq!(visitors(s, find("0042")).await.0, 1);
    assert_eq!(visitors(s, find("42")).await.0, 0);
    assert_eq!(visitors(s, LeadQuery { user_id: Some("7".into()), ..all_leads() }).await.0, 0);
}

async fn times_are_kept_to_the_millisecond(env: Env) {
    let s = &env.store;
    let at = |fraction: &str| t(&format!("2024-05-01T10:00:00.{fraction}Z"));
    let m = msg("r-1", None, Sender::Visitor, "x", Some(at("001999999")));
    let c = card("c1", "v1").time("create_time", at("000000999")).time("edit_time", at("999999")).message(m);
    let recorded = record(s, cards_push("easyliao", at("123456789"), vec![c])).await;
    let id = recorded.leads[0].id;

    let lead = detail(s, id).await;
    assert_eq!((lead.lead.received_at, lead.lead.updated_at), (at("123"), at("123")));
    assert_eq!(lead.lead.times, BTreeMap::from([("create_time", at("000")), ("edit_time", at("999"))]));
    assert_eq!(lead.messages[0].create_time, Some(at("001")));
    assert_eq!(lead.pushes[0].received_at, at("123"));
    assert_eq!(push_entry(s, recorded.push_id).await.received_at, at("123"));

    // Bounds compare at the same precision.
    let from = LeadQuery { from: Some(at("123999")), ..all_leads() };
    assert_eq!(leads(s, &from).await.total, 1);
    let to = LeadQuery { to: Some(at("123999")), ..all_leads() };
    assert_eq!(leads(s, &to).await.total, 0);

    s.replay_push(recorded.push_id, PushResult::Cards { cards: vec![card("c1", "v1")], ignored: 0 }, at("500500"))
        .await
        .expect("replay");
    assert_eq!(push_entry(s, recorded.push_id).await.replayed_at, Some(at("500")));
    assert_eq!(detail(s, id).await.lead.updated_at, at("500"));
}

async fn concurrent_pushes_all_commit(env: Env) {
    const PUSHES: usize = 300;
    const VISITORS: usize = 40;
    let s = &env.store;
    let tasks: Vec<_> = (0..PUSHES)
        .map(|i| {
            let s = Arc::clone(s);
            tokio::spawn(async move {
                let v = i % VISITORS;
                let sender = if i % 3 == 0 { Sender::Visitor } else { Sender::Staff };
                let c = card("c1", &format!("visitor-{v:02}"))
                    .set("name", &format!("访客{v}"))
                    .set("chat_id", &format!("chat-{v}"))
                    .message(msg(&format!("m-{i}"), Some(&format!("chat-{v}")), sender, "消息", Some(hour(i as i64))))
                    .message(msg(&format!("own-{i}"), Some(&format!("chat-{v}-{i:03}")), sender, "新会话", None))
                    .message(msg(&format!("shared-{v}"), Some(&format!("chat-{v}")), Sender::Staff, "共同", None));
                let recorded = s.record_push(cards_push("easyliao", hour(1), vec![c])).await;
                (i, recorded)
            })
        })
        .collect();

    let mut by_visitor: HashMap<usize, Vec<(i64, LeadWritten)>> = HashMap::new();
    let mut push_ids = HashSet::new();
    for task in tasks {
        let (i, recorded) = task.await.expect("task");
        let recorded = recorded.unwrap_or_else(|e| panic!("push {i} failed: {e}"));
        assert_eq!(recorded.outcome, PushOutcomeKind::Accepted);
        assert_eq!(recorded.leads.len(), 1);
        assert!(push_ids.insert(recorded.push_id), "push ids are distinct");
        by_visitor.entry(i % VISITORS).or_default().push((recorded.push_id, recorded.leads[0].clone()));
    }
    assert_eq!(push_ids.len(), PUSHES);
    assert_eq!(by_visitor.len(), VISITORS);

    let mut total_pushes = 0;
    for (v, mut written) in by_visitor {
        written.sort_by_key(|(push_id, _)| *push_id);
        let id = written[0].1.id;
        assert!(written.iter().all(|(_, w)| w.id == id), "visitor {v} has one lead");
        // Exactly one push creates the lead. Not necessarily the one with the lowest id: with
        // several PostgreSQL writers, push ids come from a sequence before their batches commit,
        // and the batch that commits first creates.
        let created: Vec<bool> = written.iter().map(|(_, w)| w.created).collect();
        assert_eq!(created.iter().filter(|c| **c).count(), 1, "visitor {v}: one push creates ({created:?})");

        let pushes_of_v = (0..PUSHES).filter(|i| i % VISITORS == v).count();
        let visitor_messages = (0..PUSHES).filter(|i| i % VISITORS == v && i % 3 == 0).count();
        let lead = detail(s, id).await;
        assert_eq!(lead.lead.push_count as usize, pushes_of_v, "visitor {v}");
        assert_eq!(lead.pushes.len(), pushes_of_v, "visitor {v}");
        assert_eq!(lead.lead.message_count as usize, 2 * pushes_of_v + 1, "visitor {v}");
        assert_eq!(lead.lead.visitor_message_count as usize, 2 * visitor_messages, "visitor {v}");
        assert_eq!(lead.messages.len(), 2 * pushes_of_v + 1, "visitor {v}");
        let mut chats = lead.lead.chat_ids.clone();
        assert_eq!(chats[0], format!("chat-{v}"), "the lead's first chat comes first");
        chats.sort();
        let mut want: Vec<String> = std::iter::once(format!("chat-{v}"))
            .chain((0..PUSHES).filter(|i| i % VISITORS == v).map(|i| format!("chat-{v}-{i:03}")))
            .collect();
        want.sort();
        assert_eq!(chats, want, "visitor {v}: every chat once");
        total_pushes += lead.lead.push_count;
    }
    assert_eq!(total_pushes as usize, PUSHES);
    assert_eq!(leads(s, &all_leads()).await.total, VISITORS as u64);
    let pushes = s.list_pushes(&PushQuery { page: 1, per_page: 1, ..Default::default() }).await.expect("list_pushes");
    assert_eq!(pushes.total, PUSHES as u64);
    // Each chat of a lead has its own place in the order first seen, whichever writers stored
    // the pushes side by side (with several PostgreSQL writers, a statement reading the lead's
    // chats before waiting for another writer's change of the lead would number two alike).
    assert_eq!(chat_places_taken_twice(&env.db).await, 0, "chats of one lead numbered alike");
}

/// Places (`lead_chats.seq`) that two chats of the same lead share, read from the database.
async fn chat_places_taken_twice(db: &Db) -> i64 {
    const SQL: &str =
        "SELECT count(*) FROM (SELECT lead_id, seq FROM lead_chats GROUP BY lead_id, seq HAVING count(*) > 1) AS d";
    match db {
        Db::Sqlite(dir) => {
            let conn = rusqlite::Connection::open(dir.path().join("xiansuo.db")).expect("open the database");
            conn.query_row(SQL, [], |r| r.get(0)).expect("count chat places")
        }
        Db::Postgres(pg) => {
            let (client, connection) =
                tokio_postgres::connect(&pg.url, tokio_postgres::NoTls).await.expect("connect to the test database");
            tokio::spawn(connection);
            client.query_one(SQL, &[]).await.expect("count chat places").get(0)
        }
    }
}

async fn a_failing_write_fails_alone(env: Env) {
    let s = &env.store;
    // Sent among valid pushes, so that they share commits:
    // - cards without company_id, which no backend stores (the decoder never lets one through);
    // - cards with a NUL character in a value, which SQLite stores and PostgreSQL cannot (its
    //   text holds no NUL): whichever it is, such a push is stored whole or not at all.
    // Either way, the valid pushes beside them must all commit.
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Kind {
        Valid,
        NoCompany,
        Nul,
    }
    let tasks: Vec<_> = (0..90)
        .map(|i| {
            let s = Arc::clone(s);
            tokio::spawn(async move {
                let kind = match i % 10 {
                    3 => Kind::NoCompany,
                    7 => Kind::Nul,
                    _ => Kind::Valid,
                };
                let mut c = card("c1", &format!("v{i}")).set("name", "顾客甲");
                match kind {
                    Kind::Valid => {}
                    Kind::NoCompany => {
                        c.fields.remove("company_id");
                    }
                    Kind::Nul => c = c.set("note", "a\0b").extra("crmzdy_1", "\0"),
                }
                (kind, s.record_push(cards_push("easyliao", hour(1), vec![c])).await)
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        match task.await.expect("task") {
            (Kind::Valid, result) => {
                result.unwrap_or_else(|e| panic!("a valid push failed beside an invalid one: {e}"));
                stored += 1;
            }
            (Kind::NoCompany, result) => {
                assert!(result.is_err(), "a card without company_id was stored: {result:?}")
            }
            (Kind::Nul, Ok(recorded)) => {
                let lead = detail(s, recorded.leads[0].id).await.lead;
                assert_eq!(lead.fields.get("note").map(String::as_str), Some("a\0b"));
                stored += 1;
            }
            (Kind::Nul, Err(_)) => {}
        }
    }
    assert!(stored >= 72, "{stored}");
    assert_eq!(leads(s, &all_leads()).await.total, stored);
    let pushes = s.list_pushes(&PushQuery { page: 1, per_page: 1, ..Default::default() }).await.expect("list_pushes");
    assert_eq!(pushes.total, stored, "a failed push leaves nothing behind");
    assert_eq!(visitors(s, q("顾客甲")).await.0, stored, "every stored lead is in the search index, none that failed");
}

async fn data_survives_reopening(env: Env) {
    let Env { store, db } = env;
    let m = msg("433328278485408768", Some("chat-1"), Sender::Visitor, "你好", Some(hour(0)));
    let accepted = record(
        &store,
        cards_push("easyliao", hour(1), vec![card("c1", "v1").set("name", "张三").extra("hideMobile", "1").message(m)]),
    )
    .await;
    let body = b"\xff\x00not json\x00";
    let rejected = record(&store, rejected_push("easyliao", hour(2), Some("text/plain"), body, "not JSON")).await;
    assert_eq!(store.setting_or_insert("admin_token", "token-before").await.unwrap(), "token-before");
    let lead_id = accepted.leads[0].id;
    let lead_before = detail(&store, lead_id).await;
    let push_before = push_entry(&store, rejected.push_id).await;
    drop(store);

    let store = db.open().await;
    store.ping().await.expect("ping after reopening");
    assert_eq!(detail(&store, lead_id).await, lead_before);
    assert_eq!(push_entry(&store, rejected.push_id).await, push_before);
    assert_eq!(push_before.body, body.to_vec());
    assert_eq!(store.setting_or_insert("admin_token", "token-after").await.unwrap(), "token-before");

    // Writing goes on where it stopped.
    let later = record(&store, cards_push("easyliao", hour(3), vec![card("c1", "v1").set("qq", "12345")])).await;
    assert!(later.push_id > rejected.push_id);
    assert_eq!(later.leads, vec![LeadWritten { id: lead_id, created: false, duplicates: vec![] }]);
    let lead = detail(&store, lead_id).await.lead;
    assert_eq!(lead.push_count, 2);
    assert_eq!(lead.fields.get("name").map(String::as_str), Some("张三"));
    assert_eq!(lead.fields.get("qq").map(String::as_str), Some("12345"));
    drop(store);
    drop(db);
}

async fn a_replay_fills_gaps_and_never_overwrites(env: Env) {
    let s = &env.store;
    // An old push, rejected at the time (say its field_map was wrong), kept for replay.
    let old = record(s, rejected_push("easyliao", hour(1), Some("application/json"), b"{}", "fix the field_map")).await;
    // Later pushes stored the lead with a newer mobile.
    record(s, cards_push("easyliao", hour(5), vec![card("c", "v").set("mobile", "13900000002").set("name", "新名字")]))
        .await;
    // Replayed now, the old card fills what is empty and changes nothing else.
    let old_card = card("c", "v").set("mobile", "13900000001").set("name", "旧名字").set("qq", "12345");
    let replayed = s
        .replay_push(old.push_id, PushResult::Cards { cards: vec![old_card], ignored: 0 }, hour(9))
        .await
        .expect("replay");
    let lead = detail(s, replayed.leads[0].id).await.lead;
    assert_eq!(lead.fields["mobile"], "13900000002", "a replay never overwrites");
    assert_eq!(lead.fields["name"], "新名字");
    assert_eq!(lead.fields["qq"], "12345", "a replay fills what is empty");

    // A lead that a replay creates was received when its push was.
    let lost = record(s, rejected_push("easyliao", hour(2), Some("application/json"), b"{}", "x")).await;
    let created = s
        .replay_push(lost.push_id, PushResult::Cards { cards: vec![card("c", "w")], ignored: 0 }, hour(9))
        .await
        .expect("replay");
    assert!(created.leads[0].created);
    assert_eq!(detail(s, created.leads[0].id).await.lead.received_at, hour(2));
}

async fn users_and_sessions(env: Env) {
    let s = &env.store;
    let admin = s.create_user("admin", Role::Admin, "hash-a").await.expect("create admin");
    let agent = s.create_user("li", Role::Agent, "hash-b").await.expect("create agent");
    assert!(matches!(s.create_user("li", Role::Agent, "x").await, Err(StoreError::Conflict(_))));
    assert_eq!(s.users().await.unwrap().iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["admin", "li"]);
    assert_eq!(s.user_by_name("li").await.unwrap().unwrap().id, agent.id);
    assert_eq!(s.user(admin.id).await.unwrap().unwrap().role, Role::Admin);

    s.update_user(agent.id, UserChange::ApiToken(Some("tokenhash".into()))).await.unwrap();
    assert_eq!(s.user_by_api_token("tokenhash").await.unwrap().unwrap().id, agent.id);

    let session = |hash: &str, user_id: i64, expires: Instant| NewSession {
        token_hash: hash.to_string(),
        user_id,
        csrf: format!("csrf-{hash}"),
        created_at: hour(0),
        expires_at: expires,
    };
    s.create_session(session("s1", agent.id, hour(12))).await.unwrap();
    s.create_session(session("s2", admin.id, hour(12))).await.unwrap();
    let found = s.session("s1", hour(1)).await.unwrap().expect("a live session");
    assert_eq!((found.user.id, found.csrf.as_str()), (agent.id, "csrf-s1"));
    assert!(s.session("s1", hour(13)).await.unwrap().is_none(), "expired");
    // Disabling a user ends their sessions; a password reset too.
    s.update_user(agent.id, UserChange::Disabled(true)).await.unwrap();
    assert!(s.session("s1", hour(1)).await.unwrap().is_none());
    s.update_user(admin.id, UserChange::Password("new-hash".into())).await.unwrap();
    assert!(s.session("s2", hour(1)).await.unwrap().is_none());
    s.create_session(session("s3", admin.id, hour(12))).await.unwrap();
    s.delete_session("s3").await.unwrap();
    assert!(s.session("s3", hour(1)).await.unwrap().is_none());
    assert!(matches!(s.update_user(9999, UserChange::Disabled(true)).await, Err(StoreError::NotFound(_))));
}

async fn follow_up_rules_hold_inside_the_transaction(env: Env) {
    let s = &env.store;
    let admin = Actor::of(&s.create_user("admin", Role::Admin, "h").await.unwrap());
    let li = Actor::of(&s.create_user("li", Role::Agent, "h").await.unwrap());
    let wang = Actor::of(&s.create_user("wang", Role::Agent, "h").await.unwrap());
    let id = record(s, cards_push("easyliao", hour(1), vec![card("c", "v")])).await.leads[0].id;
    let note = |text: &str| LeadUpdate::Note { text: text.to_string() };

    // An agent claims from the pool before working a lead.
    assert!(matches!(s.update_lead(id, li, note("x"), hour(2)).await, Err(StoreError::Conflict(_))));
    s.update_lead(id, li, LeadUpdate::Claim, hour(2)).await.expect("claim");
    assert!(matches!(s.update_lead(id, wang, LeadUpdate::Claim, hour(2)).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.update_lead(id, li, LeadUpdate::Claim, hour(2)).await, Err(StoreError::Conflict(_))));
    s.update_lead(id, li, LeadUpdate::Status { to: LeadStatus::Contacted, reason: Some("ignored".into()) }, hour(3))
        .await
        .unwrap();
    s.update_lead(id, li, note("下周回访"), hour(4)).await.unwrap();
    // Another agent cannot touch it, nor can an agent assign.
    assert!(matches!(s.update_lead(id, wang, note("x"), hour(5)).await, Err(StoreError::NotFound(_))));
    assert!(matches!(
        s.update_lead(id, li, LeadUpdate::Assign { to: Some(wang.user_id) }, hour(5)).await,
        Err(StoreError::Conflict(_))
    ));
    // An admin reassigns; from then on li cannot change it.
    s.update_lead(id, admin, LeadUpdate::Assign { to: Some(wang.user_id) }, hour(6)).await.unwrap();
    assert!(matches!(s.update_lead(id, li, note("x"), hour(7)).await, Err(StoreError::NotFound(_))));
    s.update_lead(id, wang, LeadUpdate::Status { to: LeadStatus::Invalid, reason: Some("空号".into()) }, hour(8))
        .await
        .unwrap();

    let lead = detail(s, id).await.lead;
    assert_eq!(
        (lead.status, lead.status_reason.as_deref(), lead.owner_id),
        (LeadStatus::Invalid, Some("空号"), Some(wang.user_id))
    );
    let events = s.lead_events(id).await.unwrap();
    let kinds: Vec<(&str, Option<i64>)> = events.iter().map(|e| (e.change.kind(), e.user_id)).collect();
    assert_eq!(
        kinds,
        [
            ("owner", Some(li.user_id)),
            ("status", Some(li.user_id)),
            ("note", Some(li.user_id)),
            ("owner", Some(admin.user_id)),
            ("status", Some(wang.user_id))
        ]
    );
    assert_eq!(
        events[1].change,
        LeadChange::Status { from: LeadStatus::New, to: LeadStatus::Contacted, reason: None },
        "a reason belongs to 无效 only"
    );
    assert_eq!(events[0].change, LeadChange::Owner { from: None, to: Some(li.user_id), claimed: true });
    assert!(matches!(s.update_lead(99_999, admin, note("x"), hour(9)).await, Err(StoreError::NotFound(_))));
}

fn with_contacts(mut card: Card, keys: &[(&'static str, &str)]) -> Card {
    card.contact_keys = keys.iter().map(|(k, v)| (*k, v.to_string())).collect();
    card
}

async fn duplicates_link_leads_sharing_a_contact(env: Env) {
    let s = &env.store;
    let a = with_contacts(card("c1", "va").set("mobile", "158 0489 2563"), &[("mobile", "15804892563")]);
    let a = record(s, cards_push("easyliao", hour(0), vec![a])).await.leads[0].clone();
    assert!(a.duplicates.is_empty(), "the first lead with a contact duplicates nothing");
    // Another source, another visitor, the same mobile (typed in the chat) and a QQ of its own.
    let b = with_contacts(card("c9", "vb"), &[("mobile", "15804892563"), ("qq", "123456")]);
    let b = record(s, cards_push("forms", hour(1), vec![b.clone()])).await.leads[0].clone();
    assert_eq!(b.duplicates, [a.id], "the push says which lead it may duplicate");
    let c = record(s, cards_push("easyliao", hour(2), vec![with_contacts(card("c1", "vc"), &[("qq", "99999")])])).await;
    assert!(c.leads[0].duplicates.is_empty());

    let found = s.duplicates(a.id).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].lead.id, b.id);
    assert_eq!(found[0].contacts, [("mobile".to_string(), "15804892563".to_string())]);
    assert_eq!(s.duplicates(b.id).await.unwrap().iter().map(|d| d.lead.id).collect::<Vec<_>>(), [a.id]);
    assert!(s.duplicates(c.leads[0].id).await.unwrap().is_empty());

    // The timeline says so once, when the contact is new to the lead; a later push repeats the
    // link in its answer without another timeline entry.
    let again = with_contacts(card("c9", "vb"), &[("mobile", "15804892563")]);
    let again = record(s, cards_push("forms", hour(3), vec![again])).await;
    assert_eq!(again.leads[0].duplicates, [a.id]);
    let events = s.lead_events(b.id).await.unwrap();
    let duplicate_events: Vec<&LeadChange> =
        events.iter().map(|e| &e.change).filter(|c| matches!(c, LeadChange::Duplicate { .. })).collect();
    assert_eq!(
        duplicate_events,
        [&LeadChange::Duplicate {
            leads: vec![a.id],
            contacts: vec![("mobile".to_string(), "15804892563".to_string())]
        }]
    );
    assert_eq!(events[0].user_id, None, "recorded by the service, not a person");
}

/// A placeholder (a default e-mail, a test number) held by more than COMMON_CONTACT_LEADS leads
/// no longer makes them duplicates; a contact two of them really share still does.
async fn a_contact_many_leads_hold_is_no_evidence(env: Env) {
    let s = &env.store;
    let common = xiansuo_domain::COMMON_CONTACT_LEADS;
    let mut ids = Vec::new();
    for i in 0..common {
        let c = with_contacts(card("c1", &format!("v{i}")), &[("email", "zhangsan@163.com")]);
        let written = record(s, cards_push("easyliao", hour(i as i64), vec![c])).await.leads[0].clone();
        assert_eq!(written.duplicates.len(), i, "up to {common} holders, they are duplicates of each other");
        ids.push(written.id);
    }
    assert_eq!(s.duplicates(ids[0]).await.unwrap().len(), common - 1);

    // One more holder: the value is a placeholder. Neither the push nor the lead pages list it.
    let last = with_contacts(card("c1", "vlast"), &[("email", "zhangsan@163.com"), ("mobile", "13912345678")]);
    let last = record(s, cards_push("easyliao", hour(50), vec![last])).await.leads[0].clone();
    assert!(last.duplicates.is_empty(), "{:?}", last.duplicates);
    assert!(s.duplicates(ids[0]).await.unwrap().is_empty());
    assert!(s.duplicates(last.id).await.unwrap().is_empty());

    // A contact only two leads share still links them.
    let twin = with_contacts(card("c1", "vtwin"), &[("email", "zhangsan@163.com"), ("mobile", "13912345678")]);
    let twin = record(s, cards_push("easyliao", hour(51), vec![twin])).await.leads[0].clone();
    assert_eq!(twin.duplicates, [last.id]);
    let found = s.duplicates(last.id).await.unwrap();
    assert_eq!(found.iter().map(|d| d.lead.id).collect::<Vec<_>>(), [twin.id]);
    assert_eq!(found[0].contacts, [("mobile".to_string(), "13912345678".to_string())]);
}

async fn a_dismissed_pair_is_no_longer_listed(env: Env) {
    let s = &env.store;
    let admin = Actor::of(&s.create_user("admin", Role::Admin, "h").await.unwrap());
    let agent = Actor::of(&s.create_user("li", Role::Agent, "h").await.unwrap());
    let mobile = [("mobile", "13812345678")];
    let a =
        record(s, cards_push("easyliao", hour(0), vec![with_contacts(card("c1", "va"), &mobile)])).await.leads[0].id;
    let b =
        record(s, cards_push("easyliao", hour(1), vec![with_contacts(card("c1", "vb"), &mobile)])).await.leads[0].id;
    assert!(matches!(s.dismiss_duplicate(a, b, agent, hour(2)).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.dismiss_duplicate(a, a, admin, hour(2)).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.dismiss_duplicate(a, 99_999, admin, hour(2)).await, Err(StoreError::NotFound(_))));
    let event = s.dismiss_duplicate(b, a, admin, hour(2)).await.unwrap();
    assert_eq!((event.lead_id, &event.change), (b, &LeadChange::Dismissed { other: a }));
    assert!(s.duplicates(a).await.unwrap().is_empty());
    assert!(s.duplicates(b).await.unwrap().is_empty());
    assert!(s.lead_events(a).await.unwrap().iter().any(|e| e.change == LeadChange::Dismissed { other: b }));
    let later = record(s, cards_push("easyliao", hour(3), vec![with_contacts(card("c1", "vb"), &mobile)])).await;
    assert!(later.leads[0].duplicates.is_empty(), "a dismissed pair is not reported again");
    // A third lead with the number is still a duplicate of both.
    let c = record(s, cards_push("easyliao", hour(4), vec![with_contacts(card("c1", "vc"), &mobile)])).await;
    let mut dups = c.leads[0].duplicates.clone();
    dups.sort();
    assert_eq!(dups, [a, b]);
}

async fn merge_keeps_everything_and_undo_restores_it(env: Env) {
    let s = &env.store;
    let admin = Actor::of(&s.create_user("admin", Role::Admin, "h").await.unwrap());
    let agent = Actor::of(&s.create_user("li", Role::Agent, "h").await.unwrap());
    let keep = card("c1", "va")
        .set("name", "王先生")
        .message(msg("k1", Some("ch1"), Sender::Visitor, "你好", Some(hour(0))))
        .message(msg("k2", Some("ch1"), Sender::Staff, "您好", Some(hour(0))));
    let keep = record(s, cards_push("easyliao", hour(0), vec![keep])).await;
    let (keep_id, keep_push) = (keep.leads[0].id, keep.push_id);
    let merge = card("c1", "vb").set("name", "王").set("mobile", "13812345678").set("city", "太原").message(msg(
        "m1",
        Some("ch2"),
        Sender::Visitor,
        "学费多少",
        Some(hour(1)),
    ));
    let merge = record(s, cards_push("easyliao", hour(1), vec![merge])).await;
    let (merge_id, merge_push) = (merge.leads[0].id, merge.push_id);
    s.update_lead(merge_id, admin, LeadUpdate::Note { text: "回电话".into() }, hour(2)).await.unwrap();

    assert!(matches!(s.merge_leads(keep_id, merge_id, agent, hour(3)).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.merge_leads(keep_id, keep_id, admin, hour(3)).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.merge_leads(keep_id, 99_999, admin, hour(3)).await, Err(StoreError::NotFound(_))));
    let event = s.merge_leads(keep_id, merge_id, admin, hour(3)).await.unwrap();
    assert_eq!(
        event.change,
        LeadChange::Merged { other: merge_id, filled: vec!["mobile".into(), "city".into()] },
        "only the empty fields are filled (FIELDS order), the kept lead's name stays"
    );
    assert!(matches!(s.merge_leads(keep_id, merge_id, admin, hour(3)).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.merge_leads(merge_id, keep_id, admin, hour(3)).await, Err(StoreError::Conflict(_))));

    let merged = detail(s, keep_id).await;
    assert_eq!(merged.lead.fields.get("name").map(String::as_str), Some("王先生"));
    assert_eq!(merged.lead.fields.get("mobile").map(String::as_str), Some("13812345678"));
    let recorders: Vec<&str> = merged.messages.iter().map(|m| m.recorder_id.as_str()).collect();
    assert_eq!(recorders, ["k1", "k2", "m1"], "the merged lead's messages show on the kept one");
    assert_eq!(merged.pushes.iter().map(|p| p.id).collect::<Vec<_>>(), [keep_push, merge_push]);
    assert_eq!((merged.lead.message_count, merged.lead.push_count), (3, 2));
    let kinds: Vec<&str> = s.lead_events(keep_id).await.unwrap().iter().map(|e| e.change.kind()).collect();
    assert_eq!(kinds, ["note", "merged_into", "merged"], "the merged lead's timeline shows too");
    assert_eq!(detail(s, merge_id).await.lead.merged_into, Some(keep_id));
    let listed = leads(s, &LeadQuery { per_page: 50, ..Default::default() }).await;
    assert_eq!(listed.items.iter().map(|l| l.id).collect::<Vec<_>>(), [keep_id], "a merged lead leaves the lists");
    assert_eq!(listed.total, 1);

    // A new push for the merged visitor lands on its own lead and shows (and counts) on the kept one.
    let more = card("c1", "vb").message(msg("m2", Some("ch2"), Sender::Visitor, "地址在哪", Some(hour(4))));
    record(s, cards_push("easyliao", hour(4), vec![more])).await;
    let merged = detail(s, keep_id).await;
    assert_eq!(merged.messages.len(), 4);
    assert_eq!((merged.lead.message_count, merged.lead.visitor_message_count, merged.lead.push_count), (4, 3, 3));

    assert!(matches!(s.unmerge_lead(merge_id, agent, hour(5)).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.unmerge_lead(keep_id, admin, hour(5)).await, Err(StoreError::Conflict(_))));
    let undone = s.unmerge_lead(merge_id, admin, hour(5)).await.unwrap();
    assert_eq!((undone.lead_id, &undone.change), (merge_id, &LeadChange::Unmerged { other: keep_id }));
    let kept = detail(s, keep_id).await;
    assert_eq!(kept.lead.fields.get("mobile"), None, "what the merge filled is emptied again");
    assert_eq!(kept.lead.fields.get("city"), None);
    assert_eq!(kept.messages.len(), 2);
    assert_eq!((kept.lead.message_count, kept.lead.visitor_message_count, kept.lead.push_count), (2, 1, 1));
    let back = detail(s, merge_id).await;
    assert_eq!(back.lead.merged_into, None);
    assert_eq!((back.lead.message_count, back.lead.push_count), (2, 2));
    assert_eq!(back.lead.fields.get("mobile").map(String::as_str), Some("13812345678"));
    let listed = leads(s, &LeadQuery { per_page: 50, ..Default::default() }).await;
    assert_eq!(listed.total, 2, "back in the lists");
}

async fn score_and_its_reasons_follow_each_push(env: Env) {
    let s = &env.store;
    let mut scoring = xiansuo_domain::Scoring::default();
    scoring.tag_points.insert("hot".into(), 25);
    s.set_scoring(scoring);
    let first = with_contacts(card("c1", "va").set("mobile", "13812345678"), &[("mobile", "13812345678")])
        .message(msg("1", Some("ch1"), Sender::Visitor, "学费多少钱", None))
        .message(msg("2", Some("ch1"), Sender::Staff, "地址在哪里都可以问我", None));
    let id = record(s, cards_push("easyliao", hour(0), vec![first])).await.leads[0].id;
    let lead = detail(s, id).await.lead;
    let reasons: Vec<(&str, i32)> = lead.score_reasons.iter().map(|r| (r.code.as_str(), r.points)).collect();
    assert_eq!(reasons, [("valid_mobile", 30), ("visitor_messages", 2), ("intent_words", 20)]);
    assert_eq!(lead.score, 52);
    assert_eq!(lead.score_reasons[2].detail, "学费、多少钱", "the staff's words do not count");

    // Another chat, another intent word and a tag: recomputed on the push, words accumulated.
    let second =
        card("c1", "va").set("ntag_id", "hot").message(msg("3", Some("ch2"), Sender::Visitor, "我想报名", None));
    record(s, cards_push("easyliao", hour(1), vec![second])).await;
    let lead = detail(s, id).await.lead;
    let reasons: Vec<(&str, i32)> = lead.score_reasons.iter().map(|r| (r.code.as_str(), r.points)).collect();
    assert_eq!(
        reasons,
        [("valid_mobile", 30), ("visitor_messages", 4), ("intent_words", 20), ("repeat_visitor", 10), ("tag", 25)]
    );
    assert_eq!(lead.score, 89);

    let plain = record(s, cards_push("easyliao", hour(2), vec![card("c1", "vb")])).await.leads[0].id;
    assert_eq!(detail(s, plain).await.lead.score, 0);
    let by_score = leads(s, &LeadQuery { per_page: 50, sort: LeadSort::ScoreDesc, ..Default::default() }).await;
    assert_eq!(by_score.items.iter().map(|l| l.id).collect::<Vec<_>>(), [id, plain]);
    let ascending = leads(s, &LeadQuery { per_page: 50, sort: LeadSort::ScoreAsc, ..Default::default() }).await;
    assert_eq!(ascending.items.iter().map(|l| l.id).collect::<Vec<_>>(), [plain, id]);
}

/// A new lead is inserted with its counts and score computed from the card (issue #8): they must
/// be what counting the stored rows and scoring them again gives.
async fn a_new_lead_is_stored_counted_and_scored_at_once(env: Env) {
    let s = &env.store;
    let mut scoring = xiansuo_domain::Scoring::default();
    scoring.tag_points.insert("hot".into(), 25);
    s.set_scoring(scoring);
    let mut first = with_contacts(card("c1", "va").set("ntag_id", "hot"), &[("weixin", "zhang_wx")])
        .set("chat_id", "ch0")
        .message(msg("1", Some("ch1"), Sender::Visitor, "学费多少钱", None))
        .message(msg("2", Some("ch2"), Sender::Staff, "您好", None))
        .message(msg("3", None, Sender::Visitor, "地址在哪", None));
    first.found_in_chat.insert("mobile", "13812345678".into());
    // The same message twice in one card is stored (and counted) once.
    first.messages.push(first.messages[0].clone());
    let id = record(s, cards_push("easyliao", hour(0), vec![first.clone()])).await.leads[0].id;
    let stored = detail(s, id).await;
    let lead = &stored.lead;
    assert_eq!((lead.push_count, lead.message_count, lead.visitor_message_count), (1, 3, 2));
    assert_eq!(stored.messages.len(), 3);
    let codes: Vec<&str> = lead.score_reasons.iter().map(|r| r.code.as_str()).collect();
    assert!(codes.contains(&"found_in_chat") && codes.contains(&"tag"), "{codes:?}");

    // Scoring the stored rows again (what a reindex does) changes nothing.
    let (score, reasons) = (lead.score, lead.score_reasons.clone());
    s.index_lead(id, first.contact_keys.clone(), Vec::new()).await.expect("reindex");
    let again = detail(s, id).await.lead;
    assert_eq!((again.score, again.score_reasons), (score, reasons));
    assert_eq!((again.push_count, again.message_count, again.visitor_message_count), (1, 3, 2));
}

async fn tag_filter_by_id_or_name(env: Env) {
    let s = &env.store;
    let tagged = card("c1", "va").set("ntag_id", "101").set("ntag_name", "高意向");
    let named = card("c1", "vb").set("ntag_name", "回访");
    let a = record(s, cards_push("easyliao", hour(0), vec![tagged])).await.leads[0].id;
    let b = record(s, cards_push("easyliao", hour(1), vec![named])).await.leads[0].id;
    record(s, cards_push("easyliao", hour(2), vec![card("c1", "vc")])).await;
    let ids = |p: Page<Lead>| p.items.iter().map(|l| l.id).collect::<Vec<_>>();
    let by = |tag: &str| LeadQuery { tag: Some(tag.to_string()), per_page: 50, ..Default::default() };
    assert_eq!(ids(leads(s, &by("101")).await), [a]);
    assert_eq!(ids(leads(s, &by("回访")).await), [b], "a card with only a name is found by it");
    assert!(ids(leads(s, &by("高意向")).await).is_empty(), "a tag with an id is filtered by its id");
}

async fn a_spool_entry_is_stored_once(env: Env) {
    let s = &env.store;
    let push = || cards_push("easyliao", hour(0), vec![card("c1", "spooled")]);
    let first = s.record_spooled_push("0001-entry", push()).await.unwrap();
    assert!(first.leads[0].created);
    // Drained again after a crash that kept the file: nothing new is stored.
    let again = s.record_spooled_push("0001-entry", push()).await.unwrap();
    assert_eq!((again.push_id, again.accepted, again.leads[0].id), (first.push_id, 1, first.leads[0].id));
    assert_eq!(s.list_pushes(&PushQuery { per_page: 10, ..Default::default() }).await.unwrap().total, 1);
    assert_eq!(detail(s, first.leads[0].id).await.lead.push_count, 1);
    let other = s.record_spooled_push("0002-entry", push()).await.unwrap();
    assert_ne!(other.push_id, first.push_id);
}

async fn the_audit_log_keeps_entries_newest_first(env: Env) {
    let s = &env.store;
    let entry = |action: &str, at: Instant| AuditEntry {
        at,
        user_id: Some(1),
        actor: "admin".into(),
        action: action.into(),
        target: Some("lead 7".into()),
        detail: serde_json::json!({ "other": 8 }),
        ip: Some("203.0.113.9".into()),
    };
    s.audit(entry("sign_in", hour(0))).await.unwrap();
    s.audit(entry("lead_merged", hour(1))).await.unwrap();
    s.audit(AuditEntry { user_id: None, ip: None, target: None, ..entry("sign_in_failed", hour(2)) }).await.unwrap();
    let all = s.audit_log(&AuditQuery { page: 1, per_page: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.total, 3);
    let actions: Vec<&str> = all.items.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, ["sign_in_failed", "lead_merged", "sign_in"]);
    assert_eq!(all.items[1].entry, entry("lead_merged", hour(1)));
    let merges = s.audit_log(&AuditQuery { action: Some("lead_merged".into()), page: 1, per_page: 10 }).await.unwrap();
    assert_eq!((merges.total, merges.items.len()), (1, 1));
}

// ---------------------------------------------------------------------------------------------
// Issue #11: vendors' event ids and their visitors' events, in the push's transaction.

fn with_event_id(id: &str) -> VendorPush {
    VendorPush { event_id: Some(id.to_string()), events: Vec::new() }
}

async fn push_total(s: &Arc<dyn Store>) -> u64 {
    s.list_pushes(&PushQuery { per_page: 10, ..Default::default() }).await.unwrap().total
}

async fn vendor_event_ids_are_claimed_in_the_push_transaction(env: Env) {
    let Env { store: s, db } = env;
    let push = |visitor: &str, at: i64| cards_push("tawk", hour(at), vec![card("p1", visitor)]);
    let first = s.record_vendor_push(push("chat-1", 0), with_event_id("evt-1")).await.unwrap();
    assert!(!first.retry);
    assert!(first.recorded.leads[0].created);
    // Resent: nothing stored, the first push answered (its outcome, its lead).
    let again = s.record_vendor_push(push("chat-1", 1), with_event_id("evt-1")).await.unwrap();
    assert!(again.retry);
    assert_eq!(again.recorded.push_id, first.recorded.push_id);
    assert_eq!(again.recorded.outcome, PushOutcomeKind::Accepted);
    assert_eq!(again.recorded.leads.iter().map(|l| l.id).collect::<Vec<_>>(), vec![first.recorded.leads[0].id]);
    assert_eq!(push_total(&s).await, 1);
    assert_eq!(detail(&s, first.recorded.leads[0].id).await.lead.push_count, 1);
    // The same id at another source is another event; no id, no deduplication.
    let other = NewPush { source: "qiyu".into(), ..push("chat-1", 2) };
    assert!(!s.record_vendor_push(other, with_event_id("evt-1")).await.unwrap().retry);
    assert!(!s.record_vendor_push(push("chat-1", 3), VendorPush::default()).await.unwrap().retry);
    assert!(!s.record_vendor_push(push("chat-1", 3), VendorPush::default()).await.unwrap().retry);
    assert_eq!(push_total(&s).await, 4);

    // Copies racing (and, on PostgreSQL, through two stores: two instances on one database):
    // one is stored, every other is answered as its retry; none fails.
    let second = match &db {
        Db::Postgres(_) => db.open().await,
        Db::Sqlite(_) => Arc::clone(&s),
    };
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = if i % 2 == 0 { Arc::clone(&s) } else { Arc::clone(&second) };
            tokio::spawn(async move { store.record_vendor_push(push("chat-2", 4), with_event_id("evt-race")).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().expect("a racing copy is answered, not refused"));
    }
    assert_eq!(results.iter().filter(|r| !r.retry).count(), 1, "{results:?}");
    let stored = results.iter().find(|r| !r.retry).unwrap().recorded.push_id;
    assert!(results.iter().all(|r| r.recorded.push_id == stored));
    assert_eq!(push_total(&s).await, 5);
    drop(second);

    // An earlier release kept event ids as settings: carried over at start, then gone.
    let key = format!("vendor_event.tawk.evt-old.{}", "with.dots");
    s.set_setting(&key, Some(&first.recorded.push_id.to_string())).await.unwrap();
    s.set_setting("vendor_event.tawk.evt-lost", Some("999999")).await.unwrap();
    drop(s);
    let s = db.open().await;
    assert_eq!(s.setting(&key).await.unwrap(), None, "carried over");
    assert_eq!(s.setting("vendor_event.tawk.evt-lost").await.unwrap(), None);
    let old = s.record_vendor_push(push("chat-1", 5), with_event_id("evt-old.with.dots")).await.unwrap();
    assert!(old.retry);
    assert_eq!(old.recorded.push_id, first.recorded.push_id);
    // A setting naming a push no longer in the log is dropped: the event is stored anew.
    assert!(!s.record_vendor_push(push("chat-1", 6), with_event_id("evt-lost")).await.unwrap().retry);
    // And the ids stored before reopening hold.
    assert!(s.record_vendor_push(push("chat-1", 7), with_event_id("evt-1")).await.unwrap().retry);
    drop(s);
    drop(db);
}

async fn visitor_events_reach_known_leads_only(env: Env) {
    let s = &env.store;
    let lead = s.record_vendor_push(cards_push("qiyu", hour(0), vec![card("app", "uid-1")]), VendorPush::default());
    let lead_id = lead.await.unwrap().recorded.leads[0].id;
    let event = |company: &str, visitor: &str, text: &str| xiansuo_domain::VisitorEvent {
        company_id: company.into(),
        visitor_id: visitor.into(),
        vendor: "qiyu".into(),
        event: "SESSION_END".into(),
        text: text.into(),
    };
    let ignored = |source: &str, at| NewPush {
        source: source.into(),
        result: PushResult::Cards { cards: vec![], ignored: 1 },
        ..cards_push("qiyu", hour(at), vec![])
    };
    let vendor = VendorPush {
        event_id: Some("SESSION_END:1".into()),
        events: vec![event("app", "uid-1", "会话结束"), event("app", "uid-unknown", "会话结束")],
    };
    let r = s.record_vendor_push(ignored("qiyu", 1), vendor.clone()).await.unwrap();
    assert_eq!(r.recorded.outcome, PushOutcomeKind::Ignored);
    assert_eq!(r.recorded.leads, vec![], "an event links no lead to the push");
    let expected = LeadChange::VendorEvent {
        vendor: "qiyu".into(),
        event: "SESSION_END".into(),
        text: "会话结束".into(),
        push_id: r.recorded.push_id,
    };
    assert_eq!(r.events.len(), 1, "only the known visitor's: {:?}", r.events);
    assert_eq!((r.events[0].lead_id, r.events[0].user_id, &r.events[0].change), (lead_id, None, &expected));
    assert_eq!(r.events[0].at, hour(1));
    // Resent: no second entry.
    assert!(s.record_vendor_push(ignored("qiyu", 2), vendor).await.unwrap().retry);
    // Another company, another source: not this visitor.
    let elsewhere = VendorPush { event_id: None, events: vec![event("other-app", "uid-1", "x")] };
    assert!(s.record_vendor_push(ignored("qiyu", 3), elsewhere.clone()).await.unwrap().events.is_empty());
    let tawk = VendorPush { event_id: None, events: vec![event("app", "uid-1", "x")] };
    assert!(s.record_vendor_push(ignored("tawk", 3), tawk).await.unwrap().events.is_empty());
    let events = s.lead_events(lead_id).await.unwrap();
    assert_eq!(events.iter().map(|e| &e.change).collect::<Vec<_>>(), vec![&expected]);
    let lead = detail(s, lead_id).await.lead;
    assert_eq!((lead.push_count, lead.updated_at), (1, hour(0)), "the lead's data is untouched");
    assert_eq!(leads(s, &all_leads()).await.total, 1, "events create no lead");
}

/// China time (UTC+8) text to an instant.
fn china(s: &str) -> Instant {
    t(&format!("{s}+08:00"))
}

/// The report of the per-day table (whole days) and partial days equals the report read from
/// every lead, whatever happened to the leads: values that differ only in what the table's SQL
/// and the scan's Rust must compute alike (mobiles, landing pages with a query or fragment,
/// multi-byte text, empty and missing values), later pushes that change a lead's values,
/// status changes, assignment, notes (first follow-ups), a merge and its undo.
async fn report_days_agree_with_the_leads(env: Env) {
    let s = &env.store;
    let admin = Actor::of(&s.create_user("admin", Role::Admin, "h").await.unwrap());
    let li = s.create_user("li", Role::Agent, "h").await.unwrap();
    let values: &[(&str, &str, &str, &str)] = &[
        // (mobile, first_url, keyword, ntag_name)
        ("13800138000", "http://a.cn/zt/考研.html?bd_vid=1", "考研", "意向"),
        ("+86 138-0013-8001", "http://a.cn/zt/考研.html#top", "考研", "高意向"),
        ("(0086)13800138002", "http://a.cn/zt/考研.html", "", ""),
        ("008613800138003", "http://a.cn/x#a?b", "成人高考", "意向"),
        ("8613800138004", "?bd_vid=2", "成人高考", ""),
        ("12800138000", "", "专升本", "意向"),
        ("138 0013 80001", "http://a.cn/页面?x=1", "专升本", ""),
        ("１３８００１３８０００", "http://a.cn/页面", "", "无效"),
        ("0351-7654321", "#only", "考研", ""),
        ("", "http://b.cn/", "考研", ""),
    ];
    // Leads over three days, at hours that straddle China midnight (16:00 UTC).
    let mut ids = Vec::new();
    for (i, (mobile, url, keyword, tag_name)) in values.iter().enumerate() {
        let at = china("2026-03-01T00:30:00") + Duration::hours(5 * i as i64);
        let mut c = card("c1", &format!("v{i}"))
            .set("search_engine", if i % 3 == 0 { "百度" } else { "搜狗" })
            .set("city", if i % 2 == 0 { "太原市" } else { "广州市" });
        for (k, v) in [("mobile", *mobile), ("first_url", *url), ("keyword", *keyword), ("ntag_name", *tag_name)] {
            if !v.is_empty() {
                c = c.set(k, v);
            }
        }
        if !tag_name.is_empty() {
            c = c.set("ntag_id", if *tag_name == "无效" { "9" } else { "7" });
        }
        ids.push(record(s, cards_push("easyliao", at, vec![c])).await.leads[0].id);
    }
    // A later chat changes values; people work the leads.
    let later = card("c1", "v5").set("keyword", "专升本辅导").set("mobile", "13900000000");
    record(s, cards_push("easyliao", china("2026-03-03T09:00:00"), vec![later])).await;
    let at = china("2026-03-03T10:00:00");
    let by_li = Actor::of(&li);
    s.update_lead(ids[0], admin, LeadUpdate::Assign { to: Some(li.id) }, at).await.unwrap();
    s.update_lead(ids[0], by_li, LeadUpdate::Status { to: LeadStatus::Won, reason: None }, at).await.unwrap();
    s.update_lead(ids[1], admin, LeadUpdate::Note { text: "回电话".into() }, at).await.unwrap();
    s.update_lead(ids[2], admin, LeadUpdate::Status { to: LeadStatus::Invalid, reason: Some("空号".into()) }, at)
        .await
        .unwrap();
    s.update_lead(ids[3], admin, LeadUpdate::Status { to: LeadStatus::Contacted, reason: None }, at).await.unwrap();
    s.update_lead(ids[3], admin, LeadUpdate::Status { to: LeadStatus::Interested, reason: None }, at).await.unwrap();
    s.merge_leads(ids[4], ids[6], admin, at).await.unwrap();
    s.merge_leads(ids[7], ids[8], admin, at).await.unwrap();
    s.unmerge_lead(ids[8], admin, at).await.unwrap();

    let range =
        |from: Option<&str>, to: Option<&str>| LeadQuery { from: from.map(china), to: to.map(china), ..all_leads() };
    let ranges = [
        range(None, None),
        range(Some("2026-03-01T00:00:00"), None),
        range(Some("2026-03-01T00:00:00"), Some("2026-03-03T00:00:00")),
        range(Some("2026-03-01T12:00:00"), Some("2026-03-02T20:00:00")),
        range(Some("2026-03-02T00:00:00"), Some("2026-03-02T12:00:00")),
        range(Some("2026-03-05T00:00:00"), None),
    ];
    let each = &ranges;
    // The inbox's totals, added up from the same table for a filter on one dimension (issue 8),
    // equal the leads the list itself reads; filters the table cannot answer are counted.
    let filters = |r: &LeadQuery| {
        let f = |q: LeadQuery| LeadQuery { from: r.from, to: r.to, per_page: 1000, ..q };
        vec![
            f(all_leads()),
            f(LeadQuery { city: Some("太原市".into()), ..all_leads() }),
            f(LeadQuery { status: Some(LeadStatus::Won), ..all_leads() }),
            f(LeadQuery { status: Some(LeadStatus::New), search_engine: Some("搜狗".into()), ..all_leads() }),
            f(LeadQuery { visible_to: Some(li.id), ..all_leads() }),
            f(LeadQuery { owner: Some(OwnerFilter::User(li.id)), ..all_leads() }),
            f(LeadQuery { owner: Some(OwnerFilter::Unassigned), status: Some(LeadStatus::Invalid), ..all_leads() }),
            f(LeadQuery { hour: Some(10), ..all_leads() }),
            f(LeadQuery { empty: vec!["keyword"], ..all_leads() }),
            f(LeadQuery { empty: vec!["landing"], ..all_leads() }),
            f(LeadQuery { landing: Some("http://a.cn/zt/考研.html".into()), ..all_leads() }),
            f(LeadQuery { fields: vec![("keyword", "考研".into())], ..all_leads() }),
            f(LeadQuery { ntag_id: Some("7".into()), ..all_leads() }),
            f(LeadQuery { city: Some("广州市".into()), search_engine: Some("搜狗".into()), ..all_leads() }),
            f(LeadQuery { city: Some(String::new()), ..all_leads() }),
        ]
    };
    let agree = |when: &'static str| async move {
        for q in each {
            let fast = s.lead_stats(q, 3).await.unwrap();
            let scanned = s.lead_stats_scanned(q, 3).await.unwrap();
            assert_eq!(fast, scanned, "{when}: {:?} – {:?}", q.from, q.to);
            for f in filters(q) {
                let list = s.list_leads(&f).await.unwrap();
                assert_eq!((list.total, list.total_exact), (list.items.len() as u64, true), "{when}: {f:?}");
            }
        }
    };
    // The report adds the changes the writer has not folded into the table yet (migration 13;
    // it folds about once a second, so most of these are pending here), then the same with
    // everything folded, then with new changes pending on top of folded rows.
    agree("pending").await;
    s.fold_report_days().await.unwrap();
    assert_eq!(s.fold_report_days().await.unwrap(), 0, "nothing is left to fold");
    agree("folded").await;
    s.update_lead(ids[3], admin, LeadUpdate::Status { to: LeadStatus::Won, reason: None }, at).await.unwrap();
    s.update_lead(ids[3], admin, LeadUpdate::Status { to: LeadStatus::Interested, reason: None }, at).await.unwrap();
    s.unmerge_lead(ids[6], admin, at).await.unwrap();
    s.merge_leads(ids[4], ids[6], admin, at).await.unwrap();
    agree("folded and pending").await;
    let all = s.lead_stats(&ranges[0], 20).await.unwrap();
    assert_eq!(all.counts.total, 9, "one lead is merged into another");
    assert_eq!(all.counts.by_status, [6, 0, 1, 1, 1]);
    // 13800138000, +86 138-0013-8001, (0086)…, 0086…, 86…, and the later 13900000000.
    assert_eq!(all.counts.contact, 6);
    let landing = all.dimensions.iter().find(|d| d.dimension.key == "landing").unwrap();
    let page = landing.segments.iter().find(|g| g.value == "http://a.cn/zt/考研.html").unwrap();
    assert_eq!(page.counts.total, 3);
    assert_eq!(landing.segments.iter().find(|g| g.value.is_empty()).unwrap().counts.total, 3, "'', '?…', '#…'");
    let tags = all.dimensions.iter().find(|d| d.dimension.key == "tag").unwrap();
    let seven = tags.segments.iter().find(|g| g.value == "7").unwrap();
    assert_eq!((seven.counts.total, seven.label.as_str()), (4, "意向"), "the smallest of its names");
    let keyword = all.dimensions.iter().find(|d| d.dimension.key == "keyword").unwrap();
    assert!(keyword.segments.iter().any(|g| g.value == "专升本辅导"), "the later chat's keyword");
    assert_eq!(all.follow_up.iter().map(|f| f.followed).sum::<u64>(), 4);
    assert_eq!(all.hours.iter().sum::<u64>(), 9);
    // Reopening keeps the table (and the next change still applies).
    drop(env.store);
    let s = &env.db.open().await;
    s.update_lead(ids[9], admin, LeadUpdate::Status { to: LeadStatus::Won, reason: None }, at).await.unwrap();
    let again = s.lead_stats(&ranges[0], 20).await.unwrap();
    assert_eq!(again, s.lead_stats_scanned(&ranges[0], 20).await.unwrap());
    assert_eq!(again.counts.by_status, [5, 0, 1, 2, 1]);
}

/// Searches many leads match (issue 8): past 10,000 matches the total is a lower bound and the
/// page still lists matches newest first; fewer matches of a word many leads hold (here with a
/// city) are all counted and paged; a rare word as before. On SQLite these take the three ways a
/// search reads its leads (sqlite::SearchPlan): dense, every match, the index.
async fn totals_of_common_searches(env: Env) {
    let s = &env.store;
    let n = 10_200;
    for chunk in 0..n / 510 {
        let cards = (chunk * 510..(chunk + 1) * 510)
            .map(|i| {
                // Every 100th lead is 王…; the others hold 培训 (in the name or the keyword).
                let c = card("c1", &format!("v{i}")).set("city", if i % 30 == 1 { "太原市" } else { "广州市" });
                match (i % 100, i % 2) {
                    (0, _) => c.set("name", &format!("王{i}")),
                    (_, 0) => c.set("name", &format!("培训{i}")),
                    _ => c.set("name", &format!("张{i}")).set("keyword", "成人培训"),
                }
            })
            .collect();
        record(s, cards_push("easyliao", hour(0) + Duration::seconds(chunk), cards)).await;
    }
    let page = |q: &str, city: Option<&str>, page: u32| LeadQuery {
        q: Some(q.into()),
        city: city.map(Into::into),
        page,
        per_page: 50,
        ..Default::default()
    };
    let holds = |l: &Lead, word: &str| {
        l.fields.get("name").is_some_and(|v| v.contains(word))
            || l.fields.get("keyword").is_some_and(|v| v.contains(word))
    };
    // Dense: 10,098 matches.
    let dense = leads(s, &page("培训", None, 1)).await;
    assert_eq!((dense.total, dense.total_exact), (10_000, false));
    assert_eq!(dense.items.len(), 50);
    assert!(dense.items.iter().all(|l| holds(l, "培训")));
    let newest = leads(s, &LeadQuery { per_page: 1, ..all_leads() }).await.items[0].id;
    assert_eq!(dense.items[0].id, newest, "newest first");
    let second = leads(s, &page("培训", None, 2)).await;
    assert!(second.items.iter().all(|l| holds(l, "培训") && !dense.items.iter().any(|d| d.id == l.id)));
    // Every match: 培训 in 太原市 (every 30th lead, but not the 王 ones).
    let expected: Vec<i64> = (0..n).filter(|i| i % 30 == 1 && i % 100 != 0).collect();
    let in_city = leads(s, &page("培训", Some("太原市"), 1)).await;
    assert_eq!((in_city.total, in_city.total_exact), (expected.len() as u64, true));
    let mut seen = Vec::new();
    for p in 1..=in_city.total.div_ceil(50) as u32 {
        let list = leads(s, &page("培训", Some("太原市"), p)).await;
        assert!(
            list.items.iter().all(|l| holds(l, "培训") && l.fields.get("city").map(String::as_str) == Some("太原市"))
        );
        seen.extend(list.items.iter().map(|l| l.fields["visitor_static_id"].clone()));
    }
    let mut want: Vec<String> = expected.iter().map(|i| format!("v{i}")).collect();
    want.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got, want, "each match once over the pages");
    // The same matches sorted by the chat's time (its page query reads the matches twice).
    let by_time = leads(s, &LeadQuery { sort: LeadSort::CreateTimeAsc, ..page("培训", Some("太原市"), 2) }).await;
    assert_eq!((by_time.total, by_time.items.len()), (in_city.total, 50));
    assert!(
        by_time.items.iter().all(|l| holds(l, "培训") && l.fields.get("city").map(String::as_str) == Some("太原市"))
    );
    // Rare: 王.
    let rare = leads(s, &page("王", None, 1)).await;
    assert_eq!((rare.total, rare.total_exact), (102, true));
    assert!(rare.items.iter().all(|l| holds(l, "王")));
}

/// Time to first follow-up per owner: the report of whole days (follow-ups read by a query of
/// their own) equals the report that reads every lead, and both give the expected figures, for
/// owners with an even and an odd number of followed-up leads (the median of an even count is the
/// mean of the two middle times, rounded down) and seconds truncated (each note comes 700 ms after
/// a whole second). A backend that computes these figures in SQL must keep them.
async fn follow_up_figures_per_owner(env: Env) {
    let s = &env.store;
    let admin = Actor::of(&s.create_user("admin", Role::Admin, "h").await.unwrap());
    let li = s.create_user("li", Role::Agent, "h").await.unwrap();
    let wang = s.create_user("wang", Role::Agent, "h").await.unwrap();
    let owners_secs: [(Option<i64>, &[i64]); 3] =
        [(Some(li.id), &[40, 10, 1000, 20]), (Some(wang.id), &[100, 5, 7]), (None, &[8, 3])];
    let mut n = 0;
    for (owner, secs) in owners_secs {
        for secs in secs {
            let at = china("2026-03-01T09:00:00") + Duration::minutes(7 * n);
            let id = record(s, cards_push("easyliao", at, vec![card("c1", &format!("f{n}"))])).await.leads[0].id;
            if let Some(owner) = owner {
                s.update_lead(id, admin, LeadUpdate::Assign { to: Some(owner) }, at).await.unwrap();
            }
            let noted = at + Duration::seconds(*secs) + Duration::milliseconds(700);
            s.update_lead(id, admin, LeadUpdate::Note { text: "回电话".into() }, noted).await.unwrap();
            n += 1;
        }
    }
    // A lead never followed up counts nowhere.
    record(s, cards_push("easyliao", china("2026-03-01T20:00:00"), vec![card("c1", "never")])).await;

    let whole_days =
        LeadQuery { from: Some(china("2026-03-01T00:00:00")), to: Some(china("2026-03-03T00:00:00")), ..all_leads() };
    let expected = vec![
        FollowUp { owner_id: Some(li.id), followed: 4, mean_secs: 267, median_secs: 30 },
        FollowUp { owner_id: Some(wang.id), followed: 3, mean_secs: 37, median_secs: 7 },
        FollowUp { owner_id: None, followed: 2, mean_secs: 5, median_secs: 5 },
    ];
    for q in [whole_days, all_leads()] {
        let fast = s.lead_stats(&q, 3).await.unwrap();
        assert_eq!(fast.follow_up, expected, "{:?}", q.from);
        assert_eq!(fast, s.lead_stats_scanned(&q, 3).await.unwrap(), "{:?}", q.from);
    }
}

/// `hour` and `empty` select the leads of the dashboard's per-hour and "（未填）" segments.
async fn hour_and_empty_filters(env: Env) {
    let s = &env.store;
    let at = |h: i64| china("2026-03-01T00:15:00") + Duration::hours(h);
    let cards = [
        card("c1", "h0").set("keyword", "考研").set("first_url", "http://a.cn/?x"),
        card("c1", "h1").set("first_url", "?bd_vid=1"),
        card("c1", "h2").set("keyword", "考研").set("city", "太原市"),
    ];
    for (c, h) in cards.into_iter().zip([0, 11, 13]) {
        record(s, cards_push("easyliao", at(h), vec![c])).await;
    }
    let count = |q: LeadQuery| async move { leads(s, &q).await.total };
    assert_eq!(count(LeadQuery { hour: Some(0), ..all_leads() }).await, 1);
    assert_eq!(count(LeadQuery { hour: Some(11), ..all_leads() }).await, 1);
    assert_eq!(count(LeadQuery { hour: Some(23), ..all_leads() }).await, 0);
    assert_eq!(count(LeadQuery { empty: vec!["keyword"], ..all_leads() }).await, 1);
    assert_eq!(count(LeadQuery { empty: vec!["landing"], ..all_leads() }).await, 2, "no first_url, or only a query");
    assert_eq!(count(LeadQuery { empty: vec!["keyword", "city"], ..all_leads() }).await, 1);
    assert_eq!(count(LeadQuery { empty: vec!["ntag_id"], ..all_leads() }).await, 3);
    // The report of such a filter reads the leads and agrees with the list.
    let q = LeadQuery { empty: vec!["city"], ..all_leads() };
    let stats = s.lead_stats(&q, 20).await.unwrap();
    assert_eq!(stats.counts.total, 2);
    assert_eq!(stats, s.lead_stats_scanned(&q, 20).await.unwrap());
    let hours: Vec<u64> = stats.hours.iter().copied().filter(|n| *n > 0).collect();
    assert_eq!(hours, [1, 1]);
}

/// Under sustained writes (never a pause for a passive checkpoint to catch up) the WAL still
/// starts over: its file stays near its restart size instead of growing by every page written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_wal_starts_over_under_sustained_writes() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("xiansuo.db");
    let wal = dir.path().join("xiansuo.db-wal");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, WRITE_QUEUE).expect("open the SQLite store"));
    let restart_bytes = xiansuo_store::sqlite::WAL_RESTART_FRAMES as u64 * 4096;
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..160 {
                    let mut c = card("c1", &format!("w{w}-{i}")).set("name", "王小明").set("keyword", "会计培训");
                    for m in 0..40 {
                        let text = format!(
                            "第{m}条消息：请问会计培训的学费是多少？周末班和晚班有什么区别？{}",
                            "学".repeat(60)
                        );
                        c = c.message(msg(&format!("w{w}-{i}-{m}"), None, Sender::Visitor, &text, None));
                    }
                    store.record_push(cards_push("easyliao", hour(0), vec![c])).await.expect("record_push");
                }
            })
        })
        .collect();
    let mut largest = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        largest = largest.max(size);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for w in writers {
        w.await.expect("a writer task");
    }
    assert_eq!(leads(&store, &all_leads()).await.total, 2560);
    // Measured: 22 MB with restarts; 107–118 MB without (the file keeps every page written).
    let limit = 4 * restart_bytes;
    assert!(largest < limit, "the WAL reached {largest} bytes (restarts past {restart_bytes})");
}

/// SQLite only: the writer does not checkpoint inside its commits (issue #8); a thread of the
/// store's own copies the WAL into the database file while the store is open. Without it the
/// WAL would only grow, and the database file would keep its size until the store closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_checkpoints_while_the_store_is_open() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("xiansuo.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, WRITE_QUEUE).expect("open the SQLite store"));
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    for i in 0..200 {
        let c = card("c1", &format!("v{i}")).message(msg(&format!("m{i}"), None, Sender::Visitor, "你好", None));
        record(&store, cards_push("easyliao", hour(0), vec![c])).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() <= before && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(size() > before, "the database file grew while the store was open ({before} bytes before)");
    assert_eq!(leads(&store, &all_leads()).await.total, 200);
}

/// SQLite's search index keeps its terms' positions (migration 18): a search asks for them side
/// by side, in order, so that `8888` does not make every lead holding `888` somewhere a
/// candidate for the `LIKE` to check. Read in the index itself: the lists answer the same
/// either way (the `LIKE` decides), only faster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_search_asks_for_the_terms_side_by_side() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("xiansuo.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, WRITE_QUEUE).expect("open the SQLite store"));
    let mut ids = Vec::new();
    for (i, mobile) in ["13988880000", "13888088800", "18600008888"].iter().enumerate() {
        let c = card("c1", &format!("v{i}")).set("mobile", mobile).set("name", if i == 1 { "培训班" } else { "训培" });
        ids.push(record(&store, cards_push("easyliao", hour(0), vec![c])).await.leads[0].id);
    }
    let (total, found) = visitors(&store, q("8888")).await;
    assert_eq!((total, found), (2, strings(&["v0", "v2"])));
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open the database");
    let candidates = |q: &str| -> Vec<i64> {
        let mut stmt = conn.prepare("SELECT rowid FROM lead_terms WHERE lead_terms MATCH ?1 ORDER BY rowid").unwrap();
        stmt.query_map([xiansuo_store::search::fts5_phrase(q)], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(candidates("8888"), vec![ids[0], ids[2]], "888 twice in a row, not 888 twice apart");
    assert_eq!(candidates("培训"), vec![ids[1]], "培 then 训, not 训 then 培");
    assert_eq!(candidates("0000"), vec![ids[0], ids[2]]);
    // Only the store writes leads: another program changing a searched value would leave the
    // index behind (the store indexes changed leads before its own commits), so it is refused.
    let refused = conn.execute("UPDATE leads SET name = '别人改的' WHERE id = ?1", [ids[0]]);
    let error = refused.expect_err("another program changed a lead").to_string();
    assert!(error.contains("no such function: xiansuo_index_later"), "{error}");
    let pending: i64 = conn.query_row("SELECT count(*) FROM lead_terms_pending", [], |r| r.get(0)).unwrap();
    assert_eq!(pending, 0, "nothing waits to be indexed between two commits");
}
