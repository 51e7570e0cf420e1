//! A thread's active run followed on its own: what the dialects' resume routes serve (the
//! AI SDK's `resume`, AG-UI's and A2A's re-subscription), from the hub, so on any replica.

use crate::{
    auth::Identity,
    error::ApiError,
    hub::{Start, Subscription, ThreadKey},
    metrics::Transport,
    ratelimit::StreamGuard,
    state::AppState,
};

/// Follows the thread's active run from the hub: from its start, or after `last` (a run
/// sequence, as on a run's own stream, or a log position `EPOCH-N`, as on a followed one),
/// until its last event. `None` when no run is active.
pub(crate) async fn follow_active_run(
    state: &AppState,
    identity: &Identity,
    key: &ThreadKey,
    last: Option<String>,
    transport: Transport,
) -> Result<Option<(Subscription, StreamGuard)>, ApiError> {
    let Some(run_id) = state.hub.active_run(key).await? else {
        return Ok(None);
    };
    let (start, after) = match last.as_deref().map(str::trim) {
        None | Some("") => (Start::Beginning, 0),
        Some(id) => match id.parse::<u64>() {
            Ok(sequence) => (Start::Beginning, sequence),
            Err(_) => (Start::After(id.to_owned()), 0),
        },
    };
    let (log, guard) = super::subscribe(state, identity, key, start, transport).await?;
    Ok(Some((log.only_run(run_id, after), guard)))
}
