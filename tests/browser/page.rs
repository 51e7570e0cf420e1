//! The chat page the bridge serves (`--ui`), as a user drives it.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use fantoccini::{Locator, key::Key};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::{
    browser::{self, Browser},
    support::{Agent, Bridge, PATIENCE, spawn_agent_with, spawn_bridge},
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

/// Types `text` in the message box, as a user does.
async fn type_text(browser: &Browser, text: &str) {
    browser
        .client
        .find(Locator::Css("#composer-input"))
        .await
        .expect("message box")
        .send_keys(text)
        .await
        .expect("type");
}

/// Types `message`, then Enter: the page is used from the keyboard.
async fn send(browser: &Browser, message: &str) {
    type_text(browser, &format!("{message}{}", char::from(Key::Enter))).await;
}

/// Presses a key on whatever has the focus.
async fn press(browser: &Browser, key: Key) {
    browser
        .client
        .active_element()
        .await
        .expect("focused element")
        .send_keys(&char::from(key).to_string())
        .await
        .expect("key");
}

async fn click(browser: &Browser, css: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn state(browser: &Browser, wanted: &str) {
    browser
        .wait_for(
            &format!("document.getElementById('status').dataset.state === '{wanted}'"),
            &format!("status {wanted}"),
        )
        .await;
}

/// The runs in the transcript that have ended: `outcome` of each, in order.
async fn outcomes(browser: &Browser) -> Value {
    browser
        .js("return [...document.querySelectorAll('#transcript .run')].map(r => r.dataset.outcome || null);")
        .await
}

async fn user_bubbles(browser: &Browser) -> Value {
    browser
        .js("return [...document.querySelectorAll('#transcript .msg.user')].map(m => m.querySelector('.user-text').textContent);")
        .await
}

async fn composer(browser: &Browser) -> Value {
    browser
        .js(
            "return { text: document.getElementById('composer-input').value,
                      send_disabled: document.getElementById('send').disabled,
                      stop_shown: !document.getElementById('stop').hidden,
                      note: document.getElementById('composer-note').textContent };",
        )
        .await
}

fn assert_exactly_once_in_order(events: &[(u64, String, String)], last: &str) {
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
    assert_eq!(events.last().map(|e| e.1.as_str()), Some(last));
}

async fn paced_agent(pace: Duration) -> Agent {
    spawn_agent_with(agent_stub::Config {
        pace,
        ..Default::default()
    })
    .await
}

async fn page_bridge(agent: &Agent) -> Bridge {
    spawn_bridge(&[("assistant", &agent.url)], &["--ui"]).await
}

/// A browser on the page of a new bridge and agent (events `pace` apart), opened at
/// `thread`, connected.
async fn open_page(pace: Duration, thread: &str) -> (Browser, Agent, Bridge) {
    let browser = browser::launch().await;
    let agent = paced_agent(pace).await;
    let bridge = page_bridge(&agent).await;
    browser
        .goto(&bridge.url(&format!("/ui/#agent=assistant&thread={thread}")))
        .await;
    state(&browser, "ready").await;
    (browser, agent, bridge)
}

/// Posts `message` to `thread` as another client (a service, another tab) would.
async fn post_elsewhere(bridge: &Bridge, thread: &str, message: &str) -> reqwest::Response {
    bridge
        .http
        .post(bridge.url(&format!("/v1/agents/assistant/threads/{thread}/messages")))
        .json(&json!({ "message": message }))
        .send()
        .await
        .expect("post to the thread")
}

/// Saves a screenshot both as a test artifact and, when `UPDATE_SCREENSHOTS` is set, as the
/// README's picture in `docs/`.
async fn picture(browser: &Browser, name: &str) {
    let path = browser.screenshot(name).await;
    eprintln!("screenshot: {}", path.display());
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(name);
        std::fs::copy(&path, &docs).expect("copy the screenshot to docs/");
    }
}

#[tokio::test]
async fn the_page_renders_a_whole_run_in_order_and_keeps_the_history() {
    let browser = browser::launch().await;
    let agent = paced_agent(Duration::from_millis(30)).await;
    let bridge = page_bridge(&agent).await;

    let page = bridge.url("/ui/#agent=assistant&thread=browser-run");
    browser.goto(&page).await;
    state(&browser, "ready").await;
    send(&browser, "Add a dark mode toggle").await;
    state(&browser, "finished").await;

    let events = events_in_dom(&browser).await;
    assert_exactly_once_in_order(&events, "run_completed");
    let kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    let deltas = kinds.iter().filter(|k| **k == "text_delta").count();
    assert_eq!(
        kinds,
        agent_stub::default_kinds(deltas),
        "the run as the agent played it"
    );
    let shown = browser
        .js("const run = document.querySelector('#transcript .run');
             return {
               deltas: [...run.querySelectorAll('.delta')].map(d => d.textContent).join(''),
               answer: run.querySelector('.answer').textContent.trim(),
               final: run.querySelector('[data-kind=message]').dataset.final,
               call: run.querySelector('[data-kind=tool_call]').textContent,
               busy: run.querySelector('.answer').getAttribute('aria-busy'),
               activity_open: run.querySelector('details.activity').open,
               summary: run.querySelector('details.activity > summary').textContent,
               copy: !!run.querySelector('.run-foot .copy'),
               outcome: run.dataset.outcome,
               title: document.getElementById('thread-title').textContent,
             };")
        .await;
    assert!(!shown["final"].as_str().unwrap_or("").is_empty(), "{shown}");
    assert_eq!(
        shown["deltas"], shown["final"],
        "the streamed text is the answer"
    );
    assert_eq!(
        shown["answer"], shown["final"],
        "plain text renders as itself"
    );
    assert_eq!(shown["busy"], "false");
    let call = shown["call"].as_str().unwrap_or("");
    assert!(
        call.contains("read_file") && call.contains("src/App.tsx"),
        "tool call with its arguments: {call}"
    );
    assert_eq!(shown["activity_open"], false, "folded once the run ended");
    assert_eq!(shown["summary"], "Activity: 2 thoughts, 1 tool call");
    assert_eq!(shown["copy"], true, "the answer can be copied");
    assert_eq!(shown["outcome"], "completed");
    assert_eq!(
        shown["title"], "Add a dark mode toggle",
        "titled by its first message"
    );
    assert_eq!(
        user_bubbles(&browser).await,
        json!(["Add a dark mode toggle"])
    );
    let listed = browser
        .wait_for(
            "document.querySelector('#thread-list [aria-current=true] .meta')?.textContent.includes('2 messages') &&
             document.querySelector('#thread-list [aria-current=true]').innerText",
            "the thread listed with its title and count",
        )
        .await;
    let listed = listed.as_str().unwrap_or_default();
    assert!(listed.starts_with("Add a dark mode toggle"), "{listed}");
    assert!(listed.contains("2 messages · just now"), "{listed}");
    assert!(!listed.contains("browser-run"), "no thread id: {listed}");
    picture(&browser, "screenshot.png").await;
    click(&browser, "#transcript .run .run-foot .copy").await;
    browser
        .wait_for(
            "document.querySelector('#transcript .run .run-foot .copy').textContent === 'Copied'",
            "the answer copied",
        )
        .await;

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
    assert!(
        history.contains("You said: Add a dark mode toggle"),
        "{history}"
    );
    let title = browser
        .wait_for(
            "document.getElementById('thread-title').textContent !== 'New thread' &&
             document.getElementById('thread-title').textContent",
            "the title",
        )
        .await;
    assert_eq!(title, "Add a dark mode toggle");
    browser.close().await;
}

/// Sends a message whose run starts, then hangs until cancelled; returns once it shows.
async fn start_a_run_that_hangs(browser: &Browser) {
    send(browser, "stub: hang-after=2").await;
    browser
        .wait_for(
            "!document.getElementById('stop').hidden &&
             document.querySelectorAll('#transcript [data-seq]').length >= 2",
            "a run going on, with Stop",
        )
        .await;
}

#[tokio::test]
async fn stop_cancels_the_run_at_the_agent_with_the_button_or_escape() {
    let (browser, agent, _bridge) = open_page(Duration::from_millis(5), "browser-stop").await;

    // The button.
    start_a_run_that_hangs(&browser).await;
    assert_eq!(composer(&browser).await["send_disabled"], true);
    click(&browser, "#stop").await;
    tokio::time::timeout(PATIENCE, agent.stats.wait_for_cancellations(1))
        .await
        .expect("the agent's run was cancelled");
    state(&browser, "stopped").await;
    assert_eq!(outcomes(&browser).await, json!(["stopped"]));
    let events = events_in_dom(&browser).await;
    assert_exactly_once_in_order(&events, "run_error");
    let ended = browser
        .js("return document.querySelector('#transcript .run .run-foot').textContent;")
        .await;
    assert!(
        ended.as_str().unwrap_or_default().contains("Stopped"),
        "{ended}"
    );
    let controls = composer(&browser).await;
    assert_eq!(controls["send_disabled"], false, "{controls}");
    assert_eq!(controls["stop_shown"], false, "{controls}");

    // Escape, from the message box.
    send(&browser, "stub: hang").await;
    browser
        .wait_for(
            "!document.getElementById('stop').hidden && document.querySelectorAll('#transcript .run').length === 2",
            "the second run",
        )
        .await;
    press(&browser, Key::Escape).await;
    tokio::time::timeout(PATIENCE, agent.stats.wait_for_cancellations(2))
        .await
        .expect("the second run was cancelled");
    browser
        .wait_for(
            "document.querySelectorAll('#transcript .run[data-outcome=stopped]').length === 2",
            "both runs stopped",
        )
        .await;
    assert_eq!(agent.stats.cancellations(), 2);
    assert_eq!(
        user_bubbles(&browser).await,
        json!(["stub: hang-after=2", "stub: hang"])
    );
    browser.close().await;
}

#[tokio::test]
async fn a_second_message_during_a_run_is_kept_not_lost() {
    let (browser, agent, _bridge) = open_page(Duration::from_millis(5), "browser-second").await;
    start_a_run_that_hangs(&browser).await;

    // The bug this guards against: the box emptied, a bubble for a message never accepted,
    // and the status flipped to Failed while the first run went on.
    send(&browser, "And the footer too").await;
    let controls = composer(&browser).await;
    assert_eq!(controls["text"], "And the footer too", "{controls}");
    assert_eq!(controls["send_disabled"], true, "{controls}");
    assert!(
        controls["note"]
            .as_str()
            .unwrap_or_default()
            .contains("kept"),
        "{controls}"
    );
    assert_eq!(user_bubbles(&browser).await, json!(["stub: hang-after=2"]));
    assert_eq!(
        browser
            .js("return document.getElementById('status').dataset.state;")
            .await,
        "streaming"
    );
    assert_eq!(
        agent.stats.runs_started(),
        1,
        "nothing else reached the agent"
    );

    // Once the run is over, the kept text goes with one Enter.
    click(&browser, "#stop").await;
    state(&browser, "stopped").await;
    assert_eq!(composer(&browser).await["text"], "And the footer too");
    press(&browser, Key::Enter).await;
    state(&browser, "finished").await;
    assert_eq!(
        user_bubbles(&browser).await,
        json!(["stub: hang-after=2", "And the footer too"])
    );
    assert_eq!(composer(&browser).await["text"], "");
    assert_eq!(outcomes(&browser).await, json!(["stopped", "completed"]));
    browser.close().await;
}

#[tokio::test]
async fn a_run_goes_on_while_another_thread_is_open() {
    let (browser, agent, bridge) = open_page(Duration::from_millis(5), "browser-switch").await;
    start_a_run_that_hangs(&browser).await;
    click(&browser, "#new-thread").await;
    browser
        .wait_for(
            "document.getElementById('thread-title').textContent === 'New thread' &&
             !document.querySelector('#transcript .run') && !document.getElementById('send').disabled",
            "a new thread, ready",
        )
        .await;
    // The first thread's run still holds it: a message posted there is refused as a
    // second run, and the agent cancelled nothing.
    let posted = post_elsewhere(&bridge, "browser-switch", "hello").await;
    let (status, body) = crate::support::problem(posted).await;
    assert_eq!(status, 409);
    assert_eq!(body["type"], "urn:agent-bridge:problem:run-active");
    assert_eq!(agent.stats.cancellations(), 0);
    // Its stream lived on in the page: closing the page is what ends it.
    browser.close().await;
    tokio::time::timeout(PATIENCE, agent.stats.wait_for_cancellations(1))
        .await
        .expect("the run cancelled when the page closed");
}

/// Markdown in agent output, with markup an attacker would try: the message is echoed in the
/// stub's answer ("You said: …"), so the page renders exactly this.
const HOSTILE_MARKDOWN: &str = "**bold** and `inline`

- one
- two

```rust
fn main() { let answer = 42; }
```

<img src=x onerror=\"window.pwned='img'\"><script>window.pwned='script'</script>
<a href=\"javascript:window.pwned='link'\">click</a> [md link](javascript:window.pwned='md')
<iframe src=\"/ui/\"></iframe><div style=\"color:red\" onclick=\"window.pwned='click'\">styled</div>

end";

#[tokio::test]
async fn answers_render_as_markdown_and_agent_markup_never_runs() {
    let browser = browser::launch().await;
    let agent = paced_agent(Duration::from_millis(1)).await;
    let bridge = page_bridge(&agent).await;
    let page = bridge.url("/ui/#agent=assistant&thread=browser-markdown");
    browser.goto(&page).await;
    state(&browser, "ready").await;
    // Set, then Enter: typing a newline would send.
    browser
        .js(&format!(
            "document.getElementById('composer-input').value = {};",
            serde_json::to_string(HOSTILE_MARKDOWN).unwrap()
        ))
        .await;
    type_text(&browser, &char::from(Key::Enter).to_string()).await;
    state(&browser, "finished").await;

    for (place, answer) in [
        ("streamed", "#transcript .run .answer"),
        (
            "history",
            "#transcript .msg.assistant[data-history] .answer",
        ),
    ] {
        if place == "history" {
            browser.goto("about:blank").await;
            browser.goto(&page).await;
            browser
                .wait_for(
                    &format!("document.querySelector('{answer} strong')"),
                    "history",
                )
                .await;
        }
        // Every image has had its chance to load (and fail), so an onerror would have run.
        let rendered = browser
            .wait_for(
                &format!(
                    "[...document.querySelectorAll('{answer} img')].every(i => i.complete) && (() => {{
                       const a = document.querySelector('{answer}');
                       return {{
                         bold: a.querySelector('strong')?.textContent,
                         inline: a.querySelector(':not(pre) > code')?.textContent,
                         items: [...a.querySelectorAll('li')].map(li => li.textContent),
                         code: a.querySelector('pre code')?.textContent,
                         highlighted: a.querySelectorAll('pre code.hljs span[class^=hljs-]').length,
                         copy_code: !!a.querySelector('.code-block .copy'),
                         scripts: a.querySelectorAll('script, iframe').length,
                         handlers: [...a.querySelectorAll('*')].filter(e => [...e.attributes].some(x => x.name.startsWith('on') || x.name === 'style')).length,
                         hrefs: [...a.querySelectorAll('a')].map(l => l.getAttribute('href')),
                         pwned: window.pwned ?? null,
                       }};
                     }})()"
                ),
                "the rendered answer",
            )
            .await;
        assert_eq!(rendered["bold"], "bold", "{place}: {rendered}");
        assert_eq!(rendered["inline"], "inline", "{place}: {rendered}");
        assert_eq!(
            rendered["items"],
            json!(["one", "two"]),
            "{place}: {rendered}"
        );
        assert_eq!(
            rendered["code"], "fn main() { let answer = 42; }\n",
            "{place}: {rendered}"
        );
        assert!(
            rendered["highlighted"].as_u64().unwrap_or(0) >= 2,
            "{place}: highlighted: {rendered}"
        );
        assert_eq!(rendered["copy_code"], true, "{place}: {rendered}");
        assert_eq!(rendered["scripts"], 0, "{place}: {rendered}");
        assert_eq!(rendered["handlers"], 0, "{place}: {rendered}");
        for href in rendered["hrefs"].as_array().expect("links") {
            assert!(
                !href.as_str().unwrap_or_default().starts_with("javascript:"),
                "{place}: {rendered}"
            );
        }
        assert_eq!(rendered["pwned"], Value::Null, "{place}: {rendered}");
        browser
            .screenshot(&format!("browser-markdown-{place}.png"))
            .await;
    }
    // The user's own text is text, never markup.
    let bubble = browser
        .js("return document.querySelector('#transcript .msg.user').innerHTML;")
        .await;
    assert!(
        !bubble.as_str().unwrap_or_default().contains("<img"),
        "{bubble}"
    );
    browser.close().await;
}

#[tokio::test]
async fn a_fresh_load_asks_for_nothing_missing_and_a_failed_run_is_listed() {
    let browser = browser::launch().await;
    let agent = paced_agent(Duration::from_millis(1)).await;
    let bridge = page_bridge(&agent).await;
    browser.goto(&bridge.url("/ui/")).await;
    state(&browser, "ready").await;
    // A new thread has no history to ask for, and the icon exists.
    let failed = browser
        .js("return performance.getEntriesByType('resource')
               .filter(e => e.responseStatus >= 400).map(e => e.name);")
        .await;
    assert_eq!(failed, json!([]), "no request failed on a fresh load");
    let icon = browser
        .js("return document.querySelector('link[rel=icon]').href;")
        .await;
    let icon = bridge
        .http
        .get(icon.as_str().expect("icon URL"))
        .send()
        .await
        .unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");

    send(&browser, "stub: error-event-after=2 code=INTERNAL").await;
    state(&browser, "failed").await;
    assert_eq!(outcomes(&browser).await, json!(["failed"]));
    let listed = browser
        .wait_for(
            "document.querySelector('#thread-list [aria-current=true] .meta')?.textContent.startsWith('1 message ') &&
             document.querySelector('#thread-list [aria-current=true]').innerText",
            "the failed run's thread in the list",
        )
        .await;
    assert!(
        listed
            .as_str()
            .unwrap_or_default()
            .starts_with("stub: error-event-after=2 code=INTERNAL\n1 message · just now"),
        "{listed}"
    );
    browser.close().await;
}

#[tokio::test]
async fn on_a_phone_the_conversation_has_the_screen_and_threads_are_in_a_drawer() {
    let browser = browser::launch().await;
    let agent = paced_agent(Duration::from_millis(1)).await;
    let bridge = page_bridge(&agent).await;
    browser
        .client
        .set_window_size(375, 812)
        .await
        .expect("phone-sized window");
    browser
        .goto(&bridge.url("/ui/#agent=assistant&thread=browser-phone"))
        .await;
    state(&browser, "ready").await;
    send(&browser, "Add a dark mode toggle").await;
    state(&browser, "finished").await;
    let layout = browser
        .js("const r = (id) => document.getElementById(id).getBoundingClientRect();
             const drawer = document.getElementById('threads');
             return {
               width: innerWidth,
               overflow: document.documentElement.scrollWidth > innerWidth,
               drawer_visible: getComputedStyle(drawer).visibility === 'visible' && r('threads').right > 0,
               transcript_share: r('transcript').height / innerHeight,
               composer_bottom: r('composer').bottom <= innerHeight,
               toggle: getComputedStyle(document.getElementById('threads-toggle')).display !== 'none',
             };")
        .await;
    assert_eq!(layout["width"], 375, "{layout}");
    assert_eq!(layout["overflow"], false, "no sideways scrolling: {layout}");
    assert_eq!(layout["drawer_visible"], false, "{layout}");
    assert!(
        layout["transcript_share"].as_f64().unwrap_or(0.0) > 0.6,
        "the conversation has most of the height: {layout}"
    );
    assert_eq!(layout["composer_bottom"], true, "{layout}");
    assert_eq!(layout["toggle"], true, "{layout}");
    picture(&browser, "screenshot-phone.png").await;

    click(&browser, "#threads-toggle").await;
    let open = browser
        .wait_for(
            "(() => { const d = document.getElementById('threads'), r = d.getBoundingClientRect();
               return getComputedStyle(d).visibility === 'visible' && r.left >= 0 &&
                 document.getElementById('threads-toggle').getAttribute('aria-expanded') === 'true' &&
                 document.querySelector('#thread-list [aria-current=true]').innerText; })()",
            "the drawer open",
        )
        .await;
    assert!(
        open.as_str()
            .unwrap_or_default()
            .starts_with("Add a dark mode toggle"),
        "{open}"
    );
    picture(&browser, "screenshot-phone-threads.png").await;
    press(&browser, Key::Escape).await;
    browser
        .wait_for(
            "document.getElementById('threads-toggle').getAttribute('aria-expanded') === 'false' &&
             getComputedStyle(document.getElementById('threads')).visibility === 'hidden'",
            "the drawer closed",
        )
        .await;
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

/// A run posted elsewhere (another tab, a service) is followed through a cut: the page's
/// subscription resumes after its last event. (A run sent from the page itself is tied to
/// its connection, so that closing it stops the run: see the Stop test.)
#[tokio::test]
async fn the_page_resumes_after_its_connection_is_cut_without_losing_or_repeating_events() {
    let browser = browser::launch().await;
    let agent = spawn_agent_with(agent_stub::Config::default()).await;
    let bridge = page_bridge(&agent).await;
    let target: SocketAddr = bridge.base.trim_start_matches("http://").parse().unwrap();
    let proxy = CuttingProxy::start(target).await;

    browser
        .goto(&format!(
            "http://{}/ui/#agent=assistant&thread=browser-resume",
            proxy.addr
        ))
        .await;
    state(&browser, "ready").await;
    // Paced so that the cut lands mid-run.
    let posted = post_elsewhere(&bridge, "browser-resume", "stub: pace=150ms").await;
    assert_eq!(posted.status(), 202);
    browser
        .wait_for(
            "document.querySelectorAll('#transcript [data-seq]').length >= 3",
            "the first events",
        )
        .await;
    assert_eq!(
        composer(&browser).await["send_disabled"],
        true,
        "a run followed from elsewhere also holds the thread"
    );
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
    assert_exactly_once_in_order(&events, "run_completed");
    assert!(events.len() > 3, "{events:?}");
    assert_eq!(composer(&browser).await["send_disabled"], false);
    browser.close().await;
}

/// Without a browser: the page is opt-in, typed, and locked down by its headers; the client
/// module is always there, the same file as the npm package's.
#[tokio::test]
async fn the_page_is_served_only_with_ui_with_its_types_and_a_strict_policy() {
    let agent = spawn_agent_with(agent_stub::Config::default()).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let client_js = std::fs::read_to_string(root.join("clients/js/src/index.js")).unwrap();
    let client_types = std::fs::read_to_string(root.join("clients/js/src/index.d.ts")).unwrap();

    let off = spawn_bridge(&[("assistant", &agent.url)], &[]).await;
    for path in [
        "/",
        "/ui/",
        "/ui/agent-bridge.js",
        "/ui/vendor/marked.esm.js",
    ] {
        let status = off.http.get(off.url(path)).send().await.unwrap().status();
        assert_eq!(status, 404, "{path} without --ui");
    }
    for (path, content_type, body) in [
        (
            "/client/agent-bridge.js",
            "text/javascript; charset=utf-8",
            &client_js,
        ),
        (
            "/client/agent-bridge.d.ts",
            "application/typescript; charset=utf-8",
            &client_types,
        ),
    ] {
        let response = off
            .http
            .get(off.url(path))
            .header("origin", "http://127.0.0.1:1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path} without --ui");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        assert_eq!(&response.text().await.unwrap(), body, "{path}");
    }

    let on = spawn_bridge(&[("assistant", &agent.url)], &["--ui"]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = http.get(on.url("/")).send().await.unwrap();
    assert_eq!(redirect.status(), 307);
    assert_eq!(redirect.headers()["location"], "/ui/");
    for (path, content_type) in [
        ("/ui/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
        ("/ui/agent-bridge.js", "text/javascript; charset=utf-8"),
    ] {
        let response = http.get(on.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
    let served = http
        .get(on.url("/ui/agent-bridge.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.text().await.unwrap(), client_js, "one source");

    // Every vendored file (and licence) is served as committed; nothing else is.
    let vendor = root.join("bridge/ui/vendor");
    let mut files = vec![];
    let mut dirs = vec![vendor.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 3, "{files:?}");
    for file in &files {
        let name = file.strip_prefix(&vendor).unwrap().to_str().unwrap();
        let response = http
            .get(on.url(&format!("/ui/vendor/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let expected = if name.ends_with(".txt") {
            "text/plain; charset=utf-8"
        } else {
            "text/javascript; charset=utf-8"
        };
        assert_eq!(response.headers()["content-type"], expected, "{name}");
        assert_eq!(
            response.text().await.unwrap(),
            std::fs::read_to_string(file).unwrap(),
            "{name}"
        );
    }
    for missing in ["/ui/vendor/nope.js", "/ui/vendor/%2E%2E%2Fapp.js"] {
        let status = http.get(on.url(missing)).send().await.unwrap().status();
        assert_eq!(status, 404, "{missing}");
    }

    let page = http.get(on.url("/ui/")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "nothing inline"
    );

    let agents = on.get_json("/v1/agents").await;
    // Each entry also carries the agent's health (`status`), checked in the background.
    let names: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["assistant"]);
}

/// The README's import, against a production bridge (no `--ui`): a page on another origin
/// imports the client from `/client/agent-bridge.js` and streams a run through CORS.
#[tokio::test]
async fn a_front_end_imports_the_client_from_a_bridge_without_the_page() {
    let browser = browser::launch().await;
    let agent = paced_agent(Duration::from_millis(1)).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let bridge = spawn_bridge(&[("assistant", &agent.url)], &["--cors-origin", &origin]).await;
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>front end</title><script type=module>
         import {{ BridgeClient }} from '{base}/client/agent-bridge.js';
         const client = new BridgeClient({{ baseUrl: '{base}' }});
         let text = '';
         client.streamChat('assistant', {{ message: 'hello' }}, {{ onTextDelta: (e) => {{ text += e.delta; }} }})
           .then((done) => {{ window.result = {{ text, final: done.final_message.content }}; }},
                 (e) => {{ window.result = {{ error: String(e) }}; }});
         </script>",
        base = bridge.base
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(page) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    browser.goto(&format!("{origin}/")).await;
    let result = browser.wait_for("window.result", "the run").await;
    assert_eq!(result["error"], Value::Null, "{result}");
    assert_eq!(result["text"], result["final"], "{result}");
    assert!(
        result["final"]
            .as_str()
            .unwrap_or_default()
            .contains("You said: hello"),
        "{result}"
    );
    browser.close().await;
}
