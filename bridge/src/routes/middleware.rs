//! The bridge's own middleware (authentication is [`crate::auth::middleware`]).

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};

use crate::{auth::Identity, error::ApiError, metrics::Metrics, ratelimit::RateLimits};

/// Rate limiting; runs after authentication (the bucket is the identity's). Every answer on
/// a limited route carries the `RateLimit` headers.
pub(super) async fn rate_limit(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = match request.extensions().get::<Identity>() {
        Some(identity) => {
            limits.check(request.method(), request.uri().path(), &identity.rate_key())?
        }
        None => None,
    };
    let mut response = next.run(request).await;
    if let Some(headers) = headers {
        headers.apply(response.headers_mut());
    }
    Ok(response)
}

/// Counts refused requests by problem type (the response carries it, see
/// [`crate::error::Refusal`]).
pub(super) async fn count_refusals(State(metrics): State<Metrics>, response: Response) -> Response {
    if let Some(refusal) = response.extensions().get::<crate::error::Refusal>() {
        metrics.refused(refusal);
    }
    response
}
