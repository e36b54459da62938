//! The commands: start-up output and generated tokens, configuration errors, `send`,
//! `version`, and a clean stop.

mod common;

use std::process::Command;

use common::{Options, Server, card};
use reqwest::StatusCode;

fn xiansuo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xiansuo"))
}

fn banner_value<'a>(banner: &'a str, prefix: &str) -> &'a str {
    let start = banner.find(prefix).unwrap_or_else(|| panic!("{prefix} in {banner}")) + prefix.len();
    let rest = &banner[start..];
    &rest[..rest.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(rest.len())]
}

#[tokio::test]
async fn first_start_generates_tokens_that_survive_restarts() {
    let server = Server::start_with(Options { fixed_tokens: false, ..Default::default() }).await;
    assert!(server.banner.contains("/push/easyliao?token="), "{}", server.banner);
    let push_token = banner_value(&server.banner, "/push/easyliao?token=").to_string();
    let admin_token = banner_value(&server.banner, "Bearer ").to_string();
    assert_eq!(push_token.len(), 32);
    assert_eq!(admin_token.len(), 32);
    assert_ne!(push_token, admin_token);

    let url = format!("{}/push/easyliao?token={push_token}", server.base);
    let res = server.client.post(&url).body(card("g-1").to_string()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let server = server.restart(None);
    assert_eq!(banner_value(&server.banner, "/push/easyliao?token="), push_token);
    assert_eq!(banner_value(&server.banner, "Bearer "), admin_token);
    let list =
        server.client.get(format!("{}/api/v1/leads", server.base)).bearer_auth(&admin_token).send().await.unwrap();
    let list: serde_json::Value = list.json().await.unwrap();
    assert_eq!(list["total"], 1, "data survives the restart");
}

#[test]
fn configuration_errors_stop_start_up_and_name_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n\n[sources.easyliao]\ntoken = \"0123456789abcdef\"\naccept_type = [\"转线索\"]\n",
    )
    .unwrap();
    let out = xiansuo().args(["serve", "--config"]).arg(&path).current_dir(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("accept_type") && err.contains("line 5"), "{err}");

    std::fs::write(&path, "[sources.a]\ntoken = \"0123456789abcdef\"\n[sources.b]\ntoken = \"0123456789abcdef\"\n")
        .unwrap();
    let out = xiansuo().args(["serve", "--config"]).arg(&path).current_dir(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sources.b.token") && err.contains("line 3"), "{err}");

    let out = xiansuo().arg("serve").env("XIANSUO_DATABASE_URL", "mysql://x").current_dir(dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("XIANSUO_DATABASE_URL"));
}

#[tokio::test]
async fn send_posts_files_to_an_installation() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("card.json");
    std::fs::write(&good, card("send-1").to_string()).unwrap();
    let url = format!("{}/push/easyliao", server.base);
    let out = xiansuo().arg("send").arg(&good).args(["--url", &url, "--token", common::PUSH_TOKEN]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("200") && stdout.contains("\"accepted\":1"), "{stdout}");
    assert_eq!(server.get("/api/v1/leads").await.1["total"], 1);

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"visitorStaticId\": ").unwrap();
    let out = xiansuo().arg("send").arg(&bad).args(["--url", &url, "--token", common::PUSH_TOKEN]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("400"));
}

#[test]
fn version_and_help() {
    let out = xiansuo().arg("version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("xiansuo {}", env!("CARGO_PKG_VERSION")));
    for cmd in ["serve", "send"] {
        let out = xiansuo().args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}

#[tokio::test]
async fn sigterm_finishes_and_exits_zero() {
    let mut server = Server::start().await;
    let (status, _) = server.push_json(&card("stop-1")).await;
    assert_eq!(status, StatusCode::OK);
    let exit = server.stop().expect("exit status");
    assert!(exit.success(), "{exit:?}\n{}", server.log());
    assert_eq!(server.checked_lead_count().await, 1);
}
