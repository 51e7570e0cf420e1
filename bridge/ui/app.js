// The chat page: pick an agent, open or start a thread, send a message and watch the run.
// It uses only the public client module, like any other front end would.
import { BridgeClient } from "./agent-bridge.js";

const $ = (id) => document.getElementById(id);
const els = {
  agent: $("agent"), status: $("status"), threads: $("thread-list"), newThread: $("new-thread"),
  title: $("thread-title"), transcript: $("transcript"), composer: $("composer"),
  input: $("composer-input"), send: $("send"), credentials: $("credentials-form"), token: $("token"),
};

const STATUS_TEXT = {
  idle: "Idle", connecting: "Connecting…", ready: "Connected", streaming: "Streaming…",
  reconnecting: "Reconnecting…", finished: "Finished", failed: "Failed",
};

let client = makeClient();
let agent = null;
let thread = null;
let subscription = null;
let runActive = false;
let reconnects = 0;
const runs = new Map(); // run_id -> { list, answer }

function makeClient() {
  const secret = sessionStorage.getItem("bridge.credential") || "";
  const kind = sessionStorage.getItem("bridge.kind") || "bearer";
  return new BridgeClient(kind === "apikey" ? { apiKey: secret || null } : { token: secret || null });
}

function setStatus(state, detail) {
  els.status.dataset.state = state;
  els.status.dataset.reconnects = String(reconnects);
  els.status.textContent = detail ? `${STATUS_TEXT[state]}: ${detail}` : STATUS_TEXT[state];
}

function params() {
  return new URLSearchParams(location.hash.slice(1));
}

function newThreadId() {
  return "t-" + crypto.randomUUID().slice(0, 8);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
}

async function loadAgents() {
  try {
    const { agents } = await client.listAgents();
    els.agent.replaceChildren(...agents.map((a) => el("option", { value: a.name, textContent: a.name })));
    const wanted = params().get("agent");
    if (wanted && agents.some((a) => a.name === wanted)) els.agent.value = wanted;
    if (!agents.length) return setStatus("failed", "no agent is available to these credentials");
    await openAgent(els.agent.value, params().get("thread"));
  } catch (e) {
    setStatus("failed", e.message);
  }
}

async function openAgent(name, threadId) {
  agent = name;
  await openThread(threadId || newThreadId());
}

async function loadThreads() {
  try {
    const { threads } = await client.listThreads(agent);
    if (!threads.some((t) => t.thread_id === thread)) threads.unshift({ thread_id: thread, title: "New thread" });
    els.threads.replaceChildren(...threads.map((t) => {
      const button = el("button", { type: "button" },
        t.title || t.thread_id,
        el("span", { class: "meta", textContent: `${t.thread_id}${t.message_count ? ` · ${t.message_count} messages` : ""}` }));
      button.setAttribute("aria-current", String(t.thread_id === thread));
      button.addEventListener("click", () => openThread(t.thread_id));
      return el("li", {}, button);
    }));
  } catch (e) {
    els.threads.replaceChildren(el("li", { class: "hint", textContent: `Threads unavailable: ${e.message}` }));
  }
}

async function openThread(threadId) {
  subscription?.close();
  thread = threadId;
  runs.clear();
  runActive = false;
  history.replaceState(null, "", `#agent=${encodeURIComponent(agent)}&thread=${encodeURIComponent(thread)}`);
  els.title.textContent = `Thread ${thread}`;
  els.transcript.replaceChildren();
  loadThreads();
  try {
    const { messages } = await client.listMessages(agent, thread);
    for (const m of messages) {
      els.transcript.append(el("li", { class: `msg ${m.role === "user" ? "user" : "assistant"}`, "data-history": "true" },
        el("span", { class: "who", textContent: m.role === "user" ? "You" : m.agent || "Assistant" }),
        el("div", { class: "answer", textContent: m.content })));
    }
  } catch {
    // A thread the agent does not know yet has no history.
  }
  subscription = client.subscribe(agent, thread, {
    onState(state, detail) {
      if (state === "connecting") setStatus("connecting");
      else if (state === "reconnecting") { reconnects += 1; setStatus("reconnecting"); }
      else if (state === "open") setStatus(runActive ? "streaming" : "ready");
      else if (state === "failed") setStatus("failed", detail?.message);
    },
    onEvent: renderEvent,
  });
}

function runView(data) {
  let view = runs.get(data.run_id);
  if (!view) {
    const list = el("ol", { "aria-label": "Agent activity" });
    const item = el("li", { class: "msg run", "data-run": data.run_id },
      el("span", { class: "who", textContent: "Agents" }), list);
    els.transcript.append(item);
    view = { list, answer: null };
    runs.set(data.run_id, view);
  }
  return view;
}

/** The answer, placed in the activity where its first token arrives. */
function answerOf(view) {
  if (!view.answer) {
    view.answer = el("div", { class: "answer" });
    view.list.append(el("li", { class: "ev answer-row" }, view.answer));
  }
  return view.answer;
}

function row(kind, data, id, ...children) {
  return el("li", { class: `ev ${kind}`, "data-kind": kind, "data-seq": String(data.sequence), "data-event-id": id || "" }, ...children);
}

function tag(text) {
  return el("span", { class: "tag", textContent: text });
}

function renderEvent(kind, data, id) {
  // Follow the run while the reader is at the bottom; leave them alone if they scrolled up.
  const t = els.transcript;
  const atBottom = t.scrollHeight - t.scrollTop - t.clientHeight < 40;
  renderEventInner(kind, data, id);
  if (atBottom) t.scrollTop = t.scrollHeight;
}

function renderEventInner(kind, data, id) {
  if (!data.run_id) {
    if (kind === "history_truncated") els.transcript.append(el("li", { class: "ev", textContent: "Some earlier events are no longer available." }));
    return;
  }
  const view = runView(data);
  const who = el("span", { class: "who", textContent: data.agent || "" });
  switch (kind) {
    case "run_started":
      runActive = true;
      setStatus("streaming");
      view.list.append(row(kind, data, id, `Run started by ${data.agent}`));
      break;
    case "thought":
      view.list.append(row(kind, data, id, who, tag("Thought"), data.content));
      break;
    case "tool_call":
      view.list.append(row(kind, data, id, who, tag("Tool call"), el("code", { textContent: data.tool_name }),
        el("pre", { textContent: JSON.stringify(data.arguments, null, 2) })));
      break;
    case "tool_result": {
      const result = data.content;
      view.list.append(row(kind, data, id, who, tag(data.is_error ? "Tool error" : "Tool result"), el("code", { textContent: data.tool_name || data.call_id || "" }),
        el("pre", { textContent: result })));
      break;
    }
    case "text_delta":
      answerOf(view).setAttribute("aria-busy", "true");
      view.answer.append(el("span", { class: "delta", "data-kind": kind, "data-seq": String(data.sequence), "data-event-id": id || "", textContent: data.delta }));
      break;
    case "message": {
      const content = data.content ?? "";
      const answer = answerOf(view);
      answer.setAttribute("aria-busy", "false");
      if (!answer.textContent) answer.textContent = content;
      const done = row("message-done", data, id, `Final message from ${data.agent}`);
      done.dataset.kind = kind;
      done.dataset.final = content;
      view.list.append(done);
      break;
    }
    case "run_completed":
      runActive = false;
      view.answer?.setAttribute("aria-busy", "false");
      view.list.append(row(kind, data, id, "Run finished"));
      setStatus("finished");
      loadThreads();
      break;
    case "run_error":
      runActive = false;
      view.answer?.setAttribute("aria-busy", "false");
      view.list.append(row(kind, data, id, `Run failed (${data.code}): ${data.message}`));
      setStatus("failed", data.message);
      break;
    default:
      break;
  }
}

async function send(event) {
  event.preventDefault();
  const message = els.input.value.trim();
  if (!message || !agent || !subscription) return;
  els.send.disabled = true;
  try {
    await subscription.opened;
    els.transcript.append(el("li", { class: "msg user" }, el("span", { class: "who", textContent: "You" }), message));
    els.input.value = "";
    setStatus("connecting");
    await client.postMessage(agent, thread, message);
  } catch (e) {
    setStatus("failed", e.message);
  } finally {
    els.send.disabled = false;
    els.input.focus();
  }
}

els.composer.addEventListener("submit", send);
els.input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    els.composer.requestSubmit();
  }
});
els.agent.addEventListener("change", () => openAgent(els.agent.value, null));
els.newThread.addEventListener("click", () => openThread(newThreadId()));
els.credentials.addEventListener("submit", (e) => {
  e.preventDefault();
  const data = new FormData(els.credentials);
  sessionStorage.setItem("bridge.credential", String(data.get("token") || ""));
  sessionStorage.setItem("bridge.kind", String(data.get("kind")));
  client = makeClient();
  loadAgents();
});

setStatus("idle");
loadAgents();
