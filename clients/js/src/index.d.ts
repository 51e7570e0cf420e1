// Types of agent-bridge.js (index.js beside this file): the bridge's HTTP API as the client
// exposes it. Event fields follow the bridge's JSON (snake_case, as on the wire).

/** The kinds of event a run carries, in the bridge's SSE `event:` names. */
export type EventKind =
  | "run_started"
  | "thought"
  | "tool_call"
  | "tool_result"
  | "text_delta"
  | "message"
  | "run_completed"
  | "run_error";

/** Notices a thread subscription may carry besides a run's events. */
export type NoticeKind = "history_truncated" | "stream_error" | "notice";

export declare const EVENT_KINDS: readonly EventKind[];

/** Fields every event of a run carries. */
export interface EventBase {
  run_id: string;
  thread_id: string;
  /** The team member that produced the event (`bridge` for events the bridge writes). */
  agent: string;
  /** 1, 2, 3, … within the run, without gaps. */
  sequence: number;
  /** RFC 3339. */
  timestamp?: string;
}

export interface RunStarted extends EventBase {
  type: "run_started";
  user_message_id: string;
  /** The W3C trace id of the request, when tracing is on. */
  trace_id?: string;
}
export interface Thought extends EventBase {
  type: "thought";
  content: string;
}
export interface ToolCall extends EventBase {
  type: "tool_call";
  call_id: string;
  tool_name: string;
  /** The arguments as JSON when the agent sent valid JSON, else the raw string. */
  arguments: unknown;
}
export interface ToolResult extends EventBase {
  type: "tool_result";
  call_id: string;
  tool_name: string;
  content: string;
  is_error: boolean;
}
export interface TextDelta extends EventBase {
  type: "text_delta";
  message_id: string;
  delta: string;
}
export interface ChatMessage {
  message_id: string;
  role: string;
  content: string;
}
export interface MessageEvent extends EventBase, ChatMessage {
  type: "message";
}
export interface Usage {
  input_tokens: number;
  output_tokens: number;
  tool_calls: number;
}
export interface RunCompleted extends EventBase {
  type: "run_completed";
  final_message?: ChatMessage;
  usage?: Usage;
}
export interface RunError extends EventBase {
  type: "run_error";
  /** A gRPC code name: `UNAVAILABLE`, `CANCELLED`, `INTERNAL`, … */
  code: string;
  /** Safe to show to a user. */
  message: string;
}

export type BridgeEvent =
  | RunStarted
  | Thought
  | ToolCall
  | ToolResult
  | TextDelta
  | MessageEvent
  | RunCompleted
  | RunError;

/** `history_truncated`, `stream_error` and other notices of a subscription. */
export interface Notice {
  type: NoticeKind | string;
  message?: string;
  requested?: string;
  code?: string;
  [field: string]: unknown;
}

/** An RFC 9457 problem document, as the bridge sends refusals. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  [extension: string]: unknown;
}

/** A refusal from the bridge (its problem document), a network failure, or a failed run. */
export declare class BridgeError extends Error {
  constructor(message: string, options?: { status?: number; problem?: Problem | RunError | null });
  name: "BridgeError";
  /** The HTTP status; 0 for the network or a run that failed after it started. */
  status: number;
  /** The problem document, or the `run_error` event of a run that failed. */
  problem: Problem | RunError | null;
  /** Worth retrying: the network, 429, or the bridge/agent unavailable. */
  readonly retryable: boolean;
}

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed" | "failed";

export interface Handlers {
  onRunStarted?(event: RunStarted, id: string): void;
  onThought?(event: Thought, id: string): void;
  onToolCall?(event: ToolCall, id: string): void;
  onToolResult?(event: ToolResult, id: string): void;
  onTextDelta?(event: TextDelta, id: string): void;
  onMessage?(event: MessageEvent, id: string): void;
  onRunCompleted?(event: RunCompleted, id: string): void;
  onRunError?(event: RunError, id: string): void;
  /** Every event and notice, before its own handler. */
  onEvent?(kind: EventKind | NoticeKind, event: BridgeEvent | Notice, id: string): void;
  onNotice?(kind: NoticeKind, notice: Notice, id: string): void;
  onState?(state: ConnectionState, detail?: unknown): void;
  /** A subscription ended by a refusal retrying cannot fix (401, 403, 404). */
  onError?(error: BridgeError): void;
}

export type TokenSource = string | (() => string | Promise<string>);

export interface ClientOptions {
  /** The bridge's origin; omitted in a web page: the page's own. */
  baseUrl?: string;
  /** A bearer JWT, or a function returning a fresh one before each request. */
  token?: TokenSource | null;
  /** An API key (`X-API-Key`), for trusted internal callers. */
  apiKey?: string | null;
  /** First reconnection delay in ms until the server sends `retry:`. Default 2000. */
  retry?: number;
  /** The EventSource class subscribe() uses; default the global one (Node before 22 has none). */
  EventSource?: typeof EventSource | null;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface ChatRequest {
  /** 1 to 32768 characters. */
  message: string;
  /** The thread to run in; omitted: the agent starts one. */
  thread_id?: string;
  metadata?: Record<string, string>;
}

/** An agent's last gRPC health answer, as the bridge checks it in the background. */
export type AgentHealth = "unknown" | "serving" | "not_serving" | "unreachable";
export interface AgentEntry {
  name: string;
  status: AgentHealth;
  /** Why it is not serving, when it is not. */
  reason?: string;
}
export interface AgentList {
  agents: AgentEntry[];
}
export interface ThreadSummary {
  thread_id: string;
  /** The agent's title, usually from the first message. */
  title: string;
  created_at: string | null;
  updated_at: string | null;
  message_count: number;
}
export interface ThreadPage {
  threads: ThreadSummary[];
  next_page_token: string;
}
export interface HistoryMessage extends ChatMessage {
  agent: string;
  run_id: string;
  created_at: string | null;
}
export interface MessagePage {
  messages: HistoryMessage[];
  next_page_token: string;
}
export interface Accepted {
  run_id: string;
  thread_id: string;
  /** The path of the thread's events. */
  events: string;
}
export interface Ticket {
  ticket: string;
  /** Unix seconds. */
  expires_at: number;
  stream_path: string;
}

export interface Subscription {
  /** Resolves when the first connection is open; rejects if the subscription fails first. */
  readonly opened: Promise<void>;
  close(): void;
  /** The id of the last event received, to resume from. */
  readonly lastEventId: string | null;
}

export interface SubscribeOptions {
  /** Resume after this event id (`0`: everything retained); omitted: live from now. */
  lastEventId?: string | null;
  signal?: AbortSignal;
}

export declare class BridgeClient {
  constructor(options?: ClientOptions);
  readonly baseUrl: string;
  token: TokenSource | null;
  apiKey: string | null;
  retry: number;
  /** True when requests carry a credential; EventSource then needs a ticket. */
  readonly hasCredential: boolean;
  url(path: string): URL;
  headers(extra?: Record<string, string>): Promise<Record<string, string>>;
  request<T = unknown>(method: string, path: string, body?: unknown, options?: RequestOptions): Promise<T>;

  listAgents(options?: RequestOptions): Promise<AgentList>;
  /** One agent's health (`GET /v1/agents/{agent}/status`). */
  agentStatus(agent: string, options?: RequestOptions): Promise<AgentEntry>;
  listThreads(agent: string, options?: RequestOptions): Promise<ThreadPage>;
  listMessages(agent: string, thread: string, options?: RequestOptions): Promise<MessagePage>;
  /** Starts a run on a thread (202); its events reach the thread's subscribers. */
  postMessage(
    agent: string,
    thread: string,
    message: string,
    metadata?: Record<string, string> | null,
    options?: RequestOptions,
  ): Promise<Accepted>;
  /** A short-lived, single-use ticket for one EventSource connection. */
  ticket(agent: string, thread: string, options?: RequestOptions): Promise<Ticket>;
  /** Follows a thread's events until closed, resuming after cuts. */
  subscribe(agent: string, thread: string, handlers?: Handlers, options?: SubscribeOptions): Subscription;
  /**
   * One run as a streamed chat. Resolves with `run_completed`; rejects with a BridgeError on
   * `run_error`, a refusal or a cut stream, and with the abort reason when `signal` aborts
   * (the bridge then cancels the agent's run).
   */
  streamChat(agent: string, body: ChatRequest, handlers?: Handlers, options?: RequestOptions): Promise<RunCompleted>;
}

/** Exponential backoff from a `retry:` hint, with ±20% jitter, capped at `maxMs`. */
export declare function backoff(retryMs: number, attempt: number, maxMs?: number): number;

export interface EventStreamFrame {
  id: string;
  event: string;
  data: string;
}

/** Parses a `text/event-stream` body as the WHATWG spec does; `{ retry }` alone for a hint. */
export declare function parseEventStream(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<EventStreamFrame | { retry: number }, void, undefined>;
