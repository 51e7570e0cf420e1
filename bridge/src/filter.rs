//! What leaves the edge: per agent, which event kinds reach clients, and which JSON fields of
//! tool arguments and results are redacted.
//!
//! A hidden event is dropped, not renumbered: the `id:`/`sequence` of the events that do
//! reach the client stay the agent's own sequence numbers, so a client may see gaps
//! (`1, 3, 5, …`). Ids stay honest that way: the same event has the same id for every
//! client and in the agent's history, whatever each client is allowed to see.

use std::collections::{HashMap, HashSet};

use agent_bridge_proto::v1::{ChatEvent, chat_event::Payload};
use serde_json::Value;

use crate::config::HideRule;

/// The text that replaces a redacted value.
pub(crate) const REDACTED: &str = "[redacted]";

/// The filter for one agent's events.
#[derive(Debug, Default, Clone)]
pub(crate) struct EventFilter {
    hidden: HashSet<String>,
    redact: HashSet<String>,
}

impl EventFilter {
    /// The filter of `agent` from the configured rules (`*` rules apply to every agent).
    pub(crate) fn for_agent(agent: &str, rules: &[HideRule], redact_fields: &[String]) -> Self {
        let hidden = rules
            .iter()
            .filter(|r| r.agent == agent || r.agent == "*")
            .flat_map(|r| r.kinds.iter().cloned())
            .collect();
        Self {
            hidden,
            redact: redact_fields.iter().cloned().collect(),
        }
    }

    /// Applies the filter: `false` when the event must not reach clients, else the event
    /// with its configured fields redacted.
    pub(crate) fn apply(&self, event: &mut ChatEvent) -> bool {
        if self.hidden.contains(crate::event::kind(event)) {
            return false;
        }
        if self.redact.is_empty() {
            return true;
        }
        match &mut event.payload {
            Some(Payload::ToolCall(call)) => self.redact_json(&mut call.arguments_json),
            Some(Payload::ToolResult(result)) => self.redact_json(&mut result.content),
            _ => {}
        }
        true
    }

    /// Redacts a JSON document in place; text that is not JSON is left as it is.
    fn redact_json(&self, text: &mut String) {
        let Ok(mut value) = serde_json::from_str::<Value>(text) else {
            return;
        };
        if self.redact_value(&mut value)
            && let Ok(redacted) = serde_json::to_string(&value)
        {
            *text = redacted;
        }
    }

    fn redact_value(&self, value: &mut Value) -> bool {
        match value {
            Value::Object(map) => {
                let mut changed = false;
                for (key, v) in map.iter_mut() {
                    if self.redact.contains(key) {
                        *v = Value::String(REDACTED.into());
                        changed = true;
                    } else {
                        changed |= self.redact_value(v);
                    }
                }
                changed
            }
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| self.redact_value(v) | changed),
            _ => false,
        }
    }
}

/// Every configured agent's policy.
pub(crate) fn filters(
    agents: impl Iterator<Item = String>,
    rules: &[HideRule],
    redact_fields: &[String],
) -> HashMap<String, EventFilter> {
    agents
        .map(|a| {
            let p = EventFilter::for_agent(&a, rules, redact_fields);
            (a, p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_bridge_proto::v1::{Thought, ToolCall};

    fn event(payload: Payload) -> ChatEvent {
        ChatEvent {
            payload: Some(payload),
            ..Default::default()
        }
    }

    #[test]
    fn hides_kinds_and_redacts_fields_at_any_depth() {
        let rules = vec!["a=thought".parse().unwrap()];
        let policy = EventFilter::for_agent("a", &rules, &["password".into()]);
        assert!(!policy.apply(&mut event(Payload::Thought(Thought::default()))));
        let mut call = event(Payload::ToolCall(ToolCall {
            arguments_json: r#"{"user":"u","password":"p","nested":[{"password":1}]}"#.into(),
            ..Default::default()
        }));
        assert!(policy.apply(&mut call));
        let Some(Payload::ToolCall(c)) = &call.payload else {
            unreachable!()
        };
        let v: Value = serde_json::from_str(&c.arguments_json).unwrap();
        assert_eq!(v["password"], REDACTED);
        assert_eq!(v["nested"][0]["password"], REDACTED);
        assert_eq!(v["user"], "u");

        let other = EventFilter::for_agent("b", &rules, &[]);
        assert!(other.apply(&mut event(Payload::Thought(Thought::default()))));
    }
}
