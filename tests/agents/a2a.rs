//! An A2A agent (the official A2A Python SDK's gRPC server) behind the bridge.

use crate::{
    a_new_thread_reads_back, chat, describe, get_json,
    python::PythonAgent,
    support::{Bridge, collect_events, next, problem, send, spawn_bridge, sse_events},
};

const SCRIPT: &str = "tests/agents/a2a_agent.py";

/// The scripted agent's task, as the bridge streams it: progress, three chunks, the answer.
const ANSWERED: [&str; 7] = [
    "1 run_started",
    "2 thought Reading the question",
    "3 text_delta The answer ",
    "4 text_delta is ",
    "5 text_delta forty-two.",
    "6 message assistant The answer is forty-two.",
    "7 run_completed The answer is forty-two.",
];

async fn bridge_to(agent: &PythonAgent) -> Bridge {
    let url = format!("a2a+grpc://127.0.0.1:{}", agent.port);
    // Heartbeats are how the bridge notices, while the agent is silent, that a client left.
    spawn_bridge(&[("research", &url)], &["--heartbeat", "100ms"]).await
}

#[tokio::test]
async fn an_a2a_task_streams_as_a_run() {
    let agent = PythonAgent::start(SCRIPT).await;
    let bridge = bridge_to(&agent).await;

    let events = chat(&bridge, "research", "What is the answer?").await;
    assert_eq!(describe(&events), ANSWERED);
    // The A2A context the agent opened is the thread; the streamed artifact is one message.
    let thread_id = events[0].data["thread_id"].as_str().unwrap();
    assert!(!thread_id.is_empty());
    assert!(events.iter().all(|e| e.data["thread_id"] == thread_id));
    assert!(events.iter().all(|e| e.data["agent"] == "research"));
    assert!(
        events[2..6]
            .iter()
            .all(|e| e.data["message_id"] == "answer")
    );
    // The agent knew who asked: the SDK's call context carries the bridge's identity metadata.
    let started = format!("in context {thread_id} for '/anonymous'");
    assert!(agent.output().contains(&started), "{}", agent.output());
}

/// A task that fails ends the run with `run_error`; one that asks for input (A2A's
/// `input-required`) ends it with the question as the run's answer.
#[tokio::test]
async fn a_failed_or_asking_a2a_task_ends_the_run() {
    let agent = PythonAgent::start(SCRIPT).await;
    let bridge = bridge_to(&agent).await;

    let cases: [(&str, &[&str]); 2] = [
        (
            "please fail",
            &[
                "1 run_started",
                "2 thought Reading the question",
                "3 text_delta The answer ",
                "4 run_error ABORTED The knowledge base is unreachable.",
            ],
        ),
        (
            "need input",
            &[
                "1 run_started",
                "2 thought Reading the question",
                "3 text_delta Which city?",
                "4 message assistant Which city?",
                "5 run_completed Which city?",
            ],
        ),
    ];
    for (message, run) in cases {
        let events = chat(&bridge, "research", message).await;
        assert_eq!(describe(&events), run, "{message}");
    }
}

#[tokio::test]
async fn a_reply_in_the_thread_resumes_the_task_that_asked() {
    let agent = PythonAgent::start(SCRIPT).await;
    let bridge = bridge_to(&agent).await;
    let in_thread = |message: &str| {
        let chat = bridge.http.post(bridge.url("/v1/agents/research/chat"));
        let body = serde_json::json!({ "message": message, "thread_id": "trip-1" });
        send(chat.header("accept", "text/event-stream").json(&body))
    };

    let asked = collect_events(in_thread("need input").await).await;
    assert_eq!(
        describe(&asked).last().unwrap(),
        "5 run_completed Which city?"
    );
    let answered = collect_events(in_thread("Paris").await).await;
    assert_eq!(describe(&answered), ANSWERED);
    assert!(answered.iter().all(|e| e.data["thread_id"] == "trip-1"));
    // One task: the bridge sent the reply to the task waiting for input.
    let log = agent.output();
    let started: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" started in context trip-1"))
        .collect();
    let resumed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" resumed in context trip-1"))
        .collect();
    assert_eq!((started.len(), resumed.len()), (1, 1), "{log}");
    let task = |line: &str| line.split_whitespace().nth(3).unwrap().to_owned();
    assert_eq!(task(started[0]), task(resumed[0]));
}

#[tokio::test]
async fn a_client_leaving_cancels_the_a2a_task() {
    let agent = PythonAgent::start(SCRIPT).await;
    let bridge = bridge_to(&agent).await;

    let mut events = Box::pin(sse_events(
        bridge.chat_stream("research", "slow please").await,
    ));
    loop {
        let event = next(&mut events).await.expect("an event");
        if event.event == "text_delta" {
            break;
        }
    }
    drop(events);

    // The bridge sent CancelTask: the SDK stopped the executor and called its `cancel`.
    agent.wait_for_line("(cancelled tasks: 1)").await;
    assert!(!agent.output().contains("completed"), "{}", agent.output());
}

#[tokio::test]
async fn the_agent_list_shows_the_a2a_card() {
    let agent = PythonAgent::start(SCRIPT).await;
    let bridge = bridge_to(&agent).await;

    let list = get_json(&bridge, "/v1/agents").await;
    let entry = &list["agents"][0];
    assert_eq!(entry["name"], "research");
    assert_eq!(entry["card"]["name"], "Scripted Researcher");
    assert_eq!(
        entry["card"]["description"],
        "Answers every question with forty-two, one chunk at a time."
    );
    assert_eq!(entry["card"]["version"], "1.0.0");
    assert_eq!(
        entry["card"]["skills"],
        serde_json::json!([{
            "id": "answer",
            "name": "Answer",
            "description": "Answers a question.",
            "tags": ["qa"],
        }])
    );
}

#[tokio::test]
async fn a2a_contexts_read_as_threads() {
    let agent = PythonAgent::start(SCRIPT).await;
    let bridge = bridge_to(&agent).await;

    let thread_id = a_new_thread_reads_back(
        &bridge,
        "research",
        "What is the answer?",
        "The answer is forty-two.",
    )
    .await;

    // A2A cannot delete a context: a clear 501 problem, not a silent success.
    let (status, body) = problem(bridge.delete_thread("research", &thread_id).await).await;
    assert_eq!(status, 501);
    assert!(
        body["type"].as_str().unwrap().ends_with("upstream-error"),
        "{body}"
    );
}

#[tokio::test]
async fn an_a2a_agent_is_reached_over_tls() {
    // The edge suite's private CA and `localhost` certificate.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/edge/tls");
    let (cert, key, ca) = (
        format!("{dir}/agent.pem"),
        format!("{dir}/agent.key"),
        format!("{dir}/ca.pem"),
    );
    let agent = PythonAgent::start_with(SCRIPT, &["--tls-cert", &cert, "--tls-key", &key]).await;
    let url = format!("a2a+grpcs://localhost:{}", agent.port);
    let bridge = spawn_bridge(&[("research", &url)], &["--agent-ca-file", &ca]).await;

    let events = chat(&bridge, "research", "What is the answer?").await;
    assert_eq!(describe(&events), ANSWERED);
}
