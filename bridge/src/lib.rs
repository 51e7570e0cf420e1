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
//! - [`metrics`]: the Prometheus series; [`readiness`]: `/readyz` and the agents' gRPC health;
//!   [`allocator`]: jemalloc, and its figures for `/metrics`.
//! - [`demo`]: the embedded agent stub; [`token`]: development JWTs (`bridge token`); [`telemetry`] (logs, traces), [`shutdown`]: process
//!   plumbing.
#![forbid(unsafe_code)]
// Everything below the few public modules is crate-private; `pub` inside them would claim
// an API nobody outside uses.
#![warn(unreachable_pub)]

mod allocator;
mod answer;
mod auth;
mod chat;
pub mod config;
mod cors;
pub mod demo;
mod dialect;
mod error;
mod event;
mod filter;
mod hub;
mod metrics;
mod ratelimit;
mod readiness;
mod routes;
mod run;
mod secret;
mod server;
pub mod shutdown;
mod sse;
mod state;
pub mod telemetry;
mod threads;
pub mod token;
mod upstream;
mod validate;

pub use config::Config;
pub use server::{Server, serve};

/// For the system tests only: forging and reading stream tickets as another replica would.
#[doc(hidden)]
pub mod testing {
    pub use crate::{
        auth::{
            Origin,
            ticket::{TicketClaims, Tickets},
        },
        secret::Secret,
    };
}
