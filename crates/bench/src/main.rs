//! `xiansuo-bench`: measures the real `xiansuo` binary over HTTP on loopback (issue 8).
//!
//! - `ingest`: pushes realistic cards with C concurrent workers (or at a fixed rate) for a
//!   duration, against a fresh database; prints accepted pushes/s, latency percentiles, errors by
//!   status and the server's memory; measures a ceiling (a trivial endpoint that only parses the
//!   same JSON) under the same load, and prints the service as a ratio of it.
//! - `query`: fills a database with N leads through the push endpoint, restarts the server on it
//!   (start-up time, idle memory), and times the API's pages and filters.
//! - `dashboard`: starts the server on an existing database (one filled by `xiansuo demo`, say)
//!   and times the attribution report (`GET /api/v1/stats`) for the default, 90-day and
//!   all-time ranges, with and without filters.
//!
//! Each run prints tables, then one JSON line (also appended to `--json-out FILE`).
//! See BENCHMARKS.md for the method and the results.

/// The service's allocator (src/main.rs): the ceiling server runs on the same one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cards;
mod ceiling;
mod dashboard;
mod load;
mod procs;
mod query;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use cards::{Cards, PushSequence};
use load::{Mode, Outcome};
use procs::{Database, DbKind, Proc};
use table::{Table, mib, ms, thousands};

#[derive(Parser)]
#[command(name = "xiansuo-bench", version, about = "Benchmarks the real xiansuo server over HTTP (issue 8)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Push throughput and latency against a fresh database, with the ceiling of the same load.
    Ingest(IngestArgs),
    /// Fill a database with N leads, then time the API (inbox, filters, search, lead page).
    Query(QueryArgs),
    /// Time the attribution report (`GET /api/v1/stats`) on an existing database.
    Dashboard(DashboardArgs),
    /// Print generated push bodies, one per line (what `ingest` sends, from push FIRST on).
    Cards {
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 3)]
        count: u64,
        #[arg(long, default_value_t = 0)]
        first: u64,
    },
    /// The ceiling endpoint (started by `ingest`; prints "ceiling listening on http://…").
    #[command(hide = true)]
    CeilingServer,
}

#[derive(Args, Clone)]
struct Common {
    /// Database of the server under test.
    #[arg(long, value_enum, default_value = "sqlite")]
    database: DbKind,
    /// PostgreSQL server on which a fresh database is created (and dropped afterwards).
    #[arg(long, env = "XIANSUO_BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// The server binary (default: target/release/xiansuo).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Build it first (`cargo build --release --bin xiansuo`).
    #[arg(long)]
    build: bool,
    /// Seed of the generated cards.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also append the JSON line to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(Args)]
struct IngestArgs {
    #[command(flatten)]
    common: Common,
    /// Concurrent workers (closed loop: each sends its next push when the last is answered).
    #[arg(long, short = 'c', default_value_t = 32)]
    concurrency: usize,
    /// Seconds of measured load (after the warm-up).
    #[arg(long, short = 'd', default_value_t = 20.0)]
    duration: f64,
    /// Open loop instead: start this many pushes per second whatever the answers; latency is
    /// counted from when each push was due.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: most pushes in flight at once (beyond it, pushes wait and their latency grows).
    #[arg(long, default_value_t = 2048)]
    max_in_flight: usize,
    /// Seconds of unmeasured load first (same mode), on the service and on the ceiling.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Leads stored before the run (pushed in batches, then the server is restarted on them).
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// Cards per push while preloading.
    #[arg(long, default_value_t = 50)]
    preload_batch: u64,
    /// Percent of pushes that are a later chat of a visitor already pushed in the run.
    #[arg(long, default_value_t = 15)]
    repeat_percent: u64,
    /// Skip the ceiling.
    #[arg(long)]
    no_ceiling: bool,
}

#[derive(Args)]
struct QueryArgs {
    #[command(flatten)]
    common: Common,
    /// Leads to fill the database with.
    #[arg(long)]
    leads: u64,
    /// Messages of each lead (issue 8's data set: 1 million leads, about 15 million messages).
    #[arg(long, default_value_t = 15)]
    messages_per_lead: usize,
    /// Messages of the one big lead whose page is timed (pushed as chats of 30).
    #[arg(long, default_value_t = 300)]
    big_lead_messages: usize,
    /// Concurrent pushes while filling.
    #[arg(long, default_value_t = 32)]
    fill_concurrency: usize,
    /// Cards per push while filling (1: each lead is its own push, as the vendor sends them).
    #[arg(long, default_value_t = 1)]
    batch: u64,
    /// Times each request is timed.
    #[arg(long, default_value_t = 50)]
    repeat: usize,
    /// SQLite: keep the filled database in this folder, and when it already holds one (from an
    /// earlier run with the same --leads, --seed and transcript sizes), time it without filling
    /// again. Filling a million leads takes about ten minutes.
    #[arg(long)]
    reuse: Option<std::path::PathBuf>,
    /// PostgreSQL: keep the filled database under this name on the server (`--postgres-url`),
    /// and when a database of that name already exists, time it without filling again (the same
    /// --leads and --seed are up to you: the searches look for values of the seed's cards).
    /// Filling a million leads on PostgreSQL takes well over twenty minutes.
    #[arg(long, value_name = "NAME")]
    reuse_db: Option<String>,
    /// Skip the CSV export of all leads (timed once, with the server's memory growth).
    #[arg(long)]
    no_export: bool,
    /// PostgreSQL: skip the `VACUUM (ANALYZE)` run after the fill (by default the bench runs it,
    /// as autovacuum would within a minute or two, so queries meet a steady-state database).
    #[arg(long)]
    no_vacuum: bool,
}

#[derive(Args)]
struct DashboardArgs {
    #[command(flatten)]
    common: Common,
    /// The database to serve (`sqlite:///path/xiansuo.db` or `postgres://…/name`), filled
    /// beforehand, e.g. by `xiansuo demo --leads 1000000`. It is migrated if the server is newer.
    #[arg(long)]
    database_url: String,
    /// Times each report is timed.
    #[arg(long, default_value_t = 20)]
    repeat: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::CeilingServer = cli.command {
        return match ceiling::serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ceiling: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Cards { seed, count, first } = cli.command {
        let seq = PushSequence { cards: Cards::new(seed), repeat_percent: 15, first };
        for i in first..first + count {
            println!("{}", seq.body(i));
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Ctrl-C drops the run: its guards stop the servers and drop the PostgreSQL database.
        tokio::select! {
            r = run(cli.command) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xiansuo-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    let (common, report) = match command {
        Command::Ingest(args) => (args.common.clone(), ingest(&args).await?),
        Command::Query(args) => (args.common.clone(), query::run(&args).await?),
        Command::Dashboard(args) => (args.common.clone(), dashboard::run(&args).await?),
        Command::CeilingServer | Command::Cards { .. } => unreachable!("handled in main"),
    };
    let line = serde_json::to_string(&report).map_err(|e| e.to_string())?;
    println!("\n{line}");
    if let Some(path) = &common.json_out {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(f, "{line}").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// What every report starts with.
fn context(bench: &str, common: &Common, binary: &std::path::Path) -> serde_json::Value {
    json!({
        "bench": bench,
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "workspace_git": procs::git_revision(),
        "server_bin": binary.display().to_string(),
        "server_bin_modified": std::fs::metadata(binary)
            .and_then(|m| m.modified())
            .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .ok(),
        "database": common.database.name(),
        "seed": common.seed,
        "machine": procs::machine(),
    })
}

/// Bodies, measured: average size and transcript length over a sample, and how fast this
/// program makes them.
struct BodySample {
    avg_bytes: f64,
    avg_messages: f64,
    per_sec_one_core: f64,
}

fn sample_bodies(seq: &PushSequence, first: u64, n: u64) -> BodySample {
    let t = Instant::now();
    let mut bytes = 0usize;
    let mut messages = 0usize;
    for i in first..first + n {
        let body = seq.body(i);
        bytes += body.len();
        messages += body.matches("\"recorder_id\":").count();
    }
    let secs = t.elapsed().as_secs_f64().max(1e-9);
    BodySample {
        avg_bytes: bytes as f64 / n as f64,
        avg_messages: messages as f64 / n as f64,
        per_sec_one_core: n as f64 / secs,
    }
}

/// One measured phase: a process under load.
struct Phase {
    outcome: Outcome,
    idle: procs::Memory,
    after: procs::Memory,
    server_cpu: f64,
    bench_cpu: f64,
    /// The server's threads by name: cores used during the run, busiest first.
    threads: Vec<(String, f64)>,
    /// The machine's 1-minute load average at the end of the run.
    load_average: f64,
    /// CPU seconds of all `postgres` processes during the run (PostgreSQL runs only).
    database_cpu: Option<f64>,
    /// Bytes the process wrote during the run.
    written: procs::Written,
}

impl Phase {
    fn json(&self) -> serde_json::Value {
        let secs = self.outcome.elapsed.as_secs_f64().max(1e-9);
        let mut v = self.outcome.json();
        v["idle_rss_kib"] = self.idle.rss_kib.into();
        v["peak_rss_kib"] = self.after.peak_kib.into();
        v["rss_after_kib"] = self.after.rss_kib.into();
        v["server_cpu_cores"] = ((self.server_cpu / secs * 100.0).round() / 100.0).into();
        v["bench_cpu_cores"] = ((self.bench_cpu / secs * 100.0).round() / 100.0).into();
        v["load_average_1m"] = self.load_average.into();
        v["written_bytes_per_push"] = self.written.wchar.checked_div(self.outcome.accepted).unwrap_or(0).into();
        v["storage_bytes_per_push"] = self.written.storage.checked_div(self.outcome.accepted).unwrap_or(0).into();
        v["database_cpu_cores"] =
            self.database_cpu.map_or(serde_json::Value::Null, |c| ((c / secs * 100.0).round() / 100.0).into());
        v["server_threads_cores"] = self
            .threads
            .iter()
            .map(|(n, c)| (n.clone(), ((c * 100.0).round() / 100.0).into()))
            .collect::<serde_json::Map<_, _>>()
            .into();
        v
    }
}

fn self_cpu() -> f64 {
    procs::cpu_seconds("/proc/self/stat")
}

/// Warm-up, then the measured run, on one process.
#[allow(clippy::too_many_arguments)]
async fn drive(
    client: &reqwest::Client,
    proc_: &Proc,
    url: &str,
    bodies: load::Bodies,
    first: u64,
    mode: Mode,
    warmup: Duration,
    duration: Duration,
    idle: procs::Memory,
    postgres: bool,
) -> Phase {
    let mut next = first;
    if !warmup.is_zero() {
        let w = load::run(client, url, bodies.clone(), next, mode, warmup, None).await;
        next += w.sent;
    }
    let pg_cpu = || postgres.then(|| procs::processes_cpu("postgres"));
    let (s0, b0, t0, d0, w0) = (proc_.cpu_seconds(), self_cpu(), proc_.thread_cpu(), pg_cpu(), proc_.written());
    let outcome = load::run(client, url, bodies, next, mode, duration, None).await;
    let (s1, b1, t1, d1, w1) = (proc_.cpu_seconds(), self_cpu(), proc_.thread_cpu(), pg_cpu(), proc_.written());
    let threads = procs::thread_cores(&t0, &t1, outcome.elapsed.as_secs_f64());
    Phase {
        outcome,
        idle,
        after: proc_.memory(),
        server_cpu: s1 - s0,
        bench_cpu: b1 - b0,
        threads,
        load_average: procs::load_average(),
        database_cpu: d0.zip(d1).map(|(a, b)| b - a),
        written: procs::Written {
            wchar: w1.wchar.saturating_sub(w0.wchar),
            storage: w1.storage.saturating_sub(w0.storage),
        },
    }
}

/// Idle memory: a moment after start, with nothing in flight.
async fn idle_memory(p: &Proc) -> procs::Memory {
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.memory()
}

fn push_url(base: &str) -> String {
    format!("{base}/push/easyliao?token={}", procs::PUSH_TOKEN)
}

/// The `total` of an API list (`path` with its query string).
async fn api_total(client: &reqwest::Client, base: &str, path: &str) -> Result<u64, String> {
    let r = client
        .get(format!("{base}{path}"))
        .bearer_auth(procs::ADMIN_TOKEN)
        .send()
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let v: serde_json::Value = r.json().await.map_err(|e| format!("GET {path}: {e}"))?;
    v["total"].as_u64().ok_or_else(|| format!("GET {path}: no total in {v}"))
}

/// Leads the server holds (the inbox's total).
async fn lead_total(client: &reqwest::Client, base: &str) -> Result<u64, String> {
    api_total(client, base, "/api/v1/leads?per_page=1").await
}

/// Pushes the server has stored but not yet built leads from (issue #8: queued in a burst).
async fn queued_total(client: &reqwest::Client, base: &str) -> Result<u64, String> {
    api_total(client, base, "/api/v1/pushes?outcome=queued&per_page=1").await
}

/// Waits until every queued push has its leads; returns how many were queued when it began and
/// how long it took.
pub async fn wait_applied(client: &reqwest::Client, base: &str) -> Result<(u64, Duration), String> {
    let t = Instant::now();
    let first = queued_total(client, base).await?;
    let mut left = first;
    while left > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = queued_total(client, base).await?;
    }
    Ok((first, t.elapsed()))
}

async fn ingest(args: &IngestArgs) -> Result<serde_json::Value, String> {
    let common = &args.common;
    let binary = procs::server_binary(common.server_bin.as_deref(), common.build)?;
    let mode = match args.rate {
        Some(rate) if rate > 0.0 => Mode::Open { rate, max_in_flight: args.max_in_flight },
        Some(rate) => return Err(format!("--rate {rate}: give a positive number of pushes per second")),
        None => Mode::Closed { concurrency: args.concurrency.max(1) },
    };
    let duration = Duration::from_secs_f64(args.duration.max(0.1));
    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let seq = PushSequence { cards: Cards::new(common.seed), repeat_percent: args.repeat_percent, first: args.preload };
    let sample = sample_bodies(&seq, args.preload, 5000);
    let mode_text = match mode {
        Mode::Closed { concurrency } => format!("closed loop, concurrency {concurrency}"),
        Mode::Open { rate, .. } => format!("open loop, {} pushes/s", thousands(rate)),
    };
    println!(
        "xiansuo-bench ingest: {} · {mode_text} · {:.0} s (+{:.0} s warm-up) · preload {} leads\n\
         server: {}\n\
         cards: seed {}, {:.0} bytes per body on average, {:.1} messages, {}% repeat visitors; \
         this program makes {} bodies/s on one core",
        common.database.name(),
        duration.as_secs_f64(),
        warmup.as_secs_f64(),
        thousands(args.preload as f64),
        binary.display(),
        common.seed,
        sample.avg_bytes,
        sample.avg_messages,
        args.repeat_percent,
        thousands(sample.per_sec_one_core),
    );
    let client = load::client()?;
    let bodies: load::Bodies = {
        let seq = seq.clone();
        Arc::new(move |i| seq.body(i))
    };

    // The ceiling, under the same load.
    let ceiling = if args.no_ceiling {
        None
    } else {
        let dir = tempfile::Builder::new().prefix("xiansuo-bench-").tempdir().map_err(|e| e.to_string())?;
        let mut c = procs::start_ceiling(dir.path())?;
        c.wait_healthy(&client).await?;
        let idle = idle_memory(&c).await;
        eprintln!("ceiling: {} s of load…", duration.as_secs_f64() + warmup.as_secs_f64());
        let phase =
            drive(&client, &c, &push_url(&c.base), bodies.clone(), args.preload, mode, warmup, duration, idle, false)
                .await;
        c.stop();
        Some(phase)
    };

    // The service.
    let mut db = Database::create(common.database, &common.postgres_url).await?;
    let mut server = db.start_server(&binary)?;
    let mut ready = server.wait_healthy(&client).await?;
    let mut listening = server.listening_after;
    let mut preload_json = serde_json::Value::Null;
    if args.preload > 0 {
        let batch = args.preload_batch.max(1);
        let cards = seq.cards.clone();
        let n = args.preload;
        let preload_bodies: load::Bodies = Arc::new(move |k| {
            let mut body = String::from("[");
            for v in k * batch..((k + 1) * batch).min(n) {
                if v > k * batch {
                    body.push(',');
                }
                cards.write_card(&mut body, v, 0, None);
            }
            body.push(']');
            body
        });
        let pushes = n.div_ceil(batch);
        eprintln!("preloading {} leads ({} pushes of {batch})…", thousands(n as f64), thousands(pushes as f64));
        let t = Instant::now();
        let pre = load::run(
            &client,
            &push_url(&server.base),
            preload_bodies,
            0,
            Mode::Closed { concurrency: 8 },
            Duration::from_secs(86_400 * 7),
            Some(pushes),
        )
        .await;
        let took = t.elapsed();
        if pre.error_count() > 0 {
            return Err(format!("preload failed: {} ({:?})", pre.errors_text(), pre.first_error));
        }
        let stored = lead_total(&client, &server.base).await?;
        server.stop();
        server = db.start_server(&binary)?;
        ready = server.wait_healthy(&client).await?;
        listening = server.listening_after;
        eprintln!("preloaded {} leads in {:.1} s; restarted in {:.0} ms", stored, took.as_secs_f64(), ms_of(ready));
        preload_json =
            json!({ "leads": stored, "seconds": took.as_secs_f64(), "database_bytes": db.size_bytes().await });
    }
    let idle = idle_memory(&server).await;
    eprintln!("service: {} s of load…", duration.as_secs_f64() + warmup.as_secs_f64());
    let service = drive(
        &client,
        &server,
        &push_url(&server.base),
        bodies,
        args.preload,
        mode,
        warmup,
        duration,
        idle,
        common.database == DbKind::Postgres,
    )
    .await;
    // Issue #8: the pushes queued in the burst get their leads now; how long that takes.
    let (queued_left, apply_time) = wait_applied(&client, &server.base).await?;
    let leads = lead_total(&client, &server.base).await.unwrap_or(0);
    let stopped = server.stop();
    let db_bytes = db.size_bytes().await;
    let wal_bytes = db.wal_bytes();
    if let Database::Postgres(pg) = &mut db {
        pg.drop_now().await?;
    }
    drop(db);

    // Report.
    // Open loop: both are offered the same rate, so a ratio of rates says nothing; the ceiling's
    // latency is then the floor that the load generator and loopback HTTP set.
    let ratio = match mode {
        Mode::Closed { .. } => {
            ceiling.as_ref().map(|c| service.outcome.accepted_per_sec() / c.outcome.accepted_per_sec().max(1e-9))
        }
        Mode::Open { .. } => None,
    };
    let mut t = Table::new(
        format!(
            "ingest · {} · {mode_text} · {:.0} s · {:.0} B/body",
            common.database.name(),
            duration.as_secs_f64(),
            sample.avg_bytes
        ),
        &["", "service", "ceiling"],
    );
    let c = |f: &dyn Fn(&Phase) -> String| ceiling.as_ref().map_or("-".to_string(), f);
    let s = &service;
    t.row(vec![
        "accepted pushes/s".into(),
        thousands(s.outcome.accepted_per_sec()),
        c(&|p| thousands(p.outcome.accepted_per_sec())),
    ]);
    let ratio_text = match (ratio, &ceiling) {
        (Some(r), _) => format!("{:.1} %", r * 100.0),
        (None, Some(_)) => "- (open loop)".into(),
        (None, None) => "-".into(),
    };
    t.row(vec!["service / ceiling".into(), ratio_text, String::new()]);
    t.row(vec![
        "answered queued (leads built after)".into(),
        format!(
            "{}; {} still queued at the end, built in {:.1} s",
            thousands(s.outcome.queued as f64),
            thousands(queued_left as f64),
            apply_time.as_secs_f64()
        ),
        "-".into(),
    ]);
    t.row(vec!["pushes sent".into(), thousands(s.outcome.sent as f64), c(&|p| thousands(p.outcome.sent as f64))]);
    t.row(vec!["latency p50".into(), ms(s.outcome.latency.p50), c(&|p| ms(p.outcome.latency.p50))]);
    t.row(vec!["latency p90".into(), ms(s.outcome.latency.p90), c(&|p| ms(p.outcome.latency.p90))]);
    t.row(vec!["latency p99".into(), ms(s.outcome.latency.p99), c(&|p| ms(p.outcome.latency.p99))]);
    t.row(vec!["latency max".into(), ms(s.outcome.latency.max), c(&|p| ms(p.outcome.latency.max))]);
    t.row(vec!["per second".into(), s.outcome.timeline_text(), c(&|p| p.outcome.timeline_text())]);
    t.row(vec!["errors".into(), s.outcome.errors_text(), c(&|p| p.outcome.errors_text())]);
    t.row(vec!["idle RSS".into(), mib(s.idle.rss_kib), c(&|p| mib(p.idle.rss_kib))]);
    t.row(vec!["peak RSS (VmHWM)".into(), mib(s.after.peak_kib), c(&|p| mib(p.after.peak_kib))]);
    let cores = |p: &Phase, cpu: f64| format!("{:.2}", cpu / p.outcome.elapsed.as_secs_f64().max(1e-9));
    t.row(vec!["server CPU (cores)".into(), cores(s, s.server_cpu), c(&|p| cores(p, p.server_cpu))]);
    let threads =
        |p: &Phase| p.threads.iter().take(3).map(|(n, c)| format!("{n} {c:.2}")).collect::<Vec<_>>().join(", ");
    t.row(vec!["busiest server threads".into(), threads(s), c(&|p| threads(p))]);
    let per_push = |p: &Phase| {
        let n = p.outcome.accepted.max(1) as f64;
        format!(
            "{:.1} KiB ({:.1} KiB to disk)",
            p.written.wchar as f64 / n / 1024.0,
            p.written.storage as f64 / n / 1024.0
        )
    };
    t.row(vec!["written by the server per push".into(), per_push(s), c(&|p| per_push(p))]);
    if let Some(db_cpu) = s.database_cpu {
        t.row(vec!["PostgreSQL CPU (cores)".into(), cores(s, db_cpu), "-".into()]);
    }
    t.row(vec![
        "machine load average (1 min)".into(),
        format!("{:.2}", s.load_average),
        c(&|p| format!("{:.2}", p.load_average)),
    ]);
    t.row(vec!["load generator CPU (cores)".into(), cores(s, s.bench_cpu), c(&|p| cores(p, p.bench_cpu))]);
    if let Mode::Open { .. } = mode {
        t.row(vec![
            "dispatcher lag, max".into(),
            ms(s.outcome.dispatch_lag_max.as_secs_f64() * 1000.0),
            c(&|p| ms(p.outcome.dispatch_lag_max.as_secs_f64() * 1000.0)),
        ]);
    }
    println!("{}", t.render());
    println!(
        "server: started in {:.0} ms (listening after {:.0} ms); {} leads at the end; database {:.1} MiB (of which WAL {:.1} MiB); stopped in {}",
        ms_of(ready),
        ms_of(listening),
        thousands(leads as f64),
        db_bytes as f64 / 1048576.0,
        wal_bytes as f64 / 1048576.0,
        stopped.map_or("-".into(), |(st, d)| format!("{:.0} ms ({st})", ms_of(d))),
    );
    if let Some(e) = &s.outcome.first_error {
        println!("first error: {e}");
    }

    let mut report = context("ingest", common, &binary);
    report["mode"] = match mode {
        Mode::Closed { concurrency } => json!({ "loop": "closed", "concurrency": concurrency }),
        Mode::Open { rate, max_in_flight } => json!({ "loop": "open", "rate": rate, "max_in_flight": max_in_flight }),
    };
    report["duration_s"] = duration.as_secs_f64().into();
    report["warmup_s"] = warmup.as_secs_f64().into();
    report["repeat_percent"] = args.repeat_percent.into();
    report["avg_body_bytes"] = sample.avg_bytes.round().into();
    report["avg_messages"] = ((sample.avg_messages * 10.0).round() / 10.0).into();
    report["preload"] = preload_json;
    report["service"] = service.json();
    report["service"]["startup_ms"] = ms_of(ready).round().into();
    report["service"]["queued_at_end"] = queued_left.into();
    report["service"]["leads_built_after_s"] = ((apply_time.as_secs_f64() * 10.0).round() / 10.0).into();
    report["service"]["leads_at_end"] = leads.into();
    report["service"]["database_bytes"] = db_bytes.into();
    report["service"]["wal_bytes"] = wal_bytes.into();
    report["ceiling"] = ceiling.as_ref().map_or(serde_json::Value::Null, Phase::json);
    report["ratio_to_ceiling"] = ratio.map_or(serde_json::Value::Null, |r| ((r * 1000.0).round() / 1000.0).into());
    Ok(report)
}

fn ms_of(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
