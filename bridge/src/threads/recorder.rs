//! Recording a thread's runs: each event of a run started on a thread is appended to the
//! thread's log (encoded once), while the run's lease is renewed, so every subscriber on any
//! replica sees it and a dead bridge's run is noticed.

use std::time::Duration;

use agent_bridge_proto::v1::{ChatEvent, chat_event::Payload};
use bytes::Bytes;
use tokio::sync::mpsc;
use tonic::Code;

use crate::{
    event,
    hub::{Hub, NewEntry, ThreadKey},
    run::{Emitted, Run},
};

/// Records a run nobody streams (`POST .../messages`): it goes on without the request.
pub(crate) fn detach(hub: Hub, key: ThreadKey, run: Run, lease: Duration) {
    tokio::spawn(record(hub, key, run, None, lease));
}

/// Records a run a client is streaming (`POST .../chat` with a `thread_id`) and hands each
/// event on to the client. If the client leaves, the run is cancelled and the thread's log
/// says so.
pub(crate) fn tee(hub: Hub, key: ThreadKey, run: Run, lease: Duration, buffer: usize) -> Run {
    let (tx, rx) = mpsc::channel(buffer.max(1));
    let teed = Run {
        run_id: run.run_id.clone(),
        thread_id: run.thread_id.clone(),
        events: rx,
        trace_id: run.trace_id.clone(),
        link: run.link.clone(),
        guard: None,
    };
    tokio::spawn(record(hub, key, run, Some(tx), lease));
    teed
}

async fn record(
    hub: Hub,
    key: ThreadKey,
    mut run: Run,
    forward: Option<mpsc::Sender<Emitted>>,
    lease: Duration,
) {
    let run_id = run.run_id.clone();
    // The run's trace, on its `run_started` in the log: subscribers on any replica can find it.
    let trace_id = run.trace_id.clone();
    let link = run.link.clone();
    let mut renew = tokio::time::interval(lease / 3);
    renew.tick().await;
    let mut last_sequence = 0;
    loop {
        let emitted = tokio::select! {
            _ = renew.tick() => {
                if let Err(e) = hub.renew_run(&key, &run_id).await {
                    tracing::warn!(%run_id, error = %e, "could not renew the run's lease");
                }
                continue;
            }
            emitted = run.events.recv() => emitted,
            // The streaming client left while the agent is quiet.
            _ = client_left(forward.as_ref()) => {
                let left = event::bridge_error(&run_id, &key.thread, last_sequence, Code::Cancelled, CLIENT_LEFT);
                let _ = hub.append(&key, entry(&left, None, None)).await;
                break;
            }
        };
        last_sequence = emitted.as_ref().map_or(last_sequence, |e| e.event.sequence);
        // The pump always ends with a terminal event; None means the bridge is going away.
        let Some(emitted) = emitted else { break };
        let terminal = event::is_terminal(&emitted.event);
        if let Err(e) = hub
            .append(
                &key,
                entry(&emitted.event, trace_id.as_deref(), link.as_deref()),
            )
            .await
        {
            tracing::warn!(%run_id, error = %e, "cannot record the run; cancelling it");
            if let Some(forward) = &forward {
                let e = &emitted.event;
                let failure = event::bridge_error(
                    &e.run_id,
                    &e.thread_id,
                    e.sequence,
                    Code::Unavailable,
                    "the thread's event log is unavailable",
                );
                let _ = forward.send(Emitted::new(failure, false)).await;
            }
            break;
        }
        if let Some(forward) = &forward {
            let sequence = emitted.event.sequence;
            if forward.send(emitted).await.is_err() {
                if !terminal {
                    let left = event::bridge_error(
                        &run_id,
                        &key.thread,
                        sequence,
                        Code::Cancelled,
                        CLIENT_LEFT,
                    );
                    let _ = hub.append(&key, entry(&left, None, None)).await;
                }
                break;
            }
        }
        if terminal {
            break;
        }
    }
    // Dropping `run` here cancels the agent call if it is still going.
    drop(run);
    if let Err(e) = hub.end_run(&key, &run_id).await {
        tracing::warn!(%run_id, error = %e, "could not release the run; its lease will expire");
    }
}

const CLIENT_LEFT: &str = "the client streaming this run disconnected";

/// Resolves when the client a teed run forwards to has gone (never for a detached run).
async fn client_left(forward: Option<&mpsc::Sender<Emitted>>) {
    match forward {
        Some(forward) => forward.closed().await,
        None => std::future::pending().await,
    }
}

/// The log entry of an event: its JSON, encoded once.
pub(crate) fn entry(event: &ChatEvent, trace_id: Option<&str>, link: Option<&str>) -> NewEntry {
    let started = matches!(event.payload, Some(Payload::RunStarted(_)));
    NewEntry {
        link: link.filter(|_| started).map(str::to_owned),
        kind: event::kind(event),
        run_id: event.run_id.clone(),
        sequence: event.sequence,
        terminal: event::is_terminal(event),
        json: Bytes::from(event::to_json_traced(event, trace_id)),
    }
}
