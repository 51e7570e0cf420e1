//! What the benches share: the flags of a bridge that measures the stream path alone.

/// A bridge for load: anonymous callers, no rate limits, stream and connection caps far
/// above any load a bench makes, and the agent `bench` at `agent_url`.
pub fn unlimited_bridge_flags(agent_url: &str) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--allow-anonymous",
        "--rate-limit-chat",
        "off",
        "--rate-limit-read",
        "off",
        "--max-streams-per-identity",
        "1000000",
        "--max-streams",
        "1000000",
        "--max-connections",
        "1000000",
    ]
    .map(String::from)
    .to_vec();
    flags.extend(["--agent".into(), format!("bench={agent_url}")]);
    flags
}
