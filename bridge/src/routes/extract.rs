//! Extractors: what a handler needs from a request, parsed and checked once, in the order
//! that decides which refusal a client sees first (unknown agent, then a malformed id, then
//! authorization, then the body).

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request},
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::{
    auth::Identity,
    error::{ApiError, AuthFailure},
    hub::ThreadKey,
    state::AppState,
    threads,
    upstream::Agent,
    validate::{self, ThreadId},
};

/// The caller's identity, set by the authentication middleware.
fn identity(parts: &Parts) -> Result<&Identity, ApiError> {
    parts
        .extensions
        .get::<Identity>()
        .ok_or(ApiError::Unauthenticated(AuthFailure::Missing))
}

/// The path's parameters, percent-decoded: a path that does not decode to UTF-8 is refused
/// with a problem document like any other bad input.
async fn path_params(
    parts: &mut Parts,
    state: &AppState,
) -> Result<Vec<(String, String)>, ApiError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::MalformedRequest("the path is not valid UTF-8".into()))?;
    Ok(params
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn agent(state: &AppState, name: &str) -> Result<Agent, ApiError> {
    state
        .agents
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::UnknownAgent(name.to_owned()))
}

/// A configured agent this caller may call, whether the path names it or the body does (a
/// ticket's `agent`, an OpenAI `model`).
pub(super) fn callable_agent(
    state: &AppState,
    identity: &Identity,
    name: &str,
) -> Result<Agent, ApiError> {
    let found = agent(state, name)?;
    identity.authorize(&found.name, None)?;
    Ok(found)
}

/// `{agent}` in the path: a configured agent this caller may call, and the caller.
pub(super) struct AgentPath(pub Agent, pub Identity);

impl FromRequestParts<AppState> for AgentPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        let identity = identity(parts)?.clone();
        let agent = callable_agent(state, &identity, param(&params, "agent"))?;
        Ok(Self(agent, identity))
    }
}

/// A thread a request's query or body names (`field` in refusals), which the caller must be
/// allowed on.
pub(super) fn named_thread(
    identity: &Identity,
    agent: &Agent,
    field: &str,
    id: String,
) -> Result<ThreadId, ApiError> {
    let thread = ThreadId::parse(field, id)?;
    identity.authorize(&agent.name, Some(thread.as_str()))?;
    Ok(thread)
}

/// `{agent}` and `{thread}` in the path: a configured agent, a well-formed thread id, the
/// caller allowed on both, the caller, and the caller's log of that thread.
pub(super) struct ThreadPath {
    pub agent: Agent,
    pub thread: ThreadId,
    pub key: ThreadKey,
    pub identity: Identity,
}

impl FromRequestParts<AppState> for ThreadPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        let agent = agent(state, param(&params, "agent"))?;
        let identity = identity(parts)?.clone();
        let thread = named_thread(&identity, &agent, "thread", param(&params, "thread").into())?;
        let key = threads::key(&identity, &agent, &thread);
        Ok(Self {
            agent,
            thread,
            key,
            identity,
        })
    }
}

/// A JSON body: read within the body limit, `Content-Type: application/json` (or `+json`),
/// parsed with syntax errors (400) told from shape errors (422).
pub(super) struct ValidJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        limit: state.max_body_bytes,
                    }
                } else {
                    ApiError::MalformedBody("the request body could not be read".into())
                }
            })?;
        validate::require_json(&headers)?;
        validate::parse_json(&body).map(Self)
    }
}

/// A query string of known parameters.
pub(super) struct ValidQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Self(q))
            .map_err(|e| {
                ApiError::InvalidRequest(format!("invalid query string: {}", e.body_text()))
            })
    }
}
