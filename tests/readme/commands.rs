//! The README's shell blocks fenced as ```` ```sh test ```` run as written, each in a fresh
//! directory with `bash -euo pipefail`, so any failing command fails the test. Blocks fenced
//! as ```` ```sh demo ```` are the HTTP examples against `bridge demo` (what the README's first
//! command starts): they run the same way after [`DEMO`] started one. Three substitutions make
//! them runnable here, and nothing else changes:
//! - `target/release/` becomes this build's binaries (`scripts/test.sh` builds debug ones);
//! - the README's ports (`127.0.0.1:8080`, `127.0.0.1:50051`) become free loopback ports, so
//!   the test does not collide with anything else on the machine.
//!
//! Processes a block leaves running in the background are ended with its process group.

use std::{
    io::Read as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::process::binary;

/// A block starts servers and waits for them (bounded by its own `curl --retry`).
const BLOCK_PATIENCE: Duration = Duration::from_secs(120);

/// The README's fixed ports.
const PORTS: [&str; 2] = ["127.0.0.1:8080", "127.0.0.1:50051"];

/// What the README's `cargo run --release -p bridge -- demo` starts, for ```` ```sh demo ````
/// blocks: the demo on the README's port, ready before the block runs.
const DEMO: &str = "target/release/bridge demo --listen 127.0.0.1:8080 >/dev/null &
curl -fsS --retry 30 --retry-connrefused --retry-delay 1 http://127.0.0.1:8080/readyz >/dev/null
";

/// The README's blocks to run: `(line, script)`.
fn marked_blocks(readme: &str) -> Vec<(usize, String)> {
    let mut blocks = vec![];
    let mut current: Option<(usize, String)> = None;
    for (number, line) in readme.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == "```sh test" => current = Some((number + 1, String::new())),
            None if line.trim_end() == "```sh demo" => {
                current = Some((number + 1, DEMO.to_owned()))
            }
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some((_, script)) => {
                script.push_str(line);
                script.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```sh test block");
    blocks
}

fn free_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("addr").to_string()
}

fn runnable(script: &str, bin_dir: &Path) -> String {
    let mut script = script.replace("target/release/", &format!("{}/", bin_dir.display()));
    for port in PORTS {
        script = script.replace(port, &free_port());
    }
    script
}

struct Outcome {
    success: bool,
    output: String,
}

/// Runs `script` in `dir` in its own process group, then ends whatever it left running.
fn run(script: &str, dir: &Path) -> Outcome {
    let mut command = Command::new("bash");
    command
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE");
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().expect("start bash");
    let group = child.id();
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    // Read both pipes on threads: a full pipe would block the script.
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + BLOCK_PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bash") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Background servers keep the pipes open: end the group before reading them to the end.
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{group}")])
        .status();
    let _ = child.kill();
    let _ = child.wait();
    let output = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    Outcome {
        success: status.is_some_and(|s| s.success()),
        output: if status.is_none() {
            format!("timed out after {BLOCK_PATIENCE:?}\n{output}")
        } else {
            output
        },
    }
}

fn scratch_dir(line: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bridge-readme-{}-line{line}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn every_readme_block_marked_for_testing_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let blocks = marked_blocks(&readme);
    assert!(
        blocks.len() >= 6,
        "the README marks its walk-throughs with ```sh test and its examples with ```sh demo"
    );
    let bin_dir = binary("bridge").parent().expect("bin dir").to_owned();
    binary("agent-stub");
    let mut failures = vec![];
    for (line, script) in &blocks {
        let dir = scratch_dir(*line);
        let outcome = run(&runnable(script, &bin_dir), &dir);
        if outcome.success {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            failures.push(format!(
                "README.md line {line}:\n{script}\n{}",
                outcome.output
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn blocks_are_found_and_rewritten_only_where_they_say_so() {
    let readme = "text\n```sh\nnot this\n```\n```sh test\ntarget/release/bridge --listen 127.0.0.1:8080\n```\n```sh demo\ncurl http://127.0.0.1:8080/\n```\n";
    let blocks = marked_blocks(readme);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].0, 5);
    let script = runnable(&blocks[0].1, Path::new("/bin-dir"));
    assert!(script.starts_with("/bin-dir/bridge --listen 127.0.0.1:"));
    assert!(!script.contains(":8080"), "{script}");
    let demo = runnable(&blocks[1].1, Path::new("/bin-dir"));
    assert!(
        demo.starts_with("/bin-dir/bridge demo --listen 127.0.0.1:"),
        "{demo}"
    );
    let port = demo
        .split("--listen ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        demo.ends_with(&format!("curl http://{port}/\n")),
        "one port per block: {demo}"
    );
}
