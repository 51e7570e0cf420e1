//! Seed 004's client code, as written, in Chromium: an `EventSource` on
//! `/agents/{agent}/sse?thread_id=` logging `data.message`, and `fetch` posting the message.
//! The page is the bridge's own origin (the seed uses relative URLs), reached through a proxy
//! that cuts every connection mid-run: the browser reconnects by itself with `Last-Event-ID`
//! and the seed's handler sees every event exactly once, none `undefined`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use serde_json::Value;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Mutex,
    task::AbortHandle,
};

use crate::{
    browser,
    support::{spawn_agent_with, spawn_bridge},
};

/// The seed's code, verbatim but for the agent's name (`assistant` here), then two lines of
/// ours that only watch (`window.seen`), and `console.log` / `console.error` captured.
const SEED_004: &str = r#"
window.logged = [];
const log = console.log;
console.log = (...args) => { window.logged.push(args); log(...args); };
window.errors = 0;
const error = console.error;
console.error = (...args) => { window.errors += 1; error(...args); };

const agentId = "assistant";
const threadId = "thread_456";

const eventSource = new EventSource(`/agents/${agentId}/sse?thread_id=${threadId}`);

eventSource.onmessage = (event) => {
    const data = JSON.parse(event.data);
    console.log("Новое сообщение от агента:", data.message);
};

eventSource.onerror = (error) => {
    console.error("Ошибка SSE:", error);
};

const sendMessage = async (agentId, threadId, message) => {
    const response = await fetch(`/agents/${agentId}/messages`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ thread_id: threadId, message }),
    });

    if (response.ok) {
        const result = await response.json();
        console.log("Сообщение отправлено:", result);
    } else {
        console.error("Ошибка при отправке сообщения:", response.statusText);
    }
};

window.seen = [];
eventSource.addEventListener("message", (e) => window.seen.push([e.lastEventId, JSON.parse(e.data).type]));
eventSource.onopen = () => {
    if (!window.sent) { window.sent = true; sendMessage("assistant", "thread_456", "Привет, агент!"); }
};
"#;

/// A TCP relay to the bridge whose open connections can all be dropped at once.
struct Relay {
    addr: SocketAddr,
    open: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Relay {
    async fn to(bridge: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let open: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let registry = Arc::clone(&open);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let relayed = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(bridge).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                registry.lock().await.push(relayed.abort_handle());
            }
        });
        Self { addr, open }
    }

    /// Drops every connection open now (new ones are still relayed).
    async fn cut(&self) {
        for connection in self.open.lock().await.drain(..) {
            connection.abort();
        }
    }
}

#[tokio::test]
async fn seed_004_code_runs_as_written_in_chromium_and_resumes_after_a_cut() {
    let browser = browser::launch().await;
    let agent = spawn_agent_with(agent_stub::Config {
        pace: Duration::from_millis(120),
        ..Default::default()
    })
    .await;
    let bridge = spawn_bridge(&[("assistant", &agent.url)], &["--retry-hint", "300ms"]).await;
    let relay = Relay::to(bridge.base.trim_start_matches("http://").parse().unwrap()).await;
    // Any page of the bridge's origin: the seed's URLs are relative.
    browser
        .goto(&format!("http://{}/healthz", relay.addr))
        .await;
    browser.js(SEED_004).await;
    browser
        .wait_for("window.seen.length >= 3", "the first events")
        .await;
    relay.cut().await;
    let seen = browser
        .wait_for(
            "window.seen.some(([, type]) => type === 'run_completed') && window.seen",
            "the run's end after the reconnection",
        )
        .await;

    // Every event of the thread's log reached the handler once, in order.
    let ids: Vec<&str> = seen
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[0].as_str().unwrap())
        .collect();
    let positions: Vec<u64> = ids
        .iter()
        .map(|id| id.rsplit_once('-').unwrap().1.parse().unwrap())
        .collect();
    assert_eq!(
        positions,
        (1..=positions.len() as u64).collect::<Vec<_>>(),
        "each event once, in order: {ids:?}"
    );
    let errors = browser.js("return window.errors;").await;
    assert!(
        errors.as_u64().is_some_and(|n| n >= 1),
        "the cut reached the seed's onerror, and the browser reconnected: {errors}"
    );
    let logged = browser.js("return window.logged;").await;
    let messages: Vec<&Value> = logged
        .as_array()
        .unwrap()
        .iter()
        .filter(|args| args[0] == "Новое сообщение от агента:")
        .map(|args| &args[1])
        .collect();
    assert_eq!(messages.len(), ids.len(), "{logged}");
    assert!(
        messages.iter().all(|m| m.is_string()),
        "never undefined: {logged}"
    );
    let answer = messages.last().unwrap().as_str().unwrap();
    assert!(answer.contains("Привет, агент!"), "{answer}");
    assert!(
        logged.to_string().contains("Message sent to agent."),
        "the seed's sendMessage logged its answer: {logged}"
    );
    browser.close().await;
}
