//! The chat page and the JavaScript client (`--ui`), embedded in the binary: no build step,
//! no files to deploy beside it.
//!
//! The page is one HTML document with its script and style as separate files, so its
//! Content-Security-Policy can forbid every inline script and style. The client module is
//! public code meant to be imported by front ends on other origins, so it is served to any
//! origin (`Access-Control-Allow-Origin: *`, no credentials); the API behind it keeps its own
//! CORS allow-list.

use axum::{
    http::{HeaderName, HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
};

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const STYLE_CSS: &str = include_str!("../../ui/style.css");
const CLIENT_JS: &str = include_str!("../../ui/agent-bridge.js");

/// The page talks only to this bridge (`connect-src 'self'`), loads only its own script and
/// style, and cannot be framed.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `/` and `/ui` lead to the page.
pub async fn to_page() -> Redirect {
    Redirect::temporary("/ui/")
}

pub async fn index() -> Response {
    asset(
        HTML,
        INDEX_HTML,
        &[
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            // Tickets travel in stream URLs: never send them to another site.
            (header::REFERRER_POLICY, "no-referrer"),
        ],
    )
}

pub async fn app_js() -> Response {
    asset(JAVASCRIPT, APP_JS, &[])
}

pub async fn style_css() -> Response {
    asset(CSS, STYLE_CSS, &[])
}

pub async fn client_js() -> Response {
    asset(
        JAVASCRIPT,
        CLIENT_JS,
        &[
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                "cross-origin",
            ),
        ],
    )
}

fn asset(
    content_type: &'static str,
    body: &'static str,
    extra: &[(HeaderName, &'static str)],
) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Small files that change with the binary: revalidating costs little and an upgrade
    // never serves a stale mix of page and client.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (name, value) in extra {
        headers.insert(name.clone(), HeaderValue::from_static(value));
    }
    response
}
