//! The chat page the bridge serves (`--ui`), as a user drives it.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::{
    browser::{self, Browser},
    support::{spawn_agent_with, spawn_bridge},
};

/// The events the page shows, in DOM order: `(sequence, kind, event id)`.
async fn events_in_dom(browser: &Browser) -> Vec<(u64, String, String)> {
    let value = browser
        .js(
            "return [...document.querySelectorAll('#transcript [data-seq]')]
               .map(e => [Number(e.dataset.seq), e.dataset.kind, e.dataset.eventId]);",
        )
        .await;
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (
                e[0].as_u64().expect("sequence"),
                e[1].as_str().expect("kind").to_owned(),
                e[2].as_str().expect("id").to_owned(),
            )
        })
        .collect()
}

async fn send(browser: &Browser, message: &str) {
    let input = browser
        .client
        .find(fantoccini::Locator::Css("#composer-input"))
        .await
        .expect("message box");
    // Typed, then Enter: the page is used from the keyboard.
    input
        .send_keys(&format!("{message}\u{E007}"))
        .await
        .expect("type");
}

async fn state(browser: &Browser, wanted: &str) {
    browser
        .wait_for(
            &format!("document.getElementById('status').dataset.state === '{wanted}'"),
            &format!("status {wanted}"),
        )
        .await;
}

fn assert_exactly_once_in_order(events: &[(u64, String, String)]) {
    let sequences: Vec<u64> = events.iter().map(|e| e.0).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(
        sequences, expected,
        "every event once, in order: {events:?}"
    );
    let mut ids: Vec<&str> = events.iter().map(|e| e.2.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "distinct event ids: {events:?}");
    assert_eq!(events.first().map(|e| e.1.as_str()), Some("run_started"));
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("run_completed"));
}

#[tokio::test]
async fn the_page_renders_a_whole_run_in_order_and_keeps_the_history() {
    let Some(browser) = browser::launch().await else {
        return;
    };
    let agent = spawn_agent_with(agent_stub::Config {
        pace: Duration::from_millis(30),
        ..Default::default()
    })
    .await;
    let bridge = spawn_bridge(&[("assistant", &agent.url)], &["--ui"]).await;

    let page = bridge.url("/ui/#agent=assistant&thread=browser-run");
    browser.goto(&page).await;
    state(&browser, "ready").await;
    send(&browser, "Add a dark mode toggle").await;
    state(&browser, "finished").await;

    let events = events_in_dom(&browser).await;
    assert_exactly_once_in_order(&events);
    let kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    for kind in [
        "run_started",
        "thought",
        "tool_call",
        "tool_result",
        "text_delta",
        "message",
        "run_completed",
    ] {
        assert!(kinds.contains(&kind), "{kind} shown: {kinds:?}");
    }
    let shown = browser
        .js("const run = document.querySelector('#transcript .run');
             return {
               deltas: [...run.querySelectorAll('.delta')].map(d => d.textContent).join(''),
               answer: run.querySelector('.answer').textContent,
               final: run.querySelector('[data-kind=message]').dataset.final,
               call: run.querySelector('[data-kind=tool_call]').textContent,
               busy: run.querySelector('.answer').getAttribute('aria-busy'),
             };")
        .await;
    assert!(!shown["final"].as_str().unwrap_or("").is_empty(), "{shown}");
    assert_eq!(
        shown["deltas"], shown["final"],
        "the streamed text is the answer"
    );
    assert_eq!(shown["answer"], shown["final"]);
    assert_eq!(shown["busy"], "false");
    let call = shown["call"].as_str().unwrap_or("");
    assert!(
        call.contains("read_file") && call.contains("src/App.tsx"),
        "tool call with its arguments: {call}"
    );
    let path = browser.screenshot("browser-finished-run.png").await;
    eprintln!("screenshot: {}", path.display());

    // Reopening the thread shows its history, from the thread endpoints.
    // (Through another document: a change of the fragment alone would not reload the page.)
    browser.goto("about:blank").await;
    browser.goto(&page).await;
    let history: Value = browser
        .wait_for(
            "document.querySelectorAll('[data-history]').length >= 2 &&
             [...document.querySelectorAll('[data-history]')].map(e => e.textContent)",
            "history",
        )
        .await;
    let history = history.to_string();
    assert!(history.contains("Add a dark mode toggle"), "{history}");
    let listed = browser
        .wait_for(
            "document.querySelector('#thread-list [aria-current=true]')?.textContent",
            "thread list",
        )
        .await;
    assert!(listed.to_string().contains("browser-run"), "{listed}");
    browser.close().await;
}

/// A TCP proxy in front of the bridge that can cut every open connection at once, as a
/// network drop or a load balancer restart does, while still accepting new ones.
struct CuttingProxy {
    addr: SocketAddr,
    generation: Arc<Mutex<CancellationToken>>,
    cuts: Arc<Mutex<u32>>,
    stop: CancellationToken,
}

impl CuttingProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let generation = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (gen_, stop_) = (generation.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    () = stop_.cancelled() => return,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                let cut = gen_.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cut.cancelled() => {}
                    }
                });
            }
        });
        Self {
            addr,
            generation,
            cuts: Arc::default(),
            stop,
        }
    }

    /// Drops every connection open now.
    fn cut(&self) {
        let mut current = self.generation.lock().unwrap();
        current.cancel();
        *current = CancellationToken::new();
        *self.cuts.lock().unwrap() += 1;
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.generation.lock().unwrap().cancel();
    }
}

#[tokio::test]
async fn the_page_resumes_after_its_connection_is_cut_without_losing_or_repeating_events() {
    let Some(browser) = browser::launch().await else {
        return;
    };
    let agent = spawn_agent_with(agent_stub::Config::default()).await;
    let bridge = spawn_bridge(&[("assistant", &agent.url)], &["--ui"]).await;
    let target: SocketAddr = bridge.base.trim_start_matches("http://").parse().unwrap();
    let proxy = CuttingProxy::start(target).await;

    browser
        .goto(&format!(
            "http://{}/ui/#agent=assistant&thread=browser-resume",
            proxy.addr
        ))
        .await;
    state(&browser, "ready").await;
    // Paced so that the cut lands mid-run: the page keeps following the thread's log.
    send(&browser, "stub: pace=150ms").await;
    browser
        .wait_for(
            "document.querySelectorAll('#transcript [data-seq]').length >= 3",
            "the first events",
        )
        .await;
    proxy.cut();
    state(&browser, "finished").await;

    let reconnects = browser
        .js("return Number(document.getElementById('status').dataset.reconnects);")
        .await;
    assert!(
        reconnects.as_u64().is_some_and(|n| n >= 1),
        "the page reconnected: {reconnects}"
    );
    let events = events_in_dom(&browser).await;
    assert_exactly_once_in_order(&events);
    assert!(events.len() > 3, "{events:?}");
    browser.close().await;
}

/// Without a browser: the page is opt-in, typed, and locked down by its headers.
#[tokio::test]
async fn the_page_is_served_only_with_ui_with_its_types_and_a_strict_policy() {
    let agent = spawn_agent_with(agent_stub::Config::default()).await;
    let off = spawn_bridge(&[("assistant", &agent.url)], &[]).await;
    for path in ["/", "/ui/", "/ui/agent-bridge.js"] {
        let status = off.http.get(off.url(path)).send().await.unwrap().status();
        assert_eq!(status, 404, "{path} without --ui");
    }

    let on = spawn_bridge(&[("assistant", &agent.url)], &["--ui"]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = http.get(on.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 307);
    assert_eq!(root.headers()["location"], "/ui/");
    for (path, content_type) in [
        ("/ui/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "text/css; charset=utf-8"),
        ("/ui/agent-bridge.js", "text/javascript; charset=utf-8"),
    ] {
        let response = http.get(on.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
    let page = http.get(on.url("/ui/")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let module = http
        .get(on.url("/ui/agent-bridge.js"))
        .header("origin", "http://127.0.0.1:1")
        .send()
        .await
        .unwrap();
    assert_eq!(module.headers()["access-control-allow-origin"], "*");

    let agents: Value = on
        .http
        .get(on.url("/v1/agents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Each entry also carries the agent's health (`status`), checked in the background.
    let names: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["assistant"]);
}
