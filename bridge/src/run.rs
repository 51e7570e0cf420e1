//! One agent run: the gRPC `Chat` call, watched by a task that feeds a bounded channel.
//!
//! [`start`] waits for the agent's first event before anything is answered, so every failure
//! up to that point is still an HTTP error (problem+json). From then on the pump task owns the
//! call, and the run always ends with a terminal event (`run_completed` or `run_error`): the
//! agent's own, or one the bridge writes when the agent fails, falls silent, runs too long, or
//! the bridge shuts down. Dropping the receiving side (the client left) drops the call, which
//! cancels it at the agent at once.

use std::{sync::Arc, time::Duration};

use agent_bridge_proto::v1::{ChatEvent, ChatRequest};
use futures_util::StreamExt as _;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};
use tracing::{Instrument as _, Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::{
    auth::Identity,
    error::{ApiError, code_name, safe_message},
    event,
    filter::EventFilter,
    metrics::{Forwarded, Metrics},
    ratelimit::StreamGuard,
    telemetry,
    upstream::{Agent, EventStream},
};

/// Time limits and buffering of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub first_event: Duration,
    pub idle: Duration,
    pub max_duration: Duration,
    /// Events held between agent and client; bounds memory per stream.
    pub buffer: usize,
}

/// What the pump hands to the transport: an event, and whether the client should be told to
/// reconnect (the bridge is going away, not the run).
#[derive(Debug)]
pub(crate) struct Emitted {
    /// Boxed because a run's channel allocates its first block of 32 slots when it is made:
    /// 16-byte slots (512 B) instead of ~180-byte ones (5.9 KB) for every run waiting on its
    /// agent, for one small allocation per event.
    pub event: Box<ChatEvent>,
    pub reconnect: bool,
}

impl Emitted {
    pub(crate) fn new(event: ChatEvent, reconnect: bool) -> Self {
        Self {
            event: Box::new(event),
            reconnect,
        }
    }
}

/// A started run: its first event has arrived.
pub(crate) struct Run {
    pub run_id: String,
    pub thread_id: String,
    pub events: mpsc::Receiver<Emitted>,
    /// The request's trace, shown to clients on `run_started`.
    pub trace_id: Option<String>,
    /// The `traceparent` of the run's gRPC client span, kept with the run in thread logs.
    pub link: Option<String>,
    /// The run's admission slot and open-stream count, held by whoever delivers the run to
    /// its client (the response body), so both are released when that client's stream ends.
    pub guard: Option<StreamGuard>,
}

/// Calls the agent and waits for its first event.
pub(crate) async fn start(
    agent: &Agent,
    mut request: ChatRequest,
    identity: &Identity,
    limits: Limits,
    shutdown: &CancellationToken,
    metrics: &Metrics,
) -> Result<Run, ApiError> {
    if request.run_id.is_empty() {
        request.run_id = uuid::Uuid::new_v4().to_string();
    }
    let started = Instant::now();
    // The client span covers the whole gRPC call, to its last event: the pump owns it.
    let span = tracing::info_span!(
        "grpc call",
        otel.name = "agent.v1.Agent/Chat",
        otel.kind = "client",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = "agent.v1.Agent",
        rpc.method = "Chat",
        rpc.grpc.status_code = Empty,
        agent = %agent.name,
        run_id = %request.run_id,
    );
    let trace_id = telemetry::current_trace_id();
    let link = telemetry::traceparent(&span);
    let mut call = agent.request(request, identity);
    telemetry::propagation::inject(&span.context(), call.metadata_mut());
    // The agent learns the deadline too, so it can stop work the bridge would discard.
    call.set_timeout(limits.max_duration);

    let name = agent.name.to_string();
    let first = async {
        let mut stream = agent
            .chat(call)
            .await
            .map_err(|status| ApiError::Upstream {
                agent: name.clone(),
                status,
            })?;
        match stream.next().await {
            Some(Ok(first)) => Ok((stream, first)),
            None => Err(ApiError::EmptyRun {
                agent: name.clone(),
            }),
            Some(Err(status)) => Err(ApiError::Upstream {
                agent: name.clone(),
                status,
            }),
        }
    };
    let first = first.instrument(span.clone());
    let outcome = tokio::select! {
        _ = shutdown.cancelled() => Err(ApiError::ShuttingDown),
        r = tokio::time::timeout(limits.first_event, first) => match r {
            Ok(r) => r,
            Err(_) => Err(ApiError::FirstEventTimeout { agent: name.clone(), waited: limits.first_event }),
        },
    };
    let (stream, first) = match outcome {
        Ok(started) => started,
        Err(error) => {
            let code = match &error {
                ApiError::Upstream { status, .. } => {
                    metrics.upstream_error(&name, status.code());
                    status.code()
                }
                ApiError::FirstEventTimeout { .. } => Code::DeadlineExceeded,
                ApiError::ShuttingDown => Code::Cancelled,
                _ => Code::Internal,
            };
            record_end(&span, code);
            return Err(error);
        }
    };
    metrics.first_event(&name, started.elapsed());
    metrics.event_forwarded(&name, event::kind(&first));

    let (tx, rx) = mpsc::channel(limits.buffer.max(1));
    let run = Run {
        run_id: first.run_id.clone(),
        thread_id: first.thread_id.clone(),
        events: rx,
        trace_id,
        link,
        guard: None,
    };
    let terminal = event::is_terminal(&first);
    // Capacity is at least one and nobody else holds `tx` yet.
    if terminal {
        record_end(&span, Code::Ok);
        let _ = tx.try_send(Emitted::new(first, false));
    } else {
        let _ = tx.try_send(Emitted::new(first.clone(), false));
        let pump = Pump {
            agent: name,
            stream,
            tx,
            run_id: first.run_id,
            thread_id: first.thread_id,
            sequence: first.sequence,
            limits,
            deadline: started + limits.max_duration,
            shutdown: shutdown.clone(),
            filter: Arc::clone(&agent.filter),
            forwarded: metrics.forwarded(&agent.name),
            span: span.clone(),
        };
        tokio::spawn(pump.run().instrument(span));
    }
    Ok(run)
}

/// Moves events from the gRPC stream to the channel until the run ends.
struct Pump {
    agent: String,
    stream: EventStream,
    tx: mpsc::Sender<Emitted>,
    /// Synthesized events continue the run: same ids, the next sequence number.
    run_id: String,
    thread_id: String,
    sequence: u64,
    limits: Limits,
    deadline: Instant,
    shutdown: CancellationToken,
    filter: Arc<EventFilter>,
    forwarded: Forwarded,
    /// The client span of the call, ended when the pump ends.
    span: Span,
}

/// Why the pump stopped without the agent's own terminal event.
enum Ending {
    ClientLeft,
    Synthesized {
        code: Code,
        message: String,
        reconnect: bool,
    },
}

impl Pump {
    /// The pump's task. Not an `async fn`: its argument would be kept twice in the task
    /// (once as the argument, once as the body's local; rust-lang/rust#62958), while an
    /// `async move` block uses what it captured in place.
    #[allow(clippy::manual_async_fn)] // As an `async fn`, every run kept two pumps.
    fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            let ending = self.forward().await;
            if let Some((last, kind)) = self.conclude(ending) {
                // Best effort: a client that stopped reading cannot be told, and the drain
                // deadline bounds how long we try. Boxed, like every wait that is not the
                // usual one, so it does not size every run's task.
                if Box::pin(self.tx.send(last)).await.is_ok() {
                    self.forwarded.inc(kind);
                }
            }
            // Dropping `self.stream` here cancels the call at the agent if it is still open.
        }
    }

    /// Records how the run ended; the `run_error` to send when the bridge ends it.
    fn conclude(&self, ending: Option<Ending>) -> Option<(Emitted, &'static str)> {
        match ending {
            None => {
                record_end(&self.span, Code::Ok);
                None
            }
            Some(Ending::ClientLeft) => {
                record_end(&self.span, Code::Cancelled);
                tracing::info!(run_id = %self.run_id, agent = %self.agent, "client left; cancelling the agent call");
                None
            }
            Some(Ending::Synthesized {
                code,
                message,
                reconnect,
            }) => {
                record_end(&self.span, code);
                tracing::info!(run_id = %self.run_id, agent = %self.agent, code = code_name(code), %message, "ending run with run_error");
                let event = event::bridge_error(
                    &self.run_id,
                    &self.thread_id,
                    self.sequence,
                    code,
                    message,
                );
                let kind = event::kind(&event);
                Some((Emitted::new(event, reconnect), kind))
            }
        }
    }

    /// When the run's timer fires from now: at the idle limit, or at the deadline if sooner.
    fn due(&self) -> Instant {
        (Instant::now() + self.limits.idle).min(self.deadline)
    }

    /// Forwards until the agent's terminal event (`None`) or another ending.
    async fn forward(&mut self) -> Option<Ending> {
        // One timer for the whole run (re-armed per event, cheaper than a new one), due at
        // the idle limit or the run's deadline, whichever comes first: a timer is 112 bytes
        // of every run's task.
        let timer = tokio::time::sleep_until(self.due());
        // Waiters for the client leaving and for shutdown, registered once for the run: made
        // afresh in the loop, each registered and unregistered itself on every event.
        let closed = self.tx.closed();
        let shutdown = self.shutdown.cancelled();
        tokio::pin!(timer, closed, shutdown);
        loop {
            let next = tokio::select! {
                biased;
                _ = &mut closed => return Some(Ending::ClientLeft),
                _ = &mut shutdown => return Some(Ending::Synthesized {
                    code: Code::Unavailable,
                    message: "the bridge is restarting; reconnect to continue".into(),
                    reconnect: true,
                }),
                _ = &mut timer => return Some(Ending::Synthesized {
                    code: Code::DeadlineExceeded,
                    message: if Instant::now() >= self.deadline {
                        format!("the run exceeded its {} limit", humantime::format_duration(self.limits.max_duration))
                    } else {
                        format!(
                            "agent {:?} sent nothing for {}",
                            self.agent,
                            humantime::format_duration(self.limits.idle)
                        )
                    },
                    reconnect: false,
                }),
                // Boxed at once (the channel carries boxes): a 16-byte value rather than a
                // ~190-byte event held in every run's task state.
                next = self.stream.next() => next.map(|next| next.map(Box::new)),
            };
            timer.as_mut().reset(self.due());
            let event = match next {
                Some(Ok(event)) => event,
                None => {
                    return Some(Ending::Synthesized {
                        code: Code::Internal,
                        message: format!(
                            "agent {:?} ended the stream without finishing the run",
                            self.agent
                        ),
                        reconnect: false,
                    });
                }
                Some(Err(status)) => {
                    let status = connection_lost(status);
                    tracing::warn!(run_id = %self.run_id, agent = %self.agent, %status, "agent failed mid-run");
                    let code = status.code();
                    self.forwarded.upstream_error(code);
                    return Some(Ending::Synthesized {
                        code,
                        message: safe_message(&self.agent, code, status.message()),
                        reconnect: false,
                    });
                }
            };
            let mut event = event;
            if !self.filter.apply(&mut event) {
                // Hidden: not sent, but counted, so ids stay the agent's (gaps, no renumbering).
                self.sequence = event.sequence;
                continue;
            }
            let terminal = event::is_terminal(&event);
            let sequence = event.sequence;
            let kind = event::kind(&event);
            // Usually the channel has room; waiting for it (a client reading slower than the
            // agent writes) is boxed, so that rare wait does not size every run's task.
            let sent = match self.tx.try_send(Emitted {
                event,
                reconnect: false,
            }) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Some(Ending::ClientLeft),
                Err(mpsc::error::TrySendError::Full(emitted)) => {
                    let send = Box::pin(self.tx.send(emitted));
                    tokio::select! {
                        biased;
                        sent = send => sent,
                        _ = &mut shutdown => {
                            // The client is not reading; it will not see a final event either.
                            return Some(Ending::ClientLeft);
                        }
                    }
                }
            };
            if sent.is_err() {
                return Some(Ending::ClientLeft);
            }
            self.forwarded.inc(kind);
            self.sequence = sequence;
            if terminal {
                return None;
            }
        }
    }
}

/// A run that broke because the connection to the agent was lost mid-stream (the agent
/// process died, the network dropped) ends `UNAVAILABLE`: retryable, like an agent that
/// cannot be reached. tonic reports such failures as `UNKNOWN` with the transport error,
/// caused by an I/O error, as the status's source; a status the agent itself sent has no
/// source and keeps its code. (Before the first event the call has not worked yet, and the
/// same error more likely means a port that is not an agent: it stays a bad gateway.)
fn connection_lost(status: Status) -> Status {
    use std::error::Error;
    let mut cause: Option<&(dyn Error + 'static)> = status.source();
    let mut io = false;
    while let Some(error) = cause {
        io |= error.is::<std::io::Error>()
            || error
                .downcast_ref::<h2::Error>()
                .is_some_and(|e| e.is_io() || e.is_go_away());
        cause = error.source();
    }
    if status.code() == Code::Unknown && io {
        Status::unavailable(format!(
            "connection to the agent lost: {}",
            status.message()
        ))
    } else {
        status
    }
}

/// Records how the call ended on its client span (OpenTelemetry RPC conventions).
fn record_end(span: &Span, code: Code) {
    span.record("rpc.grpc.status_code", code as i32);
    if !matches!(code, Code::Ok | Code::Cancelled) {
        span.record("otel.status_code", "ERROR");
    }
}
