//! Every way a request can fail, and the one place that turns a failure into a response.
//!
//! Before a stream starts, failures are RFC 9457 `application/problem+json` documents. After
//! it started they travel as a typed `run_error` event instead (see [`crate::run`]); both use
//! the gRPC code names of [`code_name`] so a client reads one vocabulary.
//!
//! Internals (addresses, transport errors, agent stack traces) are logged, never sent.

use std::time::Duration;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tonic::Code;

mod auth_failure;

pub(crate) use auth_failure::AuthFailure;

/// A request that could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("unknown agent {0:?}")]
    UnknownAgent(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("malformed body: {0}")]
    MalformedBody(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The request line itself is malformed (a path that does not decode).
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    /// The agent answered the call with an error status before the first event.
    #[error("agent {agent} failed: {status}")]
    Upstream {
        agent: String,
        status: tonic::Status,
    },
    /// The run failed after it started (non-streaming answers only: a stream reports it as
    /// a `run_error` event).
    #[error("run {run_id} failed with {code}")]
    RunFailed {
        run_id: String,
        code: String,
        message: String,
    },
    #[error("agent {agent} sent no event within {waited:?}")]
    FirstEventTimeout { agent: String, waited: Duration },
    #[error("agent {agent} ended the run without any event")]
    EmptyRun { agent: String },
    #[error("bridge is shutting down")]
    ShuttingDown,
    /// Another run is active on the thread.
    #[error("run {run_id} is active on this thread")]
    RunActive { run_id: String },
    /// The hub (the threads' event logs) cannot be reached.
    #[error("hub unavailable: {0}")]
    HubUnavailable(String),
    /// No credentials, or credentials that do not verify (a stream ticket among them: one
    /// that is invalid, expired, reused, for another stream, or on another route).
    #[error("unauthenticated: {}", .0.label())]
    Unauthenticated(AuthFailure),
    /// Authenticated, but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The key set needed to verify a token could not be fetched.
    #[error("the JWKS endpoint is unavailable")]
    AuthUnavailable,
    /// The identity's request budget for this route class is spent.
    #[error("rate limited ({class})")]
    RateLimited {
        class: &'static str,
        retry_after: u64,
        headers: RateLimitHeaders,
    },
    /// The identity already has as many open runs as allowed.
    #[error("too many open streams for this identity (limit {limit})")]
    TooManyStreams { limit: usize },
    /// The process serves as many runs as allowed; new ones are shed.
    #[error("overloaded (limit {limit} open streams)")]
    Overloaded { limit: usize },
    /// A run to an agent whose last `grpc.health.v1` answer was not SERVING (never `/readyz`:
    /// one agent's health does not make the instance unready).
    #[error("agent {agent} is not ready: {reason}")]
    AgentNotReady { agent: String, reason: String },
}

/// The `RateLimit-Policy` and `RateLimit` header values
/// (draft-ietf-httpapi-ratelimit-headers), sent on every rate-limited route.
#[derive(Debug, Clone)]
pub struct RateLimitHeaders {
    pub policy: HeaderValue,
    pub state: HeaderValue,
}

impl RateLimitHeaders {
    pub fn apply(&self, headers: &mut axum::http::HeaderMap) {
        headers.insert("ratelimit-policy", self.policy.clone());
        headers.insert("ratelimit", self.state.clone());
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; stable, so clients can branch on it.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The gRPC code name, when the problem came from (or maps onto) one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Seconds after which retrying makes sense (mirrors `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Response headers beyond the standard ones (`WWW-Authenticate`, `RateLimit`).
    #[serde(skip)]
    #[schema(ignore)]
    pub headers: Vec<(&'static str, HeaderValue)>,
    /// For authentication failures: why, as a metric label (`expired`, `bad_signature`, ...).
    #[serde(skip)]
    #[schema(ignore)]
    pub auth_reason: Option<&'static str>,
}

impl Problem {
    fn new(slug: &str, title: &'static str, status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:agent-bridge:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            code: None,
            run_id: None,
            retry_after: None,
            headers: Vec::new(),
            auth_reason: None,
        }
    }

    /// A 503: this instance, or something it depends on, cannot serve now; retrying can.
    fn unavailable(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(
            slug,
            "Service Unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            detail,
        )
        .with_code(Code::Unavailable)
    }

    /// A 429: the caller asked for more than its limit allows.
    fn too_many_requests(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(
            slug,
            "Too Many Requests",
            StatusCode::TOO_MANY_REQUESTS,
            detail,
        )
        .with_code(Code::ResourceExhausted)
    }

    fn with_auth_reason(mut self, reason: &'static str) -> Self {
        self.auth_reason = Some(reason);
        self
    }

    fn with_header(mut self, name: &'static str, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn with_run_id(mut self, run_id: String) -> Self {
        self.run_id = Some(run_id);
        self
    }

    fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn with_code(mut self, code: Code) -> Self {
        self.code = Some(code_name(code));
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let extra = std::mem::take(&mut self.headers);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for (name, value) in extra {
            headers.insert(name, value);
        }
        // For the refusal metrics (`metrics::count_refusals`), which see only the response.
        let kind = self.kind.rsplit(':').next().unwrap_or_default().to_owned();
        let auth_reason = self.auth_reason;
        response
            .extensions_mut()
            .insert(Refusal { kind, auth_reason });
        response
    }
}

/// The problem type of a refused request, carried on the response for metrics.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub kind: String,
    pub auth_reason: Option<&'static str>,
}

impl ApiError {
    /// The problem document a client sees. Only safe text goes in it.
    pub fn to_problem(&self) -> Problem {
        match self {
            ApiError::RouteNotFound => Problem::new(
                "not-found",
                "Not Found",
                StatusCode::NOT_FOUND,
                "no such route",
            ),
            ApiError::MethodNotAllowed => Problem::new(
                "method-not-allowed",
                "Method Not Allowed",
                StatusCode::METHOD_NOT_ALLOWED,
                "this route does not accept that method",
            ),
            ApiError::UnknownAgent(name) => Problem::new(
                "unknown-agent",
                "Unknown agent",
                StatusCode::NOT_FOUND,
                format!("no agent named {:?} is configured", truncate(name, 64)),
            ),
            ApiError::UnsupportedMediaType => Problem::new(
                "unsupported-media-type",
                "Unsupported Media Type",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON: send Content-Type: application/json",
            ),
            ApiError::PayloadTooLarge { limit } => Problem::new(
                "payload-too-large",
                "Payload Too Large",
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than the {limit} bytes this route accepts"),
            ),
            ApiError::MalformedRequest(detail) => Problem::new(
                "malformed-request",
                "Malformed request",
                StatusCode::BAD_REQUEST,
                detail.clone(),
            ),
            ApiError::MalformedBody(detail) => Problem::new(
                "malformed-body",
                "Malformed body",
                StatusCode::BAD_REQUEST,
                detail.clone(),
            ),
            ApiError::InvalidRequest(detail) => Problem::new(
                "invalid-request",
                "Invalid request",
                StatusCode::UNPROCESSABLE_ENTITY,
                detail.clone(),
            ),
            ApiError::Upstream { agent, status } => {
                let code = status.code();
                Problem::new(
                    "upstream-error",
                    "Agent error",
                    http_status(code),
                    safe_message(agent, code, status.message()),
                )
                .with_code(code)
            }
            ApiError::RunFailed {
                run_id,
                code,
                message,
            } => {
                let code = parse_code(code).unwrap_or(Code::Unknown);
                Problem::new(
                    "run-failed",
                    "Run failed",
                    http_status(code),
                    message.clone(),
                )
                .with_code(code)
                .with_run_id(run_id.clone())
            }
            ApiError::FirstEventTimeout { agent, waited } => Problem::new(
                "first-event-timeout",
                "Agent timed out",
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "agent {agent:?} sent no event within {}",
                    humantime::format_duration(*waited)
                ),
            )
            .with_code(Code::DeadlineExceeded),
            ApiError::EmptyRun { agent } => Problem::new(
                "empty-run",
                "Agent error",
                StatusCode::BAD_GATEWAY,
                format!("agent {agent:?} ended the run without sending any event"),
            )
            .with_code(Code::Internal),
            ApiError::RunActive { run_id } => Problem::new(
                "run-active",
                "Run in progress",
                StatusCode::CONFLICT,
                format!("run {run_id} is still active on this thread; wait for it to finish"),
            )
            .with_code(Code::Aborted)
            .with_run_id(run_id.clone()),
            ApiError::HubUnavailable(_) => Problem::unavailable(
                "hub-unavailable",
                "the threads' event log is unavailable; retry shortly",
            )
            .with_retry_after(2),
            ApiError::ShuttingDown => Problem::unavailable(
                "shutting-down",
                "this bridge instance is shutting down; retry",
            )
            .with_retry_after(1),
            ApiError::Unauthenticated(failure) => Problem::new(
                if failure.is_ticket() {
                    "ticket-refused"
                } else {
                    "unauthenticated"
                },
                "Unauthorized",
                StatusCode::UNAUTHORIZED,
                failure.detail(),
            )
            .with_code(Code::Unauthenticated)
            .with_header("www-authenticate", HeaderValue::from_static("Bearer"))
            .with_auth_reason(failure.label()),
            ApiError::Forbidden(detail) => Problem::new(
                "forbidden",
                "Forbidden",
                StatusCode::FORBIDDEN,
                detail.clone(),
            )
            .with_code(Code::PermissionDenied)
            .with_auth_reason("forbidden"),
            ApiError::AuthUnavailable => Problem::unavailable(
                "auth-unavailable",
                "the keys needed to verify this token cannot be fetched right now; retry",
            )
            .with_retry_after(5),
            ApiError::RateLimited {
                class,
                retry_after,
                headers,
            } => Problem::too_many_requests(
                "rate-limited",
                format!("too many {class} requests; retry after {retry_after}s"),
            )
            .with_header("ratelimit-policy", headers.policy.clone())
            .with_header("ratelimit", headers.state.clone())
            .with_retry_after(*retry_after),
            ApiError::TooManyStreams { limit } => Problem::too_many_requests(
                "too-many-streams",
                format!("you already have {limit} open streams; close one first"),
            )
            .with_retry_after(1),
            ApiError::Overloaded { .. } => Problem::unavailable(
                "overloaded",
                "this bridge instance serves as many streams as it can; retry",
            )
            .with_retry_after(1),
            ApiError::AgentNotReady { agent, .. } => Problem::unavailable(
                "agent-not-ready",
                format!("agent {agent:?} is not serving (gRPC health check)"),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.to_problem();
        if problem.status >= 500 {
            tracing::warn!(error = %self, status = problem.status, "request failed");
        } else {
            tracing::debug!(error = %self, status = problem.status, "request refused");
        }
        problem.into_response()
    }
}

/// The one mapping from gRPC codes to HTTP statuses (STYLE: one table for both directions).
pub(crate) fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_GATEWAY),
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::BAD_GATEWAY,
    }
}

pub(crate) use agent_bridge_proto::{code_name, parse_code};

/// What a client may read about an agent failure. Codes that describe the caller's own
/// request carry the agent's message (bounded); the others get a fixed text, because their
/// messages tend to hold transport errors, addresses and stack traces.
pub(crate) fn safe_message(agent: &str, code: Code, message: &str) -> String {
    match code {
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::ResourceExhausted
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Aborted
            if !message.is_empty() =>
        {
            truncate(message, 200).to_owned()
        }
        Code::Unavailable => format!("agent {agent:?} is unavailable"),
        Code::DeadlineExceeded => format!("agent {agent:?} did not answer in time"),
        Code::Unimplemented => format!("agent {agent:?} does not implement this call"),
        Code::Cancelled => format!("the call to agent {agent:?} was cancelled"),
        _ => format!("agent {agent:?} failed ({})", code_name(code)),
    }
}

/// At most `max` characters of `s`, cut on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_table_matches_the_contract() {
        for (code, status) in [
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::InvalidArgument, 400),
            (Code::NotFound, 404),
            (Code::PermissionDenied, 403),
            (Code::Unauthenticated, 401),
            (Code::ResourceExhausted, 429),
            (Code::Internal, 502),
            (Code::Unknown, 502),
            (Code::DataLoss, 502),
        ] {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
        }
    }

    #[test]
    fn internal_messages_are_not_leaked() {
        let m = safe_message(
            "a",
            Code::Unavailable,
            "tcp connect error: 10.0.0.3:50051 refused",
        );
        assert!(!m.contains("10.0.0.3"), "{m}");
        let m = safe_message("a", Code::Internal, "panicked at src/main.rs:3");
        assert!(!m.contains("src/main.rs"), "{m}");
        assert_eq!(
            safe_message("a", Code::InvalidArgument, "bad directive"),
            "bad directive"
        );
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
