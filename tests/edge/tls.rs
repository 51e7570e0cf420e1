//! TLS from the bridge to an agent whose certificate a private CA signed
//! (`--agent-ca-file`); the fixtures are in `tests/edge/tls/`.

use crate::support::{collect_events, problem, spawn_agent_with, spawn_bridge};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/edge/tls");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{name}")).unwrap()
}

#[tokio::test]
async fn an_agent_behind_a_private_ca_is_reached_over_tls() {
    let agent = spawn_agent_with(agent_stub::Config {
        tls: Some(agent_stub::TlsIdentity {
            cert_pem: read("agent.pem"),
            key_pem: read("agent.key"),
        }),
        ..Default::default()
    })
    .await;
    // The certificate names `localhost`, and the URL's host is what is checked.
    let url = format!("https://localhost:{}", agent.addr.port());
    let ca = format!("{DIR}/ca.pem");

    let trusted = spawn_bridge(&[("assistant", &url)], &["--agent-ca-file", &ca]).await;
    let events = collect_events(trusted.chat_stream("assistant", "over tls").await).await;
    assert_eq!(events.last().unwrap().event, "run_completed");

    // Without the private CA the agent's certificate is not trusted: no call goes out.
    let untrusting = spawn_bridge(&[("assistant", &url)], &[]).await;
    let (status, body) = problem(untrusting.chat_stream("assistant", "over tls").await).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "UNAVAILABLE");
    assert_eq!(
        agent.stats.runs_started(),
        1,
        "only the trusted bridge reached the agent"
    );

    // Plain HTTP/2 to a TLS agent is a bad gateway, without details.
    let plaintext = format!("http://localhost:{}", agent.addr.port());
    let confused = spawn_bridge(&[("assistant", &plaintext)], &[]).await;
    let (status, body) = problem(confused.chat_stream("assistant", "hi").await).await;
    assert_eq!(status, 502, "{body}");
    assert!(!body.to_string().contains("localhost"), "{body}");
}
