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
    assert!(answer.get("duplicate").is_none());
    assert_eq!(answer["leads"][0]["created"], true);
    let lead_id = answer["leads"][0]["id"].as_i64().unwrap();

    // Tawk retries the same event (same id, same body): answered as a success, stored once.
    let logged = pushes(&server).await.len();
    let first_push = answer["push_id"].clone();
    let (status, again) = post_tawk(&server, &body, Some(&signature), "evt-2").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["push_id"], first_push);
    assert_eq!(again["leads"][0]["id"], json!(lead_id));
    assert_eq!(again["leads"][0]["created"], false);
    assert_eq!(pushes(&server).await.len(), logged, "the retry is not stored again");
    // A retry whose signature is wrong is still refused.
    let (status, _) = post_tawk(&server, &body, Some(&tawk_signature("x", &body)), "evt-2").await;
    assert_eq!(status, 401);

    let end = serde_json::to_vec(&envelope("chat:end", 0)).unwrap();
    let (status, answer) = post_tawk(&server, &end, Some(&tawk_signature(TAWK_SECRET, &end)), "evt-3").await;
    assert_eq!(status, 200);
    assert_eq!(answer["outcome"], "ignored");
    let end_push = answer["push_id"].clone();
    // Resent: still one timeline entry.
    let (_, again) = post_tawk(&server, &end, Some(&tawk_signature(TAWK_SECRET, &end)), "evt-3").await;
    assert_eq!(again["duplicate"], true, "{again}");

    // The chat's end reached the lead's timeline (the start came before the transcript made the
    // lead known: it is in the push log only); no lead was made of either.
    let (_, lead) = server.get(&format!("/api/v1/leads/{lead_id}")).await;
    let vendor_events: Vec<&Value> =
        lead["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "vendor_event").collect();
    assert_eq!(vendor_events.len(), 1, "{}", lead["timeline"]);
    assert_eq!(vendor_events[0]["detail"]["text"], "会话结束");
    assert_eq!(vendor_events[0]["detail"]["event"], "chat:end");
    assert_eq!(vendor_events[0]["detail"]["push_id"], end_push);
    assert_eq!(vendor_events[0]["user_id"], Value::Null);
    assert_eq!(server.get("/api/v1/leads?source=tawk").await.1["total"], 1);
    let cookie = common::console::sign_in(&server, "admin", &server.admin_password()).await;
    let (_, html) = common::console::get(&server, &cookie, &format!("/leads/{lead_id}")).await;
    assert!(html.contains("Tawk.to: 会话结束"), "the console's timeline: {html}");

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

// ---------------------------------------------------------------------------------------------
// 网易七鱼: checksum = sha1(appSecret + md5(body) hex + time) in the query; success is an empty body.

const QIYU_SECRET: &str = "qiyu-app-secret-0123456789";

fn qiyu_checksum(secret: &str, body: &[u8], time: &str) -> String {
    use sha1::Digest;
    let md5: String = md5::Md5::digest(body).iter().map(|b| format!("{b:02x}")).collect();
    let sha = Sha1::digest(format!("{secret}{md5}{time}").as_bytes());
    sha.iter().map(|b| format!("{b:02x}")).collect()
}

/// Posts as Qiyu does; the status and the answer's text.
async fn post_qiyu(server: &Server, event: &str, body: &Value, secret: &str, ms_ago: i64) -> (u16, String) {
    let body = serde_json::to_vec(body).unwrap();
    let time = (chrono::Utc::now().timestamp_millis() - ms_ago).to_string();
    let checksum = qiyu_checksum(secret, &body, &time);
    let res = server
        .client
        .post(format!("{}/push/qiyu?appKey=app-7&eventType={event}&time={time}&checksum={checksum}", server.base))
        .header("content-type", "application/json;charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn qiyu_pushes_are_checked_answered_empty_and_unioned_by_message_id() {
    qiyu_scenario(Vec::new()).await;
}

/// Issue #8: the same with every push queued (as in a burst): the leads are built later from the
/// stored body and query string (the app key is the lead's company, the event type says what a
/// push is), and the visitors' events reach the leads built before them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn qiyu_pushes_queued_in_a_burst_build_the_same_leads() {
    qiyu_scenario(vec![("XIANSUO_QUEUE_PUSHES_ABOVE".into(), "0".into())]).await;
}

async fn qiyu_scenario(env: Vec<(String, String)>) {
    let config = format!("[sources.easyliao]\n\n[sources.qiyu]\nkind = \"qiyu\"\nsecret = \"{QIYU_SECRET}\"\n");
    let server = Server::start_with(Options { config: Some(config), env, ..Default::default() }).await;
    let now = chrono::Utc::now().timestamp_millis();
    let uid = "crm-user-20261124-0042";
    let start = json!({ "sessionId": 8812345, "uid": uid, "staffId": 301, "staffName": "王老师", "staffType": 0 });
    assert_eq!(post_qiyu(&server, "SESSION_START", &start, QIYU_SECRET, 0).await, (200, String::new()));
    assert_eq!(server.get("/api/v1/leads?source=qiyu").await.1["total"], 0, "a session start makes no lead");

    let msg = |id: &str, content: &str, ms: i64| json!({ "uid": uid, "content": content, "msgType": "TEXT", "msgId": id, "staffId": 301, "staffName": "王老师", "timeStamp": ms });
    assert_eq!(
        post_qiyu(&server, "MSG", &msg("m-1001", "你好，雅思班怎么收费？", now - 60_000), QIYU_SECRET, 0).await.0,
        200
    );
    assert_eq!(
        post_qiyu(&server, "MSG", &msg("m-1002", "我的微信是 lilei_2026", now - 30_000), QIYU_SECRET, 0).await.0,
        200
    );
    // Resent (no answer in time): the same msgId adds nothing.
    assert_eq!(
        post_qiyu(&server, "MSG", &msg("m-1001", "你好，雅思班怎么收费？", now - 60_000), QIYU_SECRET, 0).await.0,
        200
    );
    let session = json!({
        "sessionId": 8812345, "uid": uid, "fromPage": "https://www.example.com/ielts?from=baidu",
        "fromTitle": "雅思培训", "fromIp": "61.135.169.121", "fromType": "web", "foreignId": "u-42",
        "startTime": now - 120_000, "endTime": now, "staffId": 301, "staffName": "王老师"
    });
    assert_eq!(post_qiyu(&server, "SESSION_END", &session, QIYU_SECRET, 0).await, (200, String::new()));
    let end = json!({ "sessionId": 8812345, "uid": uid, "closeReason": 1, "staffName": "王老师" });
    assert_eq!(post_qiyu(&server, "SESSION_END", &end, QIYU_SECRET, 0).await.0, 200);
    // Then the rating, and the visitor's next chat; a stranger's session is kept in the log only.
    let rating = json!({ "sessionId": 8812345, "uid": uid, "evaluation": 5 });
    assert_eq!(post_qiyu(&server, "EVA_INVITATION", &rating, QIYU_SECRET, 0).await, (200, String::new()));
    let next = json!({ "sessionId": 8812399, "uid": uid, "staffId": 302, "staffName": "李老师", "staffType": 0 });
    assert_eq!(post_qiyu(&server, "SESSION_START", &next, QIYU_SECRET, 0).await.0, 200);
    let stranger = json!({ "sessionId": 8812400, "uid": "someone-else", "staffId": 302 });
    assert_eq!(post_qiyu(&server, "SESSION_START", &stranger, QIYU_SECRET, 0).await.0, 200);

    server.wait_until_applied().await;
    let (_, list) = server.get("/api/v1/leads?source=qiyu").await;
    assert_eq!(list["total"], 1, "events make no lead: {list}");
    let id = list["items"][0]["id"].as_i64().unwrap();
    let (_, lead) = server.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(lead["visitor_static_id"], uid);
    assert_eq!(lead["company_id"], "app-7", "the app key in the query string");
    assert_eq!(lead["first_url"], "https://www.example.com/ielts?from=baidu");
    assert_eq!(lead["ip"], "61.135.169.121");
    assert_eq!(lead["weixin"], "lilei_2026", "the WeChat id the visitor typed: {lead}");
    let messages = lead["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages.iter().all(|m| m["sender"] == "visitor"));
    assert_eq!(messages[0]["recorder_id"], "m-1001");

    // The events of the known visitor, in the timeline in the order they came.
    let texts: Vec<&str> = lead["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "vendor_event")
        .map(|e| e["detail"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["会话结束（客服 王老师），结束原因 1", "访客评价 5 星", "会话开始（客服 李老师）"], "{lead}");
    let cookie = common::console::sign_in(&server, "admin", &server.admin_password()).await;
    let (_, html) = common::console::get(&server, &cookie, &format!("/leads/{id}")).await;
    assert!(html.contains("七鱼: 访客评价 5 星"), "the console's timeline: {html}");

    let (_, log) = server.get("/api/v1/pushes?source=qiyu").await;
    assert_eq!(log["total"], 8, "the resent message (same msgId) is stored once: {log}");
    // A wrong secret, a stale time (6 minutes), no checksum: 401 and kept as rejected.
    let (status, text) = post_qiyu(&server, "MSG", &msg("m-1003", "x", now), "wrong-secret", 0).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("checksum"), "{text}");
    let (status, text) = post_qiyu(&server, "MSG", &msg("m-1004", "x", now), QIYU_SECRET, 6 * 60_000).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("older than 5 minutes"), "{text}");
    let unsigned = server
        .client
        .post(format!("{}/push/qiyu?eventType=MSG", server.base))
        .body(serde_json::to_vec(&msg("m-1005", "x", now)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let (_, log) = server.get("/api/v1/pushes?source=qiyu&outcome=rejected").await;
    assert_eq!(log["total"], 3, "{log}");
    assert!(log["items"][0]["error"].as_str().unwrap().starts_with("unauthenticated: "));
    let (_, lead) = server.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(lead["messages"].as_array().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 美洽: Meiqia-Signature (or Meiqia-Sign) = sha1(body + secret), plain.

const MEIQIA_SECRET: &str = "meiqia-webhook-secret-42";

fn meiqia_sign(body: &[u8], secret: &str) -> String {
    use sha1::Digest;
    let mut sha = Sha1::new();
    sha.update(body);
    sha.update(secret.as_bytes());
    sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

async fn post_meiqia(server: &Server, body: &Value, header: &str, secret: &str) -> (u16, Value) {
    let body = serde_json::to_vec(body).unwrap();
    let req = server
        .client
        .post(format!("{}/push/meiqia", server.base))
        .header("content-type", "application/json; charset=utf-8")
        .header(header, meiqia_sign(&body, secret))
        .body(body);
    let (status, answer) = common::answer(req.send().await.unwrap()).await;
    (status.as_u16(), answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn meiqia_webhooks_are_checked_and_clients_become_leads() {
    let config = format!("[sources.easyliao]\n\n[sources.meiqia]\nkind = \"meiqia\"\nsecret = \"{MEIQIA_SECRET}\"\n");
    let server = Server::start_with(Options { config: Some(config), ..Default::default() }).await;
    let now = chrono::Utc::now().timestamp();
    let envelope = |id: &str, event: &str, at: i64, key: &str, object: Value| {
        let mut v = json!({ "id": id, "event": event, "enterprise_token": "ent-token-secret-xyz", "created_at": at });
        v[key] = object;
        v
    };
    let created = envelope(
        "req-1",
        "client.created",
        now,
        "client",
        json!({ "id": 5550001, "name": "韩梅梅", "attrs": { "email": "hmm@example.com" } }),
    );
    let (status, answer) = post_meiqia(&server, &created, "Meiqia-Sign", MEIQIA_SECRET).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["leads"][0]["created"], true);
    let lead_id = answer["leads"][0]["id"].as_i64().unwrap();
    let updated = envelope(
        "req-2",
        "client.updated",
        now,
        "client",
        json!({ "id": 5550001, "attrs": { "tel": "13800138000", "weixin": "hanmm88" } }),
    );
    let (status, answer) = post_meiqia(&server, &updated, "Meiqia-Signature", MEIQIA_SECRET).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["leads"][0]["id"], json!(lead_id));
    // The same request resent: same lead, nothing new.
    assert_eq!(post_meiqia(&server, &updated, "Meiqia-Signature", MEIQIA_SECRET).await.1["leads"][0]["created"], false);
    let conversation = envelope(
        "req-3",
        "conversation.created",
        now,
        "conversation",
        json!({
            "id": 777001, "client_id": 5550001,
            "messages": [
                { "id": 91, "from": "client", "content": "请问周末有课吗", "created_at": now - 60 },
                { "id": 92, "from": "agent", "agent_id": 12, "content": "有的，周六上午", "created_at": now - 30 }
            ]
        }),
    );
    assert_eq!(post_meiqia(&server, &conversation, "Meiqia-Signature", MEIQIA_SECRET).await.0, 200);
    let closed = envelope("req-4", "conversation.closed", now, "conversation", json!({ "id": 777001 }));
    let (status, answer) = post_meiqia(&server, &closed, "Meiqia-Signature", MEIQIA_SECRET).await;
    assert_eq!((status, answer["outcome"].clone()), (200, json!("ignored")), "{answer}");

    let (_, lead) = server.get(&format!("/api/v1/leads/{lead_id}")).await;
    assert_eq!(lead["name"], "韩梅梅");
    assert_eq!(lead["email"], "hmm@example.com");
    assert_eq!(lead["tel"], "13800138000");
    assert_eq!(lead["weixin"], "hanmm88");
    let senders: Vec<&str> =
        lead["messages"].as_array().unwrap().iter().map(|m| m["sender"].as_str().unwrap()).collect();
    assert_eq!(senders, ["visitor", "staff"]);
    assert!(!lead.to_string().contains("ent-token-secret-xyz"), "the enterprise token is not kept on the lead");

    let (status, _) = post_meiqia(&server, &updated, "Meiqia-Signature", "another-secret").await;
    assert_eq!(status, 401);
    let stale = envelope("req-5", "client.updated", now - 2 * 86400, "client", json!({ "id": 5550001, "name": "x" }));
    let (status, answer) = post_meiqia(&server, &stale, "Meiqia-Signature", MEIQIA_SECRET).await;
    assert_eq!(status, 401, "{answer}");
    let (_, lead) = server.get(&format!("/api/v1/leads/{lead_id}")).await;
    assert_eq!(lead["name"], "韩梅梅", "a rejected body changed nothing");
    // One inbox: the EasyLiao lead and the Meiqia lead, and the source filter tells them apart.
    server.push_json(&common::card("03000000013100635537156211190001")).await;
    assert_eq!(server.get("/api/v1/leads").await.1["total"], 2);
    assert_eq!(server.get("/api/v1/leads?source=meiqia").await.1["total"], 1);
}

// ---------------------------------------------------------------------------------------------
// kind = "mapped": a source described in the configuration, and `xiansuo source test`.

const FORM_SECRET: &str = "form-signing-secret-77";

fn form_config() -> String {
    format!(
        r#"
[sources.easyliao]

[sources.form]
kind = "mapped"
secret = "{FORM_SECRET}"
identity = "/lead/id"
messages = "/lead/chat"
visitor_values = ["customer"]
answer = {{ status = 200, content_type = "text/plain", body = "success" }}
signature = {{ header = "X-Form-Signature", algorithm = "hmac-sha256", encoding = "base64", signed = ["timestamp", "body"], timestamp_header = "X-Form-Timestamp", prefix = "sha256=" }}

[sources.form.map]
"/lead/contact/phone" = "mobile"
"lead.name" = "name"
"/utm/term" = "keyword"

[sources.form.message_keys]
"text" = "message"
"id" = "recorder_id"
"role" = "sender"

[sources.landing]
kind = "mapped"
token = "landing-page-token-0123456789"
identity = "phone"

[sources.landing.map]
"phone" = "mobile"
"city" = "city"
"#
    )
}

fn form_signature(timestamp: &str, body: &[u8]) -> String {
    use base64::Engine;
    let mut mac = Hmac::<sha2_011::Sha256>::new_from_slice(FORM_SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(body);
    format!("sha256={}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mapped_sources_are_described_in_the_configuration_and_tried_with_source_test() {
    let server = Server::start_with(Options { config: Some(form_config()), ..Default::default() }).await;
    let body = serde_json::to_vec(&json!({
        "lead": {
            "id": "F-20261124-0007", "name": "赵六", "page": "https://www.example.com/landing/ielts",
            "contact": { "phone": "+86 138-0013-9000" },
            "chat": [ { "id": "c1", "role": "customer", "text": "想报名周末班" }, { "id": "c2", "role": "agent", "text": "好的" } ]
        },
        "utm": { "term": "雅思周末班" }
    }))
    .unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    let post = |sig: String, ts: String, body: Vec<u8>| {
        server
            .client
            .post(format!("{}/push/form", server.base))
            .header("content-type", "application/json")
            .header("x-form-timestamp", ts)
            .header("x-form-signature", sig)
            .body(body)
            .send()
    };
    let res = post(form_signature(&ts, &body), ts.clone(), body.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "success", "the configured answer");
    let (_, list) = server.get("/api/v1/leads?source=form").await;
    assert_eq!(list["total"], 1, "{list}");
    let id = list["items"][0]["id"].as_i64().unwrap();
    let (_, lead) = server.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(lead["visitor_static_id"], "F-20261124-0007");
    assert_eq!(lead["company_id"], "form", "the source's name by default");
    assert_eq!(lead["mobile"], "+86 138-0013-9000");
    assert_eq!(lead["name"], "赵六");
    assert_eq!(lead["keyword"], "雅思周末班");
    assert_eq!(
        lead["extra"]["/lead/page"], "https://www.example.com/landing/ielts",
        "unmapped keys go to extra: {lead}"
    );
    let senders: Vec<&str> =
        lead["messages"].as_array().unwrap().iter().map(|m| m["sender"].as_str().unwrap()).collect();
    assert_eq!(senders, ["visitor", "staff"]);

    // A wrong secret, a stale time stamp: 401.
    let res = post(form_signature(&ts, b"other body"), ts.clone(), body.clone()).await.unwrap();
    assert_eq!(res.status(), 401);
    let old = (chrono::Utc::now().timestamp() - 3600).to_string();
    let res = post(form_signature(&old, &body), old, body.clone()).await.unwrap();
    assert_eq!(res.status(), 401);

    // A landing-page form with a token: a form body, no signature.
    let res = server
        .client
        .post(format!("{}/push/landing?token=landing-page-token-0123456789", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("phone=13911112222&city=%E5%A4%AA%E5%8E%9F&utm_campaign=autumn")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, list) = server.get("/api/v1/leads?source=landing").await;
    assert_eq!(list["items"][0]["mobile"], "13911112222");
    assert_eq!(list["items"][0]["city"], "太原");
    let res = server.client.post(format!("{}/push/landing", server.base)).body("phone=1").send().await.unwrap();
    assert_eq!(res.status(), 401, "a mapped source without a signature wants its token");

    // `xiansuo source test` shows what the body becomes, and checks a signature; stores nothing.
    let file = server.dir.join("form-body.json");
    std::fs::write(&file, &body).unwrap();
    let config = server.dir.join("xiansuo.toml");
    let run = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["source".into(), "test".into(), "form".into(), file.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--config".to_string(), config.display().to_string()]);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
            .args(&args)
            .env("XIANSUO_DATABASE_URL", server.database_url())
            .env_remove("XIANSUO_CONFIG")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let ts = chrono::Utc::now().timestamp().to_string();
    let (code, out) = run(&[
        "--header",
        &format!("X-Form-Timestamp: {ts}"),
        "--header",
        &format!("X-Form-Signature: {}", form_signature(&ts, &body)),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("signature: valid"), "{out}");
    assert!(out.contains("mobile = +86 138-0013-9000") && out.contains("keyword = 雅思周末班"), "{out}");
    assert!(out.contains("/lead/page = https://www.example.com/landing/ielts"), "{out}");
    assert!(out.contains("[c1] visitor") && out.contains("[c2] staff"), "{out}");
    let (_, out) = run(&["--header", "X-Form-Timestamp: 1", "--header", "X-Form-Signature: sha256=AAAA"]);
    assert!(out.contains("signature: REFUSED (401)"), "{out}");
    std::fs::write(&file, b"{\"lead\": {\"name\": \"no id\"}}").unwrap();
    let (code, out) = run(&[]);
    assert_eq!(code, Some(1));
    assert!(out.contains("error: the body has no value at /lead/id"), "{out}");
    assert_eq!(server.get("/api/v1/leads?source=form").await.1["total"], 1, "source test stored nothing");
}
