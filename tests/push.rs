//! The push endpoint, end to end: the real binary on a random port, real HTTP, a real SQLite
//! file.

mod common;

use common::{ADMIN_TOKEN, Options, PUSH_TOKEN, Server, card, fixture};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn lead_of(server: &Server, answer: &Value) -> Value {
    let id = answer["leads"][0]["id"].as_i64().expect("lead id in the answer");
    let (status, lead) = server.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{lead}");
    lead
}

async fn push_count(server: &Server) -> u64 {
    server.get("/api/v1/pushes").await.1["total"].as_u64().expect("total")
}

#[tokio::test]
async fn accepted_card_is_answered_and_readable_at_once() {
    let server = Server::start().await;
    let (status, answer) = server.push_json(&card("01000000013100635537156211197954")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["code"], 0);
    assert_eq!(answer["msg"], "ok");
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["ignored"], 0);
    assert_eq!(answer["leads"][0]["created"], true);

    let lead = lead_of(&server, &answer).await;
    assert_eq!(lead["visitor_static_id"], "01000000013100635537156211197954");
    assert_eq!(lead["company_id"], "88271217");
    assert_eq!(lead["name"], "太原市6283");
    assert_eq!(lead["chat_url"], "http://m.xxx.com/zt/hbtd.html?sgyd1&PP&YS-YHJY&SG1-p-hb&key=weizhi");
    assert_eq!(lead["create_time"], "2020-03-28T05:59:02+08:00");
    assert_eq!(lead["status"], "new");
    assert_eq!(lead["source"], "easyliao");
    assert_eq!(lead["chat_ids"], json!(["348027659"]));
    assert_eq!(lead["push_count"], 1);
    assert_eq!(lead["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(lead["messages"][0]["sender"], "visitor");
    assert_eq!(lead["messages"][1]["sender"], "staff");
    assert_eq!(lead["messages"][0]["recorder_id"], "1854094590");
    assert_eq!(lead["pushes"][0]["outcome"], "accepted");

    let (_, list) = server.get("/api/v1/leads").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], lead["id"]);
}

#[tokio::test]
async fn tokens_are_checked_and_refused_bodies_are_not_stored() {
    let server = Server::start().await;
    let body = card("v-auth").to_string();
    let url = format!("{}/push/easyliao", server.base);

    let no_token = server.client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let wrong =
        server.client.post(format!("{url}?token=wrong-token-0123456789")).body(body.clone()).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong_header = server.client.post(&url).header("X-Push-Token", "nope").body(body.clone()).send().await.unwrap();
    assert_eq!(wrong_header.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(push_count(&server).await, 0, "a body without a valid token must not be stored");

    let unknown = server
        .client
        .post(format!("{}/push/other?token={PUSH_TOKEN}", server.base))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let by_header =
        server.client.post(&url).header("X-Push-Token", PUSH_TOKEN).body(body.clone()).send().await.unwrap();
    assert_eq!(by_header.status(), StatusCode::OK);
    let by_bearer = server.client.post(&url).bearer_auth(PUSH_TOKEN).body(body).send().await.unwrap();
    assert_eq!(by_bearer.status(), StatusCode::OK);
    assert_eq!(push_count(&server).await, 2);
}

#[tokio::test]
async fn the_note_example_as_printed_is_refused_with_line_and_column_and_kept() {
    let server = Server::start().await;
    let printed = fixture("note-example-as-printed.json");
    let (status, answer) = server.push(printed.clone(), Some("application/json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let msg = answer["msg"].as_str().unwrap();
    assert!(msg.contains("line 3, column 1"), "{msg}");
    assert!(msg.contains("typographic quote"), "{msg}");
    assert_eq!(answer["code"], 400);

    let (_, pushes) = server.get("/api/v1/pushes?outcome=rejected").await;
    assert_eq!(pushes["total"], 1);
    assert_eq!(pushes["items"][0]["id"], answer["push_id"]);
    assert_eq!(pushes["items"][0]["body"].as_str().unwrap().as_bytes(), printed.as_slice());
    assert!(pushes["items"][0]["error"].as_str().unwrap().contains("line 3, column 1"));
}

#[tokio::test]
async fn the_note_example_repaired_is_accepted() {
    let server = Server::start().await;
    let (status, answer) = server.push(fixture("note-example-repaired.json"), Some("application/json")).await;
    // The example has no companyId or chatId: the vendor's note marks both required.
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer["msg"].as_str().unwrap().contains("companyId"), "{answer}");

    let mut text = String::from_utf8(fixture("note-example-repaired.json")).unwrap();
    text = text.replacen('{', "{\"companyId\":\"88271217\",\"chatId\":348027659,", 1);
    let (status, answer) = server.push(text, Some("application/json")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let lead = lead_of(&server, &answer).await;
    assert_eq!(lead["ext_column_1"], "223.104.14.58", "a later empty duplicate must not erase");
    assert_eq!(lead["first_url"], "http://m.tyomick.com/zt/hbtd.html?sgyd1&PP&YS-YHJY&SG1-p-hb&key=weizhi");
    assert_eq!(lead["school_name"], Value::Null);
    let messages = lead["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    let senders: Vec<&str> = messages.iter().map(|m| m["sender"].as_str().unwrap()).collect();
    assert_eq!(senders, ["visitor", "staff", "visitor", "visitor"]);
    assert_eq!(messages[3]["message"], "15804892563");
    assert_eq!(lead["visitor_message_count"], 3);
    // The number the visitor typed, found in the chat (the card's own mobile differs).
    assert_eq!(
        lead["contacts_found_in_chat"],
        json!([{"kind": "mobile", "value": "15804892563", "recorder_id": "1854099156"}])
    );
}

#[tokio::test]
async fn missing_required_fields_are_named_with_the_batch_item() {
    let server = Server::start().await;
    let mut bad = card("v-missing");
    bad.as_object_mut().unwrap().remove("chatId");
    let (status, answer) = server.push_json(&bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer["msg"].as_str().unwrap().contains("chatId"), "{answer}");

    let batch = json!([card("v-ok"), card("v-ok-2"), bad]);
    let (status, answer) = server.push_json(&batch).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let msg = answer["msg"].as_str().unwrap();
    assert!(msg.contains("item 2") && msg.contains("chatId"), "{msg}");
    // All or nothing: the valid cards of a refused batch are not stored (the body is, for replay).
    assert_eq!(server.get("/api/v1/leads").await.1["total"], 0);
    assert_eq!(server.get("/api/v1/pushes?outcome=rejected").await.1["total"], 2);
}

#[tokio::test]
async fn oversized_bodies_get_413_and_the_refusal_is_logged() {
    let server = Server::start_with(Options {
        env: vec![("XIANSUO_MAX_BODY_BYTES".into(), "1000".into())],
        ..Default::default()
    })
    .await;
    let mut big = card("v-big");
    big["note"] = json!("很".repeat(2000));
    let (status, answer) = server.push_json(&big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(answer["msg"].as_str().unwrap().contains("1000 bytes"));
    let (_, pushes) = server.get("/api/v1/pushes?outcome=rejected").await;
    assert_eq!(pushes["total"], 1);
    let (status, _) = server.push_json(&card("v-small")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn repeats_are_idempotent_and_transcripts_union() {
    let server = Server::start().await;
    let first = card("v-repeat");
    let (_, a1) = server.push_json(&first).await;
    let (status, a2) = server.push_json(&first).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(a1["leads"][0]["id"], a2["leads"][0]["id"]);
    assert_eq!(a2["leads"][0]["created"], false);

    let mut second = card("v-repeat");
    second["currentChatJsonDetail"] = json!([
        {"chat_id": 348027659, "create_time": "2020-04-13 16:49:54", "from_id": "hkzyzs-kf", "message": "您好，请问有什么可以帮您", "recorder_id": 1854098812},
        {"chat_id": 348027700, "create_time": "2020-04-14 09:00:00", "from_id": "v-repeat", "message": "我的手机号是15804892563", "recorder_id": "433328278485408768"}
    ]);
    server.push_json(&second).await;
    let lead = lead_of(&server, &a1).await;
    let ids: Vec<&str> =
        lead["messages"].as_array().unwrap().iter().map(|m| m["recorder_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1854094590", "1854098812", "433328278485408768"], "each message once, in time order");
    assert_eq!(lead["push_count"], 3);
    assert_eq!(lead["message_count"], 3);
    assert_eq!(lead["chat_ids"], json!(["348027659", "348027700"]));
    assert_eq!(server.get("/api/v1/leads").await.1["total"], 1);
}

#[tokio::test]
async fn an_empty_value_never_erases_a_stored_one() {
    let server = Server::start().await;
    let mut first = card("v-erase");
    first["门店"] = json!("一号店");
    let (_, a1) = server.push_json(&first).await;
    let update = json!({
        "visitorStaticId": "v-erase", "companyId": "88271217", "chatId": "348027659",
        "mobile": "", "qq": null, "name": "王女士", "门店": "", "city": "  ", "editTime": "2020-03-29 10:00:00"
    });
    let (status, a2) = server.push_json(&update).await;
    assert_eq!(status, StatusCode::OK, "{a2}");
    let lead = lead_of(&server, &a1).await;
    assert_eq!(lead["mobile"], "13355556666");
    assert_eq!(lead["qq"], "6666666");
    assert_eq!(lead["city"], "太原市");
    assert_eq!(lead["name"], "王女士", "a non-empty value replaces");
    assert_eq!(lead["extra"]["门店"], "一号店");
    assert_eq!(lead["edit_time"], "2020-03-29T10:00:00+08:00");
    assert_eq!(lead["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn batches_in_every_wrapping() {
    let server = Server::start().await;
    for (i, body) in [
        json!([card("b-1"), card("b-2")]),
        json!({"data": [card("b-3"), card("b-4")]}),
        json!({"code": 0, "records": [card("b-5")]}),
        json!({"items": [card("b-6")]}),
    ]
    .iter()
    .enumerate()
    {
        let (status, answer) = server.push_json(body).await;
        assert_eq!(status, StatusCode::OK, "body {i}: {answer}");
    }
    assert_eq!(server.get("/api/v1/leads").await.1["total"], 6);
    let (status, answer) = server.push_json(&json!([])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
}

#[tokio::test]
async fn form_and_multipart_bodies() {
    let server = Server::start().await;
    let transcript = json!([{"recorder_id": "1", "from_id": "f-1", "message": "在吗 有优惠吗", "create_time": "2020-04-13 16:49:47"}]).to_string();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("visitorStaticId", "f-1")
        .append_pair("companyId", "88271217")
        .append_pair("chatId", "9")
        .append_pair("name", "赵 先生")
        .append_pair("currentChatJsonDetail", &transcript)
        .finish();
    assert!(form.contains('+'), "a space is sent as + like Java's URLEncoder");
    let (status, answer) = server.push(form.clone(), Some("application/x-www-form-urlencoded")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let lead = lead_of(&server, &answer).await;
    assert_eq!(lead["name"], "赵 先生");
    assert_eq!(lead["messages"][0]["message"], "在吗 有优惠吗");
    assert_eq!(lead["messages"][0]["sender"], "visitor");

    // No Content-Type at all: sniffed.
    let (status, answer) = server.push(form.replace("f-1", "f-2"), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let multipart = format!(
        "--B0undary\r\nContent-Disposition: form-data; name=\"visitorStaticId\"\r\n\r\nm-1\r\n--B0undary\r\nContent-Disposition: form-data; name=\"companyId\"\r\n\r\n88271217\r\n--B0undary\r\nContent-Disposition: form-data; name=\"chatId\"\r\n\r\n10\r\n--B0undary\r\nContent-Disposition: form-data; name=\"currentChatJsonDetail\"\r\n\r\n{transcript}\r\n--B0undary--\r\n"
    );
    let (status, answer) = server.push(multipart, Some("multipart/form-data; boundary=B0undary")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let lead = lead_of(&server, &answer).await;
    assert_eq!(lead["visitor_static_id"], "m-1");
    assert_eq!(lead["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn stored_bodies_are_byte_for_byte() {
    let server = Server::start().await;
    // Odd spacing, escaped slashes, a raw newline in a value, and a GBK body that is not UTF-8.
    let utf8 = "{ \"visitorStaticId\" : \"bb-1\",\"companyId\":1,\"chatId\":433328278485408768,\n\"note\":\"第一行\n第二行\",\"chatURL\":\"http:\\/\\/m.x.com\\/a\"  }\r\n".as_bytes().to_vec();
    let (status, a1) = server.push(utf8.clone(), Some("text/plain")).await;
    assert_eq!(status, StatusCode::OK, "{a1}");
    let (gbk, _, _) = encoding_rs::GBK
        .encode("{\"visitorStaticId\":\"bb-2\",\"companyId\":\"1\",\"chatId\":\"2\",\"name\":\"张三\"}");
    let gbk = gbk.into_owned();
    let (status, a2) = server.push(gbk.clone(), Some("application/json; charset=GBK")).await;
    assert_eq!(status, StatusCode::OK, "{a2}");

    let lead = lead_of(&server, &a1).await;
    assert_eq!(lead["chat_id"], "433328278485408768", "long ids keep their digits");
    assert_eq!(lead["note"], "第一行\n第二行");
    assert_eq!(lead["chat_url"], "http://m.x.com/a");
    assert_eq!(lead_of(&server, &a2).await["name"], "张三");

    let (_, pushes) = server.get("/api/v1/pushes").await;
    let items = pushes["items"].as_array().unwrap();
    let by_id = |id: &Value| items.iter().find(|p| &p["id"] == id).unwrap().clone();
    assert_eq!(by_id(&a1["push_id"])["body"].as_str().unwrap().as_bytes(), utf8.as_slice());
    use base64::Engine;
    let b64 = by_id(&a2["push_id"])["body_base64"].as_str().unwrap().to_string();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(b64).unwrap(), gbk);

    // And in the database itself.
    assert_eq!(server.stored_body(a2["push_id"].as_i64().unwrap()).await, gbk);
    assert_eq!(server.stored_body(a1["push_id"].as_i64().unwrap()).await, utf8);
}

#[tokio::test]
async fn type_filter_ignores_and_replay_applies_a_config_change() {
    let config = format!("[sources.easyliao]\ntoken = \"{PUSH_TOKEN}\"\naccept_types = [\"转线索\"]\n");
    let server = Server::start_with(Options {
        config: Some(config),
        fixed_tokens: false,
        env: vec![("XIANSUO_ADMIN_TOKEN".into(), ADMIN_TOKEN.into())],
        ..Default::default()
    })
    .await;

    let mut other = card("t-1");
    other["type"] = json!("普通名片");
    let (status, answer) = server.push_json(&other).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["ignored"], 1);
    assert_eq!(answer["accepted"], 0);
    assert_eq!(answer["outcome"], "ignored");
    let mut lead_card = card("t-2");
    lead_card["type"] = json!("转线索");
    let (_, answer) = server.push_json(&lead_card).await;
    assert_eq!(answer["accepted"], 1);
    assert_eq!(server.get("/api/v1/leads").await.1["total"], 1);

    // The customer renamed the visitor id field in the vendor's back office.
    let renamed = json!({"访客编号": "t-3", "companyId": "1", "chatId": "2", "客户手机": "13912345678"});
    let (status, rejected) = server.push_json(&renamed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let rejected_id = rejected["push_id"].as_i64().unwrap();
    let ignored_id = server.get("/api/v1/pushes?outcome=ignored").await.1["items"][0]["id"].as_i64().unwrap();

    let fixed = format!(
        "[sources.easyliao]\ntoken = \"{PUSH_TOKEN}\"\n[sources.easyliao.field_map]\n\"访客编号\" = \"visitor_static_id\"\n\"客户手机\" = \"mobile\"\n"
    );
    let server = server.restart(Some(fixed));
    let (status, replayed) = server.post(&format!("/api/v1/pushes/{rejected_id}/replay")).await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["outcome"], "accepted");
    assert_eq!(replayed["leads"][0]["created"], true);
    let lead = lead_of(&server, &replayed).await;
    assert_eq!(lead["visitor_static_id"], "t-3");
    assert_eq!(lead["mobile"], "13912345678");

    let (_, replayed) = server.post(&format!("/api/v1/pushes/{ignored_id}/replay")).await;
    assert_eq!(replayed["outcome"], "accepted", "without accept_types every type is accepted");
    let (_, entry) = server.get("/api/v1/pushes?outcome=accepted").await;
    let entry = entry["items"].as_array().unwrap().iter().find(|p| p["id"] == ignored_id).unwrap().clone();
    assert_eq!(entry["replay_count"], 1);
    assert!(entry["replayed_at"].is_string());
    assert_eq!(server.get("/api/v1/leads").await.1["total"], 3);

    let (status, _) = server.post("/api/v1/pushes/999999/replay").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_pushes_share_commits_and_lose_nothing() {
    let server = Server::start().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = server.client.clone();
        let url = server.push_url("easyliao");
        // Every fourth push repeats one visitor, with a message of its own.
        let visitor = if i % 4 == 0 { "same-visitor".to_string() } else { format!("v-{i}") };
        let mut body = card(&visitor);
        body["currentChatJsonDetail"] =
            json!([{"recorder_id": format!("r-{i}"), "from_id": visitor, "message": format!("消息{i}")}]);
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    // Pushes answered `queued` in the burst get their leads right after.
    server.wait_until_applied().await;
    let (_, list) = server.get("/api/v1/leads?per_page=200").await;
    assert_eq!(list["total"], 151);
    let same = list["items"].as_array().unwrap().iter().find(|l| l["visitor_static_id"] == "same-visitor").unwrap();
    assert_eq!(same["push_count"], 50);
    assert_eq!(same["message_count"], 50);
    assert_eq!(push_count(&server).await, 200);
}

#[tokio::test]
async fn nul_characters_are_stored_on_every_backend() {
    let server = Server::start().await;
    let body = "{\"visitorStaticId\":\"nul-1\",\"companyId\":\"1\",\"chatId\":\"2\",\"name\":\"a\\u0000b\",\"k\\u0000\":\"v\"}";
    let (status, answer) = server.push(body, Some("application/json")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let lead = lead_of(&server, &answer).await;
    assert_eq!(lead["name"], "a\u{FFFD}b");
    assert_eq!(lead["extra"]["k\u{FFFD}"], "v");
    assert_eq!(server.stored_body(answer["push_id"].as_i64().unwrap()).await, body.as_bytes());

    // A rejected body whose error message quotes a NUL is kept too.
    let (status, answer) = server.push("{\"a\u{0}b\" 1}", Some("application/json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["push_id"].is_i64(), "{answer}");
}

#[tokio::test]
async fn a_number_typed_in_the_chat_fills_an_empty_mobile_and_never_the_agents() {
    let server = Server::start().await;
    let mut first = card("chat-1");
    first.as_object_mut().unwrap().remove("mobile");
    first["currentChatJsonDetail"] = json!([
        {"recorder_id": "1", "from_id": "kf-1", "message": "请问您的联系方式？我们的热线是 13900000000"},
        {"recorder_id": "2", "from_id": "chat-1", "message": "我的手机 158 0489 2563，微信 abc_12345"}
    ]);
    let (_, answer) = server.push_json(&first).await;
    let lead = lead_of(&server, &answer).await;
    assert_eq!(lead["mobile"], "15804892563", "filled from the visitor's message, not staff's hotline");
    assert_eq!(lead["weixin"], "xxxxxx", "the card's own WeChat id stays");
    assert_eq!(lead["found_in_chat"], json!(["mobile"]));
    let (_, list) = server.get("/api/v1/leads?q=15804892563").await;
    assert_eq!(list["total"], 1, "search finds a number found in the chat");

    // The agent enters the number: it replaces the found one and the mark goes.
    let mut second = card("chat-1");
    second["mobile"] = json!("13812345678");
    server.push_json(&second).await;
    let lead = lead_of(&server, &answer).await;
    assert_eq!(lead["mobile"], "13812345678");
    assert_eq!(lead["found_in_chat"], json!([]));

    // A later chat never overwrites what the agent entered.
    let mut third = card("chat-1");
    third.as_object_mut().unwrap().remove("mobile");
    third["currentChatJsonDetail"] =
        json!([{"recorder_id": "3", "from_id": "chat-1", "message": "换个号 13700001111"}]);
    server.push_json(&third).await;
    let lead = lead_of(&server, &answer).await;
    assert_eq!(lead["mobile"], "13812345678");
    assert_eq!(lead["found_in_chat"], json!([]));
}
