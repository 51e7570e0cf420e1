//! The Python example agent (`examples/python-agent/`) behind the bridge.

use crate::{
    a_new_thread_reads_back, chat, describe,
    python::PythonAgent,
    support::{Bridge, next, spawn_bridge, sse_events},
};

async fn bridge_to(agent: &PythonAgent) -> Bridge {
    let url = format!("http://127.0.0.1:{}", agent.port);
    // Heartbeats are how the bridge notices, while the agent is silent, that a client left.
    spawn_bridge(&[("py", &url)], &["--heartbeat", "100ms"]).await
}

#[tokio::test]
async fn a_python_run_streams_every_step_in_order() {
    let agent = PythonAgent::start("examples/python-agent/server.py").await;
    let bridge = bridge_to(&agent).await;

    let events = chat(&bridge, "py", "count these three").await;
    assert_eq!(
        describe(&events),
        [
            "1 run_started",
            "2 thought I will count the words of the message.",
            r#"3 tool_call word_count {"text":"count these three"}"#,
            "4 tool_result word_count 3",
            "5 text_delta Your ",
            "6 text_delta message ",
            "7 text_delta has ",
            "8 text_delta 3 ",
            "9 text_delta words.",
            "10 message assistant Your message has 3 words.",
            "11 run_completed Your message has 3 words.",
        ]
    );
    let run_id = &events[0].data["run_id"];
    let thread_id = &events[0].data["thread_id"];
    assert!(events.iter().all(|e| &e.data["run_id"] == run_id));
    assert!(events.iter().all(|e| &e.data["thread_id"] == thread_id));
    assert!(events[1..].iter().all(|e| e.data["agent"] == "Assistant"));
}

#[tokio::test]
async fn a_python_agent_failure_ends_the_run_with_run_error() {
    let agent = PythonAgent::start("examples/python-agent/server.py").await;
    let bridge = bridge_to(&agent).await;

    assert_eq!(
        describe(&chat(&bridge, "py", "please fail").await),
        [
            "1 run_started",
            "2 thought I will count the words of the message.",
            r#"3 tool_call word_count {"text":"please fail"}"#,
            "4 tool_result word_count 2",
            "5 run_error ABORTED the agent failed on purpose",
        ]
    );
}

#[tokio::test]
async fn a_client_leaving_cancels_the_python_run() {
    let agent = PythonAgent::start("examples/python-agent/server.py").await;
    let bridge = bridge_to(&agent).await;

    let mut events = Box::pin(sse_events(bridge.chat_stream("py", "slow please").await));
    // The slow tool is running: the agent is silent until it is cancelled.
    let call = loop {
        let event = next(&mut events).await.expect("an event");
        if event.event == "tool_call" {
            break event;
        }
    };
    let run_id = call.data["run_id"].as_str().unwrap().to_owned();
    drop(events);

    agent
        .wait_for_line(&format!(
            "run {run_id} cancelled by the caller (cancelled runs: 1)"
        ))
        .await;
    assert!(!agent.output().contains(&format!("run {run_id} completed")));
}

#[tokio::test]
async fn the_python_agent_keeps_each_callers_threads() {
    let agent = PythonAgent::start("examples/python-agent/server.py").await;
    let bridge = bridge_to(&agent).await;

    a_new_thread_reads_back(&bridge, "py", "remember me", "Your message has 2 words.").await;
    // The agent saw who was asking (the bridge's identity metadata).
    let started = agent
        .output()
        .lines()
        .find(|l| l.contains("started for tenant="))
        .map(str::to_owned)
        .unwrap();
    assert!(started.contains("subject='anonymous'"), "{started}");
}
