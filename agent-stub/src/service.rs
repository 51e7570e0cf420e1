//! [`Stub`]: the `agent.v1.Agent` implementation.

use std::{sync::Arc, time::Duration};

use agent_bridge_proto::v1::{
    ChatEvent, ChatRequest, DeleteThreadRequest, DeleteThreadResponse, ListMessagesRequest,
    ListMessagesResponse, ListThreadsRequest, ListThreadsResponse, agent_server::Agent,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{debug, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use uuid::Uuid;

use crate::{
    config::Config,
    error::Error,
    run::Run,
    script::Script,
    stats::Stats,
    threads::{Owner, Page, ThreadStore},
    trigger::{Ending, SCRIPTED_FAILURE, Triggers},
};

/// The longest thread id the contract allows.
const MAX_THREAD_ID_LEN: usize = 128;

/// The reference agent: scripted runs (see the crate docs) and in-memory threads. Clones share
/// their state; hand one to [`serve`](crate::serve) and keep one to read [`Stats`].
#[derive(Clone)]
pub struct Stub {
    shared: Arc<Shared>,
    /// Cancelled when the server serving this clone shuts down; never, outside `serve`.
    stop: CancellationToken,
}

struct Shared {
    config: Config,
    stats: Stats,
    threads: Arc<ThreadStore>,
}

impl Stub {
    pub fn new(config: Config) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                stats: Stats::new(),
                threads: Arc::default(),
            }),
            stop: CancellationToken::new(),
        }
    }

    /// The stub's counters; they keep counting after this call.
    /// The TLS identity to serve with, if any.
    pub fn tls(&self) -> Option<&crate::config::TlsIdentity> {
        self.shared.config.tls.as_ref()
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.clone()
    }

    /// A clone whose runs end when `stop` is cancelled.
    pub(crate) fn with_stop(&self, stop: CancellationToken) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            stop,
        }
    }

    /// Refuses a call without the configured bearer credential.
    fn check_token(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let Some(expected) = &self.shared.config.require_token else {
            return Ok(());
        };
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(Error::Unauthenticated.into())
        }
    }

    /// The owner of a thread call, once its credential is checked: every thread operation
    /// starts here.
    fn thread_owner<T>(&self, request: &Request<T>) -> Result<Owner, Status> {
        self.check_token(request.metadata())?;
        Ok(Owner::from_metadata(request.metadata()))
    }

    /// Waits out `silent-before` ahead of a `fail-before` status, unless shutdown comes first.
    async fn silence(&self, duration: Option<Duration>) -> Result<(), Error> {
        let Some(duration) = duration else {
            return Ok(());
        };
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(()),
            () = self.stop.cancelled() => Err(Error::ShuttingDown),
        }
    }
}

#[tonic::async_trait]
impl Agent for Stub {
    type ChatStream = ReceiverStream<Result<ChatEvent, Status>>;

    async fn chat(
        &self,
        request: Request<ChatRequest>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        self.check_token(request.metadata())?;
        if self.stop.is_cancelled() {
            return Err(Error::ShuttingDown.into());
        }
        // The run's span continues the caller's trace; it lives as long as the run's task.
        // Only ids and names are recorded: the message and metadata may carry user data.
        let span = tracing::info_span!(
            "run",
            otel.name = "agent.v1.Agent/Chat",
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = "agent.v1.Agent",
            rpc.method = "Chat",
            rpc.grpc.status_code = Empty,
            run_id = Empty,
            thread_id = Empty,
        );
        let _ = span.set_parent(agent_bridge_telemetry::propagation::extract(
            request.metadata(),
        ));
        let owner = Owner::from_metadata(request.metadata());
        let request = request.into_inner();
        let triggers = Triggers::parse(&request.message).map_err(|e| Status::from(Error::from(e)));
        let triggers = crate::run::record_failure(&span, triggers)?;
        if !is_valid_thread_id(&request.thread_id) {
            let error: Status = Error::ThreadId(request.thread_id).into();
            return crate::run::record_failure(&span, Err(error));
        }
        self.shared.stats.run_started();

        if triggers.ending == Ending::FailBefore {
            self.silence(triggers.silent_before).await?;
            let failure = Err(Status::new(triggers.code, SCRIPTED_FAILURE));
            return crate::run::record_failure(&span, failure);
        }

        let run_id = if request.run_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            request.run_id
        };
        let thread_id = if request.thread_id.is_empty() {
            format!("t-{}", Uuid::new_v4())
        } else {
            request.thread_id
        };
        let ids = self
            .shared
            .threads
            .begin_run(&owner, &thread_id, &run_id, &request.message);
        let (script, default_pace) = match triggers.burst {
            // A burst measures throughput, so it is not paced unless it asks to be.
            Some(burst) => (
                Script::burst(&request.message, ids, burst.count, burst.size),
                Duration::ZERO,
            ),
            None => (
                Script::default_run(&request.message, ids),
                self.shared.config.pace,
            ),
        };
        span.record("run_id", run_id.as_str());
        span.record("thread_id", thread_id.as_str());
        debug!(parent: &span, agent = %request.agent, ?triggers, "run started");

        let run = Run {
            run_id,
            thread_id,
            owner,
            ending: triggers.ending,
            code: triggers.code,
            pace: triggers.pace.unwrap_or(default_pace),
            silent_before: triggers.silent_before,
            threads: Arc::clone(&self.shared.threads),
            stats: self.shared.stats.clone(),
            stop: self.stop.child_token(),
            span,
        };
        Ok(Response::new(run.spawn(script)))
    }

    async fn list_threads(
        &self,
        request: Request<ListThreadsRequest>,
    ) -> Result<Response<ListThreadsResponse>, Status> {
        let owner = self.thread_owner(&request)?;
        let request = request.get_ref();
        let page = Page::new(request.page_size, &request.page_token)?;
        let (threads, next_page_token) = self.shared.threads.list_threads(&owner, page);
        Ok(Response::new(ListThreadsResponse {
            threads,
            next_page_token,
        }))
    }

    async fn list_messages(
        &self,
        request: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        let owner = self.thread_owner(&request)?;
        let request = request.get_ref();
        let page = Page::new(request.page_size, &request.page_token)?;
        let (messages, next_page_token) =
            self.shared
                .threads
                .list_messages(&owner, &request.thread_id, page)?;
        Ok(Response::new(ListMessagesResponse {
            messages,
            next_page_token,
        }))
    }

    async fn delete_thread(
        &self,
        request: Request<DeleteThreadRequest>,
    ) -> Result<Response<DeleteThreadResponse>, Status> {
        let owner = self.thread_owner(&request)?;
        let deleted_messages = self
            .shared
            .threads
            .delete(&owner, &request.get_ref().thread_id)?;
        Ok(Response::new(DeleteThreadResponse { deleted_messages }))
    }
}

/// Empty (a new thread), or what the contract allows: at most 128 of `[A-Za-z0-9._:-]`.
fn is_valid_thread_id(thread_id: &str) -> bool {
    thread_id.len() <= MAX_THREAD_ID_LEN
        && thread_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Compares without an early exit, so timing does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
