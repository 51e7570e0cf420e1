//! Python agents as child processes, started from the project's `.venv`.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
};

use crate::support::{PATIENCE, eventually};

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's interpreter. Missing is a failure with the fix, never a skip.
fn python() -> PathBuf {
    let python = workspace().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh (it installs tests/agents/requirements.txt into .venv)",
        python.display()
    );
    python
}

/// A Python agent serving gRPC on a loopback port it picked itself.
pub struct PythonAgent {
    pub port: u16,
    output: Arc<Mutex<String>>,
    child: Child,
}

impl PythonAgent {
    /// Starts `script` (relative to the workspace) with `--port 0` and waits for its
    /// `listening on 127.0.0.1:PORT` line.
    pub async fn start(script: &str) -> Self {
        Self::start_with(script, &[]).await
    }

    /// [`PythonAgent::start`] with more arguments.
    pub async fn start_with(script: &str, args: &[&str]) -> Self {
        crate::support::init_logs();
        let mut child = Command::new(python())
            .arg(workspace().join(script))
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {script}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().expect("stdout"))
                as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let output = Arc::clone(&output);
            let mut lines = BufReader::new(pipe).lines();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    if std::env::var_os("TEST_LOG").is_some() {
                        eprintln!("[python] {line}");
                    }
                    let mut kept = output.lock().unwrap();
                    kept.push_str(&line);
                    kept.push('\n');
                }
            });
        }
        let port = tokio::time::timeout(PATIENCE, async {
            loop {
                let port = output.lock().unwrap().lines().find_map(|line| {
                    line.strip_prefix("listening on 127.0.0.1:")
                        .and_then(|p| p.trim().parse::<u16>().ok())
                });
                if let Some(port) = port {
                    return port;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{script} exited ({status}):\n{}", output.lock().unwrap());
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{script} did not start:\n{}", output.lock().unwrap()));
        Self {
            port,
            output,
            child,
        }
    }

    /// Everything the agent printed so far (its log).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the agent printed a line containing `text`.
    pub async fn wait_for_line(&self, text: &str) {
        let what = format!(
            "the agent logs {text:?}; its log so far:\n{}",
            self.output()
        );
        eventually(&what, || async { self.output().contains(text) }).await;
    }
}

impl Drop for PythonAgent {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
