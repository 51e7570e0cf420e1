//! What a newcomer types: the README's commands, run as written against the real binaries,
//! and the development token (`bridge token`) a non-anonymous bridge accepts.
//!
//! - `commands`: every README block fenced as ```` ```sh test ````;
//! - `token`: `bridge token` against a bridge with `--jwt-secret-file`.
//!
//! Both run the binaries `scripts/test.sh` builds (`cargo build --workspace --bins`).

#[path = "../support/mod.rs"]
mod support;

mod commands;
mod token;
