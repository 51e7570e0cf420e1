//! The routes of the other wire dialects (`crate::dialect`): each decodes its protocol's
//! request, starts the run through the chat service (so auth, limits, metrics, thread
//! recording and cancellation are the native route's) and answers in its dialect.
//! Refusals before the stream are problem documents; a failure after it is the dialect's own
//! error event.
//!
//! | route | dialect |
//! |---|---|
//! | `POST /v1/agents/{agent}/ai-sdk/chat`, `GET …/ai-sdk/chat/{thread}/stream` | Vercel AI SDK UI message stream, and its resume |
//! | `POST /v1/agents/{agent}/ag-ui`, `GET …/ag-ui/{thread}/stream` | AG-UI, and our resume addition |
//! | `POST /v1/agents/{agent}/a2a`, `GET …/.well-known/agent-card.json` | A2A 1.0 JSON-RPC, agent card |
//! | `POST /v1/chat/completions` | OpenAI Chat Completions (`model` = agent) |
//! | `POST /v1/agents/{agent}/chat/interactions` | seed 001's `start / agent_interaction / complete / error` |

use axum::{
    Extension, Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::Value;

use super::extract::{AgentPath, ThreadPath, ValidJson, callable_agent, named_thread};
use super::openapi::{AgentParams, Refusals, ThreadParams};
use crate::{
    auth::Identity,
    chat::{self, ChatInput},
    dialect::{
        Encoder,
        a2a::{self, A2a, Call},
        ag_ui::{AgUi, RunAgentInput},
        ai_sdk::{self, AiSdk},
        interactions::Interactions,
        openai::{Collected, Collector, CompletionRequest, OpenAi},
    },
    error::ApiError,
    metrics::Transport,
    sse,
    state::AppState,
    threads,
    validate::{self, ChatBody, ThreadId},
};

/// The dialects' routes; they need an identity like every `/v1` route (merge them before the
/// auth layer).
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/agents/{agent}/ai-sdk/chat", post(ai_sdk_chat))
        .route(
            "/v1/agents/{agent}/ai-sdk/chat/{thread}/stream",
            get(ai_sdk_resume),
        )
        .route("/v1/agents/{agent}/ag-ui", post(ag_ui_run))
        .route(
            "/v1/agents/{agent}/ag-ui/{thread}/stream",
            get(ag_ui_resume),
        )
        .route("/v1/agents/{agent}/a2a", post(a2a_rpc))
        .route(
            "/v1/agents/{agent}/.well-known/agent-card.json",
            get(a2a_card),
        )
        .route("/v1/chat/completions", post(openai_completions))
        .route(
            "/v1/agents/{agent}/chat/interactions",
            post(interactions_chat),
        )
}

/// An SSE response for `run` in `encoder`'s dialect, with the dialect's own headers.
fn stream<E: Encoder + Unpin>(state: &AppState, run: crate::run::Run, encoder: E) -> Response {
    sse::run(run, encoder, state.sse)
}

/// A run's input from a dialect's request: the message it carries (`what`, in the refusal
/// when it carries none), checked like the native body's, in `thread`, without metadata.
fn input(
    thread: Option<ThreadId>,
    text: Option<String>,
    what: &str,
) -> Result<ChatInput, ApiError> {
    let text = text.ok_or_else(|| ApiError::InvalidRequest(format!("{what} carries no text")))?;
    validate::check_message(&text)?;
    Ok(ChatInput {
        thread,
        message: text,
        metadata: Default::default(),
    })
}

// --- Vercel AI SDK -------------------------------------------------------------------------

/// `POST /v1/agents/{agent}/ai-sdk/chat`: what `DefaultChatTransport` posts; the chat id is
/// the thread.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent}/ai-sdk/chat",
    tag = "dialects",
    params(AgentParams),
    request_body(content_type = "application/json", description = "What the AI SDK's `DefaultChatTransport` posts: `{id, messages, trigger, messageId}`"),
    responses(
        (status = 200, description = "The AI SDK UI message stream (v1), ending with `[DONE]`", content_type = "text/event-stream"),
        Refusals,
    )
)]
pub(super) async fn ai_sdk_chat(
    State(state): State<AppState>,
    AgentPath(agent, identity): AgentPath,
    ValidJson(body): ValidJson<ai_sdk::ChatRequest>,
) -> Result<Response, ApiError> {
    let thread = named_thread(&identity, &agent, "id", body.id.clone())?;
    let input = input(Some(thread), body.user_text(), "the last user message")?;
    let run = chat::start(&state, &identity, &agent, input, Transport::ai_sdk).await?;
    Ok(stream(&state, run, AiSdk::new()))
}

/// `GET /v1/agents/{agent}/ai-sdk/chat/{thread}/stream` (`useChat({ resume: true })`): the
/// thread's active run from its start, from the hub (so on any replica); 204 when none.
#[utoipa::path(
    get,
    path = "/v1/agents/{agent}/ai-sdk/chat/{thread}/stream",
    tag = "dialects",
    params(ThreadParams),
    responses(
        (status = 200, description = "The thread's active run, replayed from its start", content_type = "text/event-stream"),
        (status = 204, description = "No run is active on the thread"),
        Refusals,
    )
)]
pub(super) async fn ai_sdk_resume(
    State(state): State<AppState>,
    path: ThreadPath,
) -> Result<Response, ApiError> {
    resume(&state, &path, None, Transport::ai_sdk, AiSdk::new()).await
}

// --- AG-UI ---------------------------------------------------------------------------------

/// `POST /v1/agents/{agent}/ag-ui`: a `RunAgentInput`; `threadId` is the thread.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent}/ag-ui",
    tag = "dialects",
    params(AgentParams),
    request_body(content_type = "application/json", description = "An AG-UI `RunAgentInput` (`threadId` is the thread)"),
    responses(
        (status = 200, description = "AG-UI events, each event's last frame with an SSE `id:`", content_type = "text/event-stream"),
        Refusals,
    )
)]
pub(super) async fn ag_ui_run(
    State(state): State<AppState>,
    AgentPath(agent, identity): AgentPath,
    ValidJson(body): ValidJson<RunAgentInput>,
) -> Result<Response, ApiError> {
    let thread = named_thread(&identity, &agent, "threadId", body.thread_id.clone())?;
    let input = input(Some(thread), body.user_text(), "the last user message")?;
    let run = chat::start(&state, &identity, &agent, input, Transport::ag_ui).await?;
    let encoder = AgUi::new(Some(body.thread_id), Some(body.run_id));
    Ok(stream(&state, run, encoder))
}

/// `GET /v1/agents/{agent}/ag-ui/{thread}/stream` with `Last-Event-ID` (our addition to
/// AG-UI): the thread's active run after that event, then live; 204 when no run is active.
#[utoipa::path(
    get,
    path = "/v1/agents/{agent}/ag-ui/{thread}/stream",
    tag = "dialects",
    params(ThreadParams, ("Last-Event-ID" = Option<String>, Header, description = "The last event id the client saw")),
    responses(
        (status = 200, description = "The active run's AG-UI events after that id", content_type = "text/event-stream"),
        (status = 204, description = "No run is active on the thread"),
        Refusals,
    )
)]
pub(super) async fn ag_ui_resume(
    State(state): State<AppState>,
    path: ThreadPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    resume(&state, &path, last, Transport::ag_ui, AgUi::new(None, None)).await
}

// --- A2A -----------------------------------------------------------------------------------

/// `POST /v1/agents/{agent}/a2a`: JSON-RPC. Protocol errors (unknown method, bad params) are
/// JSON-RPC error responses; refusals (auth, limits, unknown agent) stay problem documents.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent}/a2a",
    tag = "dialects",
    params(AgentParams),
    request_body(content_type = "application/json", description = "A2A 1.0 JSON-RPC: `SendStreamingMessage` (`message/stream`) or `SubscribeToTask` (`tasks/resubscribe`)"),
    responses(
        (status = 200, description = "JSON-RPC responses carrying `StreamResponse`s over SSE, or a JSON-RPC error", content(
            ("text/event-stream"),
            ("application/json"),
        )),
        Refusals,
    )
)]
pub(super) async fn a2a_rpc(
    State(state): State<AppState>,
    AgentPath(agent, identity): AgentPath,
    ValidJson(body): ValidJson<Value>,
) -> Result<Response, ApiError> {
    let request: a2a::RpcRequest = match serde_json::from_value(body) {
        Ok(request) => request,
        Err(e) => {
            let error = (
                a2a::codes::INVALID_REQUEST,
                format!("not a JSON-RPC request: {e}"),
            );
            return Ok(Json(a2a::error_response(&Value::Null, error)).into_response());
        }
    };
    let rpc_error = |error| Ok(Json(a2a::error_response(&request.id, error)).into_response());
    match request.call() {
        Err(error) => rpc_error(error),
        Ok(Call::Stream { text, context_id }) => {
            let thread = match context_id {
                Some(id) => match ThreadId::parse("contextId", id) {
                    Ok(thread) => {
                        identity.authorize(&agent.name, Some(thread.as_str()))?;
                        Some(thread)
                    }
                    Err(e) => return rpc_error((a2a::codes::INVALID_PARAMS, e.to_string())),
                },
                None => None,
            };
            let input = input(thread, Some(text), "the message")?;
            let run = chat::start(&state, &identity, &agent, input, Transport::a2a).await?;
            Ok(stream(&state, run, A2a::new(request.id.clone())))
        }
        Ok(Call::Subscribe { task_id }) => {
            let not_found = (
                a2a::codes::TASK_NOT_FOUND,
                format!("task {task_id:?} is not running"),
            );
            let Some((thread_id, run_id)) = a2a::parse_task_id(&task_id) else {
                return rpc_error(not_found);
            };
            let Ok(thread) = ThreadId::parse("id", thread_id.to_owned()) else {
                return rpc_error(not_found);
            };
            identity.authorize(&agent.name, Some(thread.as_str()))?;
            let key = threads::key(&identity, &agent, &thread);
            if state.hub.active_run(&key).await?.as_deref() != Some(run_id) {
                return rpc_error(not_found);
            }
            let Some((followed, guard)) =
                threads::follow_active_run(&state, &identity, &key, None, Transport::a2a).await?
            else {
                return rpc_error(not_found);
            };
            Ok(super::follow(
                &state,
                followed,
                A2a::new(request.id.clone()),
                guard,
            ))
        }
    }
}

/// `GET /v1/agents/{agent}/.well-known/agent-card.json`: the agent's A2A card, naming this
/// bridge's JSON-RPC endpoint as the client reached it.
#[utoipa::path(
    get,
    path = "/v1/agents/{agent}/.well-known/agent-card.json",
    tag = "dialects",
    params(AgentParams),
    responses(
        (status = 200, description = "The agent's A2A 1.0 card", content_type = "application/json"),
        Refusals,
    )
)]
pub(super) async fn a2a_card(AgentPath(agent, _): AgentPath, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    let endpoint = format!("{scheme}://{host}/v1/agents/{}/a2a", agent.name);
    Json(a2a::agent_card(&agent.name, &endpoint)).into_response()
}

// --- OpenAI --------------------------------------------------------------------------------

/// `POST /v1/chat/completions`: `model` names the agent; `metadata.thread_id` (optional)
/// the thread, the rest of `metadata` goes to the agent.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "dialects",
    request_body(content_type = "application/json", description = "OpenAI Chat Completions: `model` names the agent, `metadata.thread_id` the thread"),
    responses(
        (status = 200, description = "`chat.completion.chunk`s and `[DONE]` (`stream: true`), or one `chat.completion`", content(
            ("text/event-stream"),
            ("application/json"),
        )),
        Refusals,
    )
)]
pub(super) async fn openai_completions(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    ValidJson(mut body): ValidJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let agent = callable_agent(&state, &identity, &body.model)?;
    let thread = body
        .metadata
        .remove("thread_id")
        .map(|id| named_thread(&identity, &agent, "metadata.thread_id", id))
        .transpose()?;
    validate::check_metadata(&body.metadata)?;
    let input = ChatInput {
        metadata: std::mem::take(&mut body.metadata),
        ..input(thread, body.user_text(), "the last user message")?
    };
    if body.stream {
        let run = chat::start(&state, &identity, &agent, input, Transport::openai).await?;
        let include_usage = body.stream_options.is_some_and(|o| o.include_usage);
        return Ok(stream(&state, run, OpenAi::new(body.model, include_usage)));
    }
    let mut run = chat::start(&state, &identity, &agent, input, Transport::openai_json).await?;
    let mut collector = Collector::default();
    while let Some(emitted) = run.events.recv().await {
        match collector.push(&body.model, &emitted.event) {
            Some(Collected::Completed(completion)) => return Ok(Json(completion).into_response()),
            Some(Collected::Failed { code, message }) => {
                return Err(ApiError::RunFailed {
                    run_id: emitted.event.run_id.clone(),
                    code,
                    message,
                });
            }
            None => {}
        }
    }
    Err(ApiError::ShuttingDown)
}

// --- Seed 001 ------------------------------------------------------------------------------

/// `POST /v1/agents/{agent}/chat/interactions`: the native chat body, answered in seed 001's
/// vocabulary.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent}/chat/interactions",
    tag = "dialects",
    params(AgentParams),
    request_body = ChatBody,
    responses(
        (status = 200, description = "Seed 001's `{type, data}` events: start, agent_interaction, complete, error", content_type = "text/event-stream"),
        Refusals,
    )
)]
pub(super) async fn interactions_chat(
    State(state): State<AppState>,
    AgentPath(agent, identity): AgentPath,
    ValidJson(mut body): ValidJson<ChatBody>,
) -> Result<Response, ApiError> {
    let thread = body.check()?;
    if let Some(thread) = &thread {
        identity.authorize(&agent.name, Some(thread.as_str()))?;
    }
    let input = ChatInput {
        thread,
        message: body.message,
        metadata: body.metadata,
    };
    let run = chat::start(&state, &identity, &agent, input, Transport::interactions).await?;
    Ok(stream(&state, run, Interactions))
}

// --- Resuming a thread's active run ----------------------------------------------------------

/// The thread's active run (see [`follow_active_run`]) as an SSE response in `encoder`'s
/// dialect; 204 when no run is active.
async fn resume<E: Encoder + Unpin>(
    state: &AppState,
    ThreadPath { identity, key, .. }: &ThreadPath,
    last: Option<String>,
    transport: Transport,
    encoder: E,
) -> Result<Response, ApiError> {
    Ok(
        match threads::follow_active_run(state, identity, key, last, transport).await? {
            Some((followed, guard)) => super::follow(state, followed, encoder, guard),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}
