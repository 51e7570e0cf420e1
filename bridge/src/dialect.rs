//! Dialects: one agent run, encoded in the wire format a client already speaks.
//!
//! The event model (`agent.v1` `ChatEvent`) is the single source. A dialect is an
//! [`Encoder`] (events to bytes, here) plus a request decoder (its route's body, in its own
//! module): a new dialect is one file and its test.
//!
//! The transport ([`crate::sse`]) owns the byte stream, the frame layout, heartbeats,
//! batching and shutdown, and defines what an [`Encoder`] is; an encoder only says what one
//! event looks like on the wire.

pub(crate) mod a2a;
pub(crate) mod ag_ui;
pub(crate) mod agent_messages;
pub(crate) mod ai_sdk;
pub(crate) mod interactions;
pub(crate) mod native;
pub(crate) mod openai;
pub(crate) mod transcript;

pub(crate) use crate::sse::{Encoder, Frame, Notice};
