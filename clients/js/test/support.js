// The real parts the client is tested against: the `agent-stub` and `bridge` binaries that
// `cargo build --bins` makes (scripts/test.sh builds them first), as separate processes on
// loopback ports they pick themselves and print.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
/** Where the binaries are: `BRIDGE_BIN_DIR`, or the workspace's target/debug. */
const binDir = process.env.BRIDGE_BIN_DIR || join(root, "target", "debug");

/** How long a process may take to say it listens, on a loaded 2-core machine. */
const PATIENCE_MS = 20000;

function binary(name) {
  const path = join(binDir, name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: run \`cargo build --bins\` first (scripts/test.sh does)`);
  }
  return path;
}

/**
 * Starts `name` with `args` and resolves once it printed every line in `wanted` (regexps with
 * one capture group: the URL), with the captured URLs and a stop() that ends it.
 */
async function start(name, args, wanted) {
  const child = spawn(binary(name), args, {
    stdio: ["ignore", "pipe", process.env.TEST_LOG ? "inherit" : "ignore"],
  });
  const found = [];
  await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${wanted}`)), PATIENCE_MS);
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      out += chunk;
      for (const [i, pattern] of wanted.entries()) {
        const match = pattern.exec(out);
        if (match) found[i] = match[1];
      }
      if (wanted.every((_, i) => found[i])) {
        clearTimeout(timer);
        resolvePromise();
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before listening`));
    });
  });
  child.removeAllListeners("exit");
  return {
    urls: found,
    stop() {
      child.kill("SIGTERM");
    },
  };
}

/** The reference agent, with its Prometheus counters (cancellations) on a second port. */
export async function spawnAgent() {
  const agent = await start(
    "agent-stub",
    ["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--pace", "5ms"],
    [/^listening on (http:\/\/\S+)$/m, /^metrics listening on (http:\/\/\S+)$/m],
  );
  const [url, metrics] = agent.urls;
  return {
    url,
    stop: agent.stop,
    /** Runs the agent saw cancelled by its caller (`agent_stub_cancellations_total`). */
    async cancellations() {
      const text = await (await fetch(`${metrics}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith("agent_stub_cancellations_total "));
      return Number(line?.split(" ")[1] ?? NaN);
    },
  };
}

/** A bridge in front of `agent` as `assistant`, with extra flags. */
export async function spawnBridge(agent, flags = []) {
  const bridge = await start(
    "bridge",
    ["--listen", "127.0.0.1:0", "--agent", `assistant=${agent.url}`, "--rate-limit-chat", "off", ...flags],
    [/^listening on (http:\/\/\S+)$/m],
  );
  return { url: bridge.urls[0], stop: bridge.stop };
}

/** A file holding `text`, in a fresh temporary directory. */
export function tempFile(name, text) {
  const path = join(mkdtempSync(join(tmpdir(), "agent-bridge-js-")), name);
  writeFileSync(path, text);
  return path;
}

/** Waits until `check()` resolves truthy, polling; fails after the patience runs out. */
export async function eventually(check, what) {
  const deadline = Date.now() + PATIENCE_MS;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
