//! A headless Chromium behind its own `chromedriver`, one per test, on a fresh profile.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use crate::support::PATIENCE;

/// How often a bounded wait looks again at the page or the driver.
const POLL: Duration = Duration::from_millis(25);

pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Starts a browser. Without Chromium this fails, with how to install it: the browser suite
/// is the only proof the page works, so a machine without a browser must not pass it.
pub async fn launch() -> Browser {
    let chromium = find(&["chromium", "chromium-browser"]);
    let driver = find(&["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        panic!(
            "the browser suite needs chromium and chromedriver on PATH: scripts/test.sh \
             installs them (apt-get install chromium chromium-driver)"
        );
    };
    // chromedriver has no "port 0 and tell me": take a free port and hand it over.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let quiet = std::env::var_os("TEST_LOG").is_none();
    let mut command = Command::new(&driver);
    command
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(if quiet {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .stderr(if quiet {
            Stdio::null()
        } else {
            Stdio::inherit()
        });
    // Its own process group, so Drop ends the driver and the browser it started together.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let driver = command.spawn().expect("start chromedriver");
    let profile =
        std::env::temp_dir().join(format!("bridge-browser-{}-{port}", std::process::id()));
    let url = format!("http://127.0.0.1:{port}");
    let mut browser_guard = DriverGuard(Some(driver));
    wait_until_ready(&url).await;

    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&url)
        .await
        .expect("WebDriver session");
    Browser {
        client,
        driver: browser_guard.0.take().expect("driver"),
        profile,
    }
}

/// Kills the driver if the session cannot be created.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            kill_group(child);
        }
    }
}

fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

async fn wait_until_ready(url: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ready = match http.get(format!("{url}/status")).send().await {
            Ok(r) => r
                .json::<Value>()
                .await
                .is_ok_and(|v| v["value"]["ready"] == true),
            Err(_) => false,
        };
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "chromedriver did not get ready");
        tokio::time::sleep(POLL).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits (bounded) until `expression` is truthy in the page, and returns its value.
    pub async fn wait_for(&self, expression: &str, what: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.js(&format!("return ({expression});")).await;
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; page state: {}",
                self.js("return JSON.stringify({ text: document.body ? \
                     document.body.innerText.slice(0, 2000) : '', result: window.result });")
                    .await
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Saves a PNG of the page under `test-artifacts/`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
        std::fs::create_dir_all(&dir).expect("create test-artifacts/");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    pub async fn close(self) {
        let client = self.client.clone();
        let _ = client.close().await;
    }
}
