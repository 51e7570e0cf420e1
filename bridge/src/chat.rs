//! The chat service: one run of an agent for a caller, admitted against the stream caps,
//! started (its first event has arrived, so every failure so far is still a problem
//! document), and, when it belongs to a thread, recorded in the thread's log. Every dialect's
//! route starts its runs here, so auth, limits, metrics, recording and cancellation are the
//! same whatever the wire format.

use std::collections::HashMap;

use agent_bridge_proto::v1::ChatRequest;

use crate::{
    auth::Identity, error::ApiError, metrics::Transport, run::Run, state::AppState, threads,
    upstream::Agent, validate::ThreadId,
};

/// What a client asks of an agent, whatever dialect it spoke.
#[derive(Debug, Default)]
pub(crate) struct ChatInput {
    /// The thread the run belongs to; `None` for a one-off run nobody else follows.
    pub thread: Option<ThreadId>,
    pub message: String,
    pub metadata: HashMap<String, String>,
}

/// Starts a run streamed to the caller through `transport`. The returned run holds its
/// admission slot and open-stream count until its consumer drops it.
pub(crate) async fn start(
    state: &AppState,
    identity: &Identity,
    agent: &Agent,
    input: ChatInput,
    transport: Transport,
) -> Result<Run, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    state.agent_health.admit(&agent.name)?;
    let permit = state.admission.admit(identity.rate_key())?;
    let request = ChatRequest {
        thread_id: input
            .thread
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        message: input.message,
        metadata: input.metadata,
        run_id: uuid::Uuid::new_v4().to_string(),
        agent: agent.name.to_string(),
    };
    let mut run = match &input.thread {
        None => state.start_run(agent, request, identity).await?,
        Some(thread) => {
            let key = threads::key(identity, agent, thread);
            threads::stream(state, identity, agent, key, request).await?
        }
    };
    let open = state.metrics.stream_opened(&agent.name, transport);
    run.guard = Some(permit.counted(open));
    Ok(run)
}
