//! `xiansuo demo`: a database filled with realistic leads, read back through the API.

mod common;

use std::collections::HashSet;

use common::Server;
use reqwest::StatusCode;

fn demo(server: &Server, leads: &str, seed: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
        .args(["demo", "--leads", leads, "--seed", seed])
        .env("XIANSUO_DATABASE_URL", server.database_url())
        .env_remove("XIANSUO_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

async fn all_leads(server: &Server) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for page in 1.. {
        let (status, list) = server.get(&format!("/api/v1/leads?per_page=200&page={page}")).await;
        assert_eq!(status, StatusCode::OK);
        let items = list["items"].as_array().unwrap();
        out.extend(items.iter().cloned());
        if items.len() < 200 {
            break;
        }
    }
    out
}

#[tokio::test]
async fn demo_fills_a_living_database_deterministically() {
    let server = Server::start().await;
    let out = demo(&server, "300", "5");
    assert!(out.contains("300 demo leads (seed 5)") && out.contains("300 new"), "{out}");
    assert!(out.contains("created the agent \"李婷\" with the password "), "{out}");
    assert!(!out.contains("created the admin"), "the server's admin is reused: {out}");

    let leads = all_leads(&server).await;
    assert_eq!(leads.len(), 300);
    let statuses: HashSet<&str> = leads.iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.len(), 5, "every status occurs: {statuses:?}");
    let owners: HashSet<Option<i64>> = leads.iter().map(|l| l["owner_id"].as_i64()).collect();
    assert!(owners.len() >= 5, "four agents and the pool: {owners:?}");
    let cities: HashSet<&str> = leads.iter().filter_map(|l| l["city"].as_str()).collect();
    assert!(cities.len() >= 10, "{cities:?}");
    assert!(leads.iter().all(|l| l["message_count"].as_i64().unwrap() >= 2), "every lead has a transcript");
    let mut days: Vec<&str> = leads.iter().map(|l| &l["received_at"].as_str().unwrap()[..10]).collect();
    days.sort();
    let first = chrono::NaiveDate::parse_from_str(days[0], "%Y-%m-%d").unwrap();
    let last = chrono::NaiveDate::parse_from_str(days[days.len() - 1], "%Y-%m-%d").unwrap();
    assert!((last - first).num_days() > 90, "spread over months: {first} to {last}");
    // A lead that was worked has a timeline in time order.
    let won = leads.iter().find(|l| l["status"] == "won").unwrap();
    let (_, detail) = server.get(&format!("/api/v1/leads/{}", won["id"])).await;
    assert_eq!(detail["pushes"].as_array().unwrap().len(), 1);

    // The same seed again: the same visitors, nothing twice.
    let again = demo(&server, "300", "5");
    assert!(again.contains(", 0 new"), "{again}");
    let (_, list) = server.get("/api/v1/leads?per_page=1").await;
    assert_eq!(list["total"], 300);
    let after = all_leads(&server).await;
    let key = |l: &serde_json::Value| (l["visitor_static_id"].clone(), l["status"].clone(), l["owner_id"].clone());
    let before: HashSet<_> = leads.iter().map(key).collect();
    assert!(after.iter().all(|l| before.contains(&key(l))), "follow-up unchanged");
}

/// Leads the demo stores before the first `serve` are indexed as they are written: that first
/// start must not index them all again in the background (it did: every lead rewritten).
#[test]
fn a_demo_database_is_not_indexed_again_by_its_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
        .args(["demo", "--leads", "20", "--seed", "3"])
        .env("XIANSUO_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env_remove("XIANSUO_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let marker: Option<String> =
        conn.query_row("SELECT value FROM settings WHERE key = 'contacts_index_v1'", [], |r| r.get(0)).ok();
    assert_eq!(marker.as_deref(), Some("new database"));

    // Commands that store no lead leave a new database as they found it: `copy` needs its
    // target empty, and `migrate` is a natural step before it.
    let target = dir.path().join("target.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
        .args(["migrate"])
        .env("XIANSUO_DATABASE_URL", format!("sqlite://{}", target.display()))
        .env_remove("XIANSUO_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xiansuo"))
        .args([
            "copy",
            "--from",
            &format!("sqlite://{}", db.display()),
            "--to",
            &format!("sqlite://{}", target.display()),
        ])
        .env_remove("XIANSUO_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "copy into a migrated database: {}", String::from_utf8_lossy(&out.stderr));
}
