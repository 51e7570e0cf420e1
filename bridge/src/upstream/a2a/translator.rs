//! How one A2A task, streamed by `SendStreamingMessage`, reads as one bridge run.
//!
//! An A2A agent (the Agent2Agent protocol, v1.0, gRPC binding `lf.a2a.v1.A2AService`) does not
//! speak `agent.v1`: it streams `StreamResponse` items (the task, agent messages, status
//! updates, artifact chunks). [`Translator`] turns them into the same `ChatEvent`s an
//! `agent.v1` agent sends, so everything after the upstream (policy, SSE, thread logs,
//! replay) is the same for both kinds. It is a pure state machine: no I/O, one call per item.
//!
//! | A2A | bridge events |
//! | --- | --- |
//! | first item of the stream (any kind) | `run_started` (thread = the task's `context_id`) |
//! | status `submitted` / `working` with a message | `thought` (the agent narrating its progress) |
//! | artifact chunk with text parts | `text_delta` (`message_id` = the artifact id) |
//! | artifact chunk with `last_chunk` | `message` (the artifact's whole text) |
//! | agent `Message` (message-only answer) | `text_delta`, `message`, `run_completed` |
//! | status `completed` | `message` for open artifacts / the status message, then `run_completed` |
//! | status `input-required` | the agent's question as `message`, then `run_completed` |
//! | status `failed` | `run_error` `ABORTED` (the agent's status text, else a generic one) |
//! | status `rejected` | `run_error` `FAILED_PRECONDITION` |
//! | status `canceled` | `run_error` `CANCELLED` |
//! | status `auth-required` | `run_error` `PERMISSION_DENIED` (the bridge cannot relay auth) |
//! | stream ends before a final state | `run_error` `INTERNAL` |
//!
//! `input-required` ends the run normally: to a chat user the agent's question is an answer,
//! and the reply is the next message in the same thread (the same A2A context), which the
//! bridge sends to the task that asked (found with `ListTasks`), so that task resumes.
//! `auth-required` is an error because the bridge has no channel to carry the agent's
//! authorization flow to the user.

use std::time::SystemTime;

use agent_bridge_proto::{
    a2a::v1 as a2a,
    v1::{
        ChatEvent, ChatRequest, Message, RunCompleted, RunError, RunStarted, TextDelta, Thought,
        chat_event::Payload,
    },
};
use tonic::Code;

/// The longest agent-written text the bridge repeats in a `run_error` message.
const MAX_ERROR_TEXT: usize = 500;

/// The A2A request for one chat message: the thread is the A2A context.
///
/// `message_id` is the id the bridge gives the user's message (it is `RunStarted`'s
/// `user_message_id`); `task_id` continues an interrupted (`input-required`) task.
pub(crate) fn send_request(
    chat: &ChatRequest,
    message_id: &str,
    task_id: Option<String>,
) -> a2a::SendMessageRequest {
    let metadata = (!chat.metadata.is_empty()).then(|| prost_types::Struct {
        fields: chat
            .metadata
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue(v.clone())),
                    },
                )
            })
            .collect(),
    });
    a2a::SendMessageRequest {
        tenant: String::new(),
        message: Some(a2a::Message {
            message_id: message_id.to_owned(),
            context_id: chat.thread_id.clone(),
            task_id: task_id.unwrap_or_default(),
            role: a2a::Role::User.into(),
            parts: vec![text_part(&chat.message)],
            ..Default::default()
        }),
        configuration: Some(a2a::SendMessageConfiguration {
            accepted_output_modes: vec!["text/plain".into()],
            ..Default::default()
        }),
        metadata,
    }
}

fn text_part(text: &str) -> a2a::Part {
    a2a::Part {
        content: Some(a2a::part::Content::Text(text.to_owned())),
        ..Default::default()
    }
}

/// The text of some parts: text parts in order; files and data carry no chat text.
pub(crate) fn text_of(parts: &[a2a::Part]) -> String {
    parts
        .iter()
        .filter_map(|part| match &part.content {
            Some(a2a::part::Content::Text(text)) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// One artifact being streamed as an assistant message.
#[derive(Debug)]
struct Draft {
    artifact_id: String,
    /// The bridge message id: the artifact id, suffixed when a chunk replaced the artifact.
    message_id: String,
    text: String,
    /// `last_chunk` seen: its `message` was sent.
    closed: bool,
    /// How many times a non-append chunk restarted this artifact.
    restarts: u32,
}

/// Reads one A2A task stream as one bridge run. Feed it every `StreamResponse` with
/// [`Translator::on_response`] and the end of the stream with [`Translator::on_end`]; each
/// returns the events to forward, numbered 1, 2, 3... with no gaps. After a terminal event
/// it returns nothing more.
#[derive(Debug)]
pub(crate) struct Translator {
    run_id: String,
    thread_id: String,
    /// The `agent` of every event: the A2A agent's name (from its card) or the route name.
    member: String,
    user_message_id: String,
    sequence: u64,
    task_id: Option<String>,
    drafts: Vec<Draft>,
    /// The last complete message sent: the answer `run_completed` repeats.
    last_message: Option<Message>,
    finished: bool,
    /// The message answers a task waiting for input: a snapshot of that task still in its
    /// waiting state is the past, not a new question.
    pub resuming: bool,
}

impl Translator {
    pub(crate) fn new(run_id: &str, thread_id: &str, member: &str, user_message_id: &str) -> Self {
        Self {
            run_id: run_id.to_owned(),
            thread_id: thread_id.to_owned(),
            member: member.to_owned(),
            user_message_id: user_message_id.to_owned(),
            sequence: 0,
            task_id: None,
            drafts: Vec::new(),
            last_message: None,
            finished: false,
            resuming: false,
        }
    }

    /// The A2A task the stream is about, once it is known (for `CancelTask`).
    pub(crate) fn task_id(&self) -> Option<&str> {
        self.task_id.as_deref()
    }

    /// True once a terminal event was produced.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The events one stream item stands for.
    pub(crate) fn on_response(&mut self, response: a2a::StreamResponse) -> Vec<ChatEvent> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        let Some(payload) = response.payload else {
            return out;
        };
        use a2a::stream_response::Payload as Item;
        let (task_id, context_id) = match &payload {
            Item::Task(task) => (task.id.as_str(), task.context_id.as_str()),
            Item::Message(message) => (message.task_id.as_str(), message.context_id.as_str()),
            Item::StatusUpdate(update) => (update.task_id.as_str(), update.context_id.as_str()),
            Item::ArtifactUpdate(update) => (update.task_id.as_str(), update.context_id.as_str()),
        };
        if self.task_id.is_none() && !task_id.is_empty() {
            self.task_id = Some(task_id.to_owned());
        }
        if self.sequence == 0 {
            if self.thread_id.is_empty() {
                self.thread_id = context_id.to_owned();
            }
            let started = Payload::RunStarted(RunStarted {
                user_message_id: self.user_message_id.clone(),
            });
            out.push(self.event(started));
        }
        match payload {
            Item::Task(task) => {
                // A snapshot: its artifacts are whole, and its status says where it stands.
                for artifact in task.artifacts {
                    self.artifact(artifact, false, true, &mut out);
                }
                let waiting = |s: &a2a::TaskStatus| {
                    matches!(
                        s.state(),
                        a2a::TaskState::InputRequired | a2a::TaskState::AuthRequired
                    )
                };
                if let Some(status) = task.status
                    && !(self.resuming && waiting(&status))
                {
                    self.status(status, &mut out);
                }
            }
            Item::Message(message) => {
                // A message-only answer: the whole interaction.
                if message.role() == a2a::Role::Agent {
                    let text = text_of(&message.parts);
                    self.answer(message.message_id, text, &mut out);
                    self.complete(&mut out);
                }
            }
            Item::StatusUpdate(update) => {
                if let Some(status) = update.status {
                    self.status(status, &mut out);
                }
            }
            Item::ArtifactUpdate(update) => {
                if let Some(artifact) = update.artifact {
                    self.artifact(artifact, update.append, update.last_chunk, &mut out);
                }
            }
        }
        out
    }

    /// The stream ended (without an error status). Before a final state this is a failure:
    /// the agent went away mid-task.
    pub(crate) fn on_end(&mut self) -> Vec<ChatEvent> {
        let mut out = Vec::new();
        if !self.finished {
            if self.sequence == 0 {
                out.push(self.event(Payload::RunStarted(RunStarted {
                    user_message_id: self.user_message_id.clone(),
                })));
            }
            self.fail(
                Code::Internal,
                "the agent ended the task stream before the task finished".into(),
                &mut out,
            );
        }
        out
    }

    fn artifact(
        &mut self,
        artifact: a2a::Artifact,
        append: bool,
        last_chunk: bool,
        out: &mut Vec<ChatEvent>,
    ) {
        let text = text_of(&artifact.parts);
        let index = match self
            .drafts
            .iter()
            .position(|d| d.artifact_id == artifact.artifact_id)
        {
            Some(index) => {
                let draft = &mut self.drafts[index];
                if !append {
                    // A non-append chunk replaces the artifact: deltas cannot take text back,
                    // so the replacement streams as a new message.
                    draft.restarts += 1;
                    draft.message_id = format!("{}.{}", draft.artifact_id, draft.restarts);
                    draft.text.clear();
                    draft.closed = false;
                }
                index
            }
            None => {
                self.drafts.push(Draft {
                    artifact_id: artifact.artifact_id.clone(),
                    message_id: artifact.artifact_id.clone(),
                    text: String::new(),
                    closed: false,
                    restarts: 0,
                });
                self.drafts.len() - 1
            }
        };
        if self.drafts[index].closed {
            // More chunks after `last_chunk`: the artifact grows past its message.
            let draft = &mut self.drafts[index];
            draft.restarts += 1;
            draft.message_id = format!("{}.{}", draft.artifact_id, draft.restarts);
            draft.text.clear();
            draft.closed = false;
        }
        if !text.is_empty() {
            self.drafts[index].text.push_str(&text);
            let delta = Payload::TextDelta(TextDelta {
                message_id: self.drafts[index].message_id.clone(),
                delta: text,
            });
            out.push(self.event(delta));
        }
        if last_chunk {
            self.close(index, out);
        }
    }

    /// Sends the `message` of a draft that has text and is still open.
    fn close(&mut self, index: usize, out: &mut Vec<ChatEvent>) {
        let draft = &mut self.drafts[index];
        if draft.closed {
            return;
        }
        draft.closed = true;
        if draft.text.is_empty() {
            return;
        }
        let message = Message {
            message_id: draft.message_id.clone(),
            role: "assistant".into(),
            content: draft.text.clone(),
        };
        self.last_message = Some(message.clone());
        out.push(self.event(Payload::Message(message)));
    }

    fn status(&mut self, status: a2a::TaskStatus, out: &mut Vec<ChatEvent>) {
        use a2a::TaskState;
        let state = status.state();
        let (message_id, text) = status
            .message
            .map(|m| (m.message_id, text_of(&m.parts)))
            .unwrap_or_default();
        match state {
            TaskState::Submitted | TaskState::Working => {
                if !text.is_empty() {
                    out.push(self.event(Payload::Thought(Thought { content: text })));
                }
            }
            TaskState::Completed => {
                self.close_all(out);
                if !text.is_empty() {
                    self.answer(message_id, text, out);
                }
                self.complete(out);
            }
            TaskState::InputRequired => {
                self.close_all(out);
                let question = if text.is_empty() {
                    "The agent needs more input to go on.".to_owned()
                } else {
                    text
                };
                self.answer(message_id, question, out);
                self.complete(out);
            }
            TaskState::Failed => {
                let message = agent_text(&text).unwrap_or("the agent failed the task");
                self.fail(Code::Aborted, message.to_owned(), out);
            }
            TaskState::Rejected => {
                let message = match agent_text(&text) {
                    Some(text) => format!("the agent rejected the task: {text}"),
                    None => "the agent rejected the task".to_owned(),
                };
                self.fail(Code::FailedPrecondition, message, out);
            }
            TaskState::Canceled => {
                self.fail(Code::Cancelled, "the agent canceled the task".into(), out);
            }
            TaskState::AuthRequired => {
                self.fail(
                    Code::PermissionDenied,
                    "the agent requires an authorization the bridge cannot provide".into(),
                    out,
                );
            }
            TaskState::Unspecified => {}
        }
    }

    fn close_all(&mut self, out: &mut Vec<ChatEvent>) {
        for index in 0..self.drafts.len() {
            self.close(index, out);
        }
    }

    /// A whole answer that was not streamed: its text as one delta, then the message.
    fn answer(&mut self, message_id: String, text: String, out: &mut Vec<ChatEvent>) {
        let message_id = if message_id.is_empty() {
            format!("{}:answer", self.run_id)
        } else {
            message_id
        };
        if !text.is_empty() {
            out.push(self.event(Payload::TextDelta(TextDelta {
                message_id: message_id.clone(),
                delta: text.clone(),
            })));
        }
        let message = Message {
            message_id,
            role: "assistant".into(),
            content: text,
        };
        self.last_message = Some(message.clone());
        out.push(self.event(Payload::Message(message)));
    }

    fn complete(&mut self, out: &mut Vec<ChatEvent>) {
        let completed = Payload::RunCompleted(RunCompleted {
            final_message: self.last_message.clone(),
            usage: None,
        });
        out.push(self.event(completed));
        self.finished = true;
    }

    fn fail(&mut self, code: Code, message: String, out: &mut Vec<ChatEvent>) {
        let error = Payload::RunError(RunError {
            code: agent_bridge_proto::code_name(code).into(),
            message,
        });
        out.push(self.event(error));
        self.finished = true;
    }

    fn event(&mut self, payload: Payload) -> ChatEvent {
        self.sequence += 1;
        ChatEvent {
            run_id: self.run_id.clone(),
            thread_id: self.thread_id.clone(),
            agent: self.member.clone(),
            sequence: self.sequence,
            timestamp: Some(SystemTime::now().into()),
            payload: Some(payload),
        }
    }
}

/// The agent's own words for a failure, bounded; A2A status messages are written for the
/// end user, so they are shown (unlike gRPC status details, which may hold internals).
fn agent_text(text: &str) -> Option<&str> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let end = text
        .char_indices()
        .nth(MAX_ERROR_TEXT)
        .map_or(text.len(), |(i, _)| i);
    Some(&text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use a2a::{TaskState, stream_response::Payload as Item};

    const TASK: &str = "task-1";
    const CONTEXT: &str = "ctx-1";

    fn translator() -> Translator {
        Translator::new("run-1", "", "Researcher", "user-msg-1")
    }

    fn message(text: &str) -> a2a::Message {
        a2a::Message {
            message_id: "m-1".into(),
            context_id: CONTEXT.into(),
            task_id: TASK.into(),
            role: a2a::Role::Agent.into(),
            parts: vec![text_part(text)],
            ..Default::default()
        }
    }

    fn status(state: TaskState, text: Option<&str>) -> a2a::StreamResponse {
        a2a::StreamResponse {
            payload: Some(Item::StatusUpdate(a2a::TaskStatusUpdateEvent {
                task_id: TASK.into(),
                context_id: CONTEXT.into(),
                status: Some(a2a::TaskStatus {
                    state: state.into(),
                    message: text.map(message),
                    timestamp: None,
                }),
                metadata: None,
            })),
        }
    }

    fn task(state: TaskState) -> a2a::StreamResponse {
        a2a::StreamResponse {
            payload: Some(Item::Task(a2a::Task {
                id: TASK.into(),
                context_id: CONTEXT.into(),
                status: Some(a2a::TaskStatus {
                    state: state.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })),
        }
    }

    fn chunk(artifact_id: &str, text: &str, append: bool, last: bool) -> a2a::StreamResponse {
        a2a::StreamResponse {
            payload: Some(Item::ArtifactUpdate(a2a::TaskArtifactUpdateEvent {
                task_id: TASK.into(),
                context_id: CONTEXT.into(),
                artifact: Some(a2a::Artifact {
                    artifact_id: artifact_id.into(),
                    parts: vec![text_part(text)],
                    ..Default::default()
                }),
                append,
                last_chunk: last,
                metadata: None,
            })),
        }
    }

    /// Each event as `sequence kind detail`, the way a reader of the SSE stream sees it.
    fn run(items: Vec<a2a::StreamResponse>, end: bool) -> (Translator, Vec<String>) {
        let mut t = translator();
        let mut events = Vec::new();
        for item in items {
            events.extend(t.on_response(item));
        }
        if end {
            events.extend(t.on_end());
        }
        let lines = events.iter().map(describe).collect();
        (t, lines)
    }

    fn describe(e: &ChatEvent) -> String {
        assert_eq!(e.run_id, "run-1");
        assert_eq!(e.thread_id, CONTEXT);
        assert_eq!(e.agent, "Researcher");
        let p = e.payload.as_ref().unwrap();
        let detail = match p {
            Payload::RunStarted(s) => s.user_message_id.clone(),
            Payload::Thought(t) => t.content.clone(),
            Payload::TextDelta(d) => format!("{}={}", d.message_id, d.delta),
            Payload::Message(m) => format!("{}={}", m.message_id, m.content),
            Payload::RunCompleted(c) => c
                .final_message
                .as_ref()
                .map_or(String::new(), |m| m.content.clone()),
            Payload::RunError(r) => format!("{} {}", r.code, r.message),
            _ => String::new(),
        };
        format!("{} {} {}", e.sequence, p.kind(), detail)
    }

    #[test]
    fn a_streamed_task_reads_as_a_run() {
        let (t, events) = run(
            vec![
                task(TaskState::Submitted),
                status(TaskState::Working, Some("Looking it up")),
                chunk("a-1", "Hello", false, false),
                chunk("a-1", ", ", true, false),
                chunk("a-1", "world", true, true),
                status(TaskState::Completed, None),
            ],
            true,
        );
        assert_eq!(
            events,
            [
                "1 run_started user-msg-1",
                "2 thought Looking it up",
                "3 text_delta a-1=Hello",
                "4 text_delta a-1=, ",
                "5 text_delta a-1=world",
                "6 message a-1=Hello, world",
                "7 run_completed Hello, world",
            ]
        );
        assert_eq!(t.task_id(), Some(TASK));
        assert!(t.is_finished());
    }

    #[test]
    fn completion_closes_artifacts_without_a_last_chunk() {
        let (_, events) = run(
            vec![
                chunk("a-1", "Hi", false, false),
                status(TaskState::Completed, None),
            ],
            false,
        );
        assert_eq!(
            events,
            [
                "1 run_started user-msg-1",
                "2 text_delta a-1=Hi",
                "3 message a-1=Hi",
                "4 run_completed Hi",
            ]
        );
    }

    #[test]
    fn a_message_only_answer_completes_the_run() {
        let (_, events) = run(
            vec![a2a::StreamResponse {
                payload: Some(Item::Message(message("Just this"))),
            }],
            true,
        );
        assert_eq!(
            events,
            [
                "1 run_started user-msg-1",
                "2 text_delta m-1=Just this",
                "3 message m-1=Just this",
                "4 run_completed Just this",
            ]
        );
    }

    #[test]
    fn a_completed_status_message_is_the_answer() {
        let (_, events) = run(vec![status(TaskState::Completed, Some("Done."))], false);
        assert_eq!(
            events,
            [
                "1 run_started user-msg-1",
                "2 text_delta m-1=Done.",
                "3 message m-1=Done.",
                "4 run_completed Done.",
            ]
        );
    }

    #[test]
    fn failure_states_end_the_run_with_run_error() {
        let cases = [
            (
                TaskState::Failed,
                Some("the index is down"),
                "ABORTED the index is down",
            ),
            (TaskState::Failed, None, "ABORTED the agent failed the task"),
            (
                TaskState::Rejected,
                Some("not my topic"),
                "FAILED_PRECONDITION the agent rejected the task: not my topic",
            ),
            (
                TaskState::Canceled,
                None,
                "CANCELLED the agent canceled the task",
            ),
            (
                TaskState::AuthRequired,
                Some("log in"),
                "PERMISSION_DENIED the agent requires an authorization the bridge cannot provide",
            ),
        ];
        for (state, text, expected) in cases {
            let (t, events) = run(
                vec![
                    chunk("a-1", "partial", false, false),
                    status(state, text),
                    chunk("a-1", "ignored", true, true),
                ],
                true,
            );
            assert_eq!(
                events,
                [
                    "1 run_started user-msg-1".to_owned(),
                    "2 text_delta a-1=partial".to_owned(),
                    format!("3 run_error {expected}"),
                ],
                "{state:?}"
            );
            assert!(t.is_finished());
        }
    }

    #[test]
    fn input_required_asks_and_ends_the_run() {
        let (_, events) = run(
            vec![
                task(TaskState::Submitted),
                status(TaskState::InputRequired, Some("Which city?")),
            ],
            true,
        );
        assert_eq!(
            events,
            [
                "1 run_started user-msg-1",
                "2 text_delta m-1=Which city?",
                "3 message m-1=Which city?",
                "4 run_completed Which city?",
            ]
        );
    }

    #[test]
    fn a_stream_ending_early_is_an_error() {
        let (_, events) = run(vec![chunk("a-1", "par", false, false)], true);
        assert_eq!(
            events,
            [
                "1 run_started user-msg-1",
                "2 text_delta a-1=par",
                "3 run_error INTERNAL the agent ended the task stream before the task finished",
            ]
        );
    }

    #[test]
    fn a_resumed_task_does_not_ask_again() {
        let mut t = translator();
        t.resuming = true;
        let mut events = Vec::new();
        for item in [
            task(TaskState::InputRequired),
            status(TaskState::Working, None),
            chunk("a-1", "Paris it is", false, true),
            status(TaskState::Completed, None),
        ] {
            events.extend(t.on_response(item));
        }
        let lines: Vec<String> = events.iter().map(describe).collect();
        assert_eq!(
            lines,
            [
                "1 run_started user-msg-1",
                "2 text_delta a-1=Paris it is",
                "3 message a-1=Paris it is",
                "4 run_completed Paris it is",
            ]
        );
    }

    #[test]
    fn a_replaced_artifact_streams_as_a_new_message() {
        let (_, events) = run(
            vec![
                chunk("a-1", "draft", false, false),
                chunk("a-1", "final", false, true),
                status(TaskState::Completed, None),
            ],
            false,
        );
        assert_eq!(
            events,
            [
                "1 run_started user-msg-1",
                "2 text_delta a-1=draft",
                "3 text_delta a-1.1=final",
                "4 message a-1.1=final",
                "5 run_completed final",
            ]
        );
    }

    #[test]
    fn the_request_carries_the_thread_as_context() {
        let chat = ChatRequest {
            thread_id: "t-9".into(),
            message: "hi".into(),
            metadata: [("locale".to_owned(), "fr".to_owned())].into(),
            ..Default::default()
        };
        let request = send_request(&chat, "u-1", Some("task-7".into()));
        let message = request.message.unwrap();
        assert_eq!(message.context_id, "t-9");
        assert_eq!(message.task_id, "task-7");
        assert_eq!(message.message_id, "u-1");
        assert_eq!(message.role(), a2a::Role::User);
        assert_eq!(text_of(&message.parts), "hi");
        let metadata = request.metadata.unwrap();
        assert_eq!(
            metadata.fields["locale"].kind,
            Some(prost_types::value::Kind::StringValue("fr".into()))
        );
    }

    #[test]
    fn agent_text_is_bounded() {
        let long = "é".repeat(MAX_ERROR_TEXT + 10);
        assert_eq!(agent_text(&long).unwrap().chars().count(), MAX_ERROR_TEXT);
        assert_eq!(agent_text("  "), None);
    }
}
