//! A front end on another origin: it imports the client module from the bridge and calls
//! the API through CORS; an origin the bridge does not allow is refused by the browser, and
//! by the bridge itself for WebSockets (which CORS does not cover), cookie or not.

use std::path::PathBuf;

use axum::{Router, response::Html, routing::get};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::{
    browser,
    support::{
        Agent, Bridge, JwtSecret, next_frame, send_message_frame, spawn_agent, spawn_bridge,
    },
};

const KEY: &str = "browser-test-key-0123456789";

/// An API keys file for this test run.
fn api_keys_file(name: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("bridge-browser-keys-{}-{name}", std::process::id()));
    std::fs::write(&path, format!("web:{KEY}\n")).expect("write keys file");
    path
}

/// A loopback origin, bound now (so the bridge can be told about it) and serving `page`
/// once it is known.
struct Origin {
    listener: TcpListener,
    origin: String,
}

impl Origin {
    async fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        Self { listener, origin }
    }

    fn serve(self, page: String) -> String {
        let app = Router::new().route("/", get(move || async move { Html(page) }));
        tokio::spawn(async move { axum::serve(self.listener, app).await });
        format!("{}/", self.origin)
    }
}

/// A browser, and a page origin with a bridge serving the client module (`--ui`) and taking
/// the API keys of a file of its own. CORS allows the page's origin when `allowed`, else
/// only an origin nobody serves.
struct Scene {
    browser: browser::Browser,
    origin: Origin,
    bridge: Bridge,
    keys: PathBuf,
    _agent: Agent,
}

impl Scene {
    async fn start(name: &str, allowed: bool) -> Self {
        let browser = browser::launch().await;
        let agent = spawn_agent().await;
        let origin = Origin::bind().await;
        let keys = api_keys_file(name);
        let cors = if allowed {
            origin.origin.clone()
        } else {
            "http://127.0.0.1:9".to_owned()
        };
        let flags = [
            "--ui",
            "--cors-origin",
            &cors,
            "--api-keys-file",
            keys.to_str().unwrap(),
        ];
        let bridge = spawn_bridge(&[("assistant", &agent.url)], &flags).await;
        Self {
            browser,
            origin,
            bridge,
            keys,
            _agent: agent,
        }
    }
}

fn page(bridge: &str, script: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>another origin</title></head>\
         <body><script type=module>\n\
         import {{ BridgeClient }} from '{bridge}/ui/agent-bridge.js';\n\
         const BRIDGE = '{bridge}'; const KEY = '{KEY}';\n\
         const out = window.result = {{ state: 'running' }};\n\
         try {{ {script} }} catch (e) {{ out.state = 'failed'; out.error = String(e && e.message || e); }}\n\
         </script></body></html>"
    )
}

async fn result(browser: &browser::Browser) -> Value {
    browser
        .wait_for(
            "window.result && window.result.state !== 'running' && window.result",
            "the page's result",
        )
        .await
}

#[tokio::test]
async fn a_page_on_an_allowed_origin_streams_and_subscribes_with_a_ticket() {
    let scene = Scene::start("allowed", true).await;
    let url = scene.origin.serve(page(
        &scene.bridge.base,
        r#"
        const client = new BridgeClient({ baseUrl: BRIDGE, apiKey: KEY });
        out.agents = (await client.listAgents()).agents.map(a => a.name);
        // fetch streaming, with the key in a header (a preflighted POST).
        out.chat = [];
        const done = await client.streamChat('assistant', { message: 'hello from afar' },
          { onEvent: (kind) => out.chat.push(kind) });
        out.chatFinal = done.final_message.content;
        // EventSource with a ticket fetched through CORS.
        out.kinds = []; out.seqs = []; out.text = '';
        const sub = client.subscribe('assistant', 'cors-thread', {
          onEvent: (kind, data) => { out.kinds.push(kind); out.seqs.push(data.sequence); },
          onTextDelta: (d) => { out.text += d.delta; },
          onRunCompleted: (d) => { out.final = d.final_message.content; sub.close(); out.state = 'finished'; },
          onRunError: (d) => { out.state = 'failed'; out.error = d.message; },
          onState: (s, detail) => { if (s === 'failed') { out.state = 'failed'; out.error = String(detail && detail.message); } },
        });
        await sub.opened;
        await client.postMessage('assistant', 'cors-thread', 'and on a thread');
        "#,
    ));
    scene.browser.goto(&url).await;
    let out = result(&scene.browser).await;
    assert_eq!(out["state"], "finished", "{out}");
    assert_eq!(out["agents"], serde_json::json!(["assistant"]), "{out}");
    let chat = out["chat"].as_array().expect("chat kinds");
    assert_eq!(chat.first(), Some(&Value::from("run_started")), "{out}");
    assert_eq!(chat.last(), Some(&Value::from("run_completed")), "{out}");
    let kinds = out["kinds"].as_array().expect("kinds");
    assert_eq!(kinds.first(), Some(&Value::from("run_started")), "{out}");
    assert_eq!(kinds.last(), Some(&Value::from("run_completed")), "{out}");
    let expected: Vec<Value> = (1..=kinds.len() as u64).map(Value::from).collect();
    assert_eq!(out["seqs"], Value::Array(expected), "{out}");
    assert_eq!(out["text"], out["final"], "{out}");
    scene.browser.close().await;
    let _ = std::fs::remove_file(&scene.keys);
}

#[tokio::test]
async fn a_page_on_a_refused_origin_cannot_read_the_bridge() {
    // Anonymous callers are served: the scene.bridge answers the requests below with 200, so the
    // refusal can only come from the scene.browser enforcing CORS.
    let scene = Scene::start("refused", false).await;
    let answered = scene
        .bridge
        .http
        .get(scene.bridge.url("/v1/agents"))
        .header("origin", &scene.origin.origin)
        .send()
        .await
        .expect("direct request");
    assert_eq!(answered.status(), 200, "the scene.bridge itself answers");
    let url = scene.origin.serve(page(
        &scene.bridge.base,
        r#"
        try { const r = await fetch(BRIDGE + '/v1/agents'); out.fetch = 'read ' + r.status; }
        catch (e) { out.fetch = 'refused ' + e.name; }
        const client = new BridgeClient({ baseUrl: BRIDGE, apiKey: KEY });
        try { await client.streamChat('assistant', { message: 'hi' }); out.chat = 'read'; }
        catch (e) { out.chat = 'refused ' + e.name + ' ' + e.status; }
        out.es = await new Promise((resolve) => {
          const es = new EventSource(BRIDGE + '/v1/agents/assistant/threads/t-1/events');
          es.onopen = () => { es.close(); resolve('open'); };
          es.onerror = () => { const s = es.readyState; es.close(); resolve(s === EventSource.CLOSED ? 'refused' : 'error ' + s); };
        });
        out.state = 'done';
        "#,
    ));
    scene.browser.goto(&url).await;
    let out = result(&scene.browser).await;
    assert_eq!(out["state"], "done", "{out}");
    assert_eq!(out["fetch"], "refused TypeError", "{out}");
    assert_eq!(out["chat"], "refused BridgeError 0", "{out}");
    assert_eq!(out["es"], "refused", "{out}");
    scene.browser.close().await;
    let _ = std::fs::remove_file(&scene.keys);
}

/// Opens a WebSocket on thread `hijack` from the current page and asks for a run; the
/// outcome lands in `window.result.ws`: `accepted`, or `closed CODE` when refused.
const OPEN_SOCKET: &str = r#"
    const out = window.result = { state: 'running' };
    const ws = new WebSocket(BRIDGE_WS + '/v1/agents/assistant/threads/hijack/ws');
    ws.onopen = () => ws.send(JSON.stringify({ type: 'message', message: 'as the victim' }));
    ws.onmessage = (m) => {
      const frame = JSON.parse(m.data);
      if (frame.type === 'accepted') { ws.close(); out.ws = 'accepted'; out.state = 'done'; }
    };
    ws.onclose = (e) => { if (out.state === 'running') { out.ws = 'closed ' + e.code; out.state = 'done'; } };
"#;

/// Cross-site WebSocket hijacking: a page on another loopback origin (same site, so the
/// browser sends the user's cookie) may not open a socket; the bridge's own page and a
/// service (no `Origin`) may.
#[tokio::test]
async fn a_websocket_from_a_refused_origin_is_refused_even_with_the_cookie() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let browser = browser::launch().await;
    let agent = spawn_agent().await;
    let secret = JwtSecret::new("browser", "browser-suite-jwt-secret-0123456789");
    let token = secret.token(serde_json::json!({ "sub": "victim", "scope": "agent:*" }));
    let evil = Origin::bind().await;
    let bridge = secret
        .bridge(&agent.url, &["--cors-origin", "http://127.0.0.1:9"])
        .await;
    let bridge_ws = bridge.base.replace("http://", "ws://");
    let script = format!("const BRIDGE_WS = '{bridge_ws}';\n{OPEN_SOCKET}");
    let outcome = || browser.wait_for("window.result.state === 'done' && window.result.ws", "ws");

    // The user logged in on the bridge's own origin: the cookie is set, and a socket opened
    // from there runs.
    browser.goto(&bridge.url("/healthz")).await;
    browser
        .js(&format!(
            "document.cookie = 'bridge_token={token}; path=/'; return true;"
        ))
        .await;
    browser.js(&script).await;
    assert_eq!(outcome().await, "accepted");

    // A page on another origin of the same site: the browser sends the cookie, the bridge
    // refuses the upgrade (403, counted as forbidden, not as missing credentials).
    let page = format!("<!doctype html><title>elsewhere</title><script>{script}</script>");
    browser.goto(&evil.serve(page)).await;
    assert_eq!(outcome().await, "closed 1006");
    let metrics = reqwest::get(bridge.url("/metrics")).await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("bridge_auth_failures_total{reason=\"forbidden\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("reason=\"missing\""), "{metrics}");

    // A service sends no Origin: it is not a browser, and its socket opens.
    let mut request = format!("{bridge_ws}/v1/agents/assistant/threads/hijack/ws")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("a service's socket");
    send_message_frame(&mut socket, "from a service").await;
    // The reply to the message comes among the thread's events.
    let reply = loop {
        let frame = next_frame(&mut socket).await;
        if matches!(frame["type"].as_str(), Some("accepted" | "error")) {
            break frame;
        }
    };
    assert_eq!(reply["type"], "accepted", "{reply}");
    browser.close().await;
}
