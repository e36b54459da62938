//! `xiansuo send`: posts card files to an installation.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn guess_content_type(path: &Path, body: &[u8]) -> &'static str {
    let is_json_file = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if is_json_file || matches!(first, Some(b'{' | b'[')) {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    }
}

pub fn run(files: &[PathBuf], url: &str, token: &str, content_type: Option<&str>) -> Result<ExitCode, String> {
    if !url.starts_with("http://") {
        return Err(format!(
            "--url \"{url}\" is not an http:// URL such as http://127.0.0.1:8080/push/easyliao (send speaks plain HTTP: test an installation behind TLS from its own machine)"
        ));
    }
    super::runtime()?.block_on(async {
        let client = reqwest::Client::new();
        let mut failures = 0;
        for path in files {
            let body = if path.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("cannot read standard input: {e}"))?;
                buf
            } else {
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
            };
            let ct = content_type.unwrap_or_else(|| guess_content_type(path, &body));
            let response = client
                .post(url)
                .header("X-Push-Token", token)
                .header(reqwest::header::CONTENT_TYPE, ct)
                .body(body)
                .send()
                .await
                .map_err(|e| format!("{}: cannot reach {url}: {e}", path.display()))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            println!("{}: {} {}", path.display(), status.as_u16(), text);
            if !status.is_success() {
                failures += 1;
            }
        }
        Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}
