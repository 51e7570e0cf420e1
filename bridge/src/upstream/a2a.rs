//! A2A agents: an agent that speaks the Agent2Agent protocol (v1.0, gRPC binding
//! `lf.a2a.v1.A2AService`) instead of `agent.v1`, behind the same route as any agent.
//!
//! A chat message is one `SendStreamingMessage` whose task stream [`translator`] reads as
//! one bridge run; a run abandoned before its task finished sends `CancelTask`; threads are
//! the contexts of the caller's tasks (`ListTasks`); the agent card (`GetExtendedAgentCard`)
//! describes the agent in `GET /v1/agents`.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use agent_bridge_proto::{
    a2a::v1::{self as a2a, a2a_service_client::A2aServiceClient},
    v1::{ChatEvent, ChatRequest},
};
use serde::Serialize;
use tonic::{Request, Status, Streaming, metadata::MetadataMap, transport::Channel};

use super::{EventStream, HistoryMessage, MessagePage, Page, ThreadPage, ThreadSummary};

pub(crate) mod translator;

use translator::{Translator, send_request, text_of};

/// How long the bridge tries to cancel an abandoned task at the agent.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the bridge looks for a thread's task waiting for input before a message.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The transport URL of an A2A agent URL: `a2a+grpc://` → `http://`, `a2a+grpcs://` →
/// `https://`, `dns+a2a+grpc://` → `dns://`, `dns+a2a+grpcs://` → `dns+https://`. `None`: not
/// an A2A URL.
pub(crate) fn transport_url(url: &str) -> Option<String> {
    [
        ("a2a+grpc://", "http://"),
        ("a2a+grpcs://", "https://"),
        ("dns+a2a+grpc://", "dns://"),
        ("dns+a2a+grpcs://", "dns+https://"),
    ]
    .iter()
    .find_map(|(a2a, transport)| {
        url.strip_prefix(a2a)
            .map(|rest| format!("{transport}{rest}"))
    })
}

/// What an A2A agent's card says, as `GET /v1/agents` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Card {
    pub name: String,
    pub description: String,
    pub version: String,
    pub skills: Vec<Skill>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Skill {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
}

impl From<a2a::AgentCard> for Card {
    fn from(card: a2a::AgentCard) -> Self {
        Self {
            name: card.name,
            description: card.description,
            version: card.version,
            skills: card
                .skills
                .into_iter()
                .map(|s| Skill {
                    id: s.id,
                    name: s.name,
                    description: s.description,
                    tags: s.tags,
                })
                .collect(),
        }
    }
}

/// An A2A agent: its `A2AService` client and, once read, its card.
#[derive(Clone)]
pub(crate) struct A2aAgent {
    client: A2aServiceClient<Channel>,
    /// Read on first use and kept: a card changes with a deployment, not per call.
    card: Arc<tokio::sync::OnceCell<Card>>,
}

impl A2aAgent {
    pub(crate) fn new(channel: Channel) -> Self {
        Self {
            client: A2aServiceClient::new(channel),
            card: Arc::default(),
        }
    }

    /// `SendStreamingMessage` for one chat message, read as a run. The call keeps the
    /// metadata the bridge set (identity, credential, trace context, deadline). Dropping the
    /// stream before the task finished cancels the call and sends `CancelTask`.
    pub(crate) async fn chat(
        &self,
        route: &str,
        call: Request<ChatRequest>,
    ) -> Result<EventStream, Status> {
        let (metadata, extensions, chat) = call.into_parts();
        let user_message_id = uuid::Uuid::new_v4().to_string();
        let waiting = self.waiting_task(&metadata, &chat.thread_id).await;
        let resuming = waiting.is_some();
        let request = send_request(&chat, &user_message_id, waiting);
        let stream = self
            .client
            .clone()
            .send_streaming_message(Request::from_parts(metadata.clone(), extensions, request))
            .await?
            .into_inner();
        let mut translator =
            Translator::new(&chat.run_id, &chat.thread_id, route, &user_message_id);
        translator.resuming = resuming;
        let session = Session {
            stream,
            translator,
            pending: VecDeque::new(),
            ended: false,
            client: self.client.clone(),
            metadata,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            session,
            Session::next,
        )))
    }

    /// The thread's task waiting for the user (`input-required`), which this message answers;
    /// `None` for a new thread, when there is none, or when the agent cannot list tasks (the
    /// message then starts a new task in the same context).
    async fn waiting_task(&self, metadata: &MetadataMap, thread: &str) -> Option<String> {
        if thread.is_empty() {
            return None;
        }
        let mut metadata = metadata.clone();
        metadata.remove("grpc-timeout");
        let request = a2a::ListTasksRequest {
            context_id: thread.to_owned(),
            status: a2a::TaskState::InputRequired.into(),
            page_size: Some(1),
            ..Default::default()
        };
        let mut call = Request::from_parts(metadata, Default::default(), request);
        call.set_timeout(LOOKUP_TIMEOUT);
        let answer = self
            .client
            .clone()
            .list_tasks(call)
            .await
            .ok()?
            .into_inner();
        answer.tasks.into_iter().next().map(|task| task.id)
    }

    /// The card, from `GetExtendedAgentCard`; `None` while the agent cannot give it.
    pub(crate) async fn card(&self, call: Request<()>) -> Option<Card> {
        let (metadata, extensions, ()) = call.into_parts();
        let request = Request::from_parts(
            metadata,
            extensions,
            a2a::GetExtendedAgentCardRequest::default(),
        );
        let mut client = self.client.clone();
        self.card
            .get_or_try_init(|| async move {
                client
                    .get_extended_agent_card(request)
                    .await
                    .map(|card| Card::from(card.into_inner()))
            })
            .await
            .ok()
            .cloned()
    }

    /// The caller's threads: the contexts of the agent's tasks (`ListTasks`), in the order
    /// the agent lists them. A page of tasks is a page of threads, so a thread whose tasks
    /// span two pages appears on both.
    pub(crate) async fn list_threads(
        &self,
        call: Request<()>,
        page: Page,
    ) -> Result<ThreadPage, Status> {
        let answer = self.list_tasks(call, String::new(), page).await?;
        let mut threads: Vec<ThreadSummary> = Vec::new();
        for task in answer.tasks {
            let updated = task
                .status
                .as_ref()
                .and_then(|s| s.timestamp.as_ref())
                .map(ToString::to_string);
            let messages = task.history.len() as u32 + task.artifacts.len() as u32;
            match threads.iter_mut().find(|t| t.thread_id == task.context_id) {
                Some(thread) => {
                    thread.message_count += messages;
                    if updated > thread.updated_at {
                        thread.updated_at = updated;
                    }
                }
                None => threads.push(ThreadSummary {
                    title: task
                        .history
                        .iter()
                        .find(|m| m.role() == a2a::Role::User)
                        .map(|m| title(&text_of(&m.parts)))
                        .unwrap_or_default(),
                    thread_id: task.context_id,
                    created_at: None,
                    updated_at: updated,
                    message_count: messages,
                }),
            }
        }
        Ok(ThreadPage {
            threads,
            next_page_token: answer.next_page_token,
        })
    }

    /// One thread's history: per task of the context (`ListTasks`), the user's messages, then
    /// the agent's answer (its artifacts, else its final status message).
    pub(crate) async fn list_messages(
        &self,
        route: &str,
        call: Request<()>,
        thread: &str,
        page: Page,
    ) -> Result<MessagePage, Status> {
        let answer = self.list_tasks(call, thread.to_owned(), page).await?;
        let mut tasks = answer.tasks;
        // Oldest first, as a history reads.
        tasks.sort_by_key(|t| {
            t.status
                .as_ref()
                .and_then(|s| s.timestamp)
                .map(|ts| (ts.seconds, ts.nanos))
        });
        let mut messages = Vec::new();
        for task in tasks {
            let entry =
                |message_id: String, role: &str, content: String, agent: &str| HistoryMessage {
                    message_id,
                    role: role.to_owned(),
                    content,
                    agent: agent.to_owned(),
                    run_id: task.id.clone(),
                    created_at: None,
                };
            for m in task.history.iter().filter(|m| m.role() == a2a::Role::User) {
                messages.push(entry(m.message_id.clone(), "user", text_of(&m.parts), ""));
            }
            let answers: Vec<HistoryMessage> = task
                .artifacts
                .iter()
                .map(|a| (a.artifact_id.clone(), text_of(&a.parts)))
                .chain(
                    task.status
                        .as_ref()
                        .and_then(|s| s.message.as_ref())
                        .map(|m| (m.message_id.clone(), text_of(&m.parts))),
                )
                .filter(|(_, text)| !text.is_empty())
                .map(|(id, text)| entry(id, "assistant", text, route))
                .collect();
            messages.extend(answers.into_iter().take(task.artifacts.len().max(1)));
        }
        Ok(MessagePage {
            messages,
            next_page_token: answer.next_page_token,
        })
    }

    async fn list_tasks(
        &self,
        call: Request<()>,
        context_id: String,
        page: Page,
    ) -> Result<a2a::ListTasksResponse, Status> {
        let (metadata, extensions, ()) = call.into_parts();
        let request = a2a::ListTasksRequest {
            context_id,
            page_size: (page.page_size > 0).then(|| page.page_size.min(100) as i32),
            page_token: page.page_token,
            include_artifacts: Some(true),
            ..Default::default()
        };
        Ok(self
            .client
            .clone()
            .list_tasks(Request::from_parts(metadata, extensions, request))
            .await?
            .into_inner())
    }
}

/// A thread title: the start of its first user message.
fn title(text: &str) -> String {
    let end = text.char_indices().nth(80).map_or(text.len(), |(i, _)| i);
    text[..end].to_owned()
}

/// One `SendStreamingMessage` call being read as a run.
struct Session {
    stream: Streaming<a2a::StreamResponse>,
    translator: Translator,
    /// Events translated but not yet handed out (one item can stand for several).
    pending: VecDeque<ChatEvent>,
    /// The call failed or finished: nothing more to read.
    ended: bool,
    client: A2aServiceClient<Channel>,
    /// The call's metadata (identity, credential), reused for `CancelTask`.
    metadata: MetadataMap,
}

impl Session {
    async fn next(mut self) -> Option<(Result<ChatEvent, Status>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.ended || self.translator.is_finished() {
                return None;
            }
            match self.stream.message().await {
                Ok(Some(response)) => {
                    let events = self.translator.on_response(response);
                    self.pending.extend(events);
                }
                Ok(None) => {
                    self.ended = true;
                    let events = self.translator.on_end();
                    self.pending.extend(events);
                }
                Err(status) => {
                    self.ended = true;
                    return Some((Err(status), self));
                }
            }
        }
    }
}

impl Drop for Session {
    /// A run abandoned before its task finished (the client left, a limit hit, the bridge
    /// shutting down) leaves the task running at the agent: dropping the call is not a
    /// cancellation in A2A, where tasks outlive streams. `CancelTask` stops it.
    fn drop(&mut self) {
        if self.translator.is_finished() {
            return;
        }
        let Some(task_id) = self.translator.task_id().map(str::to_owned) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut client = self.client.clone();
        let mut metadata = std::mem::take(&mut self.metadata);
        metadata.remove("grpc-timeout");
        runtime.spawn(async move {
            let request = a2a::CancelTaskRequest {
                id: task_id.clone(),
                ..Default::default()
            };
            let mut call = Request::from_parts(metadata, Default::default(), request);
            call.set_timeout(CANCEL_TIMEOUT);
            match client.cancel_task(call).await {
                Ok(_) => tracing::info!(%task_id, "cancelled the abandoned A2A task"),
                Err(status) => {
                    tracing::info!(%task_id, code = ?status.code(), "could not cancel the A2A task")
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a2a_urls_name_their_transport() {
        let cases = [
            ("a2a+grpc://127.0.0.1:50071", Some("http://127.0.0.1:50071")),
            (
                "a2a+grpcs://agent.example:443",
                Some("https://agent.example:443"),
            ),
            (
                "dns+a2a+grpc://research.agents.svc:50071",
                Some("dns://research.agents.svc:50071"),
            ),
            (
                "dns+a2a+grpcs://research:443",
                Some("dns+https://research:443"),
            ),
            ("http://127.0.0.1:50051", None),
            ("dns://agent:50051", None),
        ];
        for (url, transport) in cases {
            assert_eq!(transport_url(url).as_deref(), transport, "{url}");
        }
    }
}
