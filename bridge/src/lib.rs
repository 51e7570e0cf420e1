//! The bridge: agents speak gRPC, browsers and services want Server-Sent Events.
//!
//! Each `POST /v1/agents/{agent}/chat` opens one server-streaming `Chat` call to the named
//! agent and turns each streamed `ChatEvent` into one SSE event (or, without
//! `Accept: text/event-stream`, into one JSON answer).
//!
//! # Layout
//! - [`config`]: flags and their environment twins.
//! - [`server`]: binding, the drain on shutdown; [`routes`]: the HTTP surface and middleware.
//! - [`run`]: one agent call, pumped into a bounded channel, always ending with a terminal
//!   event; [`upstream`]: the configured agents and their gRPC channels.
//! - [`sse`] and [`answer`]: the two ways a run reaches a client; [`wire`]: the JSON of an
//!   event, shared by both.
//! - [`error`]: failures, problem+json, the gRPC/HTTP status table; [`validate`]: input rules.
//! - Edge policy: [`auth`] (who is calling: JWT, JWKS, API keys, cookie, stream tickets),
//!   [`ratelimit`] (request budgets and open-stream caps), [`cors`], [`policy`] (which
//!   events reach clients, redaction), [`secret`] (values that never print).
//! - [`metrics`]: the Prometheus series; [`readiness`]: `/readyz` and the agents' gRPC health.
//! - [`demo`]: the embedded agent stub; [`token`]: development JWTs (`bridge token`); [`telemetry`] (logs, traces), [`shutdown`]: process
//!   plumbing.
#![forbid(unsafe_code)]

pub mod answer;
pub mod auth;
pub mod chat;
pub mod config;
pub mod cors;
pub mod demo;
pub mod dialect;
pub mod error;
pub mod event;
pub mod filter;
pub mod hub;
pub mod metrics;
pub mod ratelimit;
pub mod readiness;
pub mod routes;
pub mod run;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod sse;
pub mod state;
pub mod telemetry;
pub mod threads;
pub mod token;
pub mod upstream;
pub mod validate;

pub use config::Config;
pub use server::{Server, serve};
