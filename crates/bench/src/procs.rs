//! The processes a run measures: the real `xiansuo` binary on a fresh database, and the ceiling
//! (this program's own trivial endpoint, in a process of its own); their memory and CPU time
//! from /proc; the throw-away PostgreSQL database.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
pub const PUSH_TOKEN: &str = "bench-push-token-0123456789";

/// The workspace root (this crate is crates/bench).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

/// The release `xiansuo` binary: `--server-bin`, else the one beside this program (both are in
/// target/release), else target/release/xiansuo of the workspace.
pub fn server_binary(explicit: Option<&Path>, build: bool) -> Result<PathBuf, String> {
    if build {
        eprintln!("building the server: cargo build --release --bin xiansuo");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--bin", "xiansuo"])
            .current_dir(workspace_root())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build --release --bin xiansuo failed: {status}"));
        }
    }
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--server-bin {}: no such file", p.display()))
        };
    }
    let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("xiansuo")));
    let candidates = [beside, Some(workspace_root().join("target/release/xiansuo"))];
    candidates.into_iter().flatten().find(|p| p.is_file()).ok_or_else(|| {
        "the release server binary target/release/xiansuo is missing: run `cargo build --release` first \
         (or pass --build, or --server-bin PATH)"
            .to_string()
    })
}

/// A child process serving HTTP on loopback.
pub struct Proc {
    child: Option<Child>,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// From spawn to the "listening on" line.
    pub listening_after: Duration,
    pub log: PathBuf,
    spawned: Instant,
}

impl Proc {
    /// Spawns `cmd` (standard error to `log`) and waits for " listening on http://…" on its
    /// standard output.
    pub fn spawn(mut cmd: Command, log: &Path, what: &str) -> Result<Proc, String> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(log_file));
        let spawned = Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {what}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no standard output")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            // Keep reading to the end, so the child never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(base) = line.split(" listening on ").nth(1) {
                    sent = true;
                    let _ = tx.send((base.trim().to_string(), spawned.elapsed()));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(600)) {
            Ok((base, listening_after)) => {
                let pid = child.id();
                Ok(Proc { child: Some(child), pid, base, listening_after, log: log.to_path_buf(), spawned })
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("{what} did not start; its log ({}):\n{}", log.display(), tail(log, 30)))
            }
        }
    }

    /// Waits until `GET /healthz` answers 200; returns the time since spawn.
    pub async fn wait_healthy(&self, client: &reqwest::Client) -> Result<Duration, String> {
        let url = format!("{}/healthz", self.base);
        for _ in 0..6000 {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(self.spawned.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(format!("{url} never answered 200; log:\n{}", tail(&self.log, 30)))
    }

    pub fn memory(&self) -> Memory {
        memory(self.pid)
    }

    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.pid))
    }

    pub fn written(&self) -> Written {
        written(self.pid)
    }

    pub fn thread_cpu(&self) -> std::collections::BTreeMap<String, f64> {
        thread_cpu(self.pid)
    }

    /// SIGTERM, then waits (SIGKILL after 60 s). Returns the exit status and how long it took.
    pub fn stop(&mut self) -> Option<(ExitStatus, Duration)> {
        let mut child = self.child.take()?;
        let t = Instant::now();
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        for _ in 0..6000 {
            if let Ok(Some(status)) = child.try_wait() {
                return Some((status, t.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        child.wait().ok().map(|s| (s, t.elapsed()))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// CPU seconds of each thread of a process, summed by thread name (`tokio-runtime-w`,
/// `xiansuo-writer`…).
pub fn thread_cpu(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return by_name };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default().trim().to_string();
        let cpu = cpu_seconds(&path.join("stat").display().to_string());
        *by_name.entry(name).or_insert(0.0) += cpu;
    }
    by_name
}

/// Bytes a process has written: through write calls (`wchar`), and sent to storage
/// (`write_bytes`), from /proc/PID/io.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    pub wchar: u64,
    pub storage: u64,
}

pub fn written(pid: u32) -> Written {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    Written { wchar: field("wchar:"), storage: field("write_bytes:") }
}

/// CPU seconds of every process with this command name (e.g. all `postgres` processes).
pub fn processes_cpu(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == comm))
        .map(|e| cpu_seconds(&e.path().join("stat").display().to_string()))
        .sum()
}

/// Per-thread-name CPU used between two readings, as cores over `seconds`, busiest first.
pub fn thread_cores(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    seconds: f64,
) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = after
        .iter()
        .map(|(name, cpu)| (name.clone(), (cpu - before.get(name).copied().unwrap_or(0.0)) / seconds.max(1e-9)))
        .filter(|(_, cores)| *cores >= 0.005)
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Resident memory of a process, in KiB: now (VmRSS) and at its highest (VmHWM).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

pub fn memory(pid: u32) -> Memory {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory { rss_kib: field("VmRSS:"), peak_kib: field("VmHWM:") }
}

/// User + system CPU time of a process (from /proc/…/stat; Linux's USER_HZ is 100).
pub fn cpu_seconds(stat_path: &str) -> f64 {
    let text = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Where the server under test keeps its data.
pub enum Database {
    /// A SQLite database in `dir`: a temporary folder (`_temp`, removed when dropped) or one the
    /// caller keeps (`--reuse`).
    Sqlite {
        dir: PathBuf,
        _temp: Option<tempfile::TempDir>,
    },
    Postgres(PgDatabase),
}

impl Database {
    pub async fn create(kind: DbKind, postgres_server: &str) -> Result<Database, String> {
        match kind {
            DbKind::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("xiansuo-bench-")
                    .tempdir()
                    .map_err(|e| format!("cannot make a temporary folder: {e}"))?;
                Ok(Database::Sqlite { dir: dir.path().to_path_buf(), _temp: Some(dir) })
            }
            DbKind::Postgres => Ok(Database::Postgres(PgDatabase::create(postgres_server).await?)),
        }
    }

    /// A SQLite database kept in `dir` (made if missing), not removed afterwards.
    pub fn sqlite_in(dir: &Path) -> Result<Database, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        Ok(Database::Sqlite { dir: dir.to_path_buf(), _temp: None })
    }

    /// A folder for logs (the SQLite folder, or a temporary one beside PostgreSQL's).
    pub fn work_dir(&self) -> &Path {
        match self {
            Database::Sqlite { dir, .. } => dir,
            Database::Postgres(pg) => pg.dir.path(),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Database::Sqlite { dir, .. } => format!("sqlite://{}", dir.join("xiansuo.db").display()),
            Database::Postgres(pg) => pg.url.clone(),
        }
    }

    /// Bytes of the SQLite write-ahead log (0 on PostgreSQL).
    pub fn wal_bytes(&self) -> u64 {
        match self {
            Database::Sqlite { dir, .. } => std::fs::metadata(dir.join("xiansuo.db-wal")).map_or(0, |m| m.len()),
            Database::Postgres(_) => 0,
        }
    }

    /// Bytes on disk (the SQLite file with its WAL, or pg_database_size).
    pub async fn size_bytes(&self) -> u64 {
        match self {
            Database::Sqlite { dir, .. } => ["xiansuo.db", "xiansuo.db-wal"]
                .iter()
                .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
                .map(|m| m.len())
                .sum(),
            Database::Postgres(pg) => pg.size().await.unwrap_or(0),
        }
    }

    /// Starts the server on this database.
    pub fn start_server(&self, binary: &Path) -> Result<Proc, String> {
        start_server_on(binary, &self.url(), self.work_dir())
    }
}

/// Starts the server on a database given by its URL (logs and working folder: `dir`).
pub fn start_server_on(binary: &Path, database_url: &str, dir: &Path) -> Result<Proc, String> {
    let mut cmd = Command::new(binary);
    cmd.arg("serve")
        .current_dir(dir)
        .env("XIANSUO_LISTEN", "127.0.0.1:0")
        .env("XIANSUO_DATABASE_URL", database_url)
        .env("XIANSUO_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("XIANSUO_PUSH_TOKEN", PUSH_TOKEN)
        .env_remove("XIANSUO_CONFIG");
    Proc::spawn(cmd, &dir.join("server.log"), "the xiansuo server")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    pub fn name(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }
}

/// A database created on a PostgreSQL server for one run, dropped afterwards.
pub struct PgDatabase {
    pub url: String,
    name: String,
    server: String,
    dir: tempfile::TempDir,
    dropped: bool,
}

async fn pg_connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL at {url}: {e} (start it, or pass --postgres-url)"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// The same server URL naming another database.
fn url_with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// `CREATE DATABASE name`.
async fn create_database(client: &tokio_postgres::Client, name: &str) -> Result<(), String> {
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.map_err(|e| format!("CREATE DATABASE {name}: {e}"))
}

impl PgDatabase {
    /// `name` on `server`, with a temporary folder for logs; `kept`: never dropped by this program.
    fn named(server: &str, name: &str, kept: bool) -> Result<PgDatabase, String> {
        let dir = tempfile::Builder::new()
            .prefix("xiansuo-bench-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary folder: {e}"))?;
        Ok(PgDatabase {
            url: url_with_database(server, name),
            name: name.to_string(),
            server: server.to_string(),
            dir,
            dropped: kept,
        })
    }

    pub async fn create(server: &str) -> Result<PgDatabase, String> {
        let client = pg_connect(server).await?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        let name = format!("xiansuo_bench_{}_{stamp}", std::process::id());
        create_database(&client, &name).await?;
        PgDatabase::named(server, &name, false)
    }

    /// The database `name` on `server`, kept afterwards: created when missing. Returns it and
    /// whether it existed already.
    pub async fn kept(server: &str, name: &str) -> Result<(PgDatabase, bool), String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("--reuse-db {name:?}: use letters, digits and _ only"));
        }
        let client = pg_connect(server).await?;
        let existed = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(|e| format!("looking for the database {name}: {e}"))?
            .is_some();
        if !existed {
            create_database(&client, name).await?;
        }
        Ok((PgDatabase::named(server, name, true)?, existed))
    }

    async fn size(&self) -> Result<u64, String> {
        let client = pg_connect(&self.server).await?;
        let row = client
            .query_one("SELECT pg_database_size($1::text)", &[&self.name])
            .await
            .map_err(|e| format!("pg_database_size: {e}"))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// `VACUUM (ANALYZE)` of the whole database: the state autovacuum reaches a minute or two
    /// after a bulk load (visibility map for index-only scans, planner statistics).
    pub async fn vacuum_analyze(&self) -> Result<Duration, String> {
        let client = pg_connect(&self.url).await?;
        let t = Instant::now();
        client.batch_execute("VACUUM (ANALYZE)").await.map_err(|e| format!("VACUUM (ANALYZE): {e}"))?;
        Ok(t.elapsed())
    }

    pub async fn drop_now(&mut self) -> Result<(), String> {
        let client = pg_connect(&self.server).await?;
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await
            .map_err(|e| format!("DROP DATABASE {}: {e}", self.name))?;
        self.dropped = true;
        Ok(())
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Dropped from sync code, maybe inside a runtime: a thread of its own does the I/O.
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok(client) = pg_connect(&server).await {
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

/// Starts the ceiling: this program's `ceiling-server` command, a process of its own.
pub fn start_ceiling(dir: &Path) -> Result<Proc, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("ceiling-server");
    Proc::spawn(cmd, &dir.join("ceiling.log"), "the ceiling server")
}

/// The machine: CPUs, memory, CPU model.
pub fn machine() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string()))
        .unwrap_or_default();
    serde_json::json!({ "cpus": cpus, "memory_gib": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0, "cpu_model": model })
}

/// The 1-minute load average: how busy the machine was (other work skews a run).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// The workspace's commit (with `-dirty` when the tree has changes), if git can tell.
pub fn git_revision() -> String {
    let root = workspace_root();
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{rev}-dirty") } else { rev }
        }
        None => "unknown".into(),
    }
}
