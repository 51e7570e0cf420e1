//! The reference agent: a real tonic gRPC server implementing `agent.v1.Agent` with scripted,
//! deterministic runs, for demos, the bridge's system tests and benchmarks.
//!
//! It also serves `grpc.health.v1` (SERVING for `agent.v1.Agent` and for `""`, flipped to
//! NOT_SERVING on shutdown) and gRPC server reflection (v1 and v1alpha), so standard tooling
//! such as `grpcurl` works against it.
//!
//! # Default script
//!
//! A plain message `<message>` plays a "Planner + Coder" team, one event per step:
//!
//! 1. `run_started` (Planner), `user_message_id` = `m-<n>`, the user message's id in the thread;
//! 2. `thought` (Planner): ``The user asks: "<message>". Coder should read the project before answering.``;
//! 3. `tool_call` (Coder): `call-1`, `read_file`, `{"path":"src/App.tsx"}`;
//! 4. `tool_result` (Coder): a two-line fake `App.tsx`;
//! 5. `thought` (Coder);
//! 6. `text_delta` (Coder) × K: the answer
//!    ``I read src/App.tsx. You said: <message>. It renders one heading, so the change is small.``
//!    split after each space, message id `m-<n+1>`;
//! 7. `message` (Coder): the whole answer;
//! 8. `run_completed` (Coder): the answer again, usage = words in the message, K, 1 tool call.
//!
//! Events are [`Config::pace`] apart. Every event carries the run id (the request's, or a new
//! UUID), the thread id (the request's, or `t-<uuid>`), a sequence number from 1 without gaps
//! and a timestamp. Threads live in memory, per owner (`x-identity-kind`, `x-issuer`, `x-tenant`, `x-subject` metadata).
//!
//! # Triggers
//!
//! (`agent-stub --help` shows the same text.)
//!
#![doc = include_str!("triggers.md")]
//!
//! # Layout
//! - [`Config`] (`config`): settings of the library; the binary's flags live in `main.rs`.
//! - `trigger`: parses `stub:` directives into a run's plan.
//! - `script`: the events a run plays, lazily (a burst never builds its events up front).
//! - `run`: one run as a task feeding the response stream; pacing, endings, cancellation.
//! - `threads`: the in-memory, owner-scoped thread history and its pagination.
//! - [`Stats`] (`stats`): counters tests and benchmarks observe.
//! - [`Stub`] (`service`): the `agent.v1.Agent` implementation.
//! - [`serve`] (`server`): the gRPC server with health and reflection, and its shutdown.
//! - `error`: the crate's failures and their gRPC statuses.
//! - [`telemetry`]: the caller's trace context, and the binary's logs and OTLP export;
//!   [`metrics`]: the Prometheus endpoint over [`Stats`].
#![forbid(unsafe_code)]

mod config;
mod error;
pub mod metrics;
mod run;
mod script;
mod server;
mod service;
mod stats;
pub mod telemetry;
mod threads;
mod trigger;

pub use config::{Config, TlsIdentity};
pub use script::default_kinds;
pub use server::serve;
pub use service::Stub;
pub use stats::Stats;
