//! The console end to end: a real headless Chromium (Debian's chromium and chromedriver, which
//! ./scripts/test installs) against the real server. Sign-in, a push appearing in the open inbox
//! without a reload, the lead page's transcript and follow-up with its timeline, what an agent
//! may open, and untrusted text rendered inert. Screenshots go to target/test-output/.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::time::{Duration, Instant};

use browser::{Browser, PATIENCE};
use common::{Server, card};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Pushes a card and returns the id of its lead.
async fn push_lead(server: &Server, card: &Value) -> i64 {
    let (status, answer) = server.push_json(card).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["leads"][0]["id"].as_i64().unwrap_or_else(|| panic!("a lead id in {answer}"))
}

fn named_card(visitor: &str, name: &str) -> Value {
    let mut c = card(visitor);
    c["name"] = json!(name);
    c
}

/// Signs in through the login form and checks that the inbox opened.
async fn sign_in(b: &Browser, server: &Server, name: &str, password: &str) {
    b.goto(&server.base, "/login").await;
    b.fill("#name", name).await;
    b.fill("#password", password).await;
    b.submit("#sign-in").await;
    assert_eq!(b.path().await, "/", "signed in as {name}: the inbox");
    assert_eq!(b.text("header .who").await, name);
}

async fn sign_out(b: &Browser) {
    b.submit("form.signout button").await;
    assert_eq!(b.path().await, "/login");
}

/// The timeline's entries as (who, what).
async fn timeline(b: &Browser) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for li in b.find_all("#timeline li").await {
        let who = li.find(fantoccini::Locator::Css(".who")).await.unwrap().text().await.unwrap();
        let what = li.find(fantoccini::Locator::Css(".what")).await.unwrap().text().await.unwrap();
        out.push((who, what));
    }
    out
}

async fn assert_in_timeline(b: &Browser, who: &str, what: &str) {
    let entries = timeline(b).await;
    assert!(
        entries.iter().any(|(w, t)| w == who && t.contains(what)),
        "no «{who}: {what}» in the timeline {entries:?}"
    );
}

/// The value of the `<option>` whose label starts with `label`.
async fn option_value(b: &Browser, select: &str, label: &str) -> String {
    for option in b.find_all(&format!("{select} option")).await {
        if option.text().await.unwrap().starts_with(label) {
            return option.attr("value").await.unwrap().unwrap_or_default();
        }
    }
    panic!("no option «{label}» in {select}");
}

#[tokio::test]
async fn signing_in_through_the_login_form() {
    let server = Server::start().await;
    let b = Browser::start().await;

    // A page without a session sends the browser to sign in, and back afterwards.
    b.goto(&server.base, "/admin/users").await;
    assert_eq!(b.path().await, "/login");
    assert!(b.find_all("#login-error").await.is_empty());

    b.fill("#name", "admin").await;
    b.fill("#password", "not-the-password").await;
    b.submit("#sign-in").await;
    assert_eq!(b.path().await, "/login");
    assert_eq!(b.text("#login-error").await, "用户名或密码不正确");
    assert_eq!(b.find("#name").await.prop("value").await.unwrap().as_deref(), Some("admin"), "the name is kept");

    b.fill("#password", &server.admin_password()).await;
    b.submit("#sign-in").await;
    assert_eq!(b.path().await, "/admin/users", "back where sign-in was asked for");
    assert_eq!(b.text("header .who").await, "admin");
    b.goto(&server.base, "/").await;
    assert!(b.find("#lead-rows").await.is_displayed().await.unwrap());

    sign_out(&b).await;
    b.goto(&server.base, "/").await;
    assert_eq!(b.path().await, "/login", "signed out: the session is gone");
    b.close().await;
}

#[tokio::test]
async fn a_push_appears_in_the_open_inbox_without_reloading() {
    let server = Server::start().await;
    push_lead(&server, &named_card("v-earlier", "早先的线索")).await;
    let b = Browser::start().await;
    sign_in(&b, &server, "admin", &server.admin_password()).await;

    assert_eq!(b.texts("#lead-rows a.lead-link").await, ["早先的线索"]);
    assert!(!b.find("#new-badge").await.is_displayed().await.unwrap(), "no badge before anything new");
    // Live once the page's event stream is open (pushes before that are not announced).
    b.wait_for("[data-live-inbox][data-live=open]").await;
    // A mark on this document: a reload would lose it.
    b.client.execute("window.xiansuoMark = 'same page';", vec![]).await.unwrap();

    let id = push_lead(&server, &named_card("v-live", "实时推送的线索")).await;
    let row = format!("#lead-rows tr[data-lead='{id}']");
    b.wait_for(&row).await;
    assert_eq!(b.texts("#lead-rows a.lead-link").await, ["实时推送的线索", "早先的线索"], "newest first");
    assert_eq!(b.text(&format!("{row} a.lead-link")).await, "实时推送的线索");
    let badge = b.find("#new-badge").await;
    assert!(badge.is_displayed().await.unwrap(), "the badge shows");
    assert_eq!(badge.text().await.unwrap(), "1 条新线索");
    let mark = b.client.execute("return window.xiansuoMark;", vec![]).await.unwrap();
    assert_eq!(mark, json!("same page"), "the page was not reloaded");

    let second = push_lead(&server, &named_card("v-live-2", "第二条实时线索")).await;
    b.wait_for(&format!("#lead-rows tr[data-lead='{second}']")).await;
    let deadline = Instant::now() + PATIENCE;
    while b.text("#new-badge").await != "2 条新线索" {
        assert!(Instant::now() < deadline, "the badge did not count to 2: {}", b.text("#new-badge").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shot = b.screenshot("console-inbox").await;
    println!("screenshot: {}", shot.display());

    // The badge reloads the page, which then counts them all.
    b.submit("#new-badge").await;
    assert_eq!(b.text("#total").await, "3");
    assert!(!b.find("#new-badge").await.is_displayed().await.unwrap());
    b.close().await;
}

#[tokio::test]
async fn the_lead_page_transcript_follow_up_and_timeline() {
    let server = Server::start().await;
    server.add_user("wang", "agent", "wang-password-1");
    let id = push_lead(&server, &card("v-page")).await;
    let b = Browser::start().await;
    sign_in(&b, &server, "admin", &server.admin_password()).await;

    b.submit("#lead-rows a.lead-link").await;
    assert_eq!(b.path().await, format!("/leads/{id}"));
    assert_eq!(b.text("#lead-title").await, "太原市6283");
    assert_eq!(b.text("#lead-status").await, "新线索");
    assert_eq!(b.text("#lead-owner").await, "待分配");

    // The transcript: the visitor on one side, staff on the other.
    assert_eq!(b.texts(".msg.visitor .text").await, ["你好"]);
    assert_eq!(b.texts(".msg.staff .text").await, ["您好，请问有什么可以帮您"]);
    assert!(b.text(".msg.staff .meta").await.starts_with("hkzyzs-kf"));
    assert!(b.text(".msg.visitor .meta").await.contains("2020-04-13 16:49"));
    // Contact details as tel: links with copy buttons.
    let tel = b.find("a[href='tel:13355556666']").await;
    assert_eq!(tel.text().await.unwrap(), "13355556666");
    assert!(!b.find_all("button.copy[data-copy='6666666']").await.is_empty(), "a copy button for the QQ number");
    assert_in_timeline(&b, "easyliao", "更新了名片").await;

    // Status: 有意向.
    b.select("#status-select", "interested").await;
    b.submit("#status-save").await;
    assert_eq!(b.path().await, format!("/leads/{id}"));
    assert_eq!(b.text("#lead-status").await, "有意向");
    assert_in_timeline(&b, "admin", "把状态从「新线索」改为「有意向」").await;

    // 无效 needs a reason: without one, an error page and nothing changes.
    b.select("#status-select", "invalid").await;
    b.fill("#status-reason", "").await;
    b.submit("#status-save").await;
    assert!(b.text("#error-message").await.contains("原因"), "{}", b.text("#error-message").await);
    b.goto(&server.base, &format!("/leads/{id}")).await;
    assert_eq!(b.text("#lead-status").await, "有意向");
    // With one, it is recorded.
    b.select("#status-select", "invalid").await;
    b.fill("#status-reason", "空号").await;
    b.submit("#status-save").await;
    assert_eq!(b.text("#lead-status").await, "无效");
    assert_eq!(b.text(".lead-head .reason").await, "（空号）");
    assert_in_timeline(&b, "admin", "把状态从「有意向」改为「无效」，原因：空号").await;

    // Owner: the admin assigns it to wang.
    let wang = option_value(&b, "#owner-select", "wang").await;
    b.select("#owner-select", &wang).await;
    b.submit("#owner-save").await;
    assert_eq!(b.text("#lead-owner").await, "wang");
    assert!(b.find_all("#claim").await.is_empty(), "an owned lead cannot be claimed");
    assert_in_timeline(&b, "admin", "把负责人从「待分配」改为「wang」").await;

    // A note.
    b.fill("#note-text", "周三下午回电，问校区地址").await;
    b.submit("#note-save").await;
    assert_in_timeline(&b, "admin", "备注：周三下午回电，问校区地址").await;

    // Every change, in order, after the push that created the card.
    let entries = timeline(&b).await;
    let whats: Vec<&str> = entries.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(whats.len(), 5, "{entries:?}");
    assert!(
        whats[0].contains("更新了名片") && whats[1].contains("有意向") && whats[4].starts_with("备注"),
        "{whats:?}"
    );
    for time in b.texts("#timeline li .time").await {
        assert_eq!(time.len(), "2026-01-01 10:00".len(), "a date and time on every entry: {time}");
    }
    let shot = b.screenshot("console-lead").await;
    println!("screenshot: {}", shot.display());

    // The inbox shows the new state.
    b.goto(&server.base, "/").await;
    let row = format!("#lead-rows tr[data-lead='{id}']");
    assert_eq!(b.text(&format!("{row} .status")).await, "无效");
    assert!(b.text(&row).await.contains("wang"));
    b.close().await;
}

#[tokio::test]
async fn an_agent_claims_from_the_pool_but_cannot_open_another_agents_lead() {
    let server = Server::start().await;
    server.add_user("li", "agent", "li-password-1");
    server.add_user("zhao", "agent", "zhao-password-1");
    let pool = push_lead(&server, &named_card("v-pool", "池中线索")).await;
    let theirs = push_lead(&server, &named_card("v-zhao", "赵的线索")).await;
    let b = Browser::start().await;

    // The admin gives one lead to zhao and makes li an API token.
    sign_in(&b, &server, "admin", &server.admin_password()).await;
    b.goto(&server.base, &format!("/leads/{theirs}")).await;
    let zhao = option_value(&b, "#owner-select", "zhao").await;
    b.select("#owner-select", &zhao).await;
    b.submit("#owner-save").await;
    assert_eq!(b.text("#lead-owner").await, "zhao");
    b.goto(&server.base, "/admin/users").await;
    b.submit("tr[data-user='li'] form[action$='/api-token'] button").await;
    assert!(b.text("#secret").await.contains("li 的 API 令牌"));
    let li_token = b.text("#secret-value").await;
    assert!(li_token.len() >= 32, "a token: {li_token}");
    sign_out(&b).await;

    // li sees the pool, not zhao's lead.
    sign_in(&b, &server, "li", "li-password-1").await;
    assert_eq!(b.texts("#lead-rows a.lead-link").await, ["池中线索"]);
    assert!(b.find_all("header nav a[href='/admin/users']").await.is_empty(), "no admin links for an agent");
    b.submit("#lead-rows a.lead-link").await;
    assert_eq!(b.path().await, format!("/leads/{pool}"));
    assert!(b.find_all("#owner-select").await.is_empty(), "agents do not reassign");
    b.submit("#claim").await;
    assert_eq!(b.text("#lead-owner").await, "li");
    assert!(b.find_all("#claim").await.is_empty());
    assert_in_timeline(&b, "li", "认领了线索（负责人：li）").await;

    // Another agent's lead is as if it did not exist.
    b.goto(&server.base, &format!("/leads/{theirs}")).await;
    assert_eq!(b.text("#error-message").await, "没有找到这个页面或线索");
    assert_eq!(b.text("h1").await, "404");
    assert!(!b.text("body").await.contains("赵的线索"));
    b.goto(&server.base, "/admin/users").await;
    assert_eq!(b.text("h1").await, "403");
    b.close().await;

    // The same through the API with li's token.
    let api = |path: String| server.client.get(format!("{}{path}", server.base)).bearer_auth(&li_token).send();
    let res = api(format!("/api/v1/leads/{theirs}")).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = api(format!("/api/v1/leads/{pool}")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let list: Value = api("/api/v1/leads".into()).await.unwrap().json().await.unwrap();
    let ids: Vec<i64> = list["items"].as_array().unwrap().iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [pool], "{list}");
    assert_eq!(list["total"], 1);
    // The admin token still sees both.
    let (_, all) = server.get("/api/v1/leads").await;
    assert_eq!(all["total"], 2);
}

#[tokio::test]
async fn script_payloads_render_as_inert_text() {
    let server = Server::start().await;
    let name = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    let mut payload = card("v-xss");
    payload["name"] = json!(name);
    payload["chatURL"] = json!("javascript:alert(3)");
    payload["keyword"] = json!("\"><svg onload=alert(7)>");
    payload["weixin"] = json!("\" onmouseover=\"alert(8)");
    payload["<b>extra</b>"] = json!("<iframe src=javascript:alert(9)></iframe>");
    payload["currentChatJsonDetail"] = json!([
        {"chat_id": 1, "create_time": "2020-04-13 16:49:47", "from_id": "v-xss", "message": "<script>alert(4)</script>",
         "recorder_id": 1, "type": "RECORD_RECORD"},
        {"chat_id": 1, "create_time": "2020-04-13 16:49:50", "from_id": "v-xss", "message": "看图<img src=x onerror=alert(2)>",
         "recorder_id": 2, "type": "RECORD_RECORD"},
        {"chat_id": 1, "create_time": "2020-04-13 16:49:54", "from_id": "kf", "recorder_id": 3, "type": "RECORD_RICH_TEXT",
         "message": "<p>您好</p><img src=x onerror=alert(5)>&lt;script&gt;alert(6)&lt;/script&gt;"}
    ]);
    let id = push_lead(&server, &payload).await;
    let b = Browser::start().await;
    sign_in(&b, &server, "admin", &server.admin_password()).await;

    // The inbox: the name as text.
    assert_eq!(b.dialog_open().await, None, "a dialog opened on the inbox");
    assert_eq!(b.text("#lead-rows a.lead-link").await, name);
    assert_eq!(b.text("#lead-rows").await.matches("alert(7)").count(), 1, "the keyword as text");
    assert!(b.find_all("main img, main script, main svg, main iframe").await.is_empty(), "markup from the card");

    b.submit("#lead-rows a.lead-link").await;
    assert_eq!(b.path().await, format!("/leads/{id}"));
    assert_eq!(b.dialog_open().await, None, "a dialog opened on the lead page");
    assert_eq!(b.text("#lead-title").await, name);
    assert_eq!(b.client.title().await.unwrap(), format!("{name} · Xiansuo"));
    assert!(
        b.find_all("main img, main script, main svg, main iframe, main b").await.is_empty(),
        "markup from the card"
    );
    // Messages: what a visitor typed stays text, markup included; vendor HTML is reduced to its
    // text, entities too.
    let visitor = b.texts(".msg.visitor .text").await;
    assert_eq!(visitor, ["<script>alert(4)</script>", "看图<img src=x onerror=alert(2)>"]);
    assert_eq!(b.texts(".msg.staff .text").await, ["您好\n<script>alert(6)</script>"]);
    // The javascript: URL is text, never a link.
    let body = b.text("main").await;
    assert!(body.contains("javascript:alert(3)"), "the chat page URL is shown");
    assert!(b.find_all("a[href^='javascript' i]").await.is_empty(), "a javascript: link");
    let links: Vec<String> = {
        let mut out = Vec::new();
        for a in b.find_all("a[href]").await {
            out.push(a.attr("href").await.unwrap().unwrap_or_default());
        }
        out
    };
    assert!(links.iter().all(|h| !h.to_ascii_lowercase().contains("alert")), "{links:?}");
    // Attribute values stay attribute values.
    let copy = b.find("button.copy[aria-label='复制微信']").await;
    assert_eq!(copy.attr("data-copy").await.unwrap().as_deref(), Some("\" onmouseover=\"alert(8)"));
    assert_eq!(copy.attr("onmouseover").await.unwrap(), None);
    assert!(
        body.contains("<b>extra</b>") && body.contains("<iframe src=javascript:alert(9)></iframe>"),
        "extra as text"
    );
    // Hovering and clicking things does not run anything either.
    copy.click().await.unwrap();
    b.find("#lead-title").await.click().await.unwrap();
    assert_eq!(b.dialog_open().await, None, "a dialog opened after clicks");
    let shot = b.screenshot("console-lead-payloads").await;
    println!("screenshot: {}", shot.display());
    b.close().await;
}
