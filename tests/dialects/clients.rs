//! The official clients, each against a real bridge and a real agent. The expected values
//! come from the same run read through the bridge's native JSON answer (the stub's runs are
//! deterministic for a given message), so each dialect is held to the event model.

use serde_json::{Value, json};

use crate::{
    node,
    support::{Agent, Bridge, JwtSecret, spawn_agent},
};

const MESSAGE: &str = "Add a dark mode toggle";

/// An agent, a bridge that only serves bearer JWTs (every client sends one, as in
/// production), and a token for it.
pub struct Setup {
    pub agent: Agent,
    pub bridge: Bridge,
    pub token: String,
    _secret: JwtSecret,
}

pub async fn setup() -> Setup {
    let secret = JwtSecret::new("dialects", "dialects-suite-shared-secret-0123456789");
    let agent = spawn_agent().await;
    let bridge = secret
        .bridge(&agent.url, &["--rate-limit-chat", "off"])
        .await;
    let token = secret.token(json!({ "sub": "web-user", "scope": "agent:*" }));
    Setup {
        agent,
        bridge,
        token,
        _secret: secret,
    }
}

async fn clients() -> Setup {
    node::require();
    setup().await
}

impl Setup {
    /// Runs a client script as this setup's user.
    async fn client(&self, script: &str, message: &str, env: &[(&str, &str)]) -> Value {
        node::run(
            script,
            &self.bridge.base,
            "assistant",
            message,
            Some(&self.token),
            env,
        )
        .await
    }
}

/// The run as the native JSON answer has it: final text, thoughts, tool calls, tool results.
struct Expected {
    text: String,
    thoughts: Vec<Value>,
    calls: Vec<Value>,
    results: Vec<Value>,
}

/// `items` as a dialect spells each of them, as one JSON array.
fn each(items: &[Value], spell: impl Fn(&Value) -> Value) -> Value {
    Value::Array(items.iter().map(spell).collect())
}

async fn expected(s: &Setup, message: &str) -> Expected {
    let chat = s
        .bridge
        .http
        .post(s.bridge.url("/v1/agents/assistant/chat"));
    let body = json!({ "message": message });
    let answer = crate::support::json(chat.bearer_auth(&s.token).json(&body)).await;
    let of = |kind: &str| -> Vec<Value> {
        answer["interactions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] == kind)
            .cloned()
            .collect()
    };
    let expected = Expected {
        text: answer["message"]["content"].as_str().unwrap().to_owned(),
        thoughts: of("thought").iter().map(|t| t["content"].clone()).collect(),
        calls: of("tool_call"),
        results: of("tool_result"),
    };
    assert!(!expected.calls.is_empty() && !expected.thoughts.is_empty());
    expected
}

/// One run of `message` read twice on a fresh setup: first through the native JSON answer
/// (what the client should see), then by the client `script` (run with `env`).
async fn read_by(script: &str, message: &str, env: &[(&str, &str)]) -> (Setup, Expected, Value) {
    let s = clients().await;
    let want = expected(&s, message).await;
    let got = s.client(script, message, env).await;
    (s, want, got)
}

/// Asserts each field of a client's report holds the value the run gives it.
fn assert_read(got: &Value, fields: &[(&str, Value)]) {
    for (field, want) in fields {
        assert_eq!(&got[field], want, "{field}: {got}");
    }
}

#[tokio::test]
async fn ai_sdk_transport_reads_the_run_and_resume_finds_none_after_it() {
    let (_s, want, got) = read_by("ai-sdk", MESSAGE, &[]).await;
    assert_eq!(got["errors"], json!([]), "{got}");
    assert_eq!(got["text"], want.text.as_str(), "{got}");
    assert_eq!(got["reasoning"], json!(want.thoughts));
    let tools: Vec<Value> = want
        .calls
        .iter()
        .zip(&want.results)
        .map(|(call, result)| {
            json!({
                "toolCallId": call["call_id"],
                "toolName": call["tool_name"],
                "input": call["arguments"],
                "output": result["content"],
                "state": "output-available",
            })
        })
        .collect();
    assert_eq!(got["tools"], json!(tools));
    // One assistant message, in the run's order: thought, tool, thought, text.
    assert_eq!(
        got["partTypes"],
        json!(["reasoning", "dynamic-tool", "reasoning", "text"])
    );
    assert_eq!(got["metadata"]["runId"], got["id"]);
    // `useChat({ resume: true })` after the run: 204, so the transport resumes nothing.
    assert_eq!(got["resumeAfterEnd"], Value::Null);
    assert!(got.get("resumeAfterEnd").is_some());
}

#[tokio::test]
async fn ai_sdk_resume_replays_the_active_run_to_a_second_reader() {
    let (_s, want, got) = read_by("ai-sdk", "stub: pace=40ms", &[("MODE", "follow")]).await;
    assert_eq!(got["streamed"]["text"], want.text.as_str(), "{got}");
    assert_ne!(got["resumed"], Value::Null, "the run was active: {got}");
    // The resumed stream replays the run from its start: the same message, part for part.
    assert_eq!(got["resumed"], got["streamed"]);
}

#[tokio::test]
async fn ag_ui_http_agent_runs_the_agent() {
    let (_s, want, got) = read_by("ag-ui", MESSAGE, &[]).await;
    assert_eq!(got.get("thrown"), None, "{got}");
    assert_eq!(got["runError"], Value::Null, "{got}");
    assert_eq!(
        got["started"],
        json!({ "threadId": got["threadId"], "runId": got["runId"] })
    );
    assert_eq!(
        got["finished"],
        json!({ "threadId": got["threadId"], "runId": got["runId"], "outcome": "success" })
    );
    let tool_call = |c: &Value| json!({ "toolCallId": c["call_id"], "toolName": c["tool_name"], "args": c["arguments"] });
    let tool_result = |r: &Value| json!({ "toolCallId": r["call_id"], "content": r["content"] });
    assert_read(
        &got,
        &[
            ("text", json!(want.text)),
            ("reasoning", json!(want.thoughts)),
            ("tools", each(&want.calls, tool_call)),
            ("results", each(&want.results, tool_result)),
        ],
    );
    let types = got["types"].as_array().unwrap();
    assert_eq!(types.first().unwrap(), "RUN_STARTED");
    assert_eq!(types.last().unwrap(), "RUN_FINISHED");
    let position = |t: &str| types.iter().position(|x| x == t).unwrap();
    assert!(position("TOOL_CALL_START") < position("TOOL_CALL_RESULT"));
    assert!(position("TOOL_CALL_RESULT") < position("TEXT_MESSAGE_START"));
}

#[tokio::test]
async fn a2a_client_reads_the_card_and_streams_a_task() {
    let (s, want, got) = read_by("a2a", MESSAGE, &[]).await;
    assert_eq!(got.get("error"), None, "{got}");
    assert_eq!(
        got["card"],
        json!({
            "name": "assistant",
            "streaming": true,
            "url": s.bridge.url("/v1/agents/assistant/a2a"),
        })
    );
    assert_eq!(got["cases"][0], "task");
    assert_eq!(
        got["states"].as_array().unwrap().last().unwrap(),
        "completed"
    );
    let tool_call = |c: &Value| json!({ "callId": c["call_id"], "toolName": c["tool_name"], "arguments": c["arguments"] });
    let tool_result = |r: &Value| json!({ "callId": r["call_id"], "toolName": r["tool_name"], "content": r["content"], "isError": false });
    assert_read(
        &got,
        &[
            ("final", json!(want.text)),
            ("artifact", json!(want.text)),
            ("thoughts", json!(want.thoughts)),
            ("tools", each(&want.calls, tool_call)),
            ("results", each(&want.results, tool_result)),
        ],
    );
    let task = got["taskId"].as_str().unwrap();
    assert!(
        task.starts_with(got["contextId"].as_str().unwrap()),
        "{task}"
    );
}

#[tokio::test]
async fn openai_package_streams_and_answers() {
    let (_s, want, got) = read_by("openai", MESSAGE, &[]).await;
    let streamed = &got["streamed"];
    assert_eq!(streamed.get("error"), None, "{got}");
    assert_eq!(got.get("error"), None, "{got}");
    assert_eq!(streamed["text"], want.text.as_str());
    assert_eq!(streamed["reasoning"], json!(want.thoughts));
    assert_eq!(streamed["finish"], "stop");
    assert_eq!(streamed["models"], json!(["assistant"]));
    assert_eq!(streamed["ids"].as_array().unwrap().len(), 1, "{got}");
    assert!(streamed["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let activity: Vec<Value> = want
        .calls
        .iter()
        .zip(&want.results)
        .flat_map(|(call, result)| {
            [
                json!({ "type": "tool_call", "agent": call["agent"], "call_id": call["call_id"],
                        "tool_name": call["tool_name"], "arguments": call["arguments"] }),
                json!({ "type": "tool_result", "agent": result["agent"], "call_id": result["call_id"],
                        "tool_name": result["tool_name"], "content": result["content"], "is_error": false }),
            ]
        })
        .collect();
    assert_eq!(streamed["activity"], json!(activity));

    let completion = &got["completion"];
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "assistant");
    assert_eq!(completion["text"], want.text.as_str());
    assert_eq!(completion["finish"], "stop");
    assert_eq!(completion["activity"], json!(activity));
    assert_eq!(
        completion["reasoning"],
        want.thoughts
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

#[tokio::test]
async fn seed_001_front_end_gets_its_own_events() {
    let (_s, want, got) = read_by("seed-001", MESSAGE, &[]).await;
    assert_eq!(got["error"], Value::Null, "{got}");
    assert!(got["start"]["session_id"].is_string(), "{got}");
    let interactions = got["interactions"].as_array().unwrap();
    let types: Vec<&str> = interactions
        .iter()
        .map(|i| i["message_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["thought", "tool_call", "tool_response", "thought"]);
    let call = &interactions[1];
    assert_eq!(call["tool_name"], want.calls[0]["tool_name"]);
    assert_eq!(call["tool_arguments"], want.calls[0]["arguments"]);
    assert_eq!(call["content"], "Calling: read_file");
    assert_eq!(interactions[2]["content"], want.results[0]["content"]);
    assert_eq!(interactions[0]["content"], want.thoughts[0]);
    for i in interactions {
        assert!(
            i["agent_name"].is_string() && i["timestamp"].is_string(),
            "{i}"
        );
    }
    assert_eq!(got["complete"]["message"]["content"], want.text.as_str());
    assert_eq!(got["complete"]["message"]["role"], "assistant");
    assert_eq!(got["complete"]["session_id"], got["start"]["session_id"]);
}

/// A run that fails after it started reaches each client as its own error event.
#[tokio::test]
async fn a_failure_after_the_start_is_each_clients_own_error() {
    let s = clients().await;
    let failing = "stub: error-event-after=3 code=INTERNAL";
    let only_stream = [("MODE", "stream-only")];
    let client = |script| s.client(script, failing, &only_stream);
    // The agent's error as the dialects that carry its code report it.
    let coded = json!({ "code": "INTERNAL", "message": "scripted failure" });

    let got = client("ai-sdk").await;
    assert_eq!(
        got["errors"],
        json!(["scripted failure (INTERNAL)"]),
        "{got}"
    );
    assert_eq!(got["partTypes"], json!(["reasoning", "dynamic-tool"]));

    let got = client("ag-ui").await;
    assert_eq!(got["runError"], coded, "{got}");
    assert_eq!(got["finished"], Value::Null);
    assert_eq!(
        got["types"].as_array().unwrap().last().unwrap(),
        "RUN_ERROR"
    );

    let got = client("a2a").await;
    assert_eq!(
        got["states"],
        json!(["working", "working", "failed"]),
        "{got}"
    );
    assert_eq!(got["final"], "scripted failure");

    let got = client("openai").await;
    assert_eq!(
        got["streamed"]["error"],
        json!({ "name": "APIError", "message": "scripted failure" }),
        "{got}"
    );
    assert_eq!(got["streamed"]["finish"], Value::Null);

    let got = client("seed-001").await;
    assert_eq!(got["error"], coded, "{got}");
    assert_eq!(got["complete"], Value::Null);
    assert_eq!(got["interactions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a2a_subscribe_to_task_follows_a_running_task() {
    let env = [("MODE", "resubscribe"), ("CONTEXT_ID", "a2a-thread")];
    let (_s, want, got) = read_by("a2a", "stub: pace=40ms", &env).await;
    assert_eq!(got.get("error"), None, "{got}");
    assert_eq!(got["contextId"], "a2a-thread");
    assert_eq!(got["artifact"], want.text.as_str());
    // The follower replays the task from its start: the same responses, the same answer.
    assert_eq!(got["followed"]["cases"], got["cases"], "{got}");
    assert_eq!(got["followed"]["artifact"], want.text.as_str());
}
