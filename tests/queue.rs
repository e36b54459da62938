//! Issue #8: in a burst a push is stored durably and answered at once (`"outcome":"queued"`),
//! and its leads are built right after, in arrival order — also after a crash.

mod common;

use common::{Backend, Options, Server, card};
use reqwest::StatusCode;
use serde_json::Value;

fn lead_named<'a>(leads: &'a Value, visitor: &str) -> &'a Value {
    leads["items"]
        .as_array()
        .and_then(|items| items.iter().find(|l| l["visitor_static_id"] == visitor))
        .unwrap_or_else(|| panic!("no lead of visitor {visitor} in {leads}"))
}

/// SQL storing `body` as a queued push (what a crash between answering a queued push and
/// building its leads leaves), copying the source and time of push `like`.
fn queued_push_sql(server: &Server, body: &Value, like: i64) -> String {
    let body = body.to_string().replace('\'', "''");
    let bytes = match server.backend {
        Backend::Sqlite => format!("CAST('{body}' AS BLOB)"),
        Backend::Postgres(_) => format!("convert_to('{body}', 'UTF8')"),
    };
    format!(
        "INSERT INTO pushes (source, received_at, content_type, body, outcome, accepted, ignored)
         SELECT source, received_at, content_type, {bytes}, 'queued', 1, 0 FROM pushes WHERE id = {like};\n"
    )
}

/// The server stopped, `sql` run on its database, and the server started again (nothing left
/// to stop), once every queued push has its leads.
async fn restarted_with(mut server: Server, sql: &str) -> Server {
    server.stop();
    server.execute_sql(sql).await;
    let server = server.crash_and_restart();
    server.wait_until_applied().await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_pushes_are_answered_at_once_and_their_leads_follow_in_order() {
    // 0: every push is queued, as in a burst.
    let env = vec![("XIANSUO_QUEUE_PUSHES_ABOVE".into(), "0".into())];
    let server = Server::start_with(Options { env, ..Default::default() }).await;
    let mut first = card("queue-1");
    first["name"] = "第一次".into();
    let mut second = card("queue-1");
    second["name"] = "第二次".into();
    second["note"] = "后来的备注".into();
    let mut ids = Vec::new();
    for body in [&first, &second, &card("queue-2")] {
        let (status, answer) = server.push_json(body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["code"], 0);
        assert_eq!(answer["outcome"], "queued", "{answer}");
        assert_eq!(answer["accepted"], 1);
        assert_eq!(answer["leads"], serde_json::json!([]));
        ids.push(answer["push_id"].as_i64().expect("push_id"));
    }
    server.wait_until_applied().await;
    let (_, leads) = server.get("/api/v1/leads?per_page=10").await;
    assert_eq!(leads["total"], 2, "{leads}");
    // The later card won: the pushes were applied in arrival order.
    let lead = lead_named(&leads, "queue-1");
    assert_eq!(lead["name"], "第二次", "{lead}");
    assert_eq!(lead["note"], "后来的备注");
    let lead_id = lead["id"].as_i64().expect("lead id");
    let (_, log) = server.get("/api/v1/pushes?per_page=10").await;
    for (push_id, lead) in ids.iter().zip([Some(lead_id), Some(lead_id), None]) {
        let push = log["items"]
            .as_array()
            .and_then(|items| items.iter().find(|p| p["id"] == *push_id))
            .unwrap_or_else(|| panic!("push {push_id} in {log}"));
        assert_eq!(push["outcome"], "accepted", "{push}");
        if let Some(lead) = lead {
            assert_eq!(push["lead_ids"], serde_json::json!([lead]));
        }
    }
    let (_, detail) = server.get(&format!("/api/v1/leads/{lead_id}")).await;
    assert_eq!(detail["push_count"], 2, "{detail}");
    // The transcript came with the queued cards.
    assert_eq!(detail["messages"].as_array().map(Vec::len), Some(2), "{detail}");
}

/// A push queued just before a crash (stored, answered, its lead not built) gets its lead when
/// the service starts again: the queue is the push log itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_queued_before_a_crash_get_their_leads_after_the_restart() {
    let server = Server::start().await;
    let (status, answer) = server.push_json(&card("before-crash")).await;
    // One push at a time is below the default threshold: its lead is built at once.
    assert_eq!((status, answer["outcome"].as_str()), (StatusCode::OK, Some("accepted")), "{answer}");
    let first = answer["push_id"].as_i64().expect("push_id");
    // What a crash between answering a queued push and building its lead leaves: the push row.
    let sql = queued_push_sql(&server, &card("queued-at-crash"), first);
    // Started again: the applier finds the queued push at start.
    let server = restarted_with(server, &sql).await;
    let (_, leads) = server.get("/api/v1/leads?per_page=10").await;
    assert_eq!(leads["total"], 2, "{leads}");
    let lead = lead_named(&leads, "queued-at-crash");
    let (_, pushes) = server.get("/api/v1/pushes?outcome=accepted").await;
    assert_eq!(pushes["total"], 2, "{pushes}");
    let queued_push = &pushes["items"][0];
    assert_eq!(queued_push["lead_ids"], serde_json::json!([lead["id"]]));
    // The lead was received when the push was.
    let first_lead = lead_named(&leads, "before-crash");
    assert_eq!(lead["received_at"], first_lead["received_at"]);
    // Pushes queue only in a burst: the next one, alone, is accepted at once.
    let (_, answer) = server.push_json(&card("after")).await;
    assert_eq!(answer["outcome"], "accepted", "{answer}");
}

/// With several PostgreSQL writers the applier spreads a chunk over them, a lane per group of
/// leads, and a push about leads of two lanes joins them: whatever the lanes, each visitor's
/// pushes are applied in the order they came (the last name wins, the chats keep their order,
/// every push is counted), and two new leads sharing a phone number see each other (a possible
/// duplicate). The pushes are queued in the log before the service starts, so that its first
/// chunks hold several pushes of each visitor, interleaved. On SQLite the same pushes take the
/// one writer, in one write each chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_pushes_of_many_visitors_keep_each_visitors_order() {
    // Four writers: three lanes, and four visitors in turn, so that a lane chosen by length
    // alone would not keep a visitor's pushes together.
    let env = vec![("XIANSUO_POSTGRES_WRITERS".into(), "4".into())];
    let server = Server::start_with(Options { env, ..Default::default() }).await;
    let (_, answer) = server.push_json(&card("lane-seed")).await;
    let seed = answer["push_id"].as_i64().expect("push_id");
    let visitors = ["lane-a", "lane-b", "lane-c", "lane-d"];
    let pushed = |visitor: &str, round: usize| {
        let mut c = card(visitor);
        c["name"] = format!("第{round}次").into();
        c["chatId"] = format!("77{round}").into();
        // Contacts of their own: leads sharing one are applied in one lane.
        let n = visitor.len() + visitor.bytes().last().map_or(0, usize::from);
        c["mobile"] = format!("1390000{n:04}").into();
        c["qq"] = format!("5550{n:04}").into();
        c["weixin"] = format!("wx-{visitor}").into();
        c
    };
    // First, two new visitors with one phone number: each would start a lane of its own.
    let mut bodies = Vec::new();
    for visitor in ["lane-x", "lane-y"] {
        let mut c = pushed(visitor, 1);
        c["mobile"] = "13912345678".into();
        bodies.push(c);
    }
    for round in 1..=8 {
        for (i, visitor) in visitors.iter().enumerate() {
            bodies.push(if round == 5 && i == 1 {
                // One push about two visitors, after each one's earlier pushes.
                serde_json::json!([pushed(visitors[0], round), pushed(visitor, round)])
            } else {
                pushed(visitor, round)
            });
        }
    }
    let sql: String = bodies.iter().map(|body| queued_push_sql(&server, body, seed)).collect();
    let server = restarted_with(server, &sql).await;
    let (_, leads) = server.get("/api/v1/leads?per_page=50").await;
    assert_eq!(leads["total"], 7, "{leads}");
    for visitor in visitors {
        let lead = lead_named(&leads, visitor);
        assert_eq!(lead["name"], "第8次", "the last push won: {lead}");
        let chats: Vec<&str> = lead["chat_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .filter(|c| c.starts_with("77"))
            .collect();
        assert_eq!(chats, ["771", "772", "773", "774", "775", "776", "777", "778"], "chats in order: {lead}");
        let (_, detail) = server.get(&format!("/api/v1/leads/{}", lead["id"])).await;
        let pushes = if visitor == "lane-a" { 9 } else { 8 };
        assert_eq!(detail["push_count"], pushes, "{visitor}: {detail}");
    }
    let x = lead_named(&leads, "lane-x")["id"].clone();
    let y = lead_named(&leads, "lane-y")["id"].clone();
    let (_, lead_y) = server.get(&format!("/api/v1/leads/{y}")).await;
    assert_eq!(lead_y["duplicates"][0]["lead"]["id"], x, "the later lead names the earlier as a duplicate: {lead_y}");
    // … and its timeline says so: the lead was built seeing the earlier one (a lead built in a
    // transaction beside the other's, not yet committed, would not).
    let (_, lead_x) = server.get(&format!("/api/v1/leads/{x}")).await;
    let flagged =
        |lead: &Value| lead["timeline"].as_array().into_iter().flatten().filter(|e| e["kind"] == "duplicate").count();
    assert_eq!(flagged(&lead_x) + flagged(&lead_y), 1, "one duplicate entry: {lead_x} {lead_y}");
    let (_, queued) = server.get("/api/v1/pushes?outcome=queued").await;
    assert_eq!(queued["total"], 0, "{queued}");
}
