//! CORS for browser clients on other origins: an exact allow-list, credentials allowed (so
//! `*` is never used), preflights cached, and the headers clients need to read exposed.
//! Origins not on the list get no CORS headers, so the browser blocks the response.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

#[derive(Debug, Clone)]
pub struct CorsSettings {
    pub origins: Vec<HeaderValue>,
    pub max_age: Duration,
}

impl CorsSettings {
    /// `None` when no origin is configured.
    pub fn new(origins: &[String], max_age: Duration) -> Result<Option<Self>, String> {
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

    pub fn layer(&self) -> CorsLayer {
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
