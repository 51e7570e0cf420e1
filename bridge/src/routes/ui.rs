//! The chat page (`--ui`) and the JavaScript client, embedded in the binary: no build step,
//! no files to deploy beside it.
//!
//! The page is one HTML document with its script, style and vendored modules as separate
//! files, so its Content-Security-Policy can forbid every inline script and style. The
//! client module is public code meant to be imported by front ends on other origins, so it
//! is served to any origin (`Access-Control-Allow-Origin: *`, no credentials) at
//! `/client/agent-bridge.js` whether or not the page is on; the API behind it keeps its own
//! CORS allow-list. It is the file of the npm package in `clients/js`: one source.

use axum::{
    Router,
    extract::Path,
    http::{HeaderName, HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};

use crate::{error::ApiError, state::AppState};

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const STYLE_CSS: &str = include_str!("../../ui/style.css");
const FAVICON_SVG: &str = include_str!("../../ui/favicon.svg");
const CLIENT_JS: &str = include_str!("../../../clients/js/src/index.js");
const CLIENT_TYPES: &str = include_str!("../../../clients/js/src/index.d.ts");

/// Third-party modules of the page, copied unchanged from `bridge/ui/node_modules` (locked by
/// `bridge/ui/package-lock.json`) by `bridge/ui/vendor.mjs`, which `scripts/test.sh` checks.
/// Their licences are served beside them.
macro_rules! vendored {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../ui/vendor/", $path)))),*]
    };
}
const VENDOR: &[(&str, &str)] = vendored![
    "marked.esm.js",
    "purify.es.mjs",
    "highlight/core.min.js",
    "highlight/languages/bash.min.js",
    "highlight/languages/css.min.js",
    "highlight/languages/diff.min.js",
    "highlight/languages/go.min.js",
    "highlight/languages/ini.min.js",
    "highlight/languages/javascript.min.js",
    "highlight/languages/json.min.js",
    "highlight/languages/plaintext.min.js",
    "highlight/languages/python.min.js",
    "highlight/languages/rust.min.js",
    "highlight/languages/shell.min.js",
    "highlight/languages/sql.min.js",
    "highlight/languages/typescript.min.js",
    "highlight/languages/xml.min.js",
    "highlight/languages/yaml.min.js",
    "licenses/marked.txt",
    "licenses/dompurify.txt",
    "licenses/highlight.js.txt",
];

/// The page talks only to this bridge (`connect-src 'self'`), loads only its own scripts and
/// styles, and cannot be framed. Agent text reaches the DOM only through DOMPurify.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const TYPESCRIPT: &str = "application/typescript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";
const TEXT: &str = "text/plain; charset=utf-8";

/// The routes of this module: the client always, the page only when `page` (`--ui`).
pub(super) fn router(page: bool) -> Router<AppState> {
    let client = Router::new()
        .route("/client/agent-bridge.js", get(client_js))
        .route("/client/agent-bridge.d.ts", get(client_types));
    if !page {
        return client;
    }
    client
        .route("/", get(to_page))
        .route("/ui", get(to_page))
        .route("/ui/", get(index))
        .route(
            "/ui/app.js",
            get(|| async { asset(JAVASCRIPT, APP_JS, &[]) }),
        )
        .route(
            "/ui/style.css",
            get(|| async { asset(CSS, STYLE_CSS, &[]) }),
        )
        .route(
            "/ui/favicon.svg",
            get(|| async { asset(SVG, FAVICON_SVG, &[]) }),
        )
        .route("/ui/agent-bridge.js", get(client_js))
        .route("/ui/vendor/{*path}", get(vendor))
}

/// `/` and `/ui` lead to the page.
async fn to_page() -> Redirect {
    Redirect::temporary("/ui/")
}

async fn index() -> Response {
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

/// Public code, readable from any origin (no credentials are involved).
fn any_origin() -> [(HeaderName, &'static str); 2] {
    [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "cross-origin",
        ),
    ]
}

async fn client_js() -> Response {
    asset(JAVASCRIPT, CLIENT_JS, &any_origin())
}

async fn client_types() -> Response {
    asset(TYPESCRIPT, CLIENT_TYPES, &any_origin())
}

async fn vendor(Path(path): Path<String>) -> Result<Response, ApiError> {
    let (name, body) = VENDOR
        .iter()
        .find(|(name, _)| *name == path)
        .ok_or(ApiError::RouteNotFound)?;
    let content_type = if name.ends_with(".js") || name.ends_with(".mjs") {
        JAVASCRIPT
    } else {
        TEXT
    };
    Ok(asset(content_type, body, &[]))
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
