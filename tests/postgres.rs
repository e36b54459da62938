//! PostgreSQL-specific behaviour: several service processes on one database, and a database
//! that goes away and comes back.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Backend, Options, Server, card, pg};
use reqwest::StatusCode;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

#[tokio::test]
async fn two_instances_make_one_lead_with_every_message() {
    let backend = Backend::postgres().await;
    let a = Server::start_with(Options { backend: Some(backend.clone()), ..Default::default() }).await;
    let b = Server::start_with(Options { backend: Some(backend.clone()), ..Default::default() }).await;

    let mut tasks = Vec::new();
    for i in 0..120 {
        let server = if i % 2 == 0 { &a } else { &b };
        let (client, url) = (server.client.clone(), server.push_url("easyliao"));
        // Most pushes are for one visitor, each with a message of its own and one shared one.
        let visitor = if i % 3 == 0 { format!("other-{i}") } else { "shared-visitor".to_string() };
        let mut body = card(&visitor);
        body["currentChatJsonDetail"] = json!([
            {"recorder_id": format!("own-{i}"), "from_id": visitor, "message": format!("第{i}条"), "create_time": "2026-11-24 10:00:00"},
            {"recorder_id": "shared", "from_id": "kf-1", "message": "您好", "create_time": "2026-11-24 09:59:00"}
        ]);
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
    // Pushes answered `queued` in the burst get their leads right after (either instance's
    // applier may build them; each push once).
    a.wait_until_applied().await;
    let (_, list) = a.get("/api/v1/leads?q=shared-visitor").await;
    assert_eq!(list["total"], 1, "one lead for the visitor, whichever instance received its pushes");
    let id = list["items"][0]["id"].as_i64().unwrap();
    let (_, lead) = b.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(lead["push_count"], 80);
    assert_eq!(lead["message_count"], 81, "80 own messages and the shared one, each once");
    assert_eq!(lead["messages"].as_array().unwrap().len(), 81);
    assert_eq!(a.get("/api/v1/leads").await.1["total"], 41);
    assert_eq!(b.get("/api/v1/pushes").await.1["total"], 120);
}

/// A TCP proxy on loopback in front of the PostgreSQL server, which the test can cut.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound); // the database is "down": the connection closes at once
                    continue;
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links2.lock().await.push(link);
            }
        });
        Proxy { port, up, links }
    }

    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

// Multi-threaded: the proxy must keep running while the test thread waits for the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_gets_503_and_the_service_recovers_by_itself() {
    let (server, proxy, backend) = proxied_server(Vec::new()).await;
    let Backend::Postgres(db) = &backend else { unreachable!() };

    let (status, _) = server.push_json(&card("before")).await;
    assert_eq!(status, StatusCode::OK);

    proxy.cut().await;
    let response =
        server.client.post(server.push_url("easyliao")).body(card("during").to_string()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let health = server.client.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    let mut recovered = false;
    for _ in 0..100 {
        let (status, _) = server.push_json(&card("after")).await;
        if status == StatusCode::OK {
            recovered = true;
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "only 503 while recovering");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the service did not recover after the database came back");

    // Exactly what was acknowledged is stored: no lead for the push that got 503.
    let client = pg(&db.url).await;
    let visitors: Vec<String> = client
        .query("SELECT visitor_static_id FROM leads ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(visitors, ["before", "after"]);
}

/// A server on a fresh PostgreSQL database reached through a proxy the test can cut.
async fn proxied_server(env: Vec<(String, String)>) -> (Server, Proxy, Backend) {
    let backend = Backend::postgres().await;
    let Backend::Postgres(db) = &backend else { unreachable!() };
    let config: tokio_postgres::Config = db.url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("the test server must be reached over TCP, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let proxy = Proxy::start(format!("{host}:{port}")).await;
    let via_proxy = db.url.replacen(&format!("{host}:{port}"), &format!("127.0.0.1:{}", proxy.port), 1);
    assert_ne!(via_proxy, db.url, "the database URL names {host}:{port}");
    let mut env = env;
    env.push(("XIANSUO_DATABASE_URL".into(), via_proxy));
    let server = Server::start_with(Options { backend: Some(backend.clone()), env, ..Default::default() }).await;
    (server, proxy, backend)
}

/// A proxied server with a spool folder.
async fn spooled_server() -> (Server, Proxy, Backend, std::path::PathBuf, tempfile::TempDir) {
    let spool_parent = tempfile::tempdir().unwrap();
    let spool = spool_parent.path().join("spool");
    let (server, proxy, backend) =
        proxied_server(vec![("XIANSUO_SPOOL_DIR".into(), spool.display().to_string())]).await;
    (server, proxy, backend, spool, spool_parent)
}

fn spool_entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".push"))
        .count()
}

async fn wait_for_leads(server: &Server, total: u64) {
    for _ in 0..200 {
        if server.get("/api/v1/leads?per_page=1").await.1["total"].as_u64() == Some(total) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the spool was not drained: {}", server.get("/api/v1/leads?per_page=1").await.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_spool_an_outage_costs_no_push_and_keeps_their_order() {
    let (server, proxy, backend, spool, _keep) = spooled_server().await;
    let Backend::Postgres(db) = &backend else { unreachable!() };
    assert_eq!(server.push_json(&card("before")).await.0, StatusCode::OK);

    proxy.cut().await;
    let mut spooled = 0;
    for i in 0..8 {
        let (status, answer) = server.push_json(&card(&format!("during-{i}"))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["outcome"], "spooled");
        spooled += 1;
    }
    // The same visitor three times: the last card must win once stored.
    for name in ["第一次", "第二次", "第三次"] {
        let mut c = card("same-visitor");
        c["name"] = serde_json::json!(name);
        assert_eq!(server.push_json(&c).await.0, StatusCode::ACCEPTED);
        spooled += 1;
    }
    // A body that does not decode is answered 400 and kept (as rejected once stored).
    let (status, _) = server.push("{\"visitorStaticId\": oops".to_string(), Some("application/json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    spooled += 1;
    assert_eq!(spool_entries(&spool), spooled, "every answered push is on disk");

    // A graceful restart while the database is still down; it comes back before the start.
    let server = server.restart_after(|| proxy.restore());
    wait_for_leads(&server, 1 + 8 + 1).await;
    for _ in 0..100 {
        if spool_entries(&spool) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(spool_entries(&spool), 0, "the spool is empty once stored");

    let client = pg(&db.url).await;
    let rows = client.query("SELECT outcome, spool_id IS NOT NULL FROM pushes ORDER BY id", &[]).await.unwrap();
    let outcomes: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(outcomes.len(), 1 + spooled, "each push stored exactly once: {outcomes:?}");
    assert_eq!(outcomes.iter().filter(|(_, s)| *s).count(), spooled);
    assert_eq!(outcomes.last().unwrap().0, "rejected", "the malformed body, last as it came");
    let names: Vec<String> = client
        .query("SELECT name FROM leads WHERE visitor_static_id = 'same-visitor'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["第三次"], "stored in the order they came");
    let order: Vec<String> = client
        .query("SELECT visitor_static_id FROM leads WHERE visitor_static_id LIKE 'during-%' ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(order, (0..8).map(|i| format!("during-{i}")).collect::<Vec<_>>());

    // Back to normal: answered 200 again.
    assert_eq!(server.push_json(&card("after")).await.0, StatusCode::OK);
}
