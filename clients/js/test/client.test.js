// The client against a real bridge and agent (processes on loopback), in Node: what a
// service or a server-side renderer using the package relies on.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { BridgeClient, BridgeError, EVENT_KINDS } from "../src/index.js";
import { eventually, spawnAgent, spawnBridge, tempFile } from "./support.js";

let agent;
let bridge;
let client;

before(async () => {
  agent = await spawnAgent();
  bridge = await spawnBridge(agent, ["--allow-anonymous"]);
  client = new BridgeClient({ baseUrl: bridge.url });
});
after(() => {
  bridge?.stop();
  agent?.stop();
});

describe("streamChat", () => {
  test("delivers a whole run in order, the streamed text being the final message", async () => {
    const seen = [];
    let text = "";
    const states = [];
    const done = await client.streamChat("assistant", { message: "Add a dark mode toggle" }, {
      onEvent: (kind, data, id) => seen.push({ kind, sequence: data.sequence, id }),
      onTextDelta: (e) => { text += e.delta; },
      onState: (s) => states.push(s),
    });
    assert.deepEqual(seen.map((e) => e.sequence), seen.map((_, i) => i + 1), "sequences 1..N");
    assert.deepEqual(seen.map((e) => e.id), seen.map((_, i) => String(i + 1)), "SSE ids are the sequences");
    assert.equal(seen[0].kind, "run_started");
    assert.equal(seen.at(-1).kind, "run_completed");
    for (const kind of EVENT_KINDS.filter((k) => k !== "run_error")) {
      assert.ok(seen.some((e) => e.kind === kind), `${kind} seen`);
    }
    assert.equal(done.type, "run_completed");
    assert.equal(done.final_message.content, text);
    assert.match(text, /You said: Add a dark mode toggle/);
    assert.deepEqual(states, ["connecting", "open", "closed"]);
  });

  test("aborting closes the stream and the agent's run is cancelled", async () => {
    const before = await agent.cancellations();
    const abort = new AbortController();
    const started = Promise.withResolvers ? Promise.withResolvers() : deferred();
    const run = client.streamChat("assistant", { message: "stub: hang" }, {
      onRunStarted: (e) => started.resolve(e),
    }, { signal: abort.signal });
    const first = await started.promise;
    assert.equal(first.sequence, 1);
    abort.abort();
    await assert.rejects(run, (e) => e.name === "AbortError");
    await eventually(async () => (await agent.cancellations()) === before + 1, "the agent's cancellation");
  });

  test("a refusal is a BridgeError carrying the problem document", async () => {
    const error = await client.streamChat("nobody", { message: "hi" }).catch((e) => e);
    assert.ok(error instanceof BridgeError);
    assert.equal(error.status, 404);
    assert.equal(error.problem.type, "urn:agent-bridge:problem:unknown-agent");
    assert.equal(error.retryable, false);
  });

  test("a run that fails after it started rejects with its run_error", async () => {
    const kinds = [];
    const error = await client
      .streamChat("assistant", { message: "stub: error-event-after=2 code=INTERNAL" }, {
        onEvent: (kind) => kinds.push(kind),
      })
      .catch((e) => e);
    assert.ok(error instanceof BridgeError);
    assert.equal(error.problem.type, "run_error");
    assert.equal(error.problem.code, "INTERNAL");
    assert.deepEqual(kinds, ["run_started", "thought", "run_error"]);
  });
});

describe("threads", () => {
  test("a message posted to a thread is accepted, a second one during its run is refused with 409", async () => {
    const thread = `node-${Date.now()}`;
    const accepted = await client.postMessage("assistant", thread, "stub: hang");
    assert.equal(accepted.thread_id, thread);
    assert.ok(accepted.run_id);
    assert.equal(accepted.events, `/v1/agents/assistant/threads/${thread}/events`);
    const refused = await client.postMessage("assistant", thread, "again").catch((e) => e);
    assert.ok(refused instanceof BridgeError);
    assert.equal(refused.status, 409);
    assert.equal(refused.problem.type, "urn:agent-bridge:problem:run-active");
  });

  test("history and the thread list come back from the agent", async () => {
    const thread = `node-history-${Date.now()}`;
    await client.streamChat("assistant", { message: "first question", thread_id: thread });
    const { messages } = await client.listMessages("assistant", thread);
    assert.deepEqual(messages.map((m) => m.role), ["user", "assistant"]);
    assert.equal(messages[0].content, "first question");
    const { threads } = await client.listThreads("assistant");
    const listed = threads.find((t) => t.thread_id === thread);
    assert.equal(listed.title, "first question");
    assert.equal(listed.message_count, 2);
  });

  test("subscribe() names what it needs where there is no EventSource", () => {
    const saved = globalThis.EventSource;
    delete globalThis.EventSource;
    try {
      assert.throws(() => client.subscribe("assistant", "t-1"), /new BridgeClient\(\{ EventSource \}\)/);
    } finally {
      if (saved) globalThis.EventSource = saved;
    }
  });
});

describe("credentials", () => {
  let locked;
  before(async () => {
    locked = await spawnBridge(agent, ["--api-keys-file", tempFile("api-keys", "node-test:k-0123456789abcdef\n")]);
  });
  after(() => locked?.stop());

  test("without a credential the bridge refuses with 401 unauthenticated", async () => {
    const anonymous = new BridgeClient({ baseUrl: locked.url });
    const error = await anonymous.listAgents().catch((e) => e);
    assert.ok(error instanceof BridgeError);
    assert.equal(error.status, 401);
    assert.equal(error.problem.type, "urn:agent-bridge:problem:unauthenticated");
  });

  test("an API key lists the agents and gets a ticket for a stream", async () => {
    const keyed = new BridgeClient({ baseUrl: locked.url, apiKey: "k-0123456789abcdef" });
    assert.equal(keyed.hasCredential, true);
    const { agents } = await keyed.listAgents();
    assert.deepEqual(agents.map((a) => a.name), ["assistant"]);
    const status = await keyed.agentStatus("assistant");
    assert.equal(status.name, "assistant");
    assert.ok(["unknown", "serving"].includes(status.status), status.status);
    const ticket = await keyed.ticket("assistant", "t-node");
    assert.match(ticket.ticket, /^v1\./);
    assert.equal(ticket.stream_path, "/v1/agents/assistant/threads/t-node/stream");
    assert.ok(ticket.expires_at > Date.now() / 1000);
  });

  test("a token function is asked before each request", async () => {
    let asked = 0;
    const tokened = new BridgeClient({ baseUrl: locked.url, token: () => { asked += 1; return "not-a-jwt"; } });
    const error = await tokened.listAgents().catch((e) => e);
    assert.equal(error.status, 401);
    assert.equal(asked, 1);
  });
});

function deferred() {
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  return { promise, resolve };
}
