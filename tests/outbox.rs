//! Issue #6 end to end, on the real binary: assignment rules, and outbound events delivered to
//! real HTTP receivers on loopback (axum servers in this process) that fail, time out and then
//! succeed. Every event must arrive, in order per lead, with signatures this file verifies by
//! itself; a SIGKILL in the middle of the retries loses nothing; dead events are redelivered
//! from the admin page. Runs on SQLite, and on PostgreSQL with XIANSUO_TEST_BACKEND=postgres.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Options, Server, card};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use sha2_011::Sha256;

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DING_SECRET: &str = "SECtest-dingtalk-secret";
const FEISHU_SECRET: &str = "feishu-test-secret";

// ---------------------------------------------------------------------------------------------
// A receiver: an HTTP server on loopback that records every request and answers by a script.

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
    /// What the receiver answered (a hung request answers 503 after the sender gave up).
    status: u16,
}

#[derive(Default)]
struct Script {
    /// Requests answered 500, then requests that hang past the sender's timeout.
    fail_next: usize,
    hang_next: usize,
    /// Every request fails (until switched off).
    always_fail: bool,
    hits: Vec<Hit>,
}

#[derive(Clone)]
struct Receiver {
    script: Arc<Mutex<Script>>,
    url: String,
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    enum Act {
        Fail,
        Hang,
        Ok,
    }
    let act = {
        let mut s = script.lock().unwrap();
        if s.fail_next > 0 {
            s.fail_next -= 1;
            Act::Fail
        } else if s.hang_next > 0 {
            s.hang_next -= 1;
            Act::Hang
        } else if s.always_fail {
            Act::Fail
        } else {
            Act::Ok
        }
    };
    let hang = matches!(act, Act::Hang);
    let (status, text) = match act {
        Act::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "receiver down".to_string()),
        Act::Hang => (StatusCode::SERVICE_UNAVAILABLE, "too late".to_string()),
        Act::Ok if uri.path().starts_with("/feishu") => {
            (StatusCode::OK, json!({"code": 0, "msg": "success"}).to_string())
        }
        Act::Ok => (StatusCode::OK, json!({"errcode": 0, "errmsg": "ok"}).to_string()),
    };
    // Recorded as it arrives (in arrival order), then answered.
    script.lock().unwrap().hits.push(Hit {
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers,
        body: body.to_vec(),
        status: status.as_u16(),
    });
    if hang {
        // Past the sender's timeout: it has given up by the time this answers.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    (status, text)
}

impl Receiver {
    async fn start(script: Script) -> Receiver {
        let script = Arc::new(Mutex::new(script));
        let app = axum::Router::new().fallback(answer).with_state(Arc::clone(&script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { script, url }
    }

    fn hits(&self, path: &str) -> Vec<Hit> {
        self.script.lock().unwrap().hits.iter().filter(|h| h.path == path).cloned().collect()
    }

    fn set_always_fail(&self, on: bool) {
        self.script.lock().unwrap().always_fail = on;
    }
}

/// Polls until `done` holds (generous: the machine may be loaded), or fails with the server log.
async fn wait_until(server: &Server, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !done() {
        if std::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}; server log:\n{}", server.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Signatures, computed here from their definitions.

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Standard Webhooks: `v1,` base64(HMAC-SHA256(base64-decoded secret, "id.timestamp.body")).
fn verify_webhook(hit: &Hit) -> Value {
    let header = |k: &str| hit.headers.get(k).unwrap_or_else(|| panic!("no {k} header")).to_str().unwrap().to_string();
    let (id, timestamp, signature) = (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    let key = STANDARD.decode(WEBHOOK_SECRET.strip_prefix("whsec_").unwrap()).unwrap();
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&hit.body);
    let expected = format!("v1,{}", STANDARD.encode(hmac_sha256(&key, &signed)));
    assert!(signature.split(' ').any(|s| s == expected), "bad signature {signature}, expected {expected}");
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!((-60..600).contains(&age), "timestamp {timestamp} is {age} s old");
    let body: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["id"], json!(id), "webhook-id is the event's id");
    assert_eq!(hit.headers["content-type"], "application/json");
    body
}

/// DingTalk: `timestamp` (ms) and url-encoded `sign` = base64(HMAC-SHA256(secret, ts + "\n" + secret)).
fn verify_dingtalk(hit: &Hit) {
    let q: BTreeMap<String, String> = form_urlencoded::parse(hit.query.as_bytes()).into_owned().collect();
    let ts = &q["timestamp"];
    let expected = STANDARD.encode(hmac_sha256(DING_SECRET.as_bytes(), format!("{ts}\n{DING_SECRET}").as_bytes()));
    assert_eq!(q["sign"], expected);
    assert_eq!(q["access_token"], "t0k");
    let age = chrono::Utc::now().timestamp_millis() - ts.parse::<i64>().unwrap();
    assert!((-60_000..600_000).contains(&age));
}

/// Feishu: `timestamp` (s) and `sign` = base64(HMAC-SHA256 keyed by ts + "\n" + secret, of nothing).
fn verify_feishu(body: &Value) {
    let ts = body["timestamp"].as_str().unwrap();
    let expected = STANDARD.encode(hmac_sha256(format!("{ts}\n{FEISHU_SECRET}").as_bytes(), b""));
    assert_eq!(body["sign"], json!(expected));
}

/// The successful webhook deliveries: (lead id, event id, body), in arrival order. Checks along
/// the way that no attempt for a lead's event came before its earlier events were delivered.
fn delivered_in_order(hits: &[Hit]) -> Vec<(i64, i64, Value)> {
    let mut done: Vec<(i64, i64, Value)> = Vec::new();
    let all: Vec<(i64, i64, u16)> = hits
        .iter()
        .map(|h| {
            let body = verify_webhook(h);
            let event: i64 = body["id"].as_str().unwrap().trim_start_matches("evt_").parse().unwrap();
            (body["data"]["lead"]["id"].as_i64().unwrap(), event, h.status)
        })
        .collect();
    let final_events: BTreeSet<(i64, i64)> = all.iter().filter(|a| a.2 == 200).map(|a| (a.0, a.1)).collect();
    let mut delivered: BTreeSet<(i64, i64)> = BTreeSet::new();
    for (hit, (lead, event, status)) in hits.iter().zip(&all) {
        for (l, e) in &final_events {
            if l == lead && e < event {
                assert!(delivered.contains(&(*l, *e)), "event {event} of lead {lead} was sent before event {e}");
            }
        }
        if *status == 200 && delivered.insert((*lead, *event)) {
            done.push((*lead, *event, serde_json::from_slice(&hit.body).unwrap()));
        }
    }
    done
}

// ---------------------------------------------------------------------------------------------
// The console, for changes people make.

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

async fn sign_in(server: &Server, name: &str, password: &str) -> String {
    let res = browser()
        .post(format!("{}/login", server.base))
        .form(&[("name", name), ("password", password), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::SEE_OTHER, "sign-in of {name}");
    res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

async fn page(server: &Server, cookie: &str, path: &str) -> (reqwest::StatusCode, String) {
    let res = browser().get(format!("{}{path}", server.base)).header("cookie", cookie).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

async fn form(server: &Server, cookie: &str, path: &str, fields: &[(&str, &str)]) -> reqwest::StatusCode {
    let res =
        browser().post(format!("{}{path}", server.base)).header("cookie", cookie).form(fields).send().await.unwrap();
    res.status()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

async fn push_card(server: &Server, visitor: &str, extra: &[(&str, &str)]) -> i64 {
    let mut c = card(visitor);
    for (k, v) in extra {
        c[*k] = json!(v);
    }
    let (status, answer) = server.push_json(&c).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{answer}");
    answer["leads"][0]["id"].as_i64().unwrap()
}

fn sinks_config(webhook: &Receiver, robots: Option<&Receiver>, delivery: &str) -> String {
    let mut text = format!(
        "public_url = \"https://leads.example.com/\"\n\n[[sinks]]\nname = \"crm\"\nkind = \"webhook\"\nurl = \"{}/hook\"\nsecret = \"{WEBHOOK_SECRET}\"\n",
        webhook.url
    );
    if let Some(r) = robots {
        text.push_str(&format!(
            "\n[[sinks]]\nname = \"wecom\"\nkind = \"wecom\"\nurl = \"{u}/wecom?key=k\"\n\
             \n[[sinks]]\nname = \"ding\"\nkind = \"dingtalk\"\nurl = \"{u}/ding?access_token=t0k\"\nsecret = \"{DING_SECRET}\"\n\
             \n[[sinks]]\nname = \"feishu\"\nkind = \"feishu\"\nurl = \"{u}/feishu/hook\"\nsecret = \"{FEISHU_SECRET}\"\nevents = [\"lead.created\", \"lead.status_changed\"]\n",
            u = r.url
        ));
    }
    text.push_str(&format!("\n[delivery]\n{delivery}\n"));
    text
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_arrives_in_order_signed_despite_failures_and_timeouts() {
    // The webhook receiver fails 4 requests, lets 2 time out, then accepts.
    let hook = Receiver::start(Script { fail_next: 4, hang_next: 2, ..Default::default() }).await;
    let robots = Receiver::start(Script::default()).await;
    let delivery = "timeout_ms = 1000\nmax_attempts = 60\nbackoff_ms = 50\nmax_backoff_ms = 400\npoll_ms = 100";
    let config = sinks_config(&hook, Some(&robots), delivery);
    let server = Server::start_with(Options { config: Some(config), ..Default::default() }).await;
    assert!(
        server.banner.contains("Outbound events to: crm (webhook), wecom (wecom), ding (dingtalk), feishu (feishu)")
    );

    // Four visitors, three pushes each: created, updated, updated; interleaved.
    let mut leads = Vec::new();
    for round in 0..3 {
        for v in 0..4 {
            let id = push_card(
                &server,
                &format!("0100000001310063553715621119{v:04}"),
                &[("note", &format!("第{round}次"))],
            )
            .await;
            if round == 0 {
                leads.push(id);
            }
        }
    }
    // People's changes: a status and an owner.
    let password = server.admin_password();
    let cookie = sign_in(&server, "admin", &password).await;
    let (_, html) = page(&server, &cookie, &format!("/leads/{}", leads[0])).await;
    let csrf = csrf_of(&html);
    let status =
        form(&server, &cookie, &format!("/leads/{}/status", leads[0]), &[("csrf", &csrf), ("status", "contacted")])
            .await;
    assert_eq!(status, reqwest::StatusCode::SEE_OTHER);
    let admin_id = html.split("\">admin（").next().unwrap().rsplit("value=\"").next().unwrap().to_string();
    let status =
        form(&server, &cookie, &format!("/leads/{}/owner", leads[1]), &[("csrf", &csrf), ("owner", &admin_id)]).await;
    assert_eq!(status, reqwest::StatusCode::SEE_OTHER);

    // 4 created + 8 updated + 1 status_changed + 1 assigned.
    let expected = 14;
    wait_until(&server, "every webhook event", || {
        hook.hits("/hook").iter().filter(|h| h.status == 200).map(|h| h.body.clone()).collect::<BTreeSet<_>>().len()
            >= expected
    })
    .await;
    let delivered = delivered_in_order(&hook.hits("/hook"));
    assert_eq!(delivered.len(), expected, "each event delivered once");
    let failures = hook.hits("/hook").iter().filter(|h| h.status != 200).count();
    assert_eq!(failures, 6, "4 failures and 2 timeouts, each retried");
    let mut per_lead: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (lead, _, body) in &delivered {
        per_lead.entry(*lead).or_default().push(body["type"].as_str().unwrap().to_string());
        assert_eq!(body["data"]["lead"]["url"], json!(format!("https://leads.example.com/leads/{lead}")));
        assert_eq!(body["data"]["lead"]["mobile"], json!("13355556666"), "the webhook carries the whole card");
    }
    assert_eq!(per_lead[&leads[0]], vec!["lead.created", "lead.updated", "lead.updated", "lead.status_changed"]);
    assert_eq!(per_lead[&leads[1]], vec!["lead.created", "lead.updated", "lead.updated", "lead.assigned"]);
    assert_eq!(per_lead[&leads[2]], vec!["lead.created", "lead.updated", "lead.updated"]);
    let status_event = &delivered.iter().find(|d| d.2["type"] == "lead.status_changed").unwrap().2;
    assert_eq!(status_event["data"]["change"]["from"], "new");
    assert_eq!(status_event["data"]["change"]["to"], "contacted");
    assert_eq!(status_event["data"]["change"]["by"]["name"], "admin");
    let assigned = &delivered.iter().find(|d| d.2["type"] == "lead.assigned").unwrap().2;
    assert_eq!(assigned["data"]["change"]["to"]["name"], "admin");
    assert_eq!(assigned["data"]["lead"]["owner"]["name"], "admin");

    // Robots: new leads by default (WeCom, DingTalk); Feishu as configured.
    wait_until(&server, "the robots' messages", || {
        robots.hits("/wecom").len() >= 4 && robots.hits("/ding").len() >= 4 && robots.hits("/feishu/hook").len() >= 5
    })
    .await;
    let wecom = robots.hits("/wecom");
    assert_eq!(wecom.len(), 4, "4 created");
    for h in &wecom {
        let body: Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(body["msgtype"], "markdown");
        let text = body["markdown"]["content"].as_str().unwrap();
        assert!(text.contains("133****6666") && !text.contains("13355556666"), "{text}");
        assert!(text.contains("太原市") && text.contains("培训学校"), "{text}");
        assert!(text.contains("[查看线索](https://leads.example.com/leads/"), "{text}");
        assert_eq!(h.query, "key=k");
    }
    let ding = robots.hits("/ding");
    assert_eq!(ding.len(), 4);
    for h in &ding {
        verify_dingtalk(h);
        let body: Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(body["msgtype"], "markdown");
        assert!(body["markdown"]["title"].as_str().unwrap().starts_with("新线索："), "{body}");
    }
    let feishu = robots.hits("/feishu/hook");
    assert_eq!(feishu.len(), 5, "4 created + 1 status change");
    for h in &feishu {
        let body: Value = serde_json::from_slice(&h.body).unwrap();
        verify_feishu(&body);
        assert_eq!(body["msg_type"], "interactive");
        assert!(body["card"]["elements"][0]["content"].as_str().unwrap().contains("133****6666"));
    }

    // The admin page lists them per sink.
    let (status, html) = page(&server, &cookie, "/admin/deliveries?sink=crm&status=delivered").await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(html.contains("已投递 14"), "{html}");
    assert!(html.contains("lead.status_changed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_in_the_middle_of_retries_loses_nothing() {
    let hook = Receiver::start(Script { always_fail: true, ..Default::default() }).await;
    let delivery = "timeout_ms = 1000\nmax_attempts = 1000\nbackoff_ms = 100\nmax_backoff_ms = 300\npoll_ms = 100";
    let server =
        Server::start_with(Options { config: Some(sinks_config(&hook, None, delivery)), ..Default::default() }).await;
    let mut leads = Vec::new();
    for round in 0..2 {
        for v in 0..3 {
            let id =
                push_card(&server, &format!("0200000001310063553715621119{v:04}"), &[("note", &format!("{round}"))])
                    .await;
            if round == 0 {
                leads.push(id);
            }
        }
    }
    wait_until(&server, "failed attempts", || hook.hits("/hook").len() >= 6).await;
    // The next attempts hang: SIGKILL while they are in flight (leased by the dead process; the
    // restarted one takes them up when the lease ends) and others wait for their retry.
    hook.script.lock().unwrap().hang_next = 3;
    wait_until(&server, "attempts in flight", || hook.hits("/hook").iter().any(|h| h.status == 503)).await;
    let server = server.crash_and_restart();
    let before = hook.hits("/hook").len();
    wait_until(&server, "retries after the restart", || hook.hits("/hook").len() > before).await;
    hook.set_always_fail(false);
    wait_until(&server, "every event after the restart", || {
        hook.hits("/hook").iter().filter(|h| h.status == 200).count() >= 6
    })
    .await;
    let delivered = delivered_in_order(&hook.hits("/hook"));
    assert_eq!(delivered.len(), 6, "3 created + 3 updated, none lost");
    for lead in &leads {
        let kinds: Vec<&str> =
            delivered.iter().filter(|d| d.0 == *lead).map(|d| d.2["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["lead.created", "lead.updated"], "lead {lead}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_events_are_listed_and_redelivered_from_the_console() {
    let hook = Receiver::start(Script { always_fail: true, ..Default::default() }).await;
    let delivery = "timeout_ms = 1000\nmax_attempts = 2\nbackoff_ms = 50\npoll_ms = 100";
    let server =
        Server::start_with(Options { config: Some(sinks_config(&hook, None, delivery)), ..Default::default() }).await;
    let password = server.admin_password();
    let lead = push_card(&server, "03000000013100635537156211190001", &[]).await;
    wait_until(&server, "two failed attempts", || hook.hits("/hook").len() >= 2).await;
    let cookie = sign_in(&server, "admin", &password).await;
    let mut html = String::new();
    for _ in 0..600 {
        html = page(&server, &cookie, "/admin/deliveries?status=dead").await.1;
        if html.contains("data-status=\"dead\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(html.contains("data-status=\"dead\""), "{html}");
    assert!(html.contains("HTTP 500") && html.contains("receiver down"), "the last error is shown: {html}");
    assert!(html.contains(&format!("/leads/{lead}")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.hits("/hook").len(), 2, "dead: no more attempts");

    // An agent may not see it; a form without the CSRF token does nothing.
    hook.set_always_fail(false);
    let (_, crm) = page(&server, &cookie, "/admin/deliveries?sink=crm").await;
    let csrf = csrf_of(&crm);
    let forged = form(&server, &cookie, "/admin/deliveries/all/redeliver", &[("csrf", "x"), ("sink", "crm")]).await;
    assert_eq!(forged, reqwest::StatusCode::FORBIDDEN);
    let status = form(&server, &cookie, "/admin/deliveries/all/redeliver", &[("csrf", &csrf), ("sink", "crm")]).await;
    assert_eq!(status, reqwest::StatusCode::SEE_OTHER);
    wait_until(&server, "the redelivered event", || hook.hits("/hook").iter().any(|h| h.status == 200)).await;
    let delivered = delivered_in_order(&hook.hits("/hook"));
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].2["type"], "lead.created");
    server.add_user("li", "agent", "agent-password-123");
    let agent = sign_in(&server, "li", "agent-password-123").await;
    assert_eq!(page(&server, &agent, "/admin/deliveries").await.0, reqwest::StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rules_assign_new_leads_and_name_themselves_in_the_timeline() {
    let server = Server::start().await;
    let password = server.admin_password();
    server.add_user("li", "agent", "agent-password-123");
    server.add_user("wang", "agent", "agent-password-456");
    let rules = r#"
[groups]
taiyuan = ["li", "wang"]

[owner_map]
"AI-vip" = "wang"

[[rules]]
name = "太原"
city = "太原"
keyword = "培训"
group = "taiyuan"

[[rules]]
name = "北京雅思"
city = "北京"
keyword_regex = "^雅思"
assign_to = "admin"
"#;
    // A rule naming a user who does not exist stops the start, naming them.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, format!("{rules}\n[[rules]]\nname = \"x\"\nassign_to = \"nobody\"\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
        .args(["serve", "--config"])
        .arg(&bad)
        .env("XIANSUO_DATABASE_URL", server.database_url())
        .env("XIANSUO_LISTEN", "127.0.0.1:0")
        .env_remove("XIANSUO_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"nobody\"") && stderr.contains("xiansuo user add nobody"), "{stderr}");

    // The dry run names the rule and the user, and stores nothing.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, rules).unwrap();
    let body = dir.path().join("card.json");
    let mut beijing = card("04000000013100635537156211190009");
    beijing["city"] = json!("北京市");
    beijing["keyword"] = json!("雅思培训");
    std::fs::write(&body, serde_json::to_vec(&json!([card("04000000013100635537156211190001"), beijing])).unwrap())
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
        .args(["rules", "test"])
        .arg(&body)
        .arg("--config")
        .arg(&good)
        .env("XIANSUO_DATABASE_URL", server.database_url())
        .env_remove("XIANSUO_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("card 0:") && stdout.contains("matches rule \"太原\" → group taiyuan (round_robin: li, wang)"),
        "{stdout}"
    );
    assert!(stdout.contains("would be assigned to li (by 太原)"), "{stdout}");
    assert!(stdout.contains("card 1:") && stdout.contains("would be assigned to admin (by 北京雅思)"), "{stdout}");
    assert_eq!(server.checked_lead_count().await, 0, "the dry run stores nothing");

    let server = server.restart(Some(rules.to_string()));
    let a = push_card(&server, "04000000013100635537156211190001", &[]).await;
    let b = push_card(&server, "04000000013100635537156211190002", &[]).await;
    let c = push_card(&server, "04000000013100635537156211190003", &[("userId", "AI-vip")]).await;
    let d = push_card(&server, "04000000013100635537156211190004", &[("city", "大同市")]).await;
    let owner = |v: &Value| v["owner_id"].as_i64();
    let lead = |id: i64| {
        let server = &server;
        async move { server.get(&format!("/api/v1/leads/{id}")).await.1 }
    };
    let cookie = sign_in(&server, "admin", &password).await;
    let (_, users) = page(&server, &cookie, "/admin/users").await;
    assert!(users.contains("li") && users.contains("wang"));
    let (oa, ob, oc, od) = (owner(&lead(a).await), owner(&lead(b).await), owner(&lead(c).await), owner(&lead(d).await));
    assert!(oa.is_some() && ob.is_some() && oa != ob, "round robin: {oa:?} {ob:?}");
    assert_eq!(oc, ob, "the vendor's owner AI-vip maps to wang, the second of the group");
    assert_eq!(od, None, "no rule matches 大同: the pool");
    let (_, html) = page(&server, &cookie, &format!("/leads/{a}")).await;
    assert!(html.contains("按规则「太原」自动分配给「li」"), "{html}");
    let (_, html) = page(&server, &cookie, &format!("/leads/{c}")).await;
    assert!(html.contains("按易聊所属者自动分配给「wang」"), "{html}");
    // The agent sees the lead the rule gave them.
    let li = sign_in(&server, "li", "agent-password-123").await;
    assert_eq!(page(&server, &li, &format!("/leads/{a}")).await.0, reqwest::StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgresql_share_the_deliveries() {
    // Always PostgreSQL: several instances need it.
    let backend = common::Backend::postgres().await;
    let hook = Receiver::start(Script { fail_next: 3, ..Default::default() }).await;
    let delivery = "timeout_ms = 5000\nmax_attempts = 60\nbackoff_ms = 50\nmax_backoff_ms = 400\npoll_ms = 100";
    let config = sinks_config(&hook, None, delivery);
    let a = Server::start_with(Options {
        backend: Some(backend.clone()),
        config: Some(config.clone()),
        ..Default::default()
    })
    .await;
    let b = Server::start_with(Options { backend: Some(backend), config: Some(config), ..Default::default() }).await;
    let mut leads = BTreeSet::new();
    for round in 0..3 {
        for v in 0..6 {
            let server = if (round + v) % 2 == 0 { &a } else { &b };
            let id =
                push_card(server, &format!("0500000001310063553715621119{v:04}"), &[("note", &format!("{round}"))])
                    .await;
            leads.insert(id);
        }
    }
    assert_eq!(leads.len(), 6);
    wait_until(&a, "every event from both instances", || {
        hook.hits("/hook").iter().filter(|h| h.status == 200).map(|h| h.body.clone()).collect::<BTreeSet<_>>().len()
            >= 18
    })
    .await;
    let delivered = delivered_in_order(&hook.hits("/hook"));
    assert_eq!(delivered.len(), 18, "6 created + 12 updated");
    for lead in &leads {
        let kinds: Vec<&str> =
            delivered.iter().filter(|d| d.0 == *lead).map(|d| d.2["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["lead.created", "lead.updated", "lead.updated"], "lead {lead}");
    }
    // Claims are exclusive: an event is sent twice only after an attempt ran out of time.
    let successes = hook.hits("/hook").iter().filter(|h| h.status == 200).count();
    if successes > 18 {
        let logs = format!("{}{}", a.log(), b.log());
        assert!(logs.contains("no answer within"), "{successes} successful deliveries of 18 events");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_may_assign_to_its_admin_and_a_refused_start_creates_nobody() {
    // A refused first start (a rule names an unknown user) leaves no admin behind whose
    // one-time password nobody saw.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[rules]]\nname = \"all\"\nassign_to = \"nobody\"\n").unwrap();
    let xiansuo = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
            .args(args)
            .env("XIANSUO_DATABASE_URL", &url)
            .env("XIANSUO_LISTEN", "127.0.0.1:0")
            .env_remove("XIANSUO_CONFIG")
            .output()
            .unwrap()
    };
    let out = xiansuo(&["serve", "--config", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rule \"all\" (assign_to) names the user \"nobody\""));
    let users = xiansuo(&["user", "list"]);
    assert!(users.status.success());
    assert!(String::from_utf8_lossy(&users.stdout).trim().is_empty(), "no user was created");

    // The admin a first start creates may be named by the rules.
    let config = "[[rules]]\nname = \"all\"\nassign_to = \"admin\"\n".to_string();
    let server = Server::start_with(Options { config: Some(config), ..Default::default() }).await;
    assert!(server.banner.contains("First start"));
    let id = push_card(&server, "06000000013100635537156211190001", &[]).await;
    let (_, lead) = server.get(&format!("/api/v1/leads/{id}")).await;
    assert!(lead["owner_id"].as_i64().is_some(), "{lead}");
}
