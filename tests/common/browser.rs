//! A real headless Chromium for the console's end-to-end tests: Debian's chromium driven by its
//! chromedriver (WebDriver over plain HTTP on a free loopback port), a fresh profile per browser.
//! Missing binaries fail the test: ./scripts/test installs them.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a wait for something on a page may take.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Browser {
    pub client: Client,
    driver: Child,
    /// The browser's profile (`--user-data-dir`), removed after the browser ends.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session.
    pub async fn start() -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the console's browser tests need Debian's chromium and chromium-driver; \
                 run ./scripts/test (it installs them)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port();
        // Its own process group, so that the browsers it starts end with it (see Drop).
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {CHROMEDRIVER}: {e}; run ./scripts/test"));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = driver.try_wait() {
                panic!("{CHROMEDRIVER} exited at start ({status}); run ./scripts/test");
            }
            if http.get(format!("{url}/status")).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if Instant::now() > deadline {
                kill_group(&mut driver);
                panic!("{CHROMEDRIVER} did not answer on port {port} within {PATIENCE:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("a profile folder");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        let session = ClientBuilder::new(HttpConnector::new()).capabilities(capabilities).connect(&url).await;
        let client = match session {
            Ok(c) => c,
            Err(e) => {
                kill_group(&mut driver);
                panic!("chromedriver could not start {CHROMIUM}: {e}");
            }
        };
        Browser { client, driver, _profile: profile }
    }

    /// Ends the session (the browser quits) and chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop ends chromedriver.
    }

    pub async fn goto(&self, base: &str, path: &str) {
        self.client.goto(&format!("{base}{path}")).await.unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.expect("current URL").path().to_string()
    }

    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => {
                let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let source: String = self.client.source().await.unwrap_or_default().chars().take(8000).collect();
                panic!("{css} is not on the page {url}: {e}\nthe page:\n{source}")
            }
        }
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find {css}: {e}"))
    }

    /// Waits (at most [`PATIENCE`]) until an element is on the page.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} did not appear within {PATIENCE:?}: {e}"))
    }

    /// The visible text of an element.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap_or_else(|e| panic!("text of {css}: {e}"))
    }

    /// The visible texts of every matching element.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.find_all(css).await {
            out.push(e.text().await.unwrap_or_else(|err| panic!("text of {css}: {err}")));
        }
        out
    }

    /// Types into a field (cleared first).
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
        field.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Chooses the option of a `<select>` with this value.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    /// Clicks a button that submits a form and waits for the next page to load.
    pub async fn submit(&self, css: &str) {
        let old_page = self.find("html").await;
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
        // The old document's element goes stale once the new page has replaced it.
        let deadline = Instant::now() + PATIENCE;
        while old_page.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "clicking {css} did not load a page within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.wait_for("body").await;
    }

    /// Whether a JavaScript dialog (alert, confirm, prompt) is open.
    pub async fn dialog_open(&self) -> Option<String> {
        self.client.get_alert_text().await.ok()
    }

    /// Saves a PNG screenshot of the whole page (the window grown to its height) under
    /// `target/test-output/`; returns its path.
    pub async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output");
        std::fs::create_dir_all(&dir).expect("create target/test-output");
        let (width, height) = self.client.get_window_size().await.expect("the window size");
        // The window's frame: what the window has beyond the page's viewport.
        let sizes = self
            .client
            .execute("return [document.documentElement.scrollHeight, window.innerHeight];", vec![])
            .await
            .expect("the page height");
        let page_height = sizes[0].as_u64().unwrap_or(height);
        let frame = height.saturating_sub(sizes[1].as_u64().unwrap_or(height));
        let tall = u32::try_from((page_height + frame).clamp(height, 6000)).unwrap_or(6000);
        let width = u32::try_from(width).unwrap_or(1280);
        self.client.set_window_size(width, tall).await.expect("grow the window");
        let png = self.client.screenshot().await;
        let _ = self.client.set_window_size(width, u32::try_from(height).unwrap_or(900)).await;
        let png = png.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

/// Ends chromedriver and everything it started (its process group).
fn kill_group(driver: &mut Child) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", driver.id())]).status();
    let _ = driver.kill();
    let _ = driver.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}
