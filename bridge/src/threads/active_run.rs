//! A thread's active run followed on its own: what the dialects' resume routes serve (the
//! AI SDK's `resume`, AG-UI's and A2A's re-subscription), from the hub, so on any replica.

use tokio::sync::mpsc;

use crate::{
    auth::Identity,
    error::ApiError,
    hub::{Delivery, Start, Subscription, ThreadKey},
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
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(only_run(log, tx, run_id, after));
    Ok(Some((rx, guard)))
}

/// Passes on the deliveries of one run (events after sequence `after`) and ends after its
/// terminal event; the client leaving ends it too.
async fn only_run(mut log: Subscription, tx: mpsc::Sender<Delivery>, run_id: String, after: u64) {
    loop {
        let delivery = tokio::select! {
            _ = tx.closed() => return,
            delivery = log.recv() => delivery,
        };
        let Some(delivery) = delivery else { return };
        let end = match &delivery {
            Delivery::Event(entry) if entry.run_id == run_id => {
                let end = entry.terminal;
                if entry.sequence > after && tx.send(delivery).await.is_err() {
                    return;
                }
                end
            }
            Delivery::Event(_) => false,
            Delivery::Truncated { .. } => tx.send(delivery).await.is_err(),
            Delivery::Failed => {
                let _ = tx.send(delivery).await;
                true
            }
        };
        if end {
            return;
        }
    }
}
