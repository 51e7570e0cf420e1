//! Front ends plug in as they are: each wire dialect of `bridge::dialect`, read by its
//! protocol's official client (Node scripts under `js/`, versions pinned in its
//! package-lock.json) against a real bridge and a real agent.
//!
//! - `clients`: the Vercel AI SDK's transport and stream reader (and its resume), AG-UI's
//!   `HttpAgent`, the A2A SDK's client (agent card, streamed task, `SubscribeToTask`), the
//!   `openai` package (streamed and not), and seed 001's front end as its design note
//!   describes it. Each sees the run's final message as its text and the tool calls and
//!   results in order, and a failure mid-run as its own error;
//! - `seed_004`: seed 004's client code as written, in Chromium, resuming after a cut;
//! - `refusals`: what each dialect's route answers before a stream starts (problem
//!   documents, JSON-RPC errors), wire details (headers, `[DONE]`, AG-UI ids and resume, 204),
//!   a leaving client cancelling the agent, the dialect label on the metrics.
//!
//! Without Node.js and `npm ci` in `tests/dialects/js` (or Chromium) the tests fail, saying how
//! to install them: `scripts/test.sh` does.

#[path = "../support/mod.rs"]
mod support;

// The browser suite's Chromium driver, shared as is (this suite uses part of it).
#[allow(dead_code)]
#[path = "../browser/browser.rs"]
mod browser;

mod clients;
mod node;
mod refusals;
mod seed_004;
