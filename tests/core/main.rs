//! Core suite: one agent run through the bridge, seen from outside (real gRPC agent, real
//! HTTP bridge, real sockets).

#[path = "../support/mod.rs"]
mod support;

mod direct;
mod failures;
mod hostile;
mod lifecycle;
mod openapi;
mod refusals;
mod streaming;
mod upstreams;
