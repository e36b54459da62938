//! Contact intelligence over HTTP (issue 5): the push answer and the API name possible
//! duplicates; admins merge (and undo) or dismiss them in the API and the console; the tag
//! dictionary names tags and the inbox filters on them; the score sorts the inbox.

mod common;

use common::console::{api_token_of, client, csrf_of, get, post, sign_in};
use common::{ADMIN_TOKEN, Options, Server, card};
use reqwest::StatusCode;
use serde_json::{Value, json};

const CONFIG: &str = r##"
[sources.easyliao]
[sources.forms]
token = "test-forms-token-0123456789"

[tags.101]
name = "高意向"
colour = "#d4380d"
score = 40

[score]
per_intent_word = 15
"##;

async fn server() -> Server {
    Server::start_with(Options { config: Some(CONFIG.to_string()), ..Options::default() }).await
}

/// A card of another visitor who typed the first visitor's mobile in the chat.
fn same_person_elsewhere(visitor: &str) -> Value {
    json!({
        "visitorStaticId": visitor,
        "companyId": "88271217",
        "chatId": "9001",
        "name": "王",
        "currentChatJsonDetail": [
            {"chat_id": 9001, "from_id": visitor, "message": "我的手机号是", "recorder_id": 1, "type": "RECORD_RECORD"},
            {"chat_id": 9001, "from_id": visitor, "message": "133 5555 6666", "recorder_id": 2, "type": "RECORD_RECORD"},
            {"chat_id": 9001, "from_id": "kf", "message": "好的，稍后联系您", "recorder_id": 3, "type": "RECORD_RECORD"}
        ]
    })
}

/// Pushes the card of `same_person_elsewhere` to the `forms` source.
async fn push_elsewhere(server: &Server, visitor: &str) -> (StatusCode, Value) {
    let url = format!("{}/push/forms?token=test-forms-token-0123456789", server.base);
    let req = client().post(url).json(&same_person_elsewhere(visitor));
    common::answer(req.send().await.expect("push")).await
}

async fn api(
    server: &Server,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client().request(method, format!("{}{path}", server.base)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    common::answer(req.send().await.expect("API request")).await
}

#[tokio::test]
async fn duplicates_across_sources_merge_undo_and_dismiss_over_the_api() {
    let server = server().await;
    let (status, first) = server.push_json(&card("visitor-a")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let a = first["leads"][0]["id"].as_i64().unwrap();
    assert_eq!(first["leads"][0]["duplicates"], json!([]));

    // Another source, another visitor: the mobile typed in the chat matches lead a's card.
    let (status, second) = push_elsewhere(&server, "visitor-b").await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let b = second["leads"][0]["id"].as_i64().unwrap();
    assert_eq!(second["leads"][0]["duplicates"], json!([a]), "the push answer says which lead it may duplicate");

    let (status, lead_b) = server.get(&format!("/api/v1/leads/{b}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lead_b["mobile"], "13355556666", "filled from the chat");
    assert_eq!(lead_b["duplicates"][0]["lead"]["id"], a);
    assert_eq!(lead_b["duplicates"][0]["contacts"], json!([{ "kind": "mobile", "value": "13355556666" }]));
    let (_, dups) = server.get(&format!("/api/v1/leads/{a}/duplicates")).await;
    assert_eq!(dups["items"][0]["lead"]["id"], b);

    // Merging is recorded under a person: the installation's admin token names nobody.
    let (status, refused) = api(
        &server,
        ADMIN_TOKEN,
        reqwest::Method::POST,
        &format!("/api/v1/leads/{a}/merge"),
        Some(json!({ "lead_id": b })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused["msg"].as_str().unwrap().contains("admin user's API token"), "{refused}");

    let admin = sign_in(&server, "admin", &server.admin_password()).await;
    let token = api_token_of(&server, &admin, "admin").await;
    let path = |what: &str, id: i64| format!("/api/v1/leads/{id}/{what}");
    let (status, bad) =
        api(&server, &token, reqwest::Method::POST, &path("merge", a), Some(json!({ "other": b }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert!(bad["msg"].as_str().unwrap().contains("lead_id"), "{bad}");
    let (status, merged) =
        api(&server, &token, reqwest::Method::POST, &path("merge", a), Some(json!({ "lead_id": b }))).await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!((merged["lead_id"].as_i64(), merged["kind"].as_str()), (Some(a), Some("merged")));

    let (_, lead_a) = server.get(&format!("/api/v1/leads/{a}")).await;
    assert_eq!(lead_a["messages"].as_array().unwrap().len(), 5, "both transcripts on the kept lead");
    assert_eq!(lead_a["pushes"].as_array().unwrap().len(), 2);
    assert_eq!(lead_a["duplicates"], json!([]), "a merged lead is no duplicate any more");
    let (_, list) = server.get("/api/v1/leads").await;
    assert_eq!(list["total"], 1, "the merged lead leaves the list");
    let (_, lead_b) = server.get(&format!("/api/v1/leads/{b}")).await;
    assert_eq!(lead_b["merged_into"], a);
    let (status, _) =
        api(&server, &token, reqwest::Method::POST, &path("merge", a), Some(json!({ "lead_id": b }))).await;
    assert_eq!(status, StatusCode::CONFLICT, "merged already");

    let (status, undone) = api(&server, &token, reqwest::Method::POST, &path("unmerge", b), None).await;
    assert_eq!(status, StatusCode::OK, "{undone}");
    let (_, list) = server.get("/api/v1/leads").await;
    assert_eq!(list["total"], 2, "back in the list");
    let (_, lead_a) = server.get(&format!("/api/v1/leads/{a}")).await;
    assert_eq!(lead_a["messages"].as_array().unwrap().len(), 2);
    assert_eq!(lead_a["duplicates"][0]["lead"]["id"], b, "a duplicate again");

    let (status, _) =
        api(&server, &token, reqwest::Method::POST, &path("dismiss-duplicate", a), Some(json!({ "lead_id": b }))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, lead_a) = server.get(&format!("/api/v1/leads/{a}")).await;
    assert_eq!(lead_a["duplicates"], json!([]));
    let (_, again) = push_elsewhere(&server, "visitor-b").await;
    assert_eq!(again["leads"][0]["duplicates"], json!([]), "a dismissed pair is not reported again");

    // An agent's token: no merging, and duplicates only among the leads they may see.
    server.add_user("li", "agent", "li-password-123");
    let agent_token = api_token_of(&server, &admin, "li").await;
    let (status, _) =
        api(&server, &agent_token, reqwest::Method::POST, &path("merge", a), Some(json!({ "lead_id": b }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api(&server, &agent_token, reqwest::Method::POST, &path("unmerge", b), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_agent_never_sees_another_agents_lead_as_a_duplicate() {
    let server = server().await;
    let (_, first) = server.push_json(&card("visitor-a")).await;
    let a = first["leads"][0]["id"].as_i64().unwrap();
    let (_, second) = push_elsewhere(&server, "visitor-b").await;
    let b = second["leads"][0]["id"].as_i64().unwrap();
    server.add_user("li", "agent", "li-password-123");
    server.add_user("wang", "agent", "wang-password-123");
    let admin = sign_in(&server, "admin", &server.admin_password()).await;
    // Lead a goes to wang; li claims lead b.
    let (_, page) = get(&server, &admin, &format!("/leads/{a}")).await;
    let wang_id = common::console::user_id_in_owner_list(&page, "wang");
    let (status, _) =
        post(&server, &admin, &format!("/leads/{a}/owner"), &[("csrf", &csrf_of(&page)), ("owner", &wang_id)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let li = sign_in(&server, "li", "li-password-123").await;
    let (_, page) = get(&server, &li, &format!("/leads/{b}")).await;
    let (status, _) = post(&server, &li, &format!("/leads/{b}/claim"), &[("csrf", &csrf_of(&page))]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let li_token = api_token_of(&server, &admin, "li").await;
    let (status, lead_b) = api(&server, &li_token, reqwest::Method::GET, &format!("/api/v1/leads/{b}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lead_b["duplicates"], json!([]), "wang's lead is not shown to li, even as a duplicate");
    let (status, _) =
        api(&server, &li_token, reqwest::Method::GET, &format!("/api/v1/leads/{a}/duplicates"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = get(&server, &li, &format!("/leads/{b}")).await;
    assert!(!page.contains("id=\"duplicates\""), "no duplicates panel for li");
    let (_, page) = get(&server, &admin, &format!("/leads/{b}")).await;
    assert!(page.contains("id=\"duplicates\""), "the admin sees it");
}

#[tokio::test]
async fn console_merges_and_undoes_and_shows_tags_and_scores() {
    let server = server().await;
    let mut tagged = card("visitor-a");
    tagged["ntagId"] = json!("101");
    tagged["currentChatJsonDetail"][0]["message"] = json!("学费多少？地址在哪");
    let (_, first) = server.push_json(&tagged).await;
    let a = first["leads"][0]["id"].as_i64().unwrap();
    let (_, second) = push_elsewhere(&server, "visitor-b").await;
    let b = second["leads"][0]["id"].as_i64().unwrap();
    let mut named = card("visitor-c");
    named["ntagName"] = json!("回访<b>");
    named["mobile"] = json!("");
    named["qq"] = json!("");
    named["weixin"] = json!("");
    server.push_json(&named).await;

    // The tag dictionary names a bare id, colours it, and the score counts it.
    let (_, lead_a) = server.get(&format!("/api/v1/leads/{a}")).await;
    assert_eq!(
        lead_a["tag"],
        json!({ "key": "101", "id": "101", "name": "高意向", "colour": "#d4380d", "message": null })
    );
    let codes: Vec<&str> =
        lead_a["score_reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["valid_mobile", "visitor_messages", "intent_words", "tag"]);
    assert_eq!(lead_a["score"], 30 + 2 + 20 + 40, "per_intent_word 15 × 3 words capped at 20; the tag's own 40");

    let admin = sign_in(&server, "admin", &server.admin_password()).await;
    let (_, css) = get(&server, &admin, "/assets/tags.css").await;
    assert!(css.contains(".tag.tag-c0 { background: #d4380d;"), "{css}");
    let (_, inbox) = get(&server, &admin, "/?tag=101").await;
    assert!(inbox.contains("<option value=\"101\" selected>高意向</option>"), "the tag filter offers the dictionary");
    assert!(inbox.contains(&format!("data-lead=\"{a}\"")) && !inbox.contains(&format!("data-lead=\"{b}\"")));
    assert!(inbox.contains("class=\"tag tag-c0\""));
    let (_, by_name) = get(&server, &admin, "/?tag=%E5%9B%9E%E8%AE%BF%3Cb%3E").await;
    assert!(by_name.contains("回访&#60;b&#62;") && !by_name.contains("回访<b>"), "a card's tag name is text");
    let (_, by_score) = get(&server, &admin, "/?sort=-score").await;
    let first_row = by_score.split("data-lead=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(first_row, a.to_string(), "the highest score first");

    // The lead page lists the duplicate; the admin merges it from there, and undoes it.
    let (_, page) = get(&server, &admin, &format!("/leads/{a}")).await;
    assert!(page.contains(&format!("data-duplicate=\"{b}\"")), "{page}");
    assert!(page.contains("相同：手机 13355556666"), "the shared contact is named");
    assert!(page.contains("意向词：学费、地址、在哪 +20"), "the score's reasons are shown");
    let csrf = csrf_of(&page);
    let (status, _) =
        post(&server, &admin, &format!("/leads/{a}/merge"), &[("csrf", "wrong"), ("other", &b.to_string())]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "CSRF");
    let (status, _) =
        post(&server, &admin, &format!("/leads/{a}/merge"), &[("csrf", &csrf), ("other", &b.to_string())]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = get(&server, &admin, &format!("/leads/{a}")).await;
    assert!(page.contains(&format!("把线索 #{b} 合并到这里")), "the timeline records the merge");
    assert!(page.contains("133 5555 6666"), "the merged transcript shows");
    let (_, merged_page) = get(&server, &admin, &format!("/leads/{b}")).await;
    assert!(merged_page.contains("id=\"merged-notice\""));
    let (status, _) = post(&server, &admin, &format!("/leads/{b}/unmerge"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = get(&server, &admin, &format!("/leads/{a}")).await;
    assert!(page.contains(&format!("撤销了与线索 #{b} 的合并")));
    assert!(!page.contains("133 5555 6666"));

    // Not the same person: dismissed, the panel is gone on both.
    let (status, _) =
        post(&server, &admin, &format!("/leads/{a}/dismiss"), &[("csrf", &csrf), ("other", &b.to_string())]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = get(&server, &admin, &format!("/leads/{b}")).await;
    assert!(!page.contains("id=\"duplicates\""));
    assert!(page.contains(&format!("确认与线索 #{a} 不是同一人")));

    // Agents see the panel but cannot merge.
    server.add_user("li", "agent", "li-password-123");
    let li = sign_in(&server, "li", "li-password-123").await;
    let (status, _) =
        post(&server, &li, &format!("/leads/{a}/merge"), &[("csrf", &csrf), ("other", &b.to_string())]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn leads_stored_before_the_index_are_indexed_and_rescored() {
    let server = server().await;
    let (_, first) = server.push_json(&card("visitor-a")).await;
    let a = first["leads"][0]["id"].as_i64().unwrap();
    let (_, second) = push_elsewhere(&server, "visitor-b").await;
    let b = second["leads"][0]["id"].as_i64().unwrap();
    let (_, lead_a) = server.get(&format!("/api/v1/leads/{a}")).await;
    assert_eq!(lead_a["score"], 32, "valid mobile 30, one visitor message 2");

    // The database as a release before the index left it.
    server
        .execute_sql(
            "DELETE FROM lead_contacts; DELETE FROM lead_events;
             UPDATE leads SET score = 0, score_reasons = '[]', intent_words = '[]';
             DELETE FROM settings WHERE key = 'contacts_index_v1';",
        )
        .await;
    let (_, lead_a) = server.get(&format!("/api/v1/leads/{a}")).await;
    assert_eq!((lead_a["score"].as_i64(), lead_a["duplicates"].as_array().map(Vec::len)), (Some(0), Some(0)));

    // The first start of this release indexes them in the background.
    let server = server.restart(None);
    let mut found = json!(null);
    for _ in 0..100 {
        let (_, lead_a) = server.get(&format!("/api/v1/leads/{a}")).await;
        if lead_a["duplicates"].as_array().is_some_and(|d| !d.is_empty()) {
            found = lead_a;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(found["duplicates"][0]["lead"]["id"], b, "indexed after the upgrade");
    assert_eq!(found["score"], 32);

    // New weights apply to stored leads with `xiansuo reindex` (while the service runs).
    let config = CONFIG.replace("per_intent_word = 15", "per_intent_word = 15\nvalid_mobile = 50");
    let path = server.dir.join("new-weights.toml");
    std::fs::write(&path, config).unwrap();
    let out = server.cli(&["reindex", "--config", path.to_str().unwrap()]);
    assert!(out.contains("indexed and scored 2 leads"), "{out}");
    let (_, lead_a) = server.get(&format!("/api/v1/leads/{a}")).await;
    assert_eq!(lead_a["score"], 52);
}
