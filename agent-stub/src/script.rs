//! The events a run plays, in order, before any envelope (ids, sequence, time) is added.

use agent_bridge_proto::v1::{
    Message, RunCompleted, RunStarted, TextDelta, Thought, ToolCall, ToolResult, Usage,
    chat_event::Payload,
};

use crate::threads::MessageIds;

/// The team member that plans.
pub(crate) const PLANNER: &str = "Planner";
/// The team member that reads files and answers; it also writes the answer to the thread.
pub(crate) const CODER: &str = "Coder";
/// Not a team member: the agent itself, for errors.
pub(crate) const SYSTEM: &str = "System";

const TOOL_CALL_ID: &str = "call-1";
const TOOL_NAME: &str = "read_file";
const TOOL_PATH: &str = "src/App.tsx";
/// Two lines on purpose: consumers must carry a newline through intact.
const TOOL_OUTPUT: &str =
    "import React from 'react';\nexport default function App() { return <h1>Hello</h1>; }";

/// One event of a script: who says it and what.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    pub(crate) agent: &'static str,
    pub(crate) payload: Payload,
}

/// The steps of one run, produced lazily so that a burst of a million events costs nothing up
/// front.
#[derive(Debug)]
pub(crate) enum Script {
    Default(std::vec::IntoIter<Step>),
    Burst(Burst),
}

/// The event kinds of the default run (the Planner then the Coder) with `deltas` text
/// deltas: what clients of the stub can expect, in order.
pub fn default_kinds(deltas: usize) -> Vec<&'static str> {
    let mut kinds = vec![
        "run_started",
        "thought",
        "tool_call",
        "tool_result",
        "thought",
    ];
    kinds.extend(std::iter::repeat_n("text_delta", deltas));
    kinds.extend(["message", "run_completed"]);
    kinds
}

impl Script {
    /// The "Planner + Coder" run answering `message` (see the crate docs).
    pub(crate) fn default_run(message: &str, ids: MessageIds) -> Self {
        let answer = format!(
            "I read {TOOL_PATH}. You said: {message}. It renders one heading, so the change is small."
        );
        let arguments_json = serde_json::json!({ "path": TOOL_PATH }).to_string();
        let final_message = Message {
            message_id: ids.answer.clone(),
            role: "assistant".into(),
            content: answer.clone(),
        };

        let mut steps = vec![
            step(
                PLANNER,
                Payload::RunStarted(RunStarted {
                    user_message_id: ids.user,
                }),
            ),
            step(
                PLANNER,
                Payload::Thought(Thought {
                    content: format!(
                        "The user asks: \"{message}\". Coder should read the project before answering."
                    ),
                }),
            ),
            step(
                CODER,
                Payload::ToolCall(ToolCall {
                    call_id: TOOL_CALL_ID.into(),
                    tool_name: TOOL_NAME.into(),
                    arguments_json,
                }),
            ),
            step(
                CODER,
                Payload::ToolResult(ToolResult {
                    call_id: TOOL_CALL_ID.into(),
                    content: TOOL_OUTPUT.into(),
                    is_error: false,
                    tool_name: TOOL_NAME.into(),
                }),
            ),
            step(
                CODER,
                Payload::Thought(Thought {
                    content: "App.tsx renders a single heading; I can answer now.".into(),
                }),
            ),
        ];
        let deltas_before = steps.len();
        steps.extend(answer.split_inclusive(' ').map(|token| {
            step(
                CODER,
                Payload::TextDelta(TextDelta {
                    message_id: ids.answer.clone(),
                    delta: token.into(),
                }),
            )
        }));
        let output_tokens = steps.len() - deltas_before;
        steps.push(step(CODER, Payload::Message(final_message.clone())));
        steps.push(step(
            CODER,
            Payload::RunCompleted(RunCompleted {
                final_message: Some(final_message),
                usage: Some(Usage {
                    input_tokens: words(message),
                    output_tokens: saturating_u32(output_tokens as u64),
                    tool_calls: 1,
                }),
            }),
        ));
        Script::Default(steps.into_iter())
    }

    /// `run_started`, `count` text deltas of exactly `size` ASCII bytes, `message`,
    /// `run_completed`.
    pub(crate) fn burst(message: &str, ids: MessageIds, count: u64, size: usize) -> Self {
        Script::Burst(Burst {
            stage: BurstStage::Started,
            delta: "x".repeat(size),
            deltas_left: count,
            count,
            input_tokens: words(message),
            ids,
        })
    }

    /// How many steps are left (all of them, before the first `next`).
    pub(crate) fn len(&self) -> u64 {
        match self {
            Script::Default(steps) => steps.len() as u64,
            Script::Burst(burst) => burst.len(),
        }
    }
}

impl Iterator for Script {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        match self {
            Script::Default(steps) => steps.next(),
            Script::Burst(burst) => burst.next(),
        }
    }
}

/// The state of a burst in progress.
#[derive(Debug)]
pub(crate) struct Burst {
    stage: BurstStage,
    /// Built once; every delta is a clone of it.
    delta: String,
    deltas_left: u64,
    count: u64,
    input_tokens: u32,
    ids: MessageIds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BurstStage {
    Started,
    Deltas,
    Message,
    Completed,
    Done,
}

impl Burst {
    fn len(&self) -> u64 {
        match self.stage {
            BurstStage::Started => self.deltas_left.saturating_add(3),
            BurstStage::Deltas => self.deltas_left.saturating_add(2),
            BurstStage::Message => 2,
            BurstStage::Completed => 1,
            BurstStage::Done => 0,
        }
    }

    fn final_message(&self) -> Message {
        Message {
            message_id: self.ids.answer.clone(),
            role: "assistant".into(),
            content: format!("burst of {} events", self.count),
        }
    }

    fn next(&mut self) -> Option<Step> {
        loop {
            match self.stage {
                BurstStage::Started => {
                    self.stage = BurstStage::Deltas;
                    return Some(step(
                        CODER,
                        Payload::RunStarted(RunStarted {
                            user_message_id: self.ids.user.clone(),
                        }),
                    ));
                }
                BurstStage::Deltas if self.deltas_left > 0 => {
                    self.deltas_left -= 1;
                    return Some(step(
                        CODER,
                        Payload::TextDelta(TextDelta {
                            message_id: self.ids.answer.clone(),
                            delta: self.delta.clone(),
                        }),
                    ));
                }
                BurstStage::Deltas => self.stage = BurstStage::Message,
                BurstStage::Message => {
                    self.stage = BurstStage::Completed;
                    return Some(step(CODER, Payload::Message(self.final_message())));
                }
                BurstStage::Completed => {
                    self.stage = BurstStage::Done;
                    return Some(step(
                        CODER,
                        Payload::RunCompleted(RunCompleted {
                            final_message: Some(self.final_message()),
                            usage: Some(Usage {
                                input_tokens: self.input_tokens,
                                output_tokens: saturating_u32(self.count),
                                tool_calls: 0,
                            }),
                        }),
                    ));
                }
                BurstStage::Done => return None,
            }
        }
    }
}

fn step(agent: &'static str, payload: Payload) -> Step {
    Step { agent, payload }
}

/// Usage counts "tokens" as whitespace-separated words: deterministic and good enough here.
fn words(text: &str) -> u32 {
    saturating_u32(text.split_whitespace().count() as u64)
}

fn saturating_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> MessageIds {
        MessageIds {
            user: "m-1".into(),
            answer: "m-2".into(),
        }
    }

    fn kinds(script: Script) -> Vec<&'static str> {
        script.map(|step| step.payload.kind()).collect()
    }

    #[test]
    fn the_default_script_plays_planner_then_coder() {
        let message = "make the header blue";
        let script = Script::default_run(message, ids());
        let steps: Vec<Step> = script.collect();

        let kinds: Vec<_> = steps.iter().map(|s| s.payload.kind()).collect();
        let deltas = kinds.iter().filter(|k| **k == "text_delta").count();
        assert_eq!(kinds, default_kinds(deltas));
        assert!(deltas > 1);

        let agents: Vec<_> = steps.iter().map(|s| s.agent).collect();
        assert_eq!(agents[..2], [PLANNER, PLANNER]);
        assert!(agents[2..].iter().all(|a| *a == CODER));

        let Payload::RunStarted(started) = &steps[0].payload else {
            panic!()
        };
        assert_eq!(started.user_message_id, "m-1");
        let Payload::ToolCall(call) = &steps[2].payload else {
            panic!()
        };
        assert_eq!(call.arguments_json, r#"{"path":"src/App.tsx"}"#);
        let Payload::ToolResult(result) = &steps[3].payload else {
            panic!()
        };
        assert!(result.content.contains('\n'));
        assert_eq!(
            (result.call_id.as_str(), result.is_error),
            ("call-1", false)
        );
    }

    #[test]
    fn the_deltas_concatenate_to_the_answer() {
        let message = "make the header blue";
        let steps: Vec<Step> = Script::default_run(message, ids()).collect();
        let streamed: String = steps
            .iter()
            .filter_map(|s| match &s.payload {
                Payload::TextDelta(d) => {
                    assert_eq!(d.message_id, "m-2");
                    Some(d.delta.as_str())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            streamed,
            "I read src/App.tsx. You said: make the header blue. It renders one heading, so the change is small."
        );

        let Some(Payload::Message(message_event)) = steps.iter().rev().nth(1).map(|s| &s.payload)
        else {
            panic!("no message before run_completed")
        };
        assert_eq!(message_event.content, streamed);
        let Some(Payload::RunCompleted(done)) = steps.last().map(|s| &s.payload) else {
            panic!("no run_completed")
        };
        assert_eq!(done.final_message.as_ref(), Some(message_event));
        let usage = done.usage.unwrap();
        let deltas = steps.iter().filter(|s| s.payload.kind() == "text_delta");
        assert_eq!(usage.input_tokens, 4);
        assert_eq!(usage.output_tokens as usize, deltas.count());
        assert_eq!(usage.tool_calls, 1);
    }

    #[test]
    fn a_script_knows_its_length() {
        let script = Script::default_run("hi", ids());
        let len = script.len();
        assert_eq!(len, script.count() as u64);

        let mut burst = Script::burst("hi", ids(), 5, 3);
        assert_eq!(burst.len(), 8);
        burst.next();
        assert_eq!(burst.len(), 7);
        assert_eq!(burst.count(), 7);
    }

    #[test]
    fn a_burst_sends_fixed_size_deltas() {
        let steps: Vec<Step> = Script::burst("go", ids(), 4, 10).collect();
        assert_eq!(steps.len(), 4 + 3);
        assert_eq!(
            kinds(Script::burst("go", ids(), 2, 10)),
            [
                "run_started",
                "text_delta",
                "text_delta",
                "message",
                "run_completed"
            ]
        );
        for step in &steps[1..5] {
            let Payload::TextDelta(delta) = &step.payload else {
                panic!()
            };
            assert_eq!(delta.delta.len(), 10);
            assert!(delta.delta.is_ascii());
        }
        assert_eq!(
            kinds(Script::burst("go", ids(), 0, 10)),
            ["run_started", "message", "run_completed"]
        );
    }
}
