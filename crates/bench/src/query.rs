//! `query`: fill a database with N leads through the push endpoint, restart the server on it
//! (start-up time, idle memory), then time the API one request at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cards::{Cards, percent_encode};
use crate::load::{self, Mode, Percentiles};
use crate::procs::{self, Database};
use crate::table::{Table, mib, ms, thousands};
use crate::{QueryArgs, context, idle_memory, lead_total, ms_of, push_url};

/// The visitor index of the one big lead (far from the fill's 0..N).
const BIG_VISITOR: u64 = 1 << 40;
/// Most time spent timing one request (after at least a few tries).
const TIME_CAP: Duration = Duration::from_secs(30);

/// What a timed request is held to (issue 8, at 1 million leads).
#[derive(Clone, Copy)]
enum Target {
    Inbox,
    Search,
    LeadPage,
    None,
}

impl Target {
    fn limit_ms(self) -> Option<f64> {
        match self {
            Target::Inbox => Some(30.0),
            Target::Search => Some(100.0),
            Target::LeadPage => Some(20.0),
            Target::None => None,
        }
    }
}

struct Timed {
    label: String,
    path: String,
    target: Target,
    latency: Percentiles,
    total: Option<u64>,
    items: Option<usize>,
    error: Option<String>,
}

/// One GET sent once untimed (the first use of a statement, a cold page), then `repeat` times
/// timed, one at a time, with the admin token; stops early after `min_tries` once `cap` has
/// passed, or at the first error.
pub(crate) struct Sampled {
    /// The first answer, parsed.
    pub first: Option<Value>,
    pub first_took: Duration,
    /// The timed requests, in microseconds.
    pub micros: Vec<u64>,
    pub error: Option<String>,
}

pub(crate) async fn sample_get(
    client: &reqwest::Client,
    url: &str,
    repeat: usize,
    min_tries: usize,
    cap: Duration,
) -> Sampled {
    let mut sampled =
        Sampled { first: None, first_took: Duration::ZERO, micros: Vec::with_capacity(repeat), error: None };
    let started = Instant::now();
    for i in 0..=repeat {
        let t = Instant::now();
        let (status, bytes) = match client.get(url).bearer_auth(procs::ADMIN_TOKEN).send().await {
            Ok(r) => {
                let status = r.status();
                (status, r.bytes().await.unwrap_or_default())
            }
            Err(e) => {
                sampled.error = Some(e.to_string());
                break;
            }
        };
        let took = t.elapsed();
        if !status.is_success() {
            sampled.error = Some(format!("{status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)])));
            break;
        }
        if i == 0 {
            sampled.first = serde_json::from_slice(&bytes).ok();
            sampled.first_took = took;
        } else {
            sampled.micros.push(took.as_micros() as u64);
        }
        if i >= min_tries && started.elapsed() > cap {
            break;
        }
    }
    sampled
}

async fn time_request(
    client: &reqwest::Client,
    base: &str,
    label: &str,
    path: &str,
    target: Target,
    repeat: usize,
) -> Timed {
    let Sampled { first, micros, error, .. } = sample_get(client, &format!("{base}{path}"), repeat, 5, TIME_CAP).await;
    let total = first.as_ref().and_then(|v| v["total"].as_u64());
    let items = first
        .as_ref()
        .and_then(|v| v["items"].as_array().map(Vec::len).or_else(|| v["messages"].as_array().map(Vec::len)));
    Timed { label: label.into(), path: path.into(), target, latency: Percentiles::of(micros), total, items, error }
}

fn china(t: chrono::DateTime<chrono::Utc>) -> String {
    let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::FixedOffset::east_opt(0).unwrap());
    t.with_timezone(&offset).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

async fn post_json(client: &reqwest::Client, url: &str, body: String) -> Result<Value, String> {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("push: {e}"))?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| format!("push answer: {e}"))?;
    if !status.is_success() {
        return Err(format!("push answered {status}: {v}"));
    }
    Ok(v)
}

/// What filling the database took.
struct Filled {
    big_id: Option<i64>,
    outcome: load::Outcome,
    seconds: f64,
}

/// Fills the database through the push endpoint: the big lead (chats of 30 messages, one push
/// each), then the leads.
async fn fill(args: &QueryArgs, cards: &Cards, client: &reqwest::Client, url: &str) -> Result<Filled, String> {
    let n = args.leads.max(1);
    let m = args.messages_per_lead.clamp(1, 40);
    let batch = args.batch.max(1);
    let mut big_id = None;
    let mut left = args.big_lead_messages;
    let mut round = 0;
    while left > 0 {
        let k = left.min(30);
        let answer = post_json(client, url, cards.card(BIG_VISITOR, round, Some(k))).await?;
        big_id = answer["leads"][0]["id"].as_i64();
        left -= k;
        round += 1;
    }
    let fill_bodies: load::Bodies = {
        let cards = cards.clone();
        Arc::new(move |k| {
            if batch == 1 {
                return cards.card(k, 0, Some(m));
            }
            let mut body = String::from("[");
            for v in k * batch..((k + 1) * batch).min(n) {
                if v > k * batch {
                    body.push(',');
                }
                cards.write_card(&mut body, v, 0, Some(m));
            }
            body.push(']');
            body
        })
    };
    let pushes = n.div_ceil(batch);
    eprintln!("filling: {} pushes…", thousands(pushes as f64));
    let t = Instant::now();
    let outcome = load::run(
        client,
        url,
        fill_bodies,
        0,
        Mode::Closed { concurrency: args.fill_concurrency.max(1) },
        Duration::from_secs(86_400 * 7),
        Some(pushes),
    )
    .await;
    let seconds = t.elapsed().as_secs_f64();
    if outcome.error_count() > 0 {
        return Err(format!("the fill failed: {} ({:?})", outcome.errors_text(), outcome.first_error));
    }
    eprintln!("filled in {seconds:.1} s");
    Ok(Filled { big_id, outcome, seconds })
}

/// The CSV export of every lead, timed once: its bytes, the rows the export log recorded, and
/// the server's RSS before and at its highest while the file streamed (sampled every 50 ms).
struct Exported {
    seconds: f64,
    bytes: u64,
    rows: Option<u64>,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    error: Option<String>,
}

async fn time_export(client: &reqwest::Client, base: &str, server: &procs::Proc) -> Exported {
    let rss_before_kib = server.memory().rss_kib;
    let mut out =
        Exported { seconds: 0.0, bytes: 0, rows: None, rss_before_kib, rss_peak_kib: rss_before_kib, error: None };
    let t = Instant::now();
    let mut sampled = Instant::now();
    match client.get(format!("{base}/api/v1/leads/export?format=csv")).bearer_auth(procs::ADMIN_TOKEN).send().await {
        Ok(mut r) if r.status().is_success() => loop {
            match r.chunk().await {
                Ok(Some(chunk)) => {
                    out.bytes += chunk.len() as u64;
                    if sampled.elapsed() >= Duration::from_millis(50) {
                        out.rss_peak_kib = out.rss_peak_kib.max(server.memory().rss_kib);
                        sampled = Instant::now();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(format!("the export broke off: {e}"));
                    break;
                }
            }
        },
        Ok(r) => out.error = Some(format!("the export answered {}", r.status())),
        Err(e) => out.error = Some(format!("the export: {e}")),
    }
    out.seconds = t.elapsed().as_secs_f64();
    out.rss_peak_kib = out.rss_peak_kib.max(server.memory().rss_kib);
    let log = client.get(format!("{base}/api/v1/exports?per_page=1")).bearer_auth(procs::ADMIN_TOKEN).send().await;
    if let Ok(r) = log {
        out.rows = r.json::<Value>().await.ok().and_then(|v| v["items"][0]["rows"].as_u64());
    }
    out
}

pub async fn run(args: &QueryArgs) -> Result<Value, String> {
    let common = &args.common;
    let binary = procs::server_binary(common.server_bin.as_deref(), common.build)?;
    let cards = Cards::new(common.seed);
    let client = load::client()?;
    let n = args.leads.max(1);
    let m = args.messages_per_lead.clamp(1, 40);
    let batch = args.batch.max(1);
    println!(
        "xiansuo-bench query: {} · {} leads of {m} messages, plus one of {} · filled by {} concurrent pushes of {batch} card(s)\nserver: {}",
        common.database.name(),
        thousands(n as f64),
        args.big_lead_messages,
        args.fill_concurrency,
        binary.display()
    );

    let (mut db, reused) = match (&args.reuse, &args.reuse_db, common.database) {
        (Some(_), _, procs::DbKind::Postgres) => {
            return Err("--reuse keeps a SQLite database; for PostgreSQL use --reuse-db NAME".into());
        }
        (_, Some(_), procs::DbKind::Sqlite) => {
            return Err("--reuse-db keeps a PostgreSQL database; for SQLite use --reuse DIR".into());
        }
        (Some(dir), None, _) => {
            let reused = dir.join("xiansuo.db").exists();
            (Database::sqlite_in(dir)?, reused)
        }
        (None, Some(name), _) => {
            let (pg, existed) = procs::PgDatabase::kept(&common.postgres_url, name).await?;
            (Database::Postgres(pg), existed)
        }
        _ => (Database::create(common.database, &common.postgres_url).await?, false),
    };
    let mut server = db.start_server(&binary)?;
    server.wait_healthy(&client).await?;
    let fill = if reused {
        eprintln!("reusing the database {}", db.url());
        None
    } else {
        let filled = fill(args, &cards, &client, &push_url(&server.base)).await?;
        // Issue #8: pushes queued while filling get their leads before anything is timed.
        let (queued, took) = crate::wait_applied(&client, &server.base).await?;
        if queued > 0 {
            eprintln!("{} queued pushes got their leads in {:.1} s", thousands(queued as f64), took.as_secs_f64());
        }
        Some(filled)
    };
    let stored = lead_total(&client, &server.base).await?;
    let fill_peak = server.memory();
    server.stop();
    let vacuum = match &db {
        Database::Postgres(pg) if !args.no_vacuum => Some(pg.vacuum_analyze().await?),
        _ => None,
    };
    let db_bytes = db.size_bytes().await;
    let wal_bytes = db.wal_bytes();
    eprintln!("{} leads stored; restarting the server on them", thousands(stored as f64));

    // Start-up on that database, and idle memory.
    server = db.start_server(&binary)?;
    let startup = server.wait_healthy(&client).await?;
    let listening = server.listening_after;
    let idle = idle_memory(&server).await;
    let base = server.base.clone();

    // What to look for: values the generator put in the data.
    let rare_name = (n / 2..n)
        .map(|v| cards.profile(v).name)
        .find(|name| {
            let chars = name.chars().count();
            (2..=4).contains(&chars)
                && !name.ends_with("先生")
                && !name.ends_with("女士")
                && !name.ends_with(char::is_numeric)
        })
        .unwrap_or_else(|| "王秀英".into());
    let mobile =
        (n / 3..n).map(|v| cards.profile(v).mobile).find(|m| !m.is_empty()).unwrap_or_else(|| "13800138000".into());
    // from/to: the leads received in the middle fifth of the fill (by rank, as the API says).
    let received_at_rank = |rank: u64| {
        let url = format!("{base}/api/v1/leads?sort=received_at&per_page=1&page={}", rank.max(1));
        let client = client.clone();
        async move {
            let r = client.get(url).bearer_auth(procs::ADMIN_TOKEN).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            let t = v["items"][0]["received_at"].as_str()?;
            chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&chrono::Utc))
        }
    };
    let now = chrono::Utc::now();
    let from = received_at_rank(stored * 2 / 5).await.unwrap_or(now);
    let to = received_at_rank(stored * 3 / 5).await.unwrap_or(now).max(from + chrono::Duration::seconds(1));
    let mid = format!("from={}&to={}", percent_encode(&china(from)), percent_encode(&china(to)));
    let deep_page = (stored / 100).clamp(1, 100);
    let e = percent_encode;
    let typical_id: Option<i64> = {
        let r = client.get(format!("{base}/api/v1/leads?per_page=1")).bearer_auth(procs::ADMIN_TOKEN).send().await;
        match r {
            Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["items"][0]["id"].as_i64()),
            Err(_) => None,
        }
    };
    let big_id = match &fill {
        Some(f) => f.big_id,
        // The big lead of the run that filled the database, found by its visitor id.
        None => {
            let visitor = cards.profile(BIG_VISITOR).visitor_id;
            let r = client.get(format!("{base}/api/v1/leads?q={visitor}")).bearer_auth(procs::ADMIN_TOKEN).send().await;
            match r {
                Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["items"][0]["id"].as_i64()),
                Err(_) => None,
            }
        }
    };
    let mut requests: Vec<(String, String, Target)> = vec![
        ("inbox, first page".into(), "/api/v1/leads".into(), Target::Inbox),
        (format!("inbox, page {deep_page}"), format!("/api/v1/leads?page={deep_page}"), Target::Inbox),
        ("sort=-updated_at".into(), "/api/v1/leads?sort=-updated_at".into(), Target::Inbox),
        ("sort=create_time".into(), "/api/v1/leads?sort=create_time".into(), Target::Inbox),
        ("status=new".into(), "/api/v1/leads?status=new".into(), Target::Inbox),
        ("city=广州市".into(), format!("/api/v1/leads?city={}", e("广州市")), Target::Inbox),
        ("search_engine=神马".into(), format!("/api/v1/leads?search_engine={}", e("神马")), Target::Inbox),
        (
            "province+city+search_engine".into(),
            format!("/api/v1/leads?province={}&city={}&search_engine={}", e("山西省"), e("太原市"), e("百度")),
            Target::Inbox,
        ),
        ("from/to (middle fifth of the leads)".into(), format!("/api/v1/leads?{mid}"), Target::Inbox),
        (
            "status+search_engine+from/to".into(),
            format!("/api/v1/leads?status=new&search_engine={}&{mid}", e("360")),
            Target::Inbox,
        ),
        ("city+from/to".into(), format!("/api/v1/leads?city={}&{mid}", e("太原市")), Target::Inbox),
        ("user_id+ntag_id".into(), "/api/v1/leads?user_id=hyjy-kf03&ntag_id=102".into(), Target::Inbox),
        ("tag+city".into(), format!("/api/v1/leads?tag=102&city={}", e("太原市")), Target::Inbox),
        ("status+city".into(), format!("/api/v1/leads?status=new&city={}", e("广州市")), Target::Inbox),
        (
            "owner=none+search_engine".into(),
            format!("/api/v1/leads?owner=none&search_engine={}", e("神马")),
            Target::Inbox,
        ),
        ("q=培训 (Chinese, common)".into(), format!("/api/v1/leads?q={}", e("培训")), Target::Search),
        (format!("q={rare_name} (Chinese, rare)"), format!("/api/v1/leads?q={}", e(&rare_name)), Target::Search),
        ("q=不存在的词 (Chinese, none)".into(), format!("/api/v1/leads?q={}", e("不存在的词")), Target::Search),
        (format!("q={mobile} (digits, one)"), format!("/api/v1/leads?q={mobile}"), Target::Search),
        ("q=8888 (digits, common)".into(), "/api/v1/leads?q=8888".into(), Target::Search),
        ("q=培训 + city".into(), format!("/api/v1/leads?q={}&city={}", e("培训"), e("广州市")), Target::Search),
    ];
    if let Some(id) = big_id {
        requests.push((
            format!("lead page, {} messages", args.big_lead_messages),
            format!("/api/v1/leads/{id}"),
            Target::LeadPage,
        ));
    }
    if let Some(id) = typical_id {
        requests.push((format!("lead page, {m} messages"), format!("/api/v1/leads/{id}"), Target::LeadPage));
    }
    requests.push(("push log, first page".into(), "/api/v1/pushes".into(), Target::None));

    eprintln!("timing {} requests, {} times each…", requests.len(), args.repeat);
    let mut results = Vec::new();
    for (label, path, target) in &requests {
        results.push(time_request(&client, &base, label, path, *target, args.repeat.max(1)).await);
    }
    let export = if args.no_export { None } else { Some(time_export(&client, &base, &server).await) };
    let after = server.memory();
    let stopped = server.stop();
    if let Database::Postgres(pg) = &mut db
        && args.reuse_db.is_none()
    {
        pg.drop_now().await?;
    }
    drop(db);

    // Report.
    let mut t = Table::new(
        format!(
            "query · {} · {} leads ({} messages) · each request timed {}×, one at a time",
            common.database.name(),
            thousands(stored as f64),
            thousands((n as usize * m + args.big_lead_messages) as f64),
            args.repeat
        ),
        &["request", "p50", "p95", "max", "matches", "target p95", ""],
    );
    for r in &results {
        let verdict = match (r.target.limit_ms(), &r.error) {
            (_, Some(_)) => "error".to_string(),
            (Some(limit), None) if r.latency.p95 <= limit => "ok".into(),
            (Some(_), None) => "MISSED".into(),
            (None, None) => String::new(),
        };
        t.row(vec![
            r.label.clone(),
            ms(r.latency.p50),
            ms(r.latency.p95),
            ms(r.latency.max),
            r.total.map_or_else(|| r.items.map_or("-".into(), |i| format!("{i} msgs")), |v| thousands(v as f64)),
            r.target.limit_ms().map_or("-".into(), |l| format!("≤ {l:.0} ms")),
            verdict,
        ]);
    }
    println!("{}", t.render());
    match &fill {
        Some(f) => println!(
            "fill: {} leads in {:.1} s ({} pushes/s, {} leads/s; fill latency p50 {} p99 {}); server peak RSS during the fill {}",
            thousands(stored as f64),
            f.seconds,
            thousands(f.outcome.accepted_per_sec()),
            thousands(stored as f64 / f.seconds.max(1e-9)),
            ms(f.outcome.latency.p50),
            ms(f.outcome.latency.p99),
            mib(fill_peak.peak_kib),
        ),
        None => println!("fill: none (the database was reused: {} leads)", thousands(stored as f64)),
    }
    println!("database {:.1} MiB (of which WAL {:.1} MiB)", db_bytes as f64 / 1048576.0, wal_bytes as f64 / 1048576.0);
    if let Some(x) = &export {
        println!(
            "CSV export of all leads: {:.1} s, {:.1} MiB, {} rows; server RSS {} before, {} at most while streaming (+{}; target ≤ 30 s and < 100 MB growth at 1M leads){}",
            x.seconds,
            x.bytes as f64 / 1048576.0,
            x.rows.map_or("?".into(), |r| thousands(r as f64)),
            mib(x.rss_before_kib),
            mib(x.rss_peak_kib),
            mib(x.rss_peak_kib.saturating_sub(x.rss_before_kib)),
            x.error.as_deref().map_or(String::new(), |e| format!(" — error: {e}")),
        );
    }
    if let Some(v) = vacuum {
        println!("PostgreSQL: VACUUM (ANALYZE) after the fill took {:.1} s (--no-vacuum skips it)", v.as_secs_f64());
    }
    println!(
        "start-up on that database: {:.0} ms to /healthz 200 ({:.0} ms to listening; target ≤ 1000 ms at 1M leads); idle RSS {} (target ≤ 50 MiB); peak RSS while querying {}; stopped in {}",
        ms_of(startup),
        ms_of(listening),
        mib(idle.rss_kib),
        mib(after.peak_kib),
        stopped.map_or("-".into(), |(st, d)| format!("{:.0} ms ({st})", ms_of(d))),
    );
    for r in results.iter().filter(|r| r.error.is_some()) {
        println!("error: {} ({}): {}", r.label, r.path, r.error.as_deref().unwrap_or_default());
    }

    let mut report = context("query", common, &binary);
    report["leads"] = stored.into();
    report["messages_per_lead"] = m.into();
    report["big_lead_messages"] = args.big_lead_messages.into();
    report["messages"] = (n as usize * m + args.big_lead_messages).into();
    report["fill"] = match &fill {
        Some(f) => json!({
            "seconds": (f.seconds * 1000.0).round() / 1000.0,
            "pushes": f.outcome.sent,
            "batch": args.batch.max(1),
            "concurrency": args.fill_concurrency,
            "pushes_per_s": f.outcome.accepted_per_sec().round(),
            "latency": f.outcome.latency.json(),
            "peak_rss_kib": fill_peak.peak_kib,
        }),
        None => Value::Null,
    };
    report["export"] = export.as_ref().map_or(Value::Null, |x| {
        json!({
            "seconds": (x.seconds * 1000.0).round() / 1000.0,
            "bytes": x.bytes,
            "rows": x.rows,
            "rss_before_kib": x.rss_before_kib,
            "rss_peak_kib": x.rss_peak_kib,
            "error": x.error,
        })
    });
    report["database_bytes"] = db_bytes.into();
    report["wal_bytes"] = wal_bytes.into();
    report["vacuum_analyze_s"] = vacuum.map_or(Value::Null, |v| v.as_secs_f64().into());
    report["startup_ms"] = ms_of(startup).round().into();
    report["listening_ms"] = ms_of(listening).round().into();
    report["idle_rss_kib"] = idle.rss_kib.into();
    report["peak_rss_kib_querying"] = after.peak_kib.into();
    report["repeat"] = args.repeat.into();
    report["requests"] = results
        .iter()
        .map(|r| {
            let mut v = r.latency.json();
            v["label"] = r.label.clone().into();
            v["path"] = r.path.clone().into();
            v["matches"] = r.total.map_or(Value::Null, Value::from);
            v["target_p95_ms"] = r.target.limit_ms().map_or(Value::Null, Value::from);
            v["error"] = r.error.clone().map_or(Value::Null, Value::from);
            v
        })
        .collect();
    Ok(report)
}
