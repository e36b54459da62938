//! Issue #11, relay: every push that passes a source's authentication is re-sent, byte for byte
//! with its original Content-Type, to each relay target of the source, through the outbox
//! (retries, dead, redelivery, nothing lost across restarts). Two real HTTP receivers on
//! loopback, one failing for a while; the service is killed in the middle. Runs on SQLite, and
//! on PostgreSQL with XIANSUO_TEST_BACKEND=postgres.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use common::{Options, PUSH_TOKEN, Server, card};
use reqwest::redirect::Policy;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    status: u16,
}

#[derive(Default)]
struct Script {
    /// Every request is answered 500 while this holds.
    failing: bool,
    /// Each request waits this long before its answer (a slow old endpoint).
    delay: Duration,
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
) -> (StatusCode, &'static str) {
    let (status, delay) = {
        let mut s = script.lock().unwrap();
        let status = if s.failing { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
        s.hits.push(Hit { path: uri.path().to_string(), headers, body: body.to_vec(), status: status.as_u16() });
        (status, s.delay)
    };
    tokio::time::sleep(delay).await;
    (status, if status == StatusCode::OK { "ok" } else { "old endpoint down" })
}

impl Receiver {
    async fn start(failing: bool, delay: Duration) -> Receiver {
        let script = Arc::new(Mutex::new(Script { failing, delay, hits: Vec::new() }));
        let app = axum::Router::new().fallback(answer).with_state(Arc::clone(&script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { script, url }
    }

    fn hits(&self) -> Vec<Hit> {
        self.script.lock().unwrap().hits.clone()
    }

    fn delivered(&self) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.status == 200).collect()
    }

    fn set_failing(&self, on: bool) {
        self.script.lock().unwrap().failing = on;
    }
}

async fn wait_until(server: &Server, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !done() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; server log:\n{}", server.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config(old: &Receiver, crm: &Receiver, delivery: &str) -> String {
    format!(
        "[sources.easyliao]\nrelay = [\n  {{ url = \"{}/old/push?k=1\", headers = {{ X-Old-Key = \"old-key-123\" }} }},\n  {{ url = \"{}/crm\" }},\n]\n\n[sources.other]\ntoken = \"other-source-token-0123\"\n\n[delivery]\n{delivery}\n",
        old.url, crm.url
    )
}

/// A push with a given Content-Type; the status and the push id of the answer.
async fn push(server: &Server, body: &[u8], content_type: &str) -> (u16, Option<i64>) {
    let (status, answer) = server.push(body.to_vec(), Some(content_type)).await;
    (status.as_u16(), answer["push_id"].as_i64())
}

/// The relays of a push as the API lists them.
async fn relays(server: &Server, push_id: i64) -> Vec<Value> {
    let (status, page) = server.get("/api/v1/pushes?per_page=200").await;
    assert_eq!(status, 200, "{page}");
    let item = page["items"].as_array().unwrap().iter().find(|p| p["id"] == json!(push_id)).cloned();
    item.unwrap_or_else(|| panic!("push {push_id} in the log: {page}"))["relays"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_push_reaches_every_relay_target_byte_for_byte_across_a_restart() {
    // "old" answers at once; "crm" is down (500) until told otherwise.
    let old = Receiver::start(false, Duration::ZERO).await;
    let crm = Receiver::start(true, Duration::ZERO).await;
    let delivery = "timeout_ms = 2000\nmax_attempts = 100\nbackoff_ms = 100\nmax_backoff_ms = 400\npoll_ms = 100";
    let server = Server::start_with(Options { config: Some(config(&old, &crm, delivery)), ..Default::default() }).await;

    // Bodies as vendors send them: a JSON card, a GBK form (its bytes are not UTF-8), a body
    // that is rejected (not JSON: kept as rejected, and relayed all the same: the old endpoint
    // decides for itself), and a multi-card array.
    let json_card = serde_json::to_vec(&card("03000000013100635537156211190001")).unwrap();
    let (gbk, _, _) = encoding_rs::GBK
        .encode("visitorStaticId=0300000001310063553715621119009&companyId=1&chatId=2&name=张三&mobile=13355556666");
    let gbk = gbk.into_owned();
    let broken = "{\"visitorStaticId\": “03”}".as_bytes().to_vec();
    let batch = serde_json::to_vec(&json!([
        card("03000000013100635537156211190003"),
        card("03000000013100635537156211190004")
    ]))
    .unwrap();
    let mut sent: Vec<(i64, Vec<u8>, &str)> = Vec::new();
    for (body, ct) in [
        (json_card, "application/json"),
        (gbk, "application/x-www-form-urlencoded; charset=GBK"),
        (broken, "application/json;charset=utf-8"),
        (batch, "text/plain"),
    ] {
        let (status, push_id) = push(&server, &body, ct).await;
        assert!(status == 200 || status == 400, "push answered {status}");
        sent.push((push_id.expect("a push id"), body, ct));
    }
    // A wrong token and another source's push are not relayed.
    let wrong = server
        .client
        .post(format!("{}/push/easyliao?token=wrong-token-0123456789", server.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let other = server
        .client
        .post(format!("{}/push/other?token=other-source-token-0123", server.base))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&card("03000000013100635537156211190009")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);

    wait_until(&server, "the four bodies at the old endpoint", || old.delivered().len() >= 4).await;
    wait_until(&server, "several failed attempts at the CRM", || crm.hits().len() >= 8).await;
    // The old endpoint's deliveries are recorded as delivered before the crash (so that the
    // crash cannot make it see one twice); the CRM's are still pending, with their last error.
    for (id, _, _) in &sent {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = relays(&server, *id).await;
            assert_eq!(r.len(), 2, "one relay per target: {r:?}");
            if r[0]["status"] == "delivered" {
                assert_eq!(r[0]["target"], "relay:easyliao:1");
                assert_eq!(r[0]["last_status"], 200);
                assert_eq!(r[1]["target"], "relay:easyliao:2");
                assert_eq!(r[1]["status"], "pending");
                assert!(r[1]["attempts"].as_i64().unwrap() >= 1, "{r:?}");
                break;
            }
            assert!(Instant::now() < deadline, "relay of push {id} to the old endpoint not recorded: {r:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Killed in the middle of the CRM's retries; one more push after the restart.
    let server = server.crash_and_restart();
    let fifth = serde_json::to_vec(&card("03000000013100635537156211190005")).unwrap();
    let (status, push_id) = push(&server, &fifth, "application/json").await;
    assert_eq!(status, 200);
    sent.push((push_id.unwrap(), fifth, "application/json"));
    crm.set_failing(false);
    wait_until(&server, "every body at both targets", || old.delivered().len() >= 5 && crm.delivered().len() >= 5)
        .await;
    // Give a duplicate the time to show up, if there were one.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    for (target, path) in [(&old, "/old/push"), (&crm, "/crm")] {
        let delivered = target.delivered();
        assert_eq!(delivered.len(), sent.len(), "once per push at {path}");
        for (id, body, ct) in &sent {
            let hits: Vec<&Hit> = delivered.iter().filter(|h| &h.body == body).collect();
            assert_eq!(hits.len(), 1, "push {id} arrived once, byte for byte, at {path}");
            assert_eq!(hits[0].path, path);
            assert_eq!(hits[0].headers["content-type"], *ct, "the original Content-Type");
            let stored = server.stored_body(*id).await;
            assert_eq!(&stored, body, "the relayed body is the stored body");
        }
    }
    assert!(old.hits().iter().all(|h| h.headers["x-old-key"] == "old-key-123"), "the configured header");
    assert!(crm.hits().iter().all(|h| h.headers.get("x-old-key").is_none()), "headers are per target");
    assert!(old.hits().iter().chain(crm.hits().iter()).all(|h| !h.body.is_empty() && h.body != b"{}"));

    // The push log shows each relay attempt.
    for (id, _, _) in &sent {
        let r = relays(&server, *id).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        if r.iter().any(|x| x["status"] != "delivered") {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let r = relays(&server, *id).await;
        assert!(r.iter().all(|x| x["status"] == "delivered"), "{r:?}");
    }
    let first = relays(&server, sent[0].0).await;
    assert!(first[1]["attempts"].as_i64().unwrap() >= 2, "the CRM's failures are counted: {first:?}");
    assert_eq!(first[0]["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_vendor_never_waits_and_dead_relays_are_redelivered_from_the_console() {
    // Both targets are slow (3 s per answer, past the 1 s limit), then the CRM fails outright.
    let old = Receiver::start(false, Duration::from_secs(3)).await;
    let crm = Receiver::start(true, Duration::ZERO).await;
    let delivery = "timeout_ms = 1000\nmax_attempts = 2\nbackoff_ms = 50\npoll_ms = 100";
    let server = Server::start_with(Options { config: Some(config(&old, &crm, delivery)), ..Default::default() }).await;
    let password = server.admin_password();

    let body = serde_json::to_vec(&card("03000000013100635537156211190011")).unwrap();
    let started = Instant::now();
    let (status, push_id) = push(&server, &body, "application/json").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_millis(900), "the answer did not wait for the relays");
    let push_id = push_id.unwrap();

    // Two attempts each, then dead: the push log says why.
    let deadline = Instant::now() + Duration::from_secs(120);
    let r = loop {
        let r = relays(&server, push_id).await;
        if r.iter().all(|x| x["status"] == "dead") {
            break r;
        }
        assert!(Instant::now() < deadline, "the relays did not die: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r[0]["attempts"], 2);
    assert!(r[0]["last_error"].as_str().unwrap().contains("no answer within 1000 ms"), "{r:?}");
    assert_eq!(r[1]["last_status"], 500);
    assert!(r[1]["last_error"].as_str().unwrap().contains("old endpoint down"), "{r:?}");
    assert_eq!(crm.hits().len(), 2);

    // The deliveries page lists the relay targets like sinks, links the push, and redelivers.
    let browser = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let res = browser
        .post(format!("{}/login", server.base))
        .form(&[("name", "admin"), ("password", password.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let html = browser
        .get(format!("{}/admin/deliveries?sink=relay:easyliao:2", server.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("relay:easyliao:2") && html.contains("push.relay"), "{html}");
    assert!(html.contains(&format!("/admin/pushes#push-{push_id}")), "{html}");
    let log = browser
        .get(format!("{}/admin/pushes", server.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("relay:easyliao:2 已放弃 · 尝试 2 次 · HTTP 500"), "{log}");
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = html[at..].split('"').next().unwrap().to_string();
    crm.set_failing(false);
    let res = browser
        .post(format!("{}/admin/deliveries/all/redeliver", server.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("sink", "relay:easyliao:2")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    wait_until(&server, "the redelivered relay", || crm.delivered().len() == 1).await;
    assert_eq!(crm.delivered()[0].body, body);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = relays(&server, push_id).await;
        if r[1]["status"] == "delivered" {
            assert_eq!(r[0]["status"], "dead", "only the CRM's was redelivered");
            break;
        }
        assert!(Instant::now() < deadline, "{r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = PUSH_TOKEN;
}
