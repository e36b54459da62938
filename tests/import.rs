//! `xiansuo import`: JSON, NDJSON and CSV files through the push decoder, recorded like pushes,
//! read back through the API of the real binary.

mod common;

use common::{Options, Server, card};
use reqwest::StatusCode;
use serde_json::{Value, json};

const CONFIG: &str = "[sources.easyliao]\naccept_types = [\"转线索\"]\n";

async fn server() -> Server {
    Server::start_with(Options { config: Some(CONFIG.into()), ..Options::default() }).await
}

/// Runs `xiansuo import` against the server's database; returns (success, stdout).
fn import(server: &Server, file: &str, contents: &[u8], extra: &[&str]) -> (bool, String) {
    let (code, out) = import_status(server, file, contents, extra);
    assert!(code <= 1, "{out}");
    (code == 0, out)
}

fn import_status(server: &Server, file: &str, contents: &[u8], extra: &[&str]) -> (i32, String) {
    let path = server.dir.join(file);
    std::fs::write(&path, contents).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
        .arg("import")
        .arg(&path)
        .args(["--config"])
        .arg(server.dir.join("xiansuo.toml"))
        .args(extra)
        .env("XIANSUO_DATABASE_URL", server.database_url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.code().unwrap_or(-1), format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
}

async fn lead_of(server: &Server, visitor: &str) -> Value {
    let (status, page) = server.get(&format!("/api/v1/leads?q={visitor}")).await;
    assert_eq!(status, StatusCode::OK);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one lead for {visitor}: {page}");
    items[0].clone()
}

#[tokio::test]
async fn json_and_ndjson_go_through_the_decoder_and_the_push_log() {
    let server = server().await;
    let mut other_type = card("imp-3");
    other_type["type"] = json!("访客名片");
    let mut no_chat = card("imp-2");
    no_chat.as_object_mut().unwrap().remove("chatId");
    // 20-digit ids survive (the decoder's own JSON reader, not f64).
    let body = format!(
        "{{\"data\": [{}, {}, {}]}}",
        card("imp-1").to_string().replace("\"chatId\":\"348027659\"", "\"chatId\":12345678901234567890"),
        no_chat,
        other_type
    );
    let (ok, out) = import(&server, "cards.json", body.as_bytes(), &[]);
    assert!(!ok, "a rejected card makes the exit status 1");
    assert!(out.contains("accepted 1 (1 new leads, 0 updated), ignored 1, rejected 1"), "{out}");
    assert!(out.contains("rejected item 1: ") && out.contains("chatId"), "{out}");
    let lead = lead_of(&server, "imp-1").await;
    assert_eq!(lead["chat_id"], "12345678901234567890");
    assert_eq!(lead["message_count"], 2);
    let (_, pushes) = server.get("/api/v1/pushes").await;
    assert_eq!(pushes["total"], 3, "every card is in the push log");
    let outcomes: Vec<&str> =
        pushes["items"].as_array().unwrap().iter().map(|p| p["outcome"].as_str().unwrap()).collect();
    let mut sorted = outcomes.clone();
    sorted.sort();
    assert_eq!(sorted, ["accepted", "ignored", "rejected"]);

    // NDJSON: one body per line; a later card for the same visitor updates the lead.
    let mut again = card("imp-1");
    again["note"] = json!("第二次导入");
    let ndjson = format!("{}\n\n{}\n{{\"visitorStaticId\": oops}}\n", card("imp-4"), again);
    let (ok, out) = import(&server, "cards.ndjson", ndjson.as_bytes(), &[]);
    assert!(!ok);
    assert!(
        out.contains("NDJSON") && out.contains("accepted 2 (1 new leads, 1 updated), ignored 0, rejected 1"),
        "{out}"
    );
    assert!(out.contains("rejected line 4: the body is not valid JSON"), "{out}");
    assert_eq!(lead_of(&server, "imp-1").await["note"], "第二次导入");
    lead_of(&server, "imp-4").await;

    // One card alone: all accepted, exit 0.
    let (ok, out) = import(&server, "one.json", card("imp-5").to_string().as_bytes(), &["--source", "easyliao"]);
    assert!(ok, "{out}");
    assert!(out.contains("accepted 1 (1 new leads"), "{out}");
    let (code, out) = import_status(&server, "one.json", b"{}", &["--source", "nowhere"]);
    assert_eq!(code, 2);
    assert!(out.contains("no source named \"nowhere\""), "{out}");
}

#[tokio::test]
async fn csv_with_chinese_headers_and_a_mapping_file() {
    let server = server().await;
    let csv = "访客静态ID,公司ID,会话ID,名称,客户电话,市,搜索词,备注,不要\r\n\
               csv-1,88271217,9001,张伟,13800000001,太原市,会计培训,\"多行\n备注\",x\r\n\
               csv-2,88271217,9002,\"李, 娜\",13800000002,深圳市,,,x\r\n\
               ,88271217,9003,无名,,,,,\r\n";
    let mapping = "\"客户电话\" = \"mobile\"\n\"不要\" = \"\"\n";
    std::fs::write(server.dir.join("columns.toml"), mapping).unwrap();
    let map_path = server.dir.join("columns.toml").display().to_string();
    let (ok, out) = import(&server, "leads.csv", csv.as_bytes(), &["--mapping", &map_path]);
    assert!(!ok);
    assert!(out.contains("CSV") && out.contains("accepted 2 (2 new leads, 0 updated), ignored 0, rejected 1"), "{out}");
    assert!(out.contains("rejected line 5: ") && out.contains("visitorStaticId"), "{out}");
    let lead = lead_of(&server, "csv-1").await;
    assert_eq!(lead["name"], "张伟");
    assert_eq!(lead["mobile"], "13800000001");
    assert_eq!(lead["city"], "太原市");
    assert_eq!(lead["keyword"], "会计培训");
    assert_eq!(lead["note"], "多行\n备注");
    assert_eq!(lead["extra"], json!({}), "the dropped column is not kept");
    assert_eq!(lead_of(&server, "csv-2").await["name"], "李, 娜");

    // Excel on Chinese Windows saves GBK; canonical and vendor keys need no mapping.
    let gbk = encoding_rs::GBK.encode("visitor_static_id,companyId,chatId,name,mobile\ncsv-3,1,2,王芳,13900000003\n").0;
    let (ok, out) = import(&server, "gbk.csv", &gbk, &[]);
    assert!(ok, "{out}");
    assert_eq!(lead_of(&server, "csv-3").await["name"], "王芳");

    // A mapping to an unknown key is refused before anything is stored.
    std::fs::write(server.dir.join("bad.toml"), "\"客户电话\" = \"phone\"\n").unwrap();
    let bad = server.dir.join("bad.toml").display().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
        .args(["import", "leads.csv", "--mapping", &bad])
        .current_dir(&server.dir)
        .env("XIANSUO_DATABASE_URL", server.database_url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a canonical key"));
}

// ---------------------------------------------------------------------------------------------
// Issue #11: a file is decoded by the named source's kind, and streamed.

const SOURCES: &str = r#"
[sources.easyliao]
accept_types = ["转线索"]

[sources.landing]
kind = "mapped"
token = "landing-page-token-0123456789"
identity = "/form/phone"
company = "landing"

[sources.landing.map]
"/form/phone" = "mobile"
"/form/name" = "name"
"utm.term" = "keyword"

[sources.qiyu]
kind = "qiyu"
secret = "qiyu-app-secret-0123456789"

[sources.tawk]
kind = "tawk"
secret = "tawk-webhook-secret-123"
"#;

async fn sources_server() -> Server {
    Server::start_with(Options { config: Some(SOURCES.into()), ..Options::default() }).await
}

fn vendor_events(lead: &Value) -> Vec<String> {
    lead["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "vendor_event")
        .map(|e| e["detail"]["text"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_mapped_source_file_goes_through_its_description() {
    let server = sources_server().await;
    let ndjson = [
        json!({ "form": { "phone": "13800000011", "name": "周杰" }, "utm": { "term": "雅思" }, "page": "/ielts" }),
        json!({ "form": { "phone": "13800000012", "name": "吴敏" } }),
        json!({ "form": { "name": "没有电话" } }),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let (ok, out) = import(&server, "landing.ndjson", ndjson.as_bytes(), &["--source", "landing"]);
    assert!(!ok, "the row without its identity is rejected: {out}");
    assert!(
        out.contains("source landing (mapped): accepted 2 (2 new leads, 0 updated), ignored 0, rejected 1"),
        "{out}"
    );
    assert!(out.contains("rejected line 3: ") && out.contains("/form/phone"), "{out}");
    let lead = lead_of(&server, "13800000011").await;
    assert_eq!((lead["source"].as_str(), lead["name"].as_str()), (Some("landing"), Some("周杰")));
    assert_eq!(lead["keyword"], "雅思");
    assert_eq!(lead["company_id"], "landing");
    assert_eq!(lead["extra"]["/page"], "/ielts", "what the map does not name is kept");
    // The same rows as EasyLiao cards would have been rejected: the default is unchanged.
    let (ok, out) = import(&server, "landing2.ndjson", ndjson.as_bytes(), &["--source", "easyliao"]);
    assert!(!ok);
    assert!(out.contains("accepted 0"), "{out}");
}

#[tokio::test]
async fn vendor_files_are_decoded_as_the_vendor_pushes_them() {
    let server = sources_server().await;
    // 七鱼, in its order of events: a session starts, messages, the session ends, the rating.
    let uid = "qiyu-import-uid-7";
    let rows = [
        json!({ "eventType": "SESSION_START", "sessionId": 501, "uid": uid, "staffName": "王老师" }),
        json!({ "uid": uid, "sessionId": 501, "content": "你好，价格多少？", "msgType": "TEXT", "msgId": "im-1", "timeStamp": 1764000000000u64 }),
        json!({ "uid": uid, "sessionId": 501, "content": "电话 13912340007", "msgType": "TEXT", "msgId": "im-2", "timeStamp": 1764000030000u64 }),
        json!({ "eventType": "SESSION_END", "sessionId": 501, "uid": uid, "closeReason": 1 }),
        json!({ "eventType": "EVA_INVITATION", "sessionId": 501, "uid": uid, "evaluation": 4 }),
    ];
    let ndjson = rows.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    let (ok, out) = import(&server, "qiyu.ndjson", ndjson.as_bytes(), &["--source", "qiyu"]);
    assert!(ok, "no signature is asked of an admin's file: {out}");
    assert!(out.contains("source qiyu (qiyu): accepted 2 (1 new leads, 1 updated), ignored 3, rejected 0"), "{out}");
    let lead = lead_of(&server, uid).await;
    assert_eq!(lead["mobile"], "13912340007");
    let (_, detail) = server.get(&format!("/api/v1/leads/{}", lead["id"])).await;
    assert_eq!(detail["messages"].as_array().unwrap().len(), 2);
    // The start came before the lead was known (the log only); the end and the rating reached it.
    assert_eq!(vendor_events(&detail), ["会话结束，结束原因 1", "访客评价 4 星"], "{detail}");

    // Tawk.to: a JSON array of webhook bodies, streamed element by element.
    let chat = "tawk-import-chat-1";
    let array = json!([
        { "event": "chat:start", "chatId": chat, "property": { "id": "site-1" } },
        { "event": "chat:transcript_created", "chatId": chat, "property": { "id": "site-1", "name": "Shop" },
          "chat": { "id": chat, "visitor": { "name": "Ann", "email": "ann@example.com" },
                    "messages": [{ "sender": { "t": "v", "n": "Ann" }, "type": "msg", "msg": "hi [there], {ok}?" }] } },
        { "event": "chat:end", "chatId": chat, "property": { "id": "site-1" } }
    ]);
    let (ok, out) = import(&server, "tawk.json", array.to_string().as_bytes(), &["--source", "tawk"]);
    assert!(ok, "{out}");
    assert!(out.contains("JSON, source tawk (tawk): accepted 1 (1 new leads, 0 updated), ignored 2"), "{out}");
    let lead = lead_of(&server, chat).await;
    assert_eq!((lead["name"].as_str(), lead["site_name"].as_str()), (Some("Ann"), Some("Shop")));
    let (_, detail) = server.get(&format!("/api/v1/leads/{}", lead["id"])).await;
    assert_eq!(detail["messages"][0]["message"], "hi [there], {ok}?", "brackets inside strings are text");
    assert_eq!(vendor_events(&detail), ["会话结束"]);
    assert_eq!(server.get("/api/v1/leads").await.1["total"], 2, "events made no lead");
}

#[tokio::test]
async fn a_large_file_is_streamed_and_every_row_arrives() {
    let server = sources_server().await;
    // Far more rows than the import reads ahead (256) or stores at once (64).
    const ROWS: usize = 10_000;
    let mut file = String::with_capacity(ROWS * 60);
    for i in 0..ROWS {
        file.push_str(&format!("{{\"form\":{{\"phone\":\"139{i:08}\",\"name\":\"n{i}\"}}}}\n"));
        if i % 1000 == 0 {
            file.push('\n');
        }
    }
    let (ok, out) = import(&server, "large.ndjson", file.as_bytes(), &["--source", "landing"]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("accepted {ROWS} ({ROWS} new leads, 0 updated), ignored 0, rejected 0")), "{out}");
    assert_eq!(server.get("/api/v1/leads?source=landing&per_page=1").await.1["total"], ROWS);
    assert_eq!(server.get("/api/v1/pushes?source=landing&per_page=1").await.1["total"], ROWS);
    // A wrapped JSON document is streamed too: its array, element by element.
    let wrapped = format!(
        "{{\"code\": 0, \"data\": [{}]}}",
        (0..3).map(|i| format!("{{\"form\":{{\"phone\":\"137{i:08}\"}}}}")).collect::<Vec<_>>().join(",")
    );
    let (ok, out) = import(&server, "wrapped.json", wrapped.as_bytes(), &["--source", "landing"]);
    assert!(ok && out.contains("accepted 3 (3 new leads"), "{out}");
}
