//! The chat page and the JavaScript client in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`) driven over WebDriver (`fantoccini`).
//!
//! - `page`: the page served by the bridge renders a whole run in order, shows a thread's
//!   history, stops a run at the agent (Stop, Escape), keeps a message typed during a run,
//!   renders Markdown without ever running agent markup, fits a phone with a thread drawer,
//!   and resumes after its connection is cut without losing or repeating an event; a front
//!   end imports the client from a bridge without the page;
//! - `cross_origin`: a page on another loopback origin imports the client module from the
//!   bridge and works through CORS with a ticket; a refused origin is refused by the browser.
//!
//! Without `chromium`/`chromedriver` the tests fail, saying how to install them
//! (`scripts/test.sh` does): a suite that passes without a browser would prove nothing.

#[path = "../support/mod.rs"]
mod support;

mod browser;
mod cross_origin;
mod page;
