//! Issue #11, sources of other kinds, on the real binary: Tawk.to webhooks signed as Tawk.to
//! signs them (HMAC-SHA1 of the raw body, computed here), a wrong signature, a stale time
//! stamp, a retried event, and a chat in the vendor's order of events (start, transcript, end).
//! Runs on SQLite, and on PostgreSQL with XIANSUO_TEST_BACKEND=postgres.

mod common;

use common::{Options, Server};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

const TAWK_SECRET: &str = "tawk-webhook-secret-123";

fn tawk_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

async fn post_tawk(server: &Server, body: &[u8], signature: Option<&str>, event_id: &str) -> (u16, Value) {
    let mut req = server
        .client
        .post(format!("{}/push/tawk", server.base))
        .header("content-type", "application/json")
        .header("x-hook-event-id", event_id)
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("x-tawk-signature", s);
    }
    let (status, answer) = common::answer(req.send().await.unwrap()).await;
    (status.as_u16(), answer)
}

fn rfc3339(minutes_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes_ago)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn envelope(event: &str, minutes_ago: i64) -> Value {
    json!({
        "event": event,
        "chatId": "9b1d6e40-1a2b-11f0-a1b2-0242ac120002",
        "time": rfc3339(minutes_ago),
        "property": { "id": "5f1e2d3c4b5a69788796a5b4", "name": "Example Academy" },
        "visitor": { "name": "Li Lei", "email": "lilei@example.com", "city": "Shenzhen", "country": "CN" }
    })
}

fn transcript(minutes_ago: i64) -> Value {
    let mut v = envelope("chat:transcript_created", minutes_ago);
    v["referrer"] = json!("https://www.example.com/courses/ielts?utm_source=google");
    v["chat"] = json!({
        "id": "9b1d6e40-1a2b-11f0-a1b2-0242ac120002",
        "visitor": { "name": "Li Lei", "email": "lilei@example.com", "city": "Shenzhen", "country": "CN" },
        "messages": [
            { "sender": { "t": "v", "n": "Li Lei" }, "type": "msg", "msg": "Hi, how much is the IELTS course?", "time": rfc3339(minutes_ago + 3) },
            { "sender": { "t": "a", "n": "Agent Wang" }, "type": "msg", "msg": "Hello! It is 6800 RMB. May I have your phone?", "time": rfc3339(minutes_ago + 2) },
            { "sender": { "t": "v", "n": "Li Lei" }, "type": "msg", "msg": "sure, 139 1234 5678", "time": rfc3339(minutes_ago + 1) }
        ]
    });
    v
}

async fn pushes(server: &Server) -> Vec<Value> {
    let (status, page) = server.get("/api/v1/pushes?source=tawk&per_page=200").await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tawk_webhooks_are_verified_decoded_and_idempotent() {
    let config = format!("[sources.easyliao]\n\n[sources.tawk]\nkind = \"tawk\"\nsecret = \"{TAWK_SECRET}\"\n");
    let server = Server::start_with(Options { config: Some(config), ..Default::default() }).await;

    // The vendor's order of events: start, the transcript, end.
    let start = serde_json::to_vec(&envelope("chat:start", 5)).unwrap();
    let (status, answer) = post_tawk(&server, &start, Some(&tawk_signature(TAWK_SECRET, &start)), "evt-1").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "ignored", "a chat start carries no lead: {answer}");
    assert_eq!(server.get("/api/v1/leads?source=tawk").await.1["total"], 0);

    let body = serde_json::to_vec(&transcript(1)).unwrap();
    let signature = tawk_signature(TAWK_SECRET, &body);
    let (status, answer) = post_tawk(&server, &body, Some(&signature), "evt-2").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "accepted");
    assert_eq!(answer["leads"][0]["created"], true);
    let lead_id = answer["leads"][0]["id"].as_i64().unwrap();

    // Tawk retries the same event (same id, same body): nothing new.
    let (status, again) = post_tawk(&server, &body, Some(&signature), "evt-2").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["leads"][0]["id"], json!(lead_id));
    assert_eq!(again["leads"][0]["created"], false);

    let end = serde_json::to_vec(&envelope("chat:end", 0)).unwrap();
    let (status, answer) = post_tawk(&server, &end, Some(&tawk_signature(TAWK_SECRET, &end)), "evt-3").await;
    assert_eq!(status, 200);
    assert_eq!(answer["outcome"], "ignored");

    let (_, lead) = server.get(&format!("/api/v1/leads/{lead_id}")).await;
    assert_eq!(lead["source"], "tawk");
    assert_eq!(lead["name"], "Li Lei");
    assert_eq!(lead["email"], "lilei@example.com");
    assert_eq!(lead["city"], "Shenzhen");
    assert_eq!(lead["site_name"], "Example Academy");
    assert_eq!(lead["chat_url"], "https://www.example.com/courses/ielts?utm_source=google");
    assert_eq!(lead["visitor_static_id"], "9b1d6e40-1a2b-11f0-a1b2-0242ac120002");
    assert_eq!(lead["mobile"], "13912345678", "the phone the visitor typed: {lead}");
    let messages = lead["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "the retry added no message: {messages:?}");
    let senders: Vec<&str> = messages.iter().map(|m| m["sender"].as_str().unwrap()).collect();
    assert_eq!(senders, ["visitor", "staff", "visitor"]);
    assert_eq!(messages[1]["from_id"], "Agent Wang");
    // The source filter, shared with every other source.
    let (_, list) = server.get("/api/v1/leads?source=tawk").await;
    assert_eq!(list["total"], 1);

    // A wrong signature, a missing one, a stale time stamp: 401, the body kept as rejected.
    let before = pushes(&server).await.len();
    let (status, answer) = post_tawk(&server, &body, Some(&tawk_signature("another-secret", &body)), "evt-4").await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["msg"].as_str().unwrap().contains("signature does not match"), "{answer}");
    let rejected_id = answer["push_id"].as_i64().expect("the rejected push is kept");
    let (status, _) = post_tawk(&server, &body, None, "evt-5").await;
    assert_eq!(status, 401);
    let stale = serde_json::to_vec(&transcript(20 * 60)).unwrap();
    let (status, answer) = post_tawk(&server, &stale, Some(&tawk_signature(TAWK_SECRET, &stale)), "evt-6").await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["msg"].as_str().unwrap().contains("older than"), "{answer}");
    // A body changed after signing does not pass either.
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'6').unwrap();
    tampered[at] = b'1';
    let (status, _) = post_tawk(&server, &tampered, Some(&signature), "evt-7").await;
    assert_eq!(status, 401);

    let log = pushes(&server).await;
    assert_eq!(log.len(), before + 4);
    let rejected = log.iter().find(|p| p["id"] == json!(rejected_id)).unwrap();
    assert_eq!(rejected["outcome"], "rejected");
    assert_eq!(rejected["body"], json!(String::from_utf8(body.clone()).unwrap()), "kept byte for byte");
    let (_, lead) = server.get(&format!("/api/v1/leads/{lead_id}")).await;
    assert_eq!(lead["messages"].as_array().unwrap().len(), 3, "rejected bodies changed nothing");

    // The EasyLiao source beside it still wants its token.
    let (status, _) = server.push_json(&common::card("03000000013100635537156211190001")).await;
    assert_eq!(status, 200);
}
