//! The OpenAPI document against the real routes: every documented operation reaches its
//! handler (never the router's 404/405), and the JSON the real handlers answer has exactly
//! the fields its documented schema names.

use serde_json::{Value, json};

use crate::support::{Bridge, send, spawn_assistant};

async fn document(bridge: &Bridge) -> Value {
    let response = bridge.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn every_documented_operation_reaches_its_handler() {
    let (_agent, bridge) = spawn_assistant(&[]).await;
    let doc = document(&bridge).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 14, "{:?}", paths.keys());
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{agent}", "assistant")
            .replace("{thread}", "openapi-probe");
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let url = bridge.url(&concrete);
            let request = match method.as_str() {
                "get" => bridge.http.get(&url),
                "delete" => bridge.http.delete(&url),
                "post" => bridge.http.post(&url).json(&json!({})),
                other => panic!("undocumented method kind {other}"),
            };
            let response = send(request).await;
            let status = response.status().as_u16();
            // Streams (thread subscriptions) never end: their headers say enough.
            let streaming = response
                .headers()
                .get("content-type")
                .is_some_and(|t| t == "text/event-stream");
            let body = if streaming {
                String::new()
            } else {
                response.text().await.unwrap_or_default()
            };
            assert!(
                !body.contains("route-not-found") && !body.contains("method-not-allowed"),
                "{method} {path}: the router does not know it ({status} {body})"
            );
        }
    }
    assert!(operations >= 15, "{operations}");
}

/// The properties of a documented schema (following `$ref` into the components).
fn properties<'a>(doc: &'a Value, schema: &'a Value) -> (Vec<&'a str>, Vec<&'a str>) {
    let schema = match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    };
    let all = schema["properties"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let required = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    (all, required)
}

/// Checks a real JSON answer against the documented answer of `method path` `status`.
fn conforms(doc: &Value, method: &str, path: &str, status: &str, content: &str, body: &Value) {
    let schema = &doc["paths"][path][method]["responses"][status]["content"][content]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path} {status} {content} is not documented"
    );
    let (all, required) = properties(doc, schema);
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    for field in &required {
        assert!(
            object.contains_key(*field),
            "{path}: `{field}` missing from {body}"
        );
    }
    for field in object.keys() {
        assert!(
            all.contains(&field.as_str()),
            "{path}: `{field}` is not documented ({all:?})"
        );
    }
}

/// Checks a real answer: its status is the documented `status` (`4XX`: any 4xx) and its
/// JSON body conforms to the schema documented for it.
async fn answer_conforms(
    doc: &Value,
    (method, path): (&str, &str),
    (status, content): (&str, &str),
    response: reqwest::Response,
) {
    let got = response.status().as_u16();
    match status.strip_suffix("XX") {
        Some(class) => assert_eq!((got / 100).to_string(), class, "{method} {path}: {got}"),
        None => assert_eq!(got.to_string(), status, "{method} {path}"),
    }
    let body: Value = response.json().await.unwrap();
    conforms(doc, method, path, status, content, &body);
}

#[tokio::test]
async fn real_answers_match_their_documented_schemas() {
    let (_agent, bridge) = spawn_assistant(&[]).await;
    let doc = document(&bridge).await;
    let json_200 = ("200", "application/json");
    let chat = ("post", "/v1/agents/{agent}/chat");

    let agents = bridge.agents().await;
    answer_conforms(&doc, ("get", "/v1/agents"), json_200, agents).await;

    let answer = bridge
        .chat_json("assistant", json!({ "message": "hello" }))
        .await;
    answer_conforms(&doc, chat, json_200, answer).await;

    let posted = bridge.post_message("assistant", "doc-1", "hi").await;
    let messages = ("post", "/v1/agents/{agent}/threads/{thread}/messages");
    answer_conforms(&doc, messages, ("202", "application/json"), posted).await;

    let empty = json!({ "message": "" });
    let refused = send(
        bridge
            .http
            .post(bridge.url("/v1/agents/assistant/chat"))
            .json(&empty),
    )
    .await;
    answer_conforms(&doc, chat, ("4XX", "application/problem+json"), refused).await;
}
