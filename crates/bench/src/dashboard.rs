//! `dashboard`: times the attribution report (`GET /api/v1/stats`, the figures the console's
//! 报表 page draws) on an existing database, such as one filled by `xiansuo demo --leads N`.
//!
//! The bench starts the real server on that database (start-up includes any pending migration,
//! and is reported), then sends each request once untimed and `--repeat` times timed, one at a
//! time, and prints p50/p95/max with the leads each report counted.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cards::percent_encode;
use crate::load::{self, Percentiles};
use crate::procs;
use crate::table::{Table, mib, ms, thousands};
use crate::{DashboardArgs, context, idle_memory, ms_of};

/// Issue 8: "dashboard for a 90-day range: ≤ 500 ms" (at 1 million leads).
const TARGET_MS: f64 = 500.0;
/// Most time spent timing one request (after at least a few tries).
const TIME_CAP: Duration = Duration::from_secs(120);

struct Timed {
    label: String,
    path: String,
    first_ms: f64,
    latency: Percentiles,
    leads: Option<u64>,
    error: Option<String>,
}

async fn time_report(client: &reqwest::Client, base: &str, label: &str, path: &str, repeat: usize) -> Timed {
    let sampled = crate::query::sample_get(client, &format!("{base}{path}"), repeat, 3, TIME_CAP).await;
    let leads = sampled.first.as_ref().and_then(|v| v["leads"].as_u64());
    let first_ms = ms_of(sampled.first_took);
    Timed {
        label: label.into(),
        path: path.into(),
        first_ms,
        latency: Percentiles::of(sampled.micros),
        leads,
        error: sampled.error,
    }
}

/// Today's date, China time, minus `days`.
fn china_date(days_ago: i64) -> String {
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    (today - chrono::Duration::days(days_ago)).format("%Y-%m-%d").to_string()
}

pub async fn run(args: &DashboardArgs) -> Result<Value, String> {
    let common = &args.common;
    let binary = procs::server_binary(common.server_bin.as_deref(), common.build)?;
    let client = load::client()?;
    let dir = tempfile::Builder::new()
        .prefix("xiansuo-bench-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary folder: {e}"))?;
    println!(
        "xiansuo-bench dashboard: {} at {}\nserver: {}",
        common.database.name(),
        args.database_url,
        binary.display()
    );
    let mut server = procs::start_server_on(&binary, &args.database_url, dir.path())?;
    let startup = server.wait_healthy(&client).await?;
    let idle = idle_memory(&server).await;
    let base = server.base.clone();

    let e = percent_encode;
    let d90 = china_date(89);
    let requests: Vec<(String, String)> = vec![
        ("default view (last 30 days)".into(), "/api/v1/stats".into()),
        (format!("90 days (from={d90})"), format!("/api/v1/stats?from={d90}")),
        ("all time (from=2000-01-01)".into(), "/api/v1/stats?from=2000-01-01".into()),
        ("30 days, search_engine=百度".into(), format!("/api/v1/stats?search_engine={}", e("百度"))),
        ("90 days, city=广州市".into(), format!("/api/v1/stats?from={d90}&city={}", e("广州市"))),
        ("all time, status=won".into(), "/api/v1/stats?from=2000-01-01&status=won".into()),
        ("all time, q=张".into(), format!("/api/v1/stats?from=2000-01-01&q={}", e("张"))),
    ];
    eprintln!("timing {} reports, {} times each…", requests.len(), args.repeat);
    let mut results = Vec::new();
    for (label, path) in &requests {
        results.push(time_report(&client, &base, label, path, args.repeat.max(1)).await);
    }
    let after = server.memory();
    server.stop();

    let mut t = Table::new(
        format!(
            "dashboard · {} · each report timed {}×, one at a time (first, untimed, shown apart)",
            common.database.name(),
            args.repeat
        ),
        &["report", "leads", "first", "p50", "p95", "max", "p95 / 500 ms"],
    );
    for r in &results {
        t.row(vec![
            r.label.clone(),
            r.leads.map_or("-".into(), |v| thousands(v as f64)),
            ms(r.first_ms),
            ms(r.latency.p50),
            ms(r.latency.p95),
            ms(r.latency.max),
            if r.error.is_some() { "error".into() } else { format!("{:.2}", r.latency.p95 / TARGET_MS) },
        ]);
    }
    println!("{}", t.render());
    println!(
        "start-up (spawn → /healthz 200, pending migrations included): {:.0} ms; idle RSS {}; peak RSS {}; load average {:.1}",
        ms_of(startup),
        mib(idle.rss_kib),
        mib(after.peak_kib),
        procs::load_average(),
    );
    for r in results.iter().filter(|r| r.error.is_some()) {
        println!("error: {} ({}): {}", r.label, r.path, r.error.as_deref().unwrap_or_default());
    }

    let mut report = context("dashboard", common, &binary);
    report["startup_ms"] = ms_of(startup).round().into();
    report["idle_rss_kib"] = idle.rss_kib.into();
    report["peak_rss_kib"] = after.peak_kib.into();
    report["load_average"] = procs::load_average().into();
    report["repeat"] = args.repeat.into();
    report["requests"] = results
        .iter()
        .map(|r| {
            let mut v = r.latency.json();
            v["label"] = r.label.clone().into();
            v["path"] = r.path.clone().into();
            v["leads"] = r.leads.map_or(Value::Null, Value::from);
            v["first_ms"] = json!(r.first_ms);
            v["error"] = r.error.clone().map_or(Value::Null, Value::from);
            v
        })
        .collect();
    Ok(report)
}
