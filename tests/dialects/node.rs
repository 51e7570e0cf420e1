//! Runs one client script (`js/<name>.mjs`) and reads the one JSON line it prints.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::Value;
use tokio::process::Command;

/// Node's start plus a whole run, on a loaded 2-core machine.
const SCRIPT_PATIENCE: Duration = Duration::from_secs(60);

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dialects/js")
}

/// Fails, saying how to install them, unless Node.js and the pinned clients are here: this
/// suite is the only proof the official clients work, so a machine without them must not pass.
pub fn require() {
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        node,
        "the dialects suite needs Node.js: scripts/test.sh installs it (apt-get install nodejs npm)"
    );
    assert!(
        js_dir().join("node_modules/ai/package.json").is_file(),
        "the dialects suite needs its clients: run `npm ci` in tests/dialects/js (scripts/test.sh does)"
    );
}

/// `node js/<script>.mjs <base> <agent> <message> [token]` with `env`; its JSON line.
pub async fn run(
    script: &str,
    base: &str,
    agent: &str,
    message: &str,
    token: Option<&str>,
    env: &[(&str, &str)],
) -> Value {
    let mut command = Command::new("node");
    command
        .current_dir(js_dir())
        .arg(format!("{script}.mjs"))
        .args([base, agent, message])
        .args(token)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SCRIPT_PATIENCE, command.output())
        .await
        .unwrap_or_else(|_| panic!("{script}.mjs did not finish"))
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "{script}.mjs printed no JSON line ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}
