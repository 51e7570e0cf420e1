//! The thread service: a conversation whose runs are recorded in the thread's log, so any
//! number of subscribers (SSE or WebSocket, on any replica) follow them and resume with
//! `Last-Event-ID`; one run at a time per thread; history and deletion at the agent.
//!
//! Threads are namespaced by agent, tenant and owner ([`key`]): knowing another user's
//! thread id is not enough to read it.

mod active_run;
pub(crate) mod recorder;

pub(crate) use active_run::follow_active_run;

use std::collections::HashMap;

use agent_bridge_proto::v1::ChatRequest;
use axum::http::HeaderMap;

use crate::{
    auth::Identity,
    error::{ApiError, truncate},
    hub::{Start, Subscription, ThreadKey},
    metrics::Transport,
    ratelimit::StreamGuard,
    run::Run,
    state::AppState,
    upstream::Agent,
    validate::ThreadId,
};

/// The log of `thread` of `agent` for this caller.
pub(crate) fn key(identity: &Identity, agent: &Agent, thread: &ThreadId) -> ThreadKey {
    ThreadKey {
        agent: agent.name.to_string(),
        tenant: identity.qualified_tenant(),
        subject: identity.subject.clone(),
        thread: thread.as_str().to_owned(),
    }
}

/// Posts a message to a thread: a run that goes on without the request, recorded for the
/// thread's subscribers. Returns the run id.
pub(crate) async fn post(
    state: &AppState,
    identity: &Identity,
    agent: &Agent,
    key: ThreadKey,
    message: String,
    metadata: HashMap<String, String>,
) -> Result<String, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let request = ChatRequest {
        thread_id: key.thread.clone(),
        message,
        metadata,
        run_id: uuid::Uuid::new_v4().to_string(),
        agent: agent.name.to_string(),
    };
    let run = start_recorded(state, identity, agent, &key, request).await?;
    let run_id = run.run_id.clone();
    recorder::detach(state.hub.clone(), key, run, state.run_lease);
    Ok(run_id)
}

/// Starts a run on a thread that its caller streams, while it is recorded for the thread's
/// other subscribers; if the caller leaves, the run is cancelled and the log says so.
pub(crate) async fn stream(
    state: &AppState,
    identity: &Identity,
    agent: &Agent,
    key: ThreadKey,
    request: ChatRequest,
) -> Result<Run, ApiError> {
    let run = start_recorded(state, identity, agent, &key, request).await?;
    Ok(recorder::tee(
        state.hub.clone(),
        key,
        run,
        state.run_lease,
        state.limits.buffer,
    ))
}

/// Starts a run that takes the thread's one active-run slot (409 while another holds it),
/// giving the slot back if the agent refuses.
async fn start_recorded(
    state: &AppState,
    identity: &Identity,
    agent: &Agent,
    key: &ThreadKey,
    request: ChatRequest,
) -> Result<Run, ApiError> {
    state.agent_health.admit(&agent.name)?;
    let run_id = request.run_id.clone();
    state.hub.begin_run(key, &run_id).await?;
    let started = state.start_run(agent, request, identity).await;
    if started.is_err() {
        let _ = state.hub.end_run(key, &run_id).await;
    }
    started
}

/// Subscribes to a thread's log from `start`: replay, then live events. A subscription is
/// an open stream: it counts against the caller's and the process's caps until the guard
/// drops.
pub(crate) async fn subscribe(
    state: &AppState,
    identity: &Identity,
    key: &ThreadKey,
    start: Start,
    transport: Transport,
) -> Result<(Subscription, StreamGuard), ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let permit = state.admission.admit(identity.rate_key())?;
    let subscription = state.hub.subscribe(key, start).await?;
    let open = state.metrics.stream_opened(&key.agent, transport);
    Ok((subscription, permit.counted(open)))
}

/// Deletes a thread: its log here and its history at the agent. Returns how many messages
/// the agent deleted.
pub(crate) async fn delete(
    state: &AppState,
    identity: &Identity,
    agent: &Agent,
    key: &ThreadKey,
) -> Result<u32, ApiError> {
    state.hub.delete(key).await?;
    agent
        .delete_thread(identity, &key.thread, state.limits.first_event)
        .await
}

/// The position a subscriber resumes after: `Last-Event-ID` first, then the query's
/// `last_event_id` (for a first connect).
pub(crate) fn start_position(headers: &HeaderMap, query: Option<&str>) -> Start {
    let header = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    Start::from_last_event_id(header.or(query).map(|id| truncate(id, 128)))
}
