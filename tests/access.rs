//! Who may push (issue 9, "Access and secrets"): tokens rotated without downtime, addresses a
//! source accepts (through a trusted reverse proxy), and its rate limit.

mod common;

use std::time::{Duration, Instant};

use common::{Options, Server, card};
use reqwest::StatusCode;
use serde_json::Value;

async fn push_with(server: &Server, source: &str, token: &str, forwarded_for: Option<&str>) -> (StatusCode, Value) {
    let mut req = server
        .client
        .post(format!("{}/push/{source}", server.base))
        .header("x-push-token", token)
        .json(&card("visitor-access"));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    common::answer(req.send().await.expect("push")).await
}

/// The token in the banner's push URL of a source.
fn banner_token(server: &Server, source: &str) -> String {
    let marker = format!("/push/{source}?token=");
    server.banner.split(&marker).nth(1).and_then(|s| s.split_whitespace().next()).expect("a push URL").to_string()
}

#[tokio::test]
async fn a_generated_token_rotates_without_a_restart() {
    let server = Server::start_with(Options { fixed_tokens: false, ..Options::default() }).await;
    let old = banner_token(&server, "easyliao");
    assert_eq!(push_with(&server, "easyliao", &old, None).await.0, StatusCode::OK);

    let out = server.cli(&["token", "rotate", "easyliao"]);
    let new = out.split("source \"easyliao\": ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap().to_string();
    assert_ne!(new, old);
    assert!(out.contains("xiansuo token retire easyliao"), "{out}");
    // The running service takes the new token (it re-reads at most every 250 ms) and keeps the
    // old one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(push_with(&server, "easyliao", &new, None).await.0, StatusCode::OK, "the new token, no restart");
    assert_eq!(push_with(&server, "easyliao", &old, None).await.0, StatusCode::OK, "the old one still works");
    assert_eq!(push_with(&server, "easyliao", "not-the-token-0123456789", None).await.0, StatusCode::UNAUTHORIZED);

    server.cli(&["token", "retire", "easyliao"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = push_with(&server, "easyliao", &old, None).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(Instant::now() < deadline, "the retired token is still accepted");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(push_with(&server, "easyliao", &new, None).await.0, StatusCode::OK);
    // A restart prints the new token.
    let server = server.restart(None);
    assert_eq!(banner_token(&server, "easyliao"), new);
}

#[tokio::test]
async fn configured_tokens_rotate_with_previous_tokens() {
    let config = r#"
[sources.easyliao]
token = "new-token-0123456789"
previous_tokens = ["old-token-0123456789"]
"#;
    let server =
        Server::start_with(Options { config: Some(config.into()), fixed_tokens: false, ..Options::default() }).await;
    assert_eq!(push_with(&server, "easyliao", "new-token-0123456789", None).await.0, StatusCode::OK);
    assert_eq!(push_with(&server, "easyliao", "old-token-0123456789", None).await.0, StatusCode::OK);
    assert_eq!(push_with(&server, "easyliao", "other-token-0123456789", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(banner_token(&server, "easyliao"), "new-token-0123456789", "the banner gives the new one");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
        .args(["token", "rotate", "easyliao", "--config"])
        .arg(server.dir.join("xiansuo.toml"))
        .env("XIANSUO_DATABASE_URL", server.database_url())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("previous_tokens"));
}

#[tokio::test]
async fn allow_ips_through_a_trusted_proxy_and_the_rate_limit() {
    let config = r#"
[sources.easyliao]
allow_ips = ["10.0.0.0/8", "198.51.100.7"]

[sources.limited]
token = "limited-token-0123456789"
rate_limit = 1
"#;
    let server = Server::start_with(Options { config: Some(config.into()), ..Options::default() }).await;
    let token = common::PUSH_TOKEN;
    let (status, answer) = push_with(&server, "easyliao", token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let msg = answer["msg"].as_str().unwrap();
    assert!(msg.contains("127.0.0.1") && msg.contains("sources.easyliao.allow_ips"), "{msg}");
    // A reverse proxy on this machine (loopback is trusted by default) names the client.
    assert_eq!(push_with(&server, "easyliao", token, Some("10.20.30.40")).await.0, StatusCode::OK);
    assert_eq!(push_with(&server, "easyliao", token, Some("198.51.100.7")).await.0, StatusCode::OK);
    assert_eq!(push_with(&server, "easyliao", token, Some("198.51.100.8")).await.0, StatusCode::FORBIDDEN);
    // The client cannot smuggle an allowed address in front of its own.
    assert_eq!(push_with(&server, "easyliao", token, Some("10.0.0.1, 203.0.113.9")).await.0, StatusCode::FORBIDDEN);

    let (_, before) = server.get("/api/v1/pushes?source=limited").await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let res = server
            .client
            .post(format!("{}/push/limited", server.base))
            .header("x-push-token", "limited-token-0123456789")
            .json(&card("visitor-limited"))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        }
        statuses.push(res.status());
    }
    assert_eq!(&statuses[..2], [StatusCode::OK, StatusCode::OK], "a burst of twice the rate passes");
    assert!(statuses[2..].contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let (_, after) = server.get("/api/v1/pushes?source=limited").await;
    let accepted = statuses.iter().filter(|s| **s == StatusCode::OK).count() as i64;
    assert_eq!(after["total"].as_i64().unwrap() - before["total"].as_i64().unwrap(), accepted, "a 429 stores nothing");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = push_with(&server, "limited", "limited-token-0123456789", None).await;
    assert_eq!(status, StatusCode::OK, "the limit recovers");
}

#[tokio::test]
async fn a_trusted_proxy_list_replaces_the_loopback_default() {
    let config = r#"
trusted_proxies = ["192.0.2.1"]

[sources.easyliao]
allow_ips = ["10.0.0.0/8"]
"#;
    let server = Server::start_with(Options { config: Some(config.into()), ..Options::default() }).await;
    // The peer (loopback) is no trusted proxy now: its X-Forwarded-For is ignored.
    assert_eq!(push_with(&server, "easyliao", common::PUSH_TOKEN, Some("10.1.1.1")).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn secrets_and_mobiles_never_reach_the_log() {
    let options = Options { env: vec![("RUST_LOG".into(), "debug".into())], fixed_tokens: false, ..Options::default() };
    let server = Server::start_with(options).await;
    let push_token = banner_token(&server, "easyliao");
    let admin_token = server.banner.split("Bearer ").nth(1).and_then(|s| s.split('\'').next()).unwrap().to_string();
    let password = server.admin_password();
    let mobile = "13355556666";

    assert_eq!(push_with(&server, "easyliao", &push_token, None).await.0, StatusCode::OK);
    // Refused bodies and tokens: the 400 quotes the body to the sender, never to the log.
    let res = server
        .client
        .post(format!("{}/push/easyliao?token={push_token}", server.base))
        .header("content-type", "application/json")
        .body(format!("{{\"mobile\": \"{mobile}\", oops"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        push_with(&server, "easyliao", &format!("{mobile}-not-a-token"), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Searches for the number, in the API and the console.
    let res =
        server.client.get(format!("{}/api/v1/leads?q={mobile}", server.base)).bearer_auth(&admin_token).send().await;
    assert_eq!(res.unwrap().status(), StatusCode::OK);
    let session = common::console::sign_in(&server, "admin", &password).await;
    let (status, page) = common::console::get(&server, &session, &format!("/?q={mobile}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(mobile), "the console shows it to the signed-in admin");
    let failed = common::console::client()
        .post(format!("{}/login", server.base))
        .form(&[("name", "admin"), ("password", &format!("{mobile}-wrong")), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);

    let log = server.log();
    assert!(log.contains("signed in") && log.contains("DEBUG"), "the log is written at debug level: {log}");
    let cookie_value = session.split('=').nth(1).unwrap();
    for (what, secret) in [
        ("push token", push_token.as_str()),
        ("admin token", admin_token.as_str()),
        ("first admin password", password.as_str()),
        ("session cookie", cookie_value),
        ("mobile number", mobile),
    ] {
        assert!(!log.contains(secret), "the {what} is in the log:\n{log}");
    }
}

#[tokio::test]
async fn the_audit_log_records_sign_ins_user_changes_and_merges() {
    let server = Server::start().await;
    server.add_user("li", "agent", "li-password-123");
    let failed = common::console::client()
        .post(format!("{}/login", server.base))
        .header("x-forwarded-for", "203.0.113.77")
        .form(&[("name", "li"), ("password", "not-her-password"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    let admin = common::console::sign_in(&server, "admin", &server.admin_password()).await;
    let token = common::console::api_token_of(&server, &admin, "admin").await;
    let (_, a) = server.push_json(&card("audit-a")).await;
    let (_, b) = server.push_json(&card("audit-b")).await;
    let (a, b) = (a["leads"][0]["id"].as_i64().unwrap(), b["leads"][0]["id"].as_i64().unwrap());
    let res = server
        .client
        .post(format!("{}/api/v1/leads/{a}/merge", server.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "lead_id": b }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let (status, log) = server.get("/api/v1/audit").await;
    assert_eq!(status, StatusCode::OK);
    let entries: Vec<(String, String, String)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("action"), s("actor"), s("target"))
        })
        .collect();
    let has = |action: &str, actor: &str, target: &str| {
        entries.iter().any(|(a, b, c)| a == action && b == actor && c == target)
    };
    assert!(has("sign_in_failed", "li", "user li"), "{entries:?}");
    assert!(has("sign_in", "admin", ""), "{entries:?}");
    assert!(has("user_api_token_issued", "admin", "user admin"), "{entries:?}");
    assert!(has("lead_merged", "admin", &format!("lead {a}")), "{entries:?}");
    let failed_entry = log["items"].as_array().unwrap().iter().find(|e| e["action"] == "sign_in_failed").unwrap();
    assert_eq!(failed_entry["ip"], "203.0.113.77", "the client's address, through the local proxy");
    assert!(!log.to_string().contains("not-her-password"), "no password in the audit log");
    let (_, only) = server.get("/api/v1/audit?action=lead_merged").await;
    assert_eq!(only["total"], 1);
    let (_, page) = common::console::get(&server, &admin, "/admin/audit").await;
    assert!(page.contains("合并线索") && page.contains("登录失败"), "the console lists them");
    let li = common::console::sign_in(&server, "li", "li-password-123").await;
    let (status, _) = common::console::get(&server, &li, "/admin/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
