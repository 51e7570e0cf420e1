//! One run: a task that plays a script into the bounded channel behind the response stream.
//!
//! The task stops at once when the caller goes away (the receiver is dropped) or the agent
//! shuts down: every wait (pacing, hanging, a full channel) races both.

use std::{
    convert::Infallible,
    future::{Future, pending},
    sync::Arc,
    time::{Duration, SystemTime},
};

use agent_bridge_proto::v1::{ChatEvent, RunError, ToolCall, ToolResult, chat_event::Payload};
use tokio::sync::mpsc::{self, Permit, Sender, error::TrySendError};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};
use tracing::{Instrument as _, Span, debug, info, info_span};

use crate::{
    script::{CODER, SYSTEM, Script, Step},
    stats::Stats,
    threads::{Owner, StoredMessage, ThreadStore},
    trigger::{self, Ending, SCRIPTED_FAILURE},
};

/// Small, so that a caller that stops reading pushes back on the run within a few events.
const CHANNEL_CAPACITY: usize = 16;

/// How long a run ended by shutdown waits to hand over its `run_error` when the caller is not
/// reading. Shutdown must not wait on a stuck client.
const SHUTDOWN_SEND_TIMEOUT: Duration = Duration::from_secs(1);

const SHUTTING_DOWN: &str = "agent is shutting down";

type Item = Result<ChatEvent, Status>;

/// Why a run stopped before its script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The caller cancelled or went away.
    Cancelled,
    /// The agent is shutting down.
    Shutdown,
}

/// Everything a run needs, decided before its first event.
pub(crate) struct Run {
    pub(crate) run_id: String,
    pub(crate) thread_id: String,
    pub(crate) owner: Owner,
    pub(crate) ending: Ending,
    /// The code of a scripted failure.
    pub(crate) code: Code,
    pub(crate) pace: Duration,
    pub(crate) silent_before: Option<Duration>,
    pub(crate) threads: Arc<ThreadStore>,
    pub(crate) stats: Stats,
    /// Cancelled when the agent shuts down; a child token per run, so that the per-event
    /// check locks the run's own node rather than one shared by every run.
    pub(crate) stop: CancellationToken,
    /// The run's span (a child of the caller's trace); the task runs in it.
    pub(crate) span: Span,
}

impl Run {
    /// Starts playing `script` in a task and returns the stream the caller reads.
    pub(crate) fn spawn(self, script: Script) -> ReceiverStream<Item> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let span = self.span.clone();
        tokio::spawn(
            Playing {
                run: self,
                sequence: 0,
                tx,
            }
            .finish(script)
            .instrument(span),
        );
        ReceiverStream::new(rx)
    }
}

/// A run in progress.
struct Playing {
    run: Run,
    /// The sequence of the last event sent.
    sequence: u64,
    tx: Sender<Item>,
}

impl Playing {
    async fn finish(mut self, script: Script) {
        let played = self.play(script).await;
        let code = match (played, self.run.ending) {
            (Err(Stop::Cancelled), _) => Code::Cancelled,
            (Err(Stop::Shutdown), _) => Code::Unavailable,
            (Ok(()), Ending::FailAfter(_)) => self.run.code,
            (Ok(()), _) => Code::Ok,
        };
        self.run.span.record("rpc.grpc.status_code", code as i32);
        if !matches!(code, Code::Ok | Code::Cancelled) {
            self.run.span.record("otel.status_code", "ERROR");
        }
        match played {
            Ok(()) => debug!(events = self.sequence, "run finished"),
            Err(Stop::Cancelled) => {
                self.run.stats.run_cancelled();
                info!(
                    events = self.sequence,
                    "run cancelled: the caller went away"
                );
            }
            Err(Stop::Shutdown) => {
                info!(
                    events = self.sequence,
                    "run ended: the agent is shutting down"
                );
                let permit = tokio::select! {
                    permit = self.tx.reserve() => permit.ok(),
                    () = tokio::time::sleep(SHUTDOWN_SEND_TIMEOUT) => None,
                };
                if let Some(permit) = permit {
                    let error = RunError {
                        code: trigger::code_name(Code::Unavailable).into(),
                        message: SHUTTING_DOWN.into(),
                    };
                    let payload = Payload::RunError(error);
                    let event = envelope(&self.run, &mut self.sequence, SYSTEM, payload);
                    permit.send(Ok(event));
                    self.run.stats.event_sent();
                }
            }
        }
    }

    async fn play(&mut self, mut script: Script) -> Result<(), Stop> {
        if let Some(silence) = self.run.silent_before {
            self.pause(silence).await?;
        }
        let before_ending = self.run.ending.events_before(script.len());
        let before_ending = usize::try_from(before_ending).unwrap_or(usize::MAX);
        for (index, step) in script.by_ref().take(before_ending).enumerate() {
            if index > 0 {
                self.pause(self.run.pace).await?;
            }
            self.play_step(step).await?;
        }
        if matches!(self.run.ending, Ending::Complete | Ending::FailBefore) {
            return Ok(());
        }
        // The ending takes the place of an event, so it is paced like one.
        if before_ending > 0 {
            self.pause(self.run.pace).await?;
        }
        match self.run.ending {
            Ending::Complete | Ending::FailBefore => Ok(()),
            Ending::FailAfter(_) => {
                let status = Status::new(self.run.code, SCRIPTED_FAILURE);
                reserve(&self.tx, &self.run.stop).await?.send(Err(status));
                Ok(())
            }
            Ending::ErrorEventAfter(_) => {
                let error = RunError {
                    code: trigger::code_name(self.run.code).into(),
                    message: SCRIPTED_FAILURE.into(),
                };
                self.emit(SYSTEM, Payload::RunError(error)).await
            }
            Ending::HangAfter(_) => match self.until_stopped(pending::<Infallible>()).await? {},
        }
    }

    async fn play_step(&mut self, step: Step) -> Result<(), Stop> {
        if let Payload::RunCompleted(completed) = &step.payload
            && let Some(answer) = &completed.final_message
        {
            // Written before `run_completed` leaves, so a caller that saw it can read it back.
            self.run.threads.append(
                &self.run.owner,
                &self.run.thread_id,
                StoredMessage {
                    message_id: answer.message_id.clone(),
                    role: "assistant",
                    content: answer.content.clone(),
                    agent: CODER,
                    run_id: self.run.run_id.clone(),
                    created_at: SystemTime::now(),
                },
            );
        }
        // One span per step, except the many small text deltas (a burst sends thousands):
        // thoughts, tool calls and results, the message and the completion.
        // A tool's call and its result are named after the tool (`tool_call read_file`).
        let span = match &step.payload {
            Payload::TextDelta(_) => return self.emit(step.agent, step.payload).await,
            Payload::ToolCall(ToolCall {
                tool_name, call_id, ..
            })
            | Payload::ToolResult(ToolResult {
                tool_name, call_id, ..
            }) => info_span!(
                "tool",
                otel.name = %format_args!("{} {tool_name}", step.payload.kind()),
                team_member = step.agent,
                tool.name = %tool_name,
                tool.call_id = %call_id,
            ),
            other => info_span!("step", otel.name = other.kind(), team_member = step.agent,),
        };
        self.emit(step.agent, step.payload).instrument(span).await
    }

    /// Sends one event once the channel has room; its sequence and time are taken then.
    async fn emit(&mut self, agent: &'static str, payload: Payload) -> Result<(), Stop> {
        let permit = reserve(&self.tx, &self.run.stop).await?;
        let event = envelope(&self.run, &mut self.sequence, agent, payload);
        permit.send(Ok(event));
        self.run.stats.event_sent();
        Ok(())
    }

    async fn pause(&self, duration: Duration) -> Result<(), Stop> {
        if duration.is_zero() {
            return Ok(());
        }
        self.until_stopped(tokio::time::sleep(duration)).await
    }

    /// Awaits `work` unless the caller goes away or the agent shuts down first.
    async fn until_stopped<F: Future>(&self, work: F) -> Result<F::Output, Stop> {
        tokio::select! {
            biased;
            () = self.run.stop.cancelled() => Err(Stop::Shutdown),
            () = self.tx.closed() => Err(Stop::Cancelled),
            output = work => Ok(output),
        }
    }
}

/// Room for one item in the channel, once there is some, unless the caller goes away or the
/// agent shuts down first.
async fn reserve<'a>(
    tx: &'a Sender<Item>,
    stop: &CancellationToken,
) -> Result<Permit<'a, Item>, Stop> {
    if stop.is_cancelled() {
        return Err(Stop::Shutdown);
    }
    // The fast path keeps a burst cheap; only a full channel needs the race below.
    match tx.try_reserve() {
        Ok(permit) => Ok(permit),
        Err(TrySendError::Closed(())) => Err(Stop::Cancelled),
        Err(TrySendError::Full(())) => tokio::select! {
            biased;
            () = stop.cancelled() => Err(Stop::Shutdown),
            permit = tx.reserve() => permit.map_err(|_| Stop::Cancelled),
        },
    }
}

/// Wraps a payload in the run's envelope, taking the next sequence number.
fn envelope(run: &Run, sequence: &mut u64, agent: &'static str, payload: Payload) -> ChatEvent {
    *sequence += 1;
    ChatEvent {
        run_id: run.run_id.clone(),
        thread_id: run.thread_id.clone(),
        agent: agent.into(),
        sequence: *sequence,
        timestamp: Some(SystemTime::now().into()),
        payload: Some(payload),
    }
}

/// Marks `span` failed when a call is refused before its run starts.
pub(crate) fn record_failure<T>(span: &Span, result: Result<T, Status>) -> Result<T, Status> {
    if let Err(status) = &result {
        span.record("rpc.grpc.status_code", status.code() as i32);
        span.record("otel.status_code", "ERROR");
    }
    result
}
