//! CORS for browser clients on other origins: an exact allow-list, credentials allowed (so
//! `*` is never used), preflights cached, and the headers clients need to read exposed.
//! Origins not on the list get no CORS headers, so the browser blocks the response.
//!
//! WebSocket upgrades are not covered by CORS: a browser opens them from any page, with the
//! user's cookies. [`check_socket_origin`] refuses an upgrade whose `Origin` is neither the
//! bridge's own nor on the list (cross-site WebSocket hijacking); clients that send no
//! `Origin` (services) are not browsers and pass.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::{ApiError, truncate};

#[derive(Debug, Clone)]
pub(crate) struct CorsSettings {
    pub origins: Vec<HeaderValue>,
    pub max_age: Duration,
}

impl CorsSettings {
    /// `None` when no origin is configured.
    pub(crate) fn new(origins: &[String], max_age: Duration) -> Result<Option<Self>, String> {
        if origins.is_empty() {
            return Ok(None);
        }
        let origins = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim_end_matches('/'))
                    .map_err(|_| format!("--cors-origin `{o}` is not a valid origin"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Self { origins, max_age }))
    }

    pub(crate) fn layer(&self) -> CorsLayer {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(self.origins.clone()))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("x-api-key"),
            ])
            .expose_headers([
                header::RETRY_AFTER,
                HeaderName::from_static("ratelimit"),
                HeaderName::from_static("ratelimit-policy"),
            ])
            .max_age(self.max_age)
    }
}

/// Refuses (403) a run started by a `GET` the browser authenticated with the auth cookie on
/// its own, when a page of another site asked for it (an `<img>` or a link is enough:
/// cross-site request forgery). Browsers say who asked in `Sec-Fetch-Site`; such a request
/// passes only from this bridge's own origin, a user's own navigation, or an allowed origin
/// (an `EventSource` sends `Origin`). Clients that send no `Sec-Fetch-Site` are not browsers.
pub(crate) fn check_cookie_get(
    headers: &HeaderMap,
    cors: Option<&CorsSettings>,
) -> Result<(), ApiError> {
    match headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or(""))
    {
        None | Some("same-origin" | "none") => Ok(()),
        Some(_) if headers.contains_key(header::ORIGIN) => check_origin(headers, cors, "runs"),
        Some(_) => Err(ApiError::Forbidden(
            "a run started with the auth cookie from another site's page is refused: use a \
             stream ticket (POST /v1/tickets) or a bearer token"
                .into(),
        )),
    }
}

/// Refuses (403) a WebSocket upgrade from a browser page on an origin that is neither the
/// bridge's own (the request's `Host`) nor allowed by `--cors-origin`.
pub(crate) fn check_socket_origin(
    headers: &HeaderMap,
    cors: Option<&CorsSettings>,
) -> Result<(), ApiError> {
    check_origin(headers, cors, "WebSocket connections")
}

/// Passes a request without `Origin`, or from this bridge's own origin or an allowed one.
fn check_origin(
    headers: &HeaderMap,
    cors: Option<&CorsSettings>,
    what: &str,
) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let allowed = cors.is_some_and(|c| {
        c.origins
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
    });
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match origin.to_str() {
        Ok(origin) if allowed || host.is_some_and(|host| is_own_origin(origin, host)) => Ok(()),
        origin => Err(ApiError::Forbidden(format!(
            "{what} from origin {:?} are not allowed: only this bridge's own origin and those \
             of --cors-origin may open one",
            truncate(origin.unwrap_or("(not text)"), 100)
        ))),
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as `host`, the
/// request's `Host` (where a default port may be written or left out).
fn is_own_origin(origin: &str, host: &str) -> bool {
    let (authority, default_port) = if let Some(a) = origin.strip_prefix("https://") {
        (a, ":443")
    } else if let Some(a) = origin.strip_prefix("http://") {
        (a, ":80")
    } else {
        return false;
    };
    let plain = |s: &str| {
        s.strip_suffix(default_port)
            .unwrap_or(s)
            .to_ascii_lowercase()
    };
    !authority.contains('/') && plain(authority) == plain(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_origin_is_host_and_port() {
        assert!(is_own_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(is_own_origin(
            "https://Bridge.example",
            "bridge.example:443"
        ));
        assert!(is_own_origin("http://bridge.example:80", "bridge.example"));
        assert!(!is_own_origin("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!is_own_origin(
            "https://bridge.example:80",
            "bridge.example"
        ));
        assert!(!is_own_origin("null", "bridge.example"));
        assert!(!is_own_origin("http://bridge.example/x", "bridge.example"));
    }
}
