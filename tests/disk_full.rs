//! A full disk (issue 9, "Storage failures"): the data folder is a small tmpfs. Pushes that
//! cannot be written get 503 (never a 2xx without a durable write), reads go on, and once space
//! is freed the service writes again by itself; every acknowledged push is stored exactly once
//! and the database passes its integrity check.
//!
//! Needs root (to mount the tmpfs), as on the CI machine; without it the test fails, it never
//! skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Backend, Options, Server, card};
use reqwest::StatusCode;
use serde_json::json;

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs as the data folder and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "remount: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A card with a long transcript, so the disk fills in a few hundred pushes.
fn big_card(visitor: &str) -> serde_json::Value {
    let mut c = card(visitor);
    let messages: Vec<serde_json::Value> = (0..40)
        .map(|i| {
            json!({ "chat_id": 348027659, "from_id": visitor, "recorder_id": i + 1,
                    "message": format!("{i} 我想了解一下课程安排和学费，还有上课地点。{}", "详细情况".repeat(40)),
                    "type": "RECORD_RECORD" })
        })
        .collect();
    c["currentChatJsonDetail"] = json!(messages);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_writing_resumes_when_space_returns() {
    let outer = tempfile::tempdir().unwrap();
    let mount = outer.path().join("data");
    let tmpfs = Tmpfs::mount(&mount, "4m");
    let db = mount.join("xiansuo.db");
    let url = format!("sqlite://{}", db.display());
    let server = Server::start_with(Options {
        backend: Some(Backend::Sqlite),
        env: vec![("XIANSUO_DATABASE_URL".into(), url)],
        ..Options::default()
    })
    .await;

    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..2000 {
        let visitor = format!("full-{i}-v");
        let (status, answer) = server.push_json(&big_card(&visitor)).await;
        match status {
            StatusCode::OK => acknowledged.push(visitor),
            StatusCode::SERVICE_UNAVAILABLE => {
                refused = Some(answer);
                break;
            }
            other => panic!("push {i}: {other} {answer}"),
        }
    }
    let refused = refused.expect("the 4 MB disk filled up: a push was refused");
    eprintln!("{} pushes acknowledged before the disk was full", acknowledged.len());
    assert!(refused["msg"].as_str().unwrap().contains("nothing was stored"), "{refused}");
    assert!(acknowledged.len() > 5, "some pushes fit before the disk filled ({})", acknowledged.len());
    // Reads go on while the disk is full.
    let (status, list) = server.get("/api/v1/leads?per_page=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"].as_u64(), Some(acknowledged.len() as u64), "every acknowledged push, no other");

    // Space returns: the service writes again by itself, without a restart.
    tmpfs.resize("64m");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let visitor = format!("after-{}-v", acknowledged.len());
        let (status, answer) = server.push_json(&big_card(&visitor)).await;
        if status == StatusCode::OK {
            acknowledged.push(visitor);
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        assert!(Instant::now() < deadline, "the service did not resume writing: {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..20 {
        let visitor = format!("later-{i}-v");
        let (status, answer) = server.push_json(&big_card(&visitor)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        acknowledged.push(visitor);
    }

    // Every acknowledged push is stored exactly once; the file is sound.
    let (_, list) = server.get("/api/v1/leads?per_page=1").await;
    assert_eq!(list["total"].as_u64(), Some(acknowledged.len() as u64));
    for visitor in acknowledged.iter().step_by(7) {
        let (_, found) = server.get(&format!("/api/v1/leads?q={visitor}")).await;
        assert_eq!(found["total"], 1, "{visitor}");
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    drop(conn);
    drop(server);
    drop(tmpfs);
}
