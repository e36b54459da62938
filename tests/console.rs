//! The console over plain HTTP: sign-in, sessions, CSRF, rate limits, headers, who may see what,
//! and untrusted text rendered as text. (tests/console_browser.rs drives a real browser.)

mod common;

use common::console::{client, csrf_of, get, post, sign_in};
use common::{PUSH_TOKEN, Server, card};
use reqwest::StatusCode;
use serde_json::json;

/// The text of escaped HTML (the character references a template engine writes).
fn unescape(html: &str) -> String {
    [
        ("&#60;", "<"),
        ("&#62;", ">"),
        ("&#34;", "\""),
        ("&#39;", "'"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#38;", "&"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(html.to_string(), |s, (from, to)| s.replace(from, to))
}

async fn lead_id_of(server: &Server, visitor: &str) -> i64 {
    let (status, answer) = server.push_json(&card(visitor)).await;
    assert_eq!(status, StatusCode::OK);
    answer["leads"][0]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn pages_need_a_session_and_sign_in_works() {
    let server = Server::start().await;
    let res = client().get(format!("{}/leads/1", server.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login?next=/leads/1");
    for path in ["/", "/admin/users", "/admin/pushes", "/events"] {
        let res = client().get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
    }

    let wrong = client()
        .post(format!("{}/login", server.base))
        .form(&[("name", "admin"), ("password", "not-the-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.unwrap().contains("用户名或密码不正确"));

    let cookie = sign_in(&server, "admin", &server.admin_password()).await;
    let (status, html) = get(&server, &cookie, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"lead-rows\""));

    // An open redirect is refused: `next` must be a path here.
    let res = client()
        .post(format!("{}/login", server.base))
        .form(&[("name", "admin"), ("password", server.admin_password().as_str()), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/");
    // Browsers drop tabs from URLs: "/\t/evil.example" would become "//evil.example".
    let res = client()
        .post(format!("{}/login", server.base))
        .form(&[("name", "admin"), ("password", server.admin_password().as_str()), ("next", "/\t/evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/");

    // Signing out ends the session on the server, not only in the browser.
    let (_, html) = get(&server, &cookie, "/").await;
    let (status, _) = post(&server, &cookie, "/logout", &[("csrf", &csrf_of(&html))]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = get(&server, &cookie, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn failed_sign_ins_are_rate_limited() {
    let server = Server::start().await;
    for _ in 0..5 {
        let res = client()
            .post(format!("{}/login", server.base))
            .form(&[("name", "admin"), ("password", "guess")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // Now even the right password waits.
    let res = client()
        .post(format!("{}/login", server.base))
        .form(&[("name", "admin"), ("password", server.admin_password().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn every_state_change_needs_the_csrf_token() {
    let server = Server::start().await;
    let id = lead_id_of(&server, "csrf-1").await;
    let cookie = sign_in(&server, "admin", &server.admin_password()).await;
    for (path, form) in [
        (format!("/leads/{id}/status"), vec![("status", "won")]),
        (format!("/leads/{id}/notes"), vec![("text", "x")]),
        (format!("/leads/{id}/claim"), vec![]),
        (format!("/leads/{id}/owner"), vec![("owner", "")]),
        ("/admin/users".to_string(), vec![("name", "mallory"), ("role", "admin")]),
        ("/logout".to_string(), vec![]),
    ] {
        let mut with_bad = form.clone();
        with_bad.push(("csrf", "forged"));
        for attempt in [form.clone(), with_bad] {
            let (status, _) = post(&server, &cookie, &path, &attempt).await;
            assert!(status == StatusCode::FORBIDDEN || status == StatusCode::UNPROCESSABLE_ENTITY, "{path}: {status}");
        }
    }
    let (_, lead) = server.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(lead["status"], "new", "nothing changed");
    let (_, html) = get(&server, &cookie, "/admin/users").await;
    assert!(!html.contains("mallory"));
}

#[tokio::test]
async fn security_headers_on_pages() {
    let server = Server::start().await;
    let res = client().get(format!("{}/login", server.base)).send().await.unwrap();
    let h = res.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "same-origin");
    let css = client().get(format!("{}/assets/app.css", server.base)).send().await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
}

#[tokio::test]
async fn follow_up_changes_are_recorded_with_who_and_when() {
    let server = Server::start().await;
    let id = lead_id_of(&server, "follow-1").await;
    let cookie = sign_in(&server, "admin", &server.admin_password()).await;
    let (_, html) = get(&server, &cookie, &format!("/leads/{id}")).await;
    let csrf = csrf_of(&html);

    let (status, html) =
        post(&server, &cookie, &format!("/leads/{id}/status"), &[("csrf", &csrf), ("status", "invalid")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "无效 needs a reason");
    assert!(html.contains("原因"));
    for form in [
        vec![("csrf", csrf.as_str()), ("status", "contacted")],
        vec![("csrf", csrf.as_str()), ("status", "invalid"), ("reason", "空号")],
    ] {
        let (status, _) = post(&server, &cookie, &format!("/leads/{id}/status"), &form).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    let (status, _) =
        post(&server, &cookie, &format!("/leads/{id}/notes"), &[("csrf", &csrf), ("text", "客户说下周再联系")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = post(&server, &cookie, &format!("/leads/{id}/claim"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, html) = post(&server, &cookie, &format!("/leads/{id}/claim"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::CONFLICT, "a claimed lead cannot be claimed again");
    assert!(html.contains("你已经认领了这条线索"), "{html}");

    let (_, html) = get(&server, &cookie, &format!("/leads/{id}")).await;
    for text in [
        "把状态从「新线索」改为「已联系」",
        "把状态从「已联系」改为「无效」，原因：空号",
        "备注：客户说下周再联系",
        "认领了线索",
        "推送 #1 更新了名片",
    ] {
        assert!(html.contains(text), "timeline lacks {text}");
    }
    let (_, lead) = server.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(lead["status"], "invalid");
    assert_eq!(lead["status_reason"], "空号");
    assert_eq!(lead["owner_id"], 1);
}

#[tokio::test]
async fn agents_see_only_their_leads_and_the_pool() {
    let server = Server::start().await;
    server.add_user("li", "agent", "li-password-1");
    server.add_user("wang", "agent", "wang-password-1");
    let pool = lead_id_of(&server, "pool-1").await;
    let mine = lead_id_of(&server, "li-1").await;
    let theirs = lead_id_of(&server, "wang-1").await;

    let li = sign_in(&server, "li", "li-password-1").await;
    let wang = sign_in(&server, "wang", "wang-password-1").await;
    for (cookie, id) in [(&li, mine), (&wang, theirs)] {
        let (_, html) = get(&server, cookie, &format!("/leads/{id}")).await;
        let (status, _) = post(&server, cookie, &format!("/leads/{id}/claim"), &[("csrf", &csrf_of(&html))]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }

    let (status, html) = get(&server, &li, &format!("/leads/{theirs}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an agent cannot open another agent's lead");
    assert!(!html.contains("wang-1"));
    let (_, inbox) = get(&server, &li, "/").await;
    assert!(inbox.contains(&format!("/leads/{mine}\"")) && inbox.contains(&format!("/leads/{pool}\"")));
    assert!(!inbox.contains(&format!("/leads/{theirs}\"")));
    let (_, rows) = get(&server, &li, "/?fragment=rows&q=wang").await;
    assert!(!rows.contains(&format!("/leads/{theirs}\"")), "search does not reach into another agent's leads");
    // Nor can they change it.
    let csrf = csrf_of(&inbox);
    let (status, _) =
        post(&server, &li, &format!("/leads/{theirs}/status"), &[("csrf", &csrf), ("status", "won")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(&server, &li, &format!("/leads/{theirs}/notes"), &[("csrf", &csrf), ("text", "x")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A pool lead is claimed before it is worked.
    let (status, html) =
        post(&server, &li, &format!("/leads/{pool}/status"), &[("csrf", &csrf), ("status", "won")]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("请先认领"), "{html}");
    // Admin pages are not theirs.
    for path in ["/admin/users", "/admin/pushes"] {
        let (status, _) = get(&server, &li, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, _) = post(&server, &li, &format!("/leads/{mine}/owner"), &[("csrf", &csrf), ("owner", "")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only admins reassign");

    // The API with the agent's own token: the same visibility.
    let admin = sign_in(&server, "admin", &server.admin_password()).await;
    let (_, users) = get(&server, &admin, "/admin/users").await;
    let li_id = users
        .split("data-user=\"li\"")
        .nth(1)
        .unwrap()
        .split("/admin/users/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let (status, html) =
        post(&server, &admin, &format!("/admin/users/{li_id}/api-token"), &[("csrf", &csrf_of(&users))]).await;
    assert_eq!(status, StatusCode::OK);
    let token = html.split("id=\"secret-value\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    let api = |path: String| client().get(format!("{}{path}", server.base)).bearer_auth(&token).send();
    assert_eq!(api(format!("/api/v1/leads/{theirs}")).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(api(format!("/api/v1/leads/{mine}")).await.unwrap().status(), StatusCode::OK);
    let list: serde_json::Value = api("/api/v1/leads".to_string()).await.unwrap().json().await.unwrap();
    let ids: Vec<i64> = list["items"].as_array().unwrap().iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(list["total"], 2);
    assert!(ids.contains(&mine) && ids.contains(&pool) && !ids.contains(&theirs));
    assert_eq!(api("/api/v1/pushes".to_string()).await.unwrap().status(), StatusCode::FORBIDDEN);

    // A disabled agent's session and token stop working.
    let (_, users) = get(&server, &admin, "/admin/users").await;
    let (status, _) =
        post(&server, &admin, &format!("/admin/users/{li_id}/disable"), &[("csrf", &csrf_of(&users))]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(&server, &li, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(api("/api/v1/leads".to_string()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn untrusted_text_is_rendered_as_text() {
    let server = Server::start().await;
    let mut evil = card("xss-1");
    evil["name"] = json!("<script>alert(1)</script>");
    evil["note"] = json!("\"><img src=x onerror=alert(2)>");
    evil["chatURL"] = json!("javascript:alert(3)");
    evil["firstUrl"] = json!("https://example.com/?a=\"><script>x</script>");
    evil["currentChatJsonDetail"] = json!([
        {"recorder_id": "1", "from_id": "xss-1", "message": "<img src=x onerror=alert(4)>你好", "type": "RECORD_RICH_TEXT"},
        {"recorder_id": "2", "from_id": "kf", "message": "<b>bold</b> & <script>alert(5)</script>"}
    ]);
    let (status, answer) = server.push_json(&evil).await;
    assert_eq!(status, StatusCode::OK);
    let id = answer["leads"][0]["id"].as_i64().unwrap();
    let cookie = sign_in(&server, "admin", &server.admin_password()).await;
    for path in [format!("/leads/{id}"), "/".to_string(), "/admin/pushes".to_string()] {
        let (_, html) = get(&server, &cookie, &path).await;
        assert!(!html.contains("<script>alert"), "{path}: a script tag from the vendor reached the page");
        assert!(!html.contains("<img src=x"), "{path}: an img tag from the vendor reached the page");
        assert!(!html.contains("href=\"javascript:"), "{path}");
    }
    let (_, html) = get(&server, &cookie, &format!("/leads/{id}")).await;
    // Escaped, the payloads read as the text the visitor typed.
    let text = unescape(&html);
    assert!(text.contains("<script>alert(1)</script>"), "the name shows as text");
    assert!(text.contains("javascript:alert(3)"), "the URL shows as text");
    // Rich text is reduced to its text; a plain message keeps its angle brackets as text.
    assert!(text.contains("你好"));
    assert!(text.contains("<b>bold</b> & <script>alert(5)</script>"));
}

#[tokio::test]
async fn the_push_log_page_replays() {
    let server = Server::start().await;
    let url = format!("{}/push/easyliao?token={PUSH_TOKEN}", server.base);
    let res = client().post(&url).body("{\"visitorStaticId\": 1,").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let cookie = sign_in(&server, "admin", &server.admin_password()).await;
    let (status, html) = get(&server, &cookie, "/admin/pushes?outcome=rejected").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("the body is not valid JSON"));
    let (status, _) = post(&server, &cookie, "/admin/pushes/1/replay", &[("csrf", &csrf_of(&html))]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "back to the log, so a reload does not replay again");
    let (_, html) = get(&server, &cookie, "/admin/pushes?replayed=1").await;
    assert!(html.contains("重放后仍被拒绝"), "{html}");
}
