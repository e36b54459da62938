//! The one way integration tests start Xiansuo: the real binary, on a random loopback port,
//! with its own SQLite file in a temporary folder.
#![allow(dead_code)]

pub mod console;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const PUSH_TOKEN: &str = "test-push-token-0123456789";

/// A card written from push-spec.md (the vendor note's example, repaired).
pub fn card(visitor: &str) -> Value {
    serde_json::json!({
        "visitorStaticId": visitor,
        "companyId": "88271217",
        "chatId": "348027659",
        "name": "太原市6283",
        "mobile": "13355556666",
        "qq": "6666666",
        "weixin": "xxxxxx",
        "chatURL": "http://m.xxx.com/zt/hbtd.html?sgyd1&PP&YS-YHJY&SG1-p-hb&key=weizhi",
        "createTime": "2020-03-28 05:59:02",
        "userId": "AI-omg122TianA",
        "keyword": "培训学校",
        "searchHost": "wap.sogou.com",
        "searchEngine": "搜狗",
        "province": "山西省",
        "city": "太原市",
        "note": "想了解学费",
        "currentChatJsonDetail": [
            {"chat_id": 348027659, "create_time": "2020-04-13 16:49:47", "from_id": visitor, "message": "你好", "recorder_id": 1854094590, "type": "RECORD_RECORD"},
            {"chat_id": 348027659, "create_time": "2020-04-13 16:49:54", "from_id": "hkzyzs-kf", "message": "您好，请问有什么可以帮您", "recorder_id": 1854098812, "type": "RECORD_RECORD"}
        ]
    })
}

/// Where a test server keeps its data.
#[derive(Clone)]
pub enum Backend {
    /// An SQLite file in the server's temporary folder.
    Sqlite,
    /// A throw-away PostgreSQL database (shared by the servers that hold this value).
    Postgres(std::sync::Arc<xiansuo_store::testing::TestDatabase>),
}

impl Backend {
    /// The backend the integration tests run on: `XIANSUO_TEST_BACKEND=postgres` selects a fresh
    /// PostgreSQL database per server (./scripts/test runs the tests once per backend).
    pub async fn from_env() -> Backend {
        match std::env::var("XIANSUO_TEST_BACKEND").as_deref() {
            Ok("postgres") => Backend::postgres().await,
            Ok("sqlite") | Err(_) => Backend::Sqlite,
            Ok(other) => panic!("XIANSUO_TEST_BACKEND={other}: use sqlite or postgres"),
        }
    }

    pub async fn postgres() -> Backend {
        Backend::Postgres(std::sync::Arc::new(xiansuo_store::testing::throwaway_postgres().await))
    }
}

pub struct Server {
    child: Option<Child>,
    pub backend: Backend,
    pub base: String,
    pub dir: PathBuf,
    /// Keeps the temporary folder alive as long as the server (and its restarts).
    tmp: std::sync::Arc<tempfile::TempDir>,
    config: Option<String>,
    env: Vec<(String, String)>,
    /// What the server printed on standard output at start.
    pub banner: String,
    pub client: reqwest::Client,
}

pub struct Options {
    /// `None`: the backend of `XIANSUO_TEST_BACKEND`.
    pub backend: Option<Backend>,
    pub config: Option<String>,
    pub env: Vec<(String, String)>,
    /// Set XIANSUO_ADMIN_TOKEN and XIANSUO_PUSH_TOKEN to the test tokens.
    pub fixed_tokens: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { backend: None, config: None, env: Vec::new(), fixed_tokens: true }
    }
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Server {
        let tmp = std::sync::Arc::new(tempfile::tempdir().expect("temporary folder"));
        let mut env = options.env;
        if options.fixed_tokens {
            env.push(("XIANSUO_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()));
            env.push(("XIANSUO_PUSH_TOKEN".into(), PUSH_TOKEN.into()));
        }
        let backend = match options.backend {
            Some(b) => b,
            None => Backend::from_env().await,
        };
        Server::launch(tmp, backend, options.config, env)
    }

    fn launch(
        tmp: std::sync::Arc<tempfile::TempDir>,
        backend: Backend,
        config: Option<String>,
        env: Vec<(String, String)>,
    ) -> Server {
        let dir = tmp.path().to_path_buf();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xiansuo"));
        cmd.arg("serve").current_dir(&dir);
        if let Some(text) = &config {
            let path = dir.join("xiansuo.toml");
            std::fs::write(&path, text).expect("write config");
            cmd.arg("--config").arg(&path);
        }
        cmd.env("XIANSUO_LISTEN", "127.0.0.1:0")
            .env(
                "XIANSUO_DATABASE_URL",
                match &backend {
                    Backend::Sqlite => format!("sqlite://{}", dir.join("data/xiansuo.db").display()),
                    Backend::Postgres(db) => db.url.clone(),
                },
            )
            .env("RUST_LOG", "info,tower_http=warn")
            .env_remove("XIANSUO_CONFIG");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).expect("log file");
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("start the xiansuo binary");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut banner = String::new();
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                banner.push_str(&line);
                banner.push('\n');
                if !sent && line.starts_with("API description:") {
                    sent = true;
                    let _ = tx.send(banner.clone());
                }
            }
        });
        let banner = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                panic!("the server did not start within 30 s; its log:\n{log}");
            }
        };
        let base =
            banner.lines().find_map(|l| l.split(" listening on ").nth(1)).expect("listening line").trim().to_string();
        Server {
            child: Some(child),
            backend,
            base,
            dir,
            tmp,
            config,
            env,
            banner,
            client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
        }
    }

    /// Stops the server with SIGKILL-free SIGTERM and waits for it to exit; returns its status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..200 {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Kills the server with SIGKILL (it gets no chance to finish anything) and starts it again
    /// on the same data.
    pub fn crash_and_restart(mut self) -> Server {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let config = self.config.take();
        Server::launch(self.tmp.clone(), self.backend.clone(), config, std::mem::take(&mut self.env))
    }

    /// Stops the server, runs `between` (while nothing runs), and starts it again on the same
    /// data.
    pub fn restart_after(mut self, between: impl FnOnce()) -> Server {
        let status = self.stop();
        assert!(status.is_some_and(|s| s.success()), "the server did not exit cleanly: {status:?}");
        between();
        let config = self.config.take();
        Server::launch(self.tmp.clone(), self.backend.clone(), config, std::mem::take(&mut self.env))
    }

    /// Stops the server and starts it again on the same data, optionally with a new config.
    pub fn restart(mut self, config: Option<String>) -> Server {
        let status = self.stop();
        assert!(status.is_some_and(|s| s.success()), "the server did not exit cleanly: {status:?}");
        let config = config.or(self.config.take());
        Server::launch(self.tmp.clone(), self.backend.clone(), config, std::mem::take(&mut self.env))
    }

    /// Runs SQL statements on the server's database (to set up a state an older release left).
    pub async fn execute_sql(&self, sql: &str) {
        match &self.backend {
            Backend::Sqlite => {
                let db = rusqlite::Connection::open(self.dir.join("data/xiansuo.db")).expect("open the SQLite file");
                db.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
                db.execute_batch(sql).expect("the SQL runs");
            }
            Backend::Postgres(db) => pg(&db.url).await.batch_execute(sql).await.expect("the SQL runs"),
        }
    }

    /// Runs a CLI command against the server's database; returns its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_xiansuo"))
            .args(args)
            .env("XIANSUO_DATABASE_URL", self.database_url())
            .env_remove("XIANSUO_CONFIG")
            .output()
            .expect("run xiansuo");
        assert!(out.status.success(), "xiansuo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A push's body as the database holds it.
    pub async fn stored_body(&self, push_id: i64) -> Vec<u8> {
        match &self.backend {
            Backend::Sqlite => {
                let db = rusqlite::Connection::open(self.dir.join("data/xiansuo.db")).expect("open the SQLite file");
                db.query_row("SELECT body FROM pushes WHERE id = ?1", [push_id], |r| r.get(0)).expect("push row")
            }
            Backend::Postgres(db) => {
                let client = pg(&db.url).await;
                client.query_one("SELECT body FROM pushes WHERE id = $1", &[&push_id]).await.expect("push row").get(0)
            }
        }
    }

    /// Checks the database's integrity (SQLite's integrity_check) and returns its lead count.
    pub async fn checked_lead_count(&self) -> i64 {
        match &self.backend {
            Backend::Sqlite => {
                let db = rusqlite::Connection::open(self.dir.join("data/xiansuo.db")).expect("open the SQLite file");
                let ok: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity check");
                assert_eq!(ok, "ok");
                db.query_row("SELECT count(*) FROM leads", [], |r| r.get(0)).expect("count")
            }
            Backend::Postgres(db) => {
                pg(&db.url).await.query_one("SELECT count(*) FROM leads", &[]).await.expect("count").get(0)
            }
        }
    }

    /// The database the server uses (what `XIANSUO_DATABASE_URL` is for its CLI commands).
    pub fn database_url(&self) -> String {
        match &self.backend {
            Backend::Sqlite => format!("sqlite://{}", self.dir.join("data/xiansuo.db").display()),
            Backend::Postgres(db) => db.url.clone(),
        }
    }

    /// Adds a console user with the CLI (`xiansuo user add NAME --role ROLE --password-stdin`).
    pub fn add_user(&self, name: &str, role: &str, password: &str) {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_xiansuo"))
            .args(["user", "add", name, "--role", role, "--password-stdin"])
            .env("XIANSUO_DATABASE_URL", self.database_url())
            .env_remove("XIANSUO_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xiansuo user add");
        child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("write the password");
        let out = child.wait_with_output().expect("xiansuo user add");
        assert!(out.status.success(), "xiansuo user add {name}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The first admin's one-time password, from the first start's banner.
    pub fn admin_password(&self) -> String {
        let line =
            self.banner.lines().find(|l| l.starts_with("First start:")).expect("a first-start line in the banner");
        let rest = line.split("the password ").nth(1).expect("the password in the first-start line");
        rest.split_whitespace().next().expect("a password").to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn push_url(&self, source: &str) -> String {
        format!("{}/push/{source}?token={PUSH_TOKEN}", self.base)
    }

    /// Posts a body to the default source with the test token; returns status and JSON answer.
    pub async fn push(&self, body: impl Into<reqwest::Body>, content_type: Option<&str>) -> (StatusCode, Value) {
        self.push_to("easyliao", body, content_type).await
    }

    pub async fn push_to(
        &self,
        source: &str,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.post(self.push_url(source)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        answer(req.send().await.expect("push request")).await
    }

    pub async fn push_json(&self, value: &Value) -> (StatusCode, Value) {
        self.push(value.to_string(), Some("application/json")).await
    }

    /// GET an API path with the admin token.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let req = self.client.get(format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN);
        answer(req.send().await.expect("GET")).await
    }

    /// Waits until no push is queued (issue #8: pushes answered `queued` in a burst get their
    /// leads a moment later); fails after 30 s.
    pub async fn wait_until_applied(&self) {
        let start = std::time::Instant::now();
        loop {
            let (status, pushes) = self.get("/api/v1/pushes?outcome=queued&per_page=1").await;
            assert_eq!(status, StatusCode::OK, "{pushes}");
            if pushes["total"] == 0 {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "pushes still queued after 30 s: {pushes}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn post(&self, path: &str) -> (StatusCode, Value) {
        let req = self.client.post(format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN);
        answer(req.send().await.expect("POST")).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A client connection to a PostgreSQL database.
pub async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

pub async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Reads a file beside the tests.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cards").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
