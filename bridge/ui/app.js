// The chat page: pick an agent, open or start a thread, send a message and watch the run.
// It talks to the bridge only through the public client module, like any other front end.
//
// How a run is followed: the page subscribes to the thread's events (resumed after cuts,
// rendered from there, for runs started here or anywhere else) and sends its own messages
// as a streamed chat on the thread, whose connection it owns: Stop (or Escape) closes that
// connection and the bridge cancels the agent's run.
//
// Agent text is untrusted: Markdown becomes HTML with marked, and that HTML reaches the DOM
// only through DOMPurify; everything else is set as text.
import { BridgeClient, BridgeError } from "./agent-bridge.js";
import { marked } from "./vendor/marked.esm.js";
import DOMPurify from "./vendor/purify.es.mjs";
import hljs from "./vendor/highlight/core.min.js";
import bash from "./vendor/highlight/languages/bash.min.js";
import css from "./vendor/highlight/languages/css.min.js";
import diff from "./vendor/highlight/languages/diff.min.js";
import go from "./vendor/highlight/languages/go.min.js";
import ini from "./vendor/highlight/languages/ini.min.js";
import javascript from "./vendor/highlight/languages/javascript.min.js";
import json from "./vendor/highlight/languages/json.min.js";
import plaintext from "./vendor/highlight/languages/plaintext.min.js";
import python from "./vendor/highlight/languages/python.min.js";
import rust from "./vendor/highlight/languages/rust.min.js";
import shell from "./vendor/highlight/languages/shell.min.js";
import sql from "./vendor/highlight/languages/sql.min.js";
import typescript from "./vendor/highlight/languages/typescript.min.js";
import xml from "./vendor/highlight/languages/xml.min.js";
import yaml from "./vendor/highlight/languages/yaml.min.js";

for (const [name, language] of Object.entries({
  bash, css, diff, go, ini, javascript, json, plaintext, python, rust, shell, sql, typescript, xml, yaml,
})) hljs.registerLanguage(name, language);
hljs.registerAliases(["toml"], { languageName: "ini" });
hljs.registerAliases(["sh", "console"], { languageName: "bash" });
hljs.registerAliases(["html"], { languageName: "xml" });

// Links from agents open elsewhere and carry nothing back.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});
const PURIFY = {
  RETURN_DOM_FRAGMENT: true,
  // Style attributes would break the CSP's style-src anyway; forms and inputs have no place
  // in an answer.
  FORBID_ATTR: ["style"],
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"],
};

const $ = (id) => document.getElementById(id);
const els = {
  agent: $("agent"), status: $("status"), threads: $("thread-list"), newThread: $("new-thread"),
  title: $("thread-title"), transcript: $("transcript"), composer: $("composer"),
  input: $("composer-input"), send: $("send"), stop: $("stop"), note: $("composer-note"),
  credentials: $("credentials-form"), token: $("token"), drawer: $("threads"),
  drawerToggle: $("threads-toggle"), scrim: $("scrim"),
};

const STATUS_TEXT = {
  idle: "Idle", connecting: "Connecting…", ready: "Connected", streaming: "Streaming…",
  reconnecting: "Reconnecting…", finished: "Finished", failed: "Failed", stopped: "Stopped",
};

let client = makeClient();
let agent = null;
let thread = null;
let threadTitle = null;
let subscription = null;
let reconnects = 0;
/** The run shown as going on in this thread (from its events), if any. */
let activeRun = null;
/** This page's own run: its message, and the controller whose abort stops it. */
let own = null;
const runs = new Map(); // run_id -> view
/** Runs stopped from this page, to say so when their cancellation arrives. */
const stoppedHere = new Set();

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

/** Send is refused while a run goes on (the thread takes one at a time); typed text stays. */
function updateControls() {
  const busy = Boolean(own || activeRun);
  els.send.disabled = busy;
  els.send.title = busy ? "A run is going on: wait for it, or stop it" : "";
  els.stop.hidden = !own;
  els.stop.disabled = Boolean(own?.stopping);
  if (!busy) note("");
}

function note(text) {
  els.note.textContent = text;
}

function params() {
  return new URLSearchParams(location.hash.slice(1));
}

function newThreadId() {
  // getRandomValues, not randomUUID: the page may be served over plain http on a LAN, where
  // randomUUID (secure contexts only) does not exist.
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return "t-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-") || k.startsWith("aria-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
}

// ---- Markdown ----

/** Renders `source` (agent Markdown) into `target`, sanitised; `final` also guesses the
 *  language of unlabelled code blocks (too costly on every token). */
function renderMarkdown(target, source, final) {
  const fragment = DOMPurify.sanitize(marked.parse(source, { async: false, gfm: true }), PURIFY);
  for (const code of fragment.querySelectorAll("pre > code")) {
    const text = code.textContent;
    const named = /\blanguage-([\w+-]+)/.exec(code.className)?.[1];
    let highlighted = null;
    if (named && hljs.getLanguage(named)) highlighted = hljs.highlight(text, { language: named, ignoreIllegals: true });
    else if (final && !named) highlighted = hljs.highlightAuto(text);
    if (highlighted) {
      // highlight.js escapes the code; its markup goes through the sanitiser all the same.
      code.replaceChildren(DOMPurify.sanitize(highlighted.value, PURIFY));
      code.classList.add("hljs");
    }
    const pre = code.parentElement;
    const block = el("div", { class: "code-block" });
    pre.replaceWith(block);
    block.append(copyButton(() => text, "Copy code"), pre);
  }
  target.replaceChildren(fragment);
}

function copyButton(text, label = "Copy") {
  const button = el("button", { type: "button", class: "copy quiet", textContent: "Copy", title: label });
  button.setAttribute("aria-label", label);
  button.addEventListener("click", async () => {
    const ok = await copy(text());
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
  return button;
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API (an http:// origin other than localhost): the selection way.
    const area = el("textarea", { value: text, readOnly: true, class: "visually-hidden" });
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}

// ---- Time ----

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const plural = new Intl.PluralRules("en");
const UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];

function ago(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  if (Number.isNaN(seconds)) return "";
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

function count(n, noun) {
  return `${n} ${noun}${plural.select(n) === "one" ? "" : "s"}`;
}

function refreshTimes() {
  for (const time of document.querySelectorAll("time[data-relative]")) time.textContent = ago(time.dateTime);
}
setInterval(refreshTimes, 30000);

// ---- Agents and threads ----

async function loadAgents() {
  try {
    const { agents } = await client.listAgents();
    // An agent that does not answer its health check is still listed, and says so.
    const label = (a) => (["not_serving", "unreachable"].includes(a.status) ? `${a.name} (${a.status.replace("_", " ")})` : a.name);
    els.agent.replaceChildren(...agents.map((a) => el("option", { value: a.name, textContent: label(a), title: a.reason || "" })));
    const wanted = params().get("agent");
    if (wanted && agents.some((a) => a.name === wanted)) els.agent.value = wanted;
    if (!agents.length) return setStatus("failed", "no agent is available to these credentials");
    const existing = params().get("thread");
    await openAgent(els.agent.value, existing);
  } catch (e) {
    setStatus("failed", e.message);
  }
}

async function openAgent(name, threadId) {
  agent = name;
  if (threadId) await openThread(threadId);
  else await openThread(newThreadId(), { fresh: true });
}

function setTitle(title) {
  threadTitle = title;
  els.title.textContent = title || "New thread";
  document.title = title ? `${title} · Agent bridge` : "Agent bridge · chat";
}

async function loadThreads() {
  try {
    const { threads } = await client.listThreads(agent);
    const current = threads.find((t) => t.thread_id === thread);
    if (current?.title && !threadTitle) setTitle(current.title);
    if (!current) threads.unshift({ thread_id: thread, title: threadTitle || "New thread", message_count: 0 });
    els.threads.replaceChildren(...threads.map((t) => {
      const meta = el("span", { class: "meta" });
      if (t.message_count) meta.append(count(t.message_count, "message"));
      if (t.updated_at) {
        if (t.message_count) meta.append(" · ");
        meta.append(el("time", { dateTime: t.updated_at, textContent: ago(t.updated_at), title: new Date(t.updated_at).toLocaleString(), "data-relative": "" }));
      }
      if (!meta.childNodes.length) meta.append("not saved yet");
      const button = el("button", { type: "button", title: t.thread_id, "data-thread": t.thread_id },
        el("span", { class: "thread-name", textContent: t.title || "Untitled thread" }), meta);
      button.setAttribute("aria-current", String(t.thread_id === thread));
      button.addEventListener("click", () => { closeDrawer(); if (t.thread_id !== thread) openThread(t.thread_id); });
      return el("li", {}, button);
    }));
  } catch (e) {
    els.threads.replaceChildren(el("li", { class: "hint", textContent: `Threads unavailable: ${e.message}` }));
  }
}

/** Opens a thread: its history (unless `fresh`: a thread made here has none), then its live
 *  events. */
async function openThread(threadId, { fresh = false } = {}) {
  subscription?.close();
  // A run sent from here goes on while another thread is open (its stream stays open until
  // the run ends); only Stop, or closing the page, cancels it.
  own = null;
  activeRun = null;
  thread = threadId;
  runs.clear();
  history.replaceState(null, "", `#agent=${encodeURIComponent(agent)}&thread=${encodeURIComponent(thread)}`);
  setTitle(null);
  els.transcript.replaceChildren();
  updateControls();
  loadThreads();
  if (!fresh) {
    try {
      const { messages } = await client.listMessages(agent, thread);
      if (thread !== threadId) return;
      for (const m of messages) els.transcript.append(historyItem(m));
      els.transcript.scrollTop = els.transcript.scrollHeight;
      const first = messages.find((m) => m.role === "user");
      if (first && !threadTitle) setTitle(first.content.slice(0, 80));
    } catch (e) {
      // A thread the agent does not know (yet) has no history; anything else is worth saying.
      if (!(e instanceof BridgeError && e.status === 404)) note(`History unavailable: ${e.message}`);
    }
  }
  if (thread !== threadId) return;
  subscription = client.subscribe(agent, thread, {
    onState(state, detail) {
      if (state === "connecting") setStatus("connecting");
      else if (state === "reconnecting") { reconnects += 1; setStatus("reconnecting"); }
      else if (state === "open") setStatus(activeRun ? "streaming" : "ready");
      else if (state === "failed") setStatus("failed", detail?.message);
    },
    onEvent: renderEvent,
  });
}

function historyItem(m) {
  if (m.role === "user") {
    return el("li", { class: "msg user", "data-history": "true" },
      el("span", { class: "who", textContent: "You" }), el("div", { class: "user-text", textContent: m.content }));
  }
  const answer = el("div", { class: "answer markdown" });
  renderMarkdown(answer, m.content, true);
  return el("li", { class: "msg assistant", "data-history": "true" },
    el("span", { class: "who", textContent: m.agent || "Assistant" }), answer,
    el("div", { class: "run-foot" }, copyButton(() => m.content, "Copy answer")));
}

// ---- Runs ----

function runView(data) {
  let view = runs.get(data.run_id);
  if (!view) {
    const list = el("ol", { class: "activity-list", "aria-label": "Agent activity" });
    const summary = el("summary", { textContent: "Working…" });
    const activity = el("details", { class: "activity", open: true }, summary, list);
    const answer = el("div", { class: "answer markdown", "aria-busy": "false" });
    const source = el("pre", { class: "source", hidden: true });
    // How the run ended (final message, finished or failed), then its copy button.
    const foot = el("div", { class: "run-foot" });
    const item = el("li", { class: "msg run", "data-run": data.run_id },
      el("span", { class: "who", textContent: "Agents" }), activity, answer, source, foot);
    view = { item, list, summary, activity, answer, source, foot, text: "", counts: {}, frame: 0, done: false };
    runs.set(data.run_id, view);
    els.transcript.append(item);
    if (own && !own.runId) claim(view, data.run_id);
  }
  return view;
}

/** This page's message started `runId`: its bubble goes right before the run. */
function claim(view, runId) {
  if (!own || own.runId) return;
  own.runId = runId;
  if (own.stopping) stoppedHere.add(runId);
  const bubble = el("li", { class: "msg user" },
    el("span", { class: "who", textContent: "You" }), el("div", { class: "user-text", textContent: own.message }));
  if (view) view.item.before(bubble);
  else els.transcript.append(bubble);
  own.bubble = bubble;
}

function row(kind, data, id, ...children) {
  return item("li", kind, data, id, ...children);
}

/** One event's element: its kind, sequence and id as data attributes. */
function item(tagName, kind, data, id, ...children) {
  return el(tagName, { class: `ev ${kind}`, "data-kind": kind, "data-seq": String(data.sequence), "data-event-id": id || "" }, ...children);
}

function tag(text) {
  return el("span", { class: "tag", textContent: text });
}

function summarise(view) {
  const c = view.counts;
  const parts = [];
  if (c.thought) parts.push(count(c.thought, "thought"));
  if (c.tool_call) parts.push(count(c.tool_call, "tool call"));
  const what = parts.length ? parts.join(", ") : "no steps";
  view.summary.textContent = view.done ? `Activity: ${what}` : `Working… ${what}`;
}

function scheduleRender(view) {
  if (view.frame) return;
  view.frame = requestAnimationFrame(() => {
    view.frame = 0;
    renderMarkdown(view.answer, view.text, false);
  });
}

function finishAnswer(view, content) {
  if (view.frame) cancelAnimationFrame(view.frame);
  view.frame = 0;
  if (!view.text && content) view.text = content;
  view.answer.setAttribute("aria-busy", "false");
  if (view.text) renderMarkdown(view.answer, view.text, true);
}

/** The run is over: fold its activity (the reader can open it again), say how it ended. */
function endRun(view, outcome) {
  view.done = true;
  view.activity.open = false;
  summarise(view);
  view.item.dataset.outcome = outcome;
  if (view.text && !view.foot.querySelector(".copy")) view.foot.append(copyButton(() => view.text, "Copy answer"));
  if (activeRun === view.item.dataset.run) activeRun = null;
  updateControls();
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
    if (kind === "history_truncated") els.transcript.append(el("li", { class: "ev notice", textContent: "Some earlier events are no longer available." }));
    return;
  }
  const view = runView(data);
  const who = el("span", { class: "who", textContent: data.agent || "" });
  view.counts[kind] = (view.counts[kind] || 0) + 1;
  switch (kind) {
    case "run_started":
      if (!view.done) activeRun = data.run_id;
      setStatus("streaming");
      updateControls();
      view.list.append(row(kind, data, id, `Run started by ${data.agent}`));
      break;
    case "thought":
      view.list.append(row(kind, data, id, who, tag("Thought"), el("span", { textContent: data.content })));
      break;
    case "tool_call":
      view.list.append(row(kind, data, id, who, tag("Tool call"), el("code", { textContent: data.tool_name }),
        el("pre", { textContent: JSON.stringify(data.arguments, null, 2) })));
      break;
    case "tool_result":
      view.list.append(row(kind, data, id, who, tag(data.is_error ? "Tool error" : "Tool result"),
        el("code", { textContent: data.tool_name || data.call_id || "" }), el("pre", { textContent: data.content })));
      break;
    case "text_delta":
      view.answer.setAttribute("aria-busy", "true");
      view.text += data.delta;
      // The raw Markdown, one span per event: what "Copy" copies.
      view.source.append(el("span", { class: "delta", "data-kind": kind, "data-seq": String(data.sequence), "data-event-id": id || "", textContent: data.delta }));
      scheduleRender(view);
      break;
    case "message": {
      const content = data.content ?? "";
      finishAnswer(view, content);
      const done = item("span", "message-done", data, id, `Final message from ${data.agent}`);
      done.dataset.kind = kind;
      done.dataset.final = content;
      view.foot.append(done);
      break;
    }
    case "run_completed":
      finishAnswer(view, data.final_message?.content);
      view.foot.append(item("span", kind, data, id, "Finished"));
      endRun(view, "completed");
      setStatus("finished");
      loadThreads();
      break;
    case "run_error": {
      finishAnswer(view, "");
      const stopped = data.code === "CANCELLED";
      const mine = stoppedHere.has(data.run_id);
      const text = stopped
        ? (mine ? "Stopped: the agent's run was cancelled" : `Stopped: ${data.message}`)
        : `Run failed (${data.code}): ${data.message}`;
      const shown = item("p", kind, data, id, text);
      shown.setAttribute("role", "alert");
      view.foot.append(shown);
      endRun(view, stopped ? "stopped" : "failed");
      if (stopped) setStatus("stopped");
      else setStatus("failed", data.message);
      loadThreads();
      break;
    }
    default:
      break;
  }
  if (kind === "thought" || kind === "tool_call") summarise(view);
}

// ---- Sending and stopping ----

async function send(event) {
  event.preventDefault();
  const message = els.input.value.trim();
  if (!message || !agent || !subscription) return;
  if (own || activeRun) {
    // The thread takes one run at a time: keep the text, say why nothing happened.
    note("A run is going on: your message is kept. Wait for it to finish, or press Stop (Esc).");
    return;
  }
  const controller = new AbortController();
  own = { message, controller, runId: null, stopping: false, bubble: null };
  const mine = own;
  const [target, following] = [thread, subscription];
  updateControls();
  note("");
  try {
    // Subscribed first, so the page sees the whole run (a Stop meanwhile cancels the wait).
    await new Promise((resolve, reject) => {
      following.opened.then(resolve, reject);
      controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
    });
    // Another thread was opened meanwhile: the message was never sent, and stays in the box.
    if (own !== mine) return;
    if (!threadTitle) setTitle(message.slice(0, 80));
    await client.streamChat(agent, { message, thread_id: target }, {
      // The run exists: the message was accepted. Only now does the box empty.
      onRunStarted(data) {
        if (own !== mine) return;
        claim(runs.get(data.run_id), data.run_id);
        if (els.input.value.trim() === message) els.input.value = "";
      },
    }, { signal: controller.signal });
  } catch (e) {
    if (controller.signal.aborted || own !== mine) {
      // Stopped here: the bridge cancels the agent's run, and its run_error (CANCELLED)
      // reaches the thread's subscribers, this page included. (Or another thread is open
      // now: nothing here is about it.)
    } else if (!mine.runId) {
      // Refused before it started: nothing was sent, the text stays in the box.
      if (e instanceof BridgeError && e.status === 409) note("Another run is going on in this thread: your message is kept.");
      else setStatus("failed", e.message);
      if (threadTitle === message.slice(0, 80) && !runs.size) setTitle(null);
    }
    // A run that failed after it started is shown from its run_error event.
  } finally {
    if (own === mine) own = null;
    updateControls();
    if (document.activeElement === document.body || document.activeElement === els.stop) els.input.focus();
  }
}

function stop() {
  if (!own || own.stopping) return;
  own.stopping = true;
  if (own.runId) stoppedHere.add(own.runId);
  note("Stopping…");
  updateControls();
  own.controller.abort();
}

// ---- The drawer (narrow screens) ----

function openDrawer() {
  els.drawer.classList.add("open");
  els.scrim.hidden = false;
  els.drawerToggle.setAttribute("aria-expanded", "true");
  (els.drawer.querySelector("[aria-current=true]") || els.newThread).focus();
}

function closeDrawer() {
  if (!els.drawer.classList.contains("open")) return false;
  els.drawer.classList.remove("open");
  els.scrim.hidden = true;
  els.drawerToggle.setAttribute("aria-expanded", "false");
  return true;
}

els.composer.addEventListener("submit", send);
els.input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    els.composer.requestSubmit();
  }
});
els.stop.addEventListener("click", stop);
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape" || e.defaultPrevented) return;
  if (closeDrawer()) { els.drawerToggle.focus(); return; }
  if (own) { e.preventDefault(); stop(); }
});
els.drawerToggle.addEventListener("click", () => (els.drawer.classList.contains("open") ? closeDrawer() : openDrawer()));
els.scrim.addEventListener("click", closeDrawer);
els.agent.addEventListener("change", () => openAgent(els.agent.value, null));
els.newThread.addEventListener("click", () => { closeDrawer(); openThread(newThreadId(), { fresh: true }); });
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
