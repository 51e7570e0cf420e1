//! `bridge token`, the binary as a newcomer runs it, against a bridge that only accepts JWTs
//! signed with the same secret.

use std::{path::PathBuf, process::Command};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{problem, process::binary, spawn_agent, spawn_bridge_strict};

fn secret_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!("bridge-token-test-{}", std::process::id()));
    std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").expect("write secret");
    path
}

/// Runs `bridge token` with `args`; its stdout is the token alone.
fn mint(secret: &PathBuf, args: &[&str]) -> String {
    let output = Command::new(binary("bridge"))
        .arg("token")
        .arg("--jwt-secret-file")
        .arg(secret)
        .args(args)
        .env_remove("BRIDGE_JWT_SECRET_FILE")
        .output()
        .expect("run bridge token");
    assert!(
        output.status.success(),
        "bridge token {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).expect("UTF-8");
    let token = token.strip_suffix('\n').expect("one line");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    token.to_owned()
}

#[tokio::test]
async fn a_minted_token_is_accepted_with_its_subject_tenant_and_scopes() {
    let secret = secret_file();
    let agent = spawn_agent().await;
    let bridge = spawn_bridge_strict(
        &[("assistant", &agent.url), ("other", &agent.url)],
        &["--jwt-secret-file", secret.to_str().unwrap()],
    )
    .await;
    let get = |token: String, path: &'static str| {
        bridge.http.get(bridge.url(path)).bearer_auth(token).send()
    };

    // Scoped to one agent: that agent is listed and callable, the other is forbidden.
    let alice = mint(
        &secret,
        &[
            "--sub",
            "alice",
            "--tenant",
            "acme",
            "--scope",
            "agent:assistant",
        ],
    );
    let listed: Value = get(alice.clone(), "/v1/agents")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["agents"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["agents"][0]["name"], "assistant", "{listed}");
    let answer = bridge
        .http
        .post(bridge.url("/v1/agents/assistant/chat"))
        .bearer_auth(&alice)
        .json(&json!({ "message": "hello", "thread_id": "t-token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let refused = bridge
        .http
        .post(bridge.url("/v1/agents/other/chat"))
        .bearer_auth(&alice)
        .json(&json!({ "message": "hello" }))
        .send()
        .await
        .unwrap();
    let (status, body) = problem(refused).await;
    assert_eq!(status, 403);
    assert_eq!(body["type"], "urn:agent-bridge:problem:forbidden");

    // The tenant and subject keep threads apart: another tenant's token does not see alice's.
    let mallory = mint(&secret, &["--sub", "alice", "--tenant", "other-co"]);
    let threads = |token: String| async {
        get(token, "/v1/agents/assistant/threads")
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["thread_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(threads(alice.clone()).await, ["t-token"]);
    assert!(threads(mallory).await.is_empty());

    // Signed with another secret: refused.
    let other_secret =
        std::env::temp_dir().join(format!("bridge-token-other-{}", std::process::id()));
    std::fs::write(&other_secret, "another-secret-another-secret-00").unwrap();
    let forged = mint(&other_secret, &[]);
    let (status, body) = problem(get(forged, "/v1/agents").await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["detail"], "the token's signature is invalid");
}

#[test]
fn bad_flags_fail_with_a_message_naming_them_and_print_no_token() {
    let secret = secret_file();
    for (args, named) in [
        (vec!["--scope", "assistant"], "--scope"),
        (vec!["--lifetime", "90d"], "--lifetime"),
        (vec!["--lifetime", "soon"], "--lifetime"),
    ] {
        let output = Command::new(binary("bridge"))
            .arg("token")
            .arg("--jwt-secret-file")
            .arg(&secret)
            .args(&args)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}
