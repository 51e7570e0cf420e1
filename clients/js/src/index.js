// agent-bridge.js: the JavaScript client of the agent bridge. An ES module without
// dependencies, for browsers and Node (>= 18); types in index.d.ts beside it.
//
// The bridge serves this very file at /client/agent-bridge.js (always) and at
// /ui/agent-bridge.js (with --ui, for its chat page); it is also the npm package in clients/js.
//
//   import { BridgeClient } from "https://bridge.example.com/client/agent-bridge.js";
//   const client = new BridgeClient({ baseUrl: "https://bridge.example.com", token });
//
// Two ways to follow a run:
// - client.subscribe(agent, thread, handlers): EventSource on the thread's events, with a
//   fresh stream ticket before every (re)connect when the client holds a credential, and
//   resume after the last event id seen (`?last_event_id=`), so nothing is lost or repeated;
// - client.streamChat(agent, body, handlers): POST .../chat with `fetch` streaming and the
//   bearer token, parsed as SSE here (multi-line data, comments, `retry:`). Aborting it (its
//   `signal`) closes the stream, and the bridge cancels the agent's run.
// Handlers are typed per event kind: onRunStarted, onThought, onToolCall, onToolResult,
// onTextDelta, onMessage, onRunCompleted, onRunError, plus onEvent (every event), onNotice
// (history_truncated, stream_error), onState (connecting, open, reconnecting, closed, failed).

/** The event kinds a run carries, in the bridge's SSE `event:` names. */
export const EVENT_KINDS = Object.freeze([
  "run_started", "thought", "tool_call", "tool_result",
  "text_delta", "message", "run_completed", "run_error",
]);
const NOTICE_KINDS = ["history_truncated", "stream_error", "notice"];
const TERMINAL = new Set(["run_completed", "run_error"]);

/** A refusal from the bridge (its RFC 9457 problem document) or a network failure. */
export class BridgeError extends Error {
  constructor(message, { status = 0, problem = null } = {}) {
    super(message);
    this.name = "BridgeError";
    this.status = status;
    this.problem = problem;
  }
  /** Worth retrying: the network, 429, or the bridge/agent unavailable. */
  get retryable() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

function handlerName(kind) {
  return "on" + kind.split("_").map((w) => w[0].toUpperCase() + w.slice(1)).join("");
}

function dispatch(handlers, kind, data, id) {
  handlers.onEvent?.(kind, data, id);
  if (EVENT_KINDS.includes(kind)) handlers[handlerName(kind)]?.(data, id);
  else handlers.onNotice?.(kind, data, id);
}

/** Waits `ms`, or rejects when `signal` aborts. */
function delay(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => { signal?.removeEventListener("abort", onAbort); resolve(); }, ms);
    function onAbort() { clearTimeout(timer); reject(signal.reason); }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Exponential backoff from the server's `retry:` hint, with jitter, capped. */
export function backoff(retryMs, attempt, maxMs = 30000) {
  const base = Math.min(maxMs, retryMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/**
 * Parses a `text/event-stream` body (a ReadableStream of bytes) as the WHATWG spec does:
 * lines end with LF, CR or CRLF; `data:` lines join with LF; comments (`:`) are ignored;
 * `retry:` takes digits only; an event is dispatched at a blank line, unless it has no data.
 * Yields { id, event, data, retry } (`retry` alone when only a hint arrived).
 */
export async function* parseEventStream(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const onAbort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  let buffer = "";
  let data = [];
  let event = "";
  let id = null;
  let lastId = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return; // an event without its blank line is incomplete: dropped, as EventSource does
      buffer += value;
      let start = 0;
      for (;;) {
        const match = /\r\n|\r|\n/.exec(buffer.slice(start));
        if (!match) break;
        // A lone CR at the end of a chunk may be the first half of CRLF: wait for more.
        if (match[0] === "\r" && start + match.index === buffer.length - 1) break;
        const line = buffer.slice(start, start + match.index);
        start += match.index + match[0].length;
        if (line === "") {
          if (id !== null) lastId = id;
          id = null;
          if (data.length) yield { id: lastId, event: event || "message", data: data.join("\n") };
          data = [];
          event = "";
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") data.push(val);
        else if (field === "event") event = val;
        else if (field === "id" && !val.includes("\0")) id = val;
        else if (field === "retry" && /^\d+$/.test(val)) yield { retry: Number(val) };
      }
      buffer = buffer.slice(start);
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}

export class BridgeClient {
  /**
   * @param {object} options
   * @param {string} [options.baseUrl] the bridge's origin ("" or omitted: this page's)
   * @param {string|(() => string|Promise<string>)} [options.token] a bearer JWT, or a function returning a fresh one
   * @param {string} [options.apiKey] an API key (X-API-Key), for trusted internal pages
   * @param {number} [options.retry] first reconnection delay in ms until the server sends `retry:` (EventSource hides it)
   * @param {typeof EventSource} [options.EventSource] the EventSource class subscribe() uses
   *   (default: the global one; Node before 22 has none, so pass one there)
   */
  constructor({ baseUrl = "", token = null, apiKey = null, retry = 2000, EventSource = null } = {}) {
    this.baseUrl = (baseUrl || globalThis.location?.origin || "").replace(/\/$/, "");
    if (!this.baseUrl) throw new TypeError("BridgeClient: baseUrl is required outside a web page");
    this.token = token;
    this.apiKey = apiKey;
    this.retry = retry;
    this.EventSource = EventSource;
  }

  /** True when requests carry a credential; EventSource then needs a ticket. */
  get hasCredential() {
    return Boolean(this.token || this.apiKey);
  }

  url(path) {
    return new URL(path, this.baseUrl + "/");
  }

  async headers(extra = {}) {
    const headers = { ...extra };
    if (this.token) {
      const token = typeof this.token === "function" ? await this.token() : this.token;
      headers.Authorization = `Bearer ${token}`;
    } else if (this.apiKey) {
      headers["X-API-Key"] = this.apiKey;
    }
    return headers;
  }

  /** One JSON request; refusals become BridgeError with the problem document. */
  async request(method, path, body, { signal } = {}) {
    let response;
    try {
      response = await fetch(this.url(path), {
        method,
        headers: await this.headers(body === undefined ? {} : { "Content-Type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new BridgeError(`cannot reach the bridge: ${e.message}`);
    }
    return readJson(response);
  }

  listAgents(options) {
    return this.request("GET", "/v1/agents", undefined, options);
  }
  agentStatus(agent, options) {
    return this.request("GET", `/v1/agents/${enc(agent)}/status`, undefined, options);
  }
  listThreads(agent, options) {
    return this.request("GET", `/v1/agents/${enc(agent)}/threads`, undefined, options);
  }
  listMessages(agent, thread, options) {
    return this.request("GET", `/v1/agents/${enc(agent)}/threads/${enc(thread)}/messages`, undefined, options);
  }
  /** Starts a run on a thread (202); its events reach the thread's subscribers. */
  postMessage(agent, thread, message, metadata, options) {
    const body = metadata ? { message, metadata } : { message };
    return this.request("POST", `/v1/agents/${enc(agent)}/threads/${enc(thread)}/messages`, body, options);
  }
  /** A short-lived, single-use ticket for one EventSource connection. */
  ticket(agent, thread, options) {
    return this.request("POST", "/v1/tickets", { agent, thread_id: thread }, options);
  }

  /**
   * Follows a thread's events until closed. Returns { opened, close(), lastEventId }:
   * `opened` resolves when the first connection is open (post messages after it, so the
   * subscription sees their whole run). Reconnects with backoff after a cut, resuming after
   * the last event id; a refusal that retrying cannot fix (401, 403, 404) ends it as failed.
   */
  subscribe(agent, thread, handlers = {}, { lastEventId = null, signal } = {}) {
    const client = this;
    const Source = this.EventSource || globalThis.EventSource;
    if (!Source) throw new TypeError("subscribe() needs EventSource: pass one as new BridgeClient({ EventSource })");
    const controller = new AbortController();
    signal?.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
    const state = { lastEventId, source: null, attempt: 0 };
    let markOpened;
    let markFailed;
    const opened = new Promise((resolve, reject) => { markOpened = resolve; markFailed = reject; });
    opened.catch(() => {});
    const setState = (s, detail) => handlers.onState?.(s, detail);

    const fail = (error) => {
      controller.abort(error);
      setState("failed", error);
      handlers.onError?.(error);
      markFailed(error);
    };

    async function connect() {
      for (;;) {
        if (controller.signal.aborted) return;
        setState(state.attempt === 0 ? "connecting" : "reconnecting", { attempt: state.attempt });
        if (state.attempt > 0) {
          try { await delay(backoff(client.retry, state.attempt), controller.signal); } catch { return; }
        }
        state.attempt += 1;
        const url = client.url(`/v1/agents/${enc(agent)}/threads/${enc(thread)}/events`);
        if (state.lastEventId) url.searchParams.set("last_event_id", state.lastEventId);
        if (client.hasCredential) {
          // Tickets are single-use: every connection needs its own.
          try {
            const { ticket } = await client.ticket(agent, thread, { signal: controller.signal });
            url.searchParams.set("ticket", ticket);
          } catch (e) {
            if (controller.signal.aborted) return;
            if (e instanceof BridgeError && !e.retryable) return fail(e);
            continue;
          }
        }
        if (controller.signal.aborted) return;
        const ended = await new Promise((resolve) => {
          const source = new Source(url);
          state.source = source;
          controller.signal.addEventListener("abort", () => { source.close(); resolve("closed"); }, { once: true });
          source.onopen = () => { setState("open"); markOpened(); };
          for (const kind of [...EVENT_KINDS, ...NOTICE_KINDS]) {
            source.addEventListener(kind, (e) => {
              let data;
              try { data = JSON.parse(e.data); } catch { return; }
              if (e.lastEventId) state.lastEventId = e.lastEventId;
              state.attempt = 1; // an event arrived: the next cut starts the backoff again
              dispatch(handlers, kind, data, e.lastEventId);
            });
          }
          // EventSource would reconnect by itself, but with the same (used) ticket and
          // without telling us: close it and reconnect here with a fresh one.
          source.onerror = () => { source.close(); resolve("cut"); };
        });
        state.source = null;
        if (ended === "closed") return;
        // A refusal (401/403/404) is reported as a plain error by EventSource; a JSON
        // probe tells it from a cut before retrying forever.
        if (!client.hasCredential && state.attempt > 3) {
          try {
            await client.listThreads(agent, { signal: controller.signal });
          } catch (e) {
            if (e instanceof BridgeError && !e.retryable) return fail(e);
          }
        }
      }
    }
    connect();
    return {
      opened,
      close() { controller.abort(); setState("closed"); },
      get lastEventId() { return state.lastEventId; },
    };
  }

  /**
   * Runs one message as a streamed chat (POST .../chat, `Accept: text/event-stream`),
   * calling the handlers per event. Resolves with the terminal event's data (run_completed)
   * and rejects with a BridgeError on run_error, a refusal or a cut stream. Abort it with
   * `signal` (the bridge cancels the agent's run). A POST is not replayed on a cut: it would
   * start a second run; follow the thread with subscribe() to resume instead.
   */
  async streamChat(agent, body, handlers = {}, { signal } = {}) {
    const setState = (s, detail) => handlers.onState?.(s, detail);
    setState("connecting");
    let response;
    try {
      response = await fetch(this.url(`/v1/agents/${enc(agent)}/chat`), {
        method: "POST",
        headers: await this.headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (signal?.aborted) { setState("closed"); throw e; }
      const error = new BridgeError(`cannot reach the bridge: ${e.message}`);
      setState("failed", error);
      throw error;
    }
    if (!response.ok) {
      const error = await readJson(response).then(
        () => new BridgeError(`unexpected status ${response.status}`, { status: response.status }),
        (e) => e,
      );
      setState("failed", error);
      throw error;
    }
    setState("open");
    let terminal = null;
    try {
      for await (const frame of parseEventStream(response.body, signal)) {
        if (frame.retry !== undefined) { this.retry = frame.retry; continue; }
        let data;
        try { data = JSON.parse(frame.data); } catch { continue; }
        dispatch(handlers, frame.event, data, frame.id);
        if (TERMINAL.has(frame.event)) terminal = { kind: frame.event, data };
      }
    } catch (e) {
      if (signal?.aborted) { setState("closed"); throw e; }
    }
    if (!terminal && signal?.aborted) {
      // Aborted by the caller (the read ended quietly rather than throwing).
      setState("closed");
      throw signal.reason;
    }
    if (!terminal) {
      const error = new BridgeError("the stream was cut before the run ended");
      setState("failed", error);
      throw error;
    }
    if (terminal.kind === "run_error") {
      const error = new BridgeError(terminal.data.message, { status: 0, problem: terminal.data });
      setState("failed", error);
      throw error;
    }
    setState("closed");
    return terminal.data;
  }
}

function enc(s) {
  return encodeURIComponent(s);
}

async function readJson(response) {
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    const detail = body?.detail || body?.title || `HTTP ${response.status}`;
    throw new BridgeError(detail, { status: response.status, problem: body });
  }
  return body;
}
