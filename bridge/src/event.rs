//! The event model as clients see it: the JSON of an agent event (in SSE `data:` lines, the
//! non-streaming answer, thread logs and WebSocket messages: one flat object per event, with
//! `"type"` naming the payload, encoded once per event), and the one event the bridge writes
//! in a run's name: the terminal `run_error` when the agent cannot end the run itself.

use std::{
    fmt, io,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use agent_bridge_proto::v1::{ChatEvent, Message, RunError, Usage, chat_event::Payload};
use serde::Serialize;
use serde_json::value::RawValue;
use tonic::Code;

use crate::error::code_name;

/// The agent name on events the bridge writes itself.
pub(crate) const BRIDGE_AGENT: &str = "bridge";

/// The terminal `run_error` the bridge writes for a run right after its event `after`: same
/// run and thread, the next sequence number, `agent: "bridge"`.
pub(crate) fn bridge_error(
    run_id: &str,
    thread_id: &str,
    after: u64,
    code: Code,
    message: impl Into<String>,
) -> ChatEvent {
    ChatEvent {
        run_id: run_id.into(),
        thread_id: thread_id.into(),
        agent: BRIDGE_AGENT.into(),
        sequence: after + 1,
        timestamp: Some(SystemTime::now().into()),
        payload: Some(Payload::RunError(RunError {
            code: code_name(code).into(),
            message: message.into(),
        })),
    }
}

/// Whether an event ends its run.
pub(crate) fn is_terminal(event: &ChatEvent) -> bool {
    event.payload.as_ref().is_some_and(Payload::is_terminal)
}

/// A borrowed view of a [`ChatEvent`] that serializes to the client-facing JSON: one SSE
/// `data:` line, one WebSocket message, one entry of a thread's log.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub(crate) struct WireEvent<'a> {
    #[serde(flatten)]
    payload: WirePayload<'a>,
    run_id: &'a str,
    thread_id: &'a str,
    agent: &'a str,
    sequence: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    timestamp: Option<Rfc3339>,
    /// On `run_started` only: the W3C trace id of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePayload<'a> {
    RunStarted {
        user_message_id: &'a str,
    },
    Thought {
        content: &'a str,
    },
    ToolCall {
        call_id: &'a str,
        tool_name: &'a str,
        /// Valid JSON passes through as JSON; anything else as a string.
        #[schema(value_type = serde_json::Value)]
        arguments: Arguments<'a>,
    },
    ToolResult {
        call_id: &'a str,
        tool_name: &'a str,
        content: &'a str,
        is_error: bool,
    },
    TextDelta {
        message_id: &'a str,
        delta: &'a str,
    },
    Message(WireMessage<'a>),
    RunCompleted {
        #[serde(skip_serializing_if = "Option::is_none")]
        final_message: Option<WireMessage<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<WireUsage>,
    },
    RunError {
        code: &'a str,
        message: &'a str,
    },
    /// A payload this bridge does not know (a newer agent): passed on as a bare type.
    Unknown,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Arguments<'a> {
    Json(&'a RawValue),
    Text(&'a str),
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = EventMessage)]
pub(crate) struct WireMessage<'a> {
    message_id: &'a str,
    role: &'a str,
    content: &'a str,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Usage)]
pub(crate) struct WireUsage {
    input_tokens: u32,
    output_tokens: u32,
    tool_calls: u32,
}

impl<'a> From<&'a Message> for WireMessage<'a> {
    fn from(m: &'a Message) -> Self {
        Self {
            message_id: &m.message_id,
            role: &m.role,
            content: &m.content,
        }
    }
}

impl From<&Usage> for WireUsage {
    fn from(u: &Usage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            tool_calls: u.tool_calls,
        }
    }
}

impl<'a> From<&'a ChatEvent> for WireEvent<'a> {
    fn from(e: &'a ChatEvent) -> Self {
        let payload = match &e.payload {
            Some(Payload::RunStarted(p)) => WirePayload::RunStarted {
                user_message_id: &p.user_message_id,
            },
            Some(Payload::Thought(p)) => WirePayload::Thought {
                content: &p.content,
            },
            Some(Payload::ToolCall(p)) => WirePayload::ToolCall {
                call_id: &p.call_id,
                tool_name: &p.tool_name,
                arguments: match serde_json::from_str::<&RawValue>(&p.arguments_json) {
                    Ok(raw) => Arguments::Json(raw),
                    Err(_) => Arguments::Text(&p.arguments_json),
                },
            },
            Some(Payload::ToolResult(p)) => WirePayload::ToolResult {
                call_id: &p.call_id,
                tool_name: &p.tool_name,
                content: &p.content,
                is_error: p.is_error,
            },
            Some(Payload::TextDelta(p)) => WirePayload::TextDelta {
                message_id: &p.message_id,
                delta: &p.delta,
            },
            Some(Payload::Message(p)) => WirePayload::Message(p.into()),
            Some(Payload::RunCompleted(p)) => WirePayload::RunCompleted {
                final_message: p.final_message.as_ref().map(Into::into),
                usage: p.usage.as_ref().map(Into::into),
            },
            Some(Payload::RunError(p)) => WirePayload::RunError {
                code: &p.code,
                message: &p.message,
            },
            None => WirePayload::Unknown,
        };
        Self {
            payload,
            run_id: &e.run_id,
            thread_id: &e.thread_id,
            agent: &e.agent,
            sequence: e.sequence,
            timestamp: e.timestamp.map(Rfc3339),
            trace_id: None,
        }
    }
}

/// An event's time in RFC 3339, exactly as prost's `Timestamp` displays it (a fraction of
/// 0, 3, 6 or 9 digits, whichever is shortest without loss), written straight into the JSON:
/// humantime's stack-buffer formatter for 1970 to 9999, prost's own `Display` beyond. Once
/// per event, it was the costliest step of encoding one (a `String` and `core::fmt` for every
/// field; BENCHMARKS.md).
struct Rfc3339(prost_types::Timestamp);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prost_types::Timestamp { seconds, nanos } = self.0;
        let (Ok(secs), Ok(subsec)) = (u64::try_from(seconds), u32::try_from(nanos)) else {
            return self.0.fmt(f);
        };
        // humantime refuses year 10000 and later; prost normalizes out-of-range nanos.
        if secs >= 253_402_300_800 || subsec >= 1_000_000_000 {
            return self.0.fmt(f);
        }
        let time = UNIX_EPOCH + Duration::new(secs, subsec);
        if subsec == 0 {
            humantime::format_rfc3339_seconds(time).fmt(f)
        } else if subsec % 1_000_000 == 0 {
            humantime::format_rfc3339_millis(time).fmt(f)
        } else if subsec % 1_000 == 0 {
            humantime::format_rfc3339_micros(time).fmt(f)
        } else {
            humantime::format_rfc3339_nanos(time).fmt(f)
        }
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The SSE `event:` name of an event.
pub(crate) fn kind(event: &ChatEvent) -> &'static str {
    event.payload.as_ref().map_or("unknown", Payload::kind)
}

/// Encodes an event as one line of JSON (serde escapes newlines, so it never breaks SSE
/// framing).
pub(crate) fn to_json(event: &ChatEvent) -> String {
    to_json_traced(event, None)
}

/// [`to_json`], with `"trace_id"` added to `run_started` so a client can find the run's trace.
pub(crate) fn to_json_traced(event: &ChatEvent, trace_id: Option<&str>) -> String {
    let mut json = Vec::with_capacity(256);
    write_json(&mut json, event, trace_id);
    // JSON written from `&str`s is UTF-8.
    String::from_utf8(json).unwrap_or_else(|_| String::from("{}"))
}

/// Writes the same JSON as [`to_json_traced`] into `out`, without an intermediate string.
///
/// The streaming bulk of a run, text deltas and thoughts, is written here field by field with
/// [`write_str`]: serde_json escapes strings a byte at a time, and that loop alone was a third
/// of the bridge's instructions per event (BENCHMARKS.md, CPU per event). Every other event
/// goes through serde; a test holds both to the same bytes.
pub(crate) fn write_json<W: io::Write>(out: &mut W, event: &ChatEvent, trace_id: Option<&str>) {
    // Writing borrowed strings and numbers into memory cannot fail.
    let _ = match &event.payload {
        Some(Payload::TextDelta(p)) => write_fields(
            out,
            event,
            "text_delta",
            [("message_id", &p.message_id), ("delta", &p.delta)],
        ),
        Some(Payload::Thought(p)) => write_fields(out, event, "thought", [("content", &p.content)]),
        _ => {
            let mut wire = WireEvent::from(event);
            if matches!(event.payload, Some(Payload::RunStarted(_))) {
                wire.trace_id = trace_id;
            }
            serde_json::to_writer(out, &wire).map_err(io::Error::other)
        }
    };
}

/// An event whose payload is string `fields`, in [`WireEvent`]'s field order.
fn write_fields<W: io::Write, const N: usize>(
    out: &mut W,
    event: &ChatEvent,
    kind: &str,
    fields: [(&str, &String); N],
) -> io::Result<()> {
    out.write_all(b"{\"type\":\"")?;
    out.write_all(kind.as_bytes())?;
    out.write_all(b"\"")?;
    let common = [
        ("run_id", &event.run_id),
        ("thread_id", &event.thread_id),
        ("agent", &event.agent),
    ];
    for (key, value) in fields.into_iter().chain(common) {
        out.write_all(b",\"")?;
        out.write_all(key.as_bytes())?;
        out.write_all(b"\":")?;
        write_str(out, value)?;
    }
    out.write_all(b",\"sequence\":")?;
    out.write_all(itoa::Buffer::new().format(event.sequence).as_bytes())?;
    if let Some(timestamp) = event.timestamp {
        write!(out, ",\"timestamp\":\"{}\"", Rfc3339(timestamp))?;
    }
    out.write_all(b"}")
}

/// A JSON string, escaped exactly as serde_json escapes it: `"`, `\\` and the controls
/// (`\b \t \n \f \r`, the others as `\u00xx`); everything else, non-ASCII included, as is.
/// The bytes go 16 at a time: a chunk without escapes is checked in a loop without an early
/// exit, which the compiler turns into vector instructions; only a chunk with one is walked
/// byte by byte.
fn write_str<W: io::Write>(out: &mut W, s: &str) -> io::Result<()> {
    fn escaped(b: u8) -> bool {
        b < 0x20 || b == b'"' || b == b'\\'
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.write_all(b"\"")?;
    let (mut start, mut at) = (0, 0);
    while at < bytes.len() {
        if let Some(chunk) = bytes.get(at..at + 16)
            && !chunk.iter().fold(false, |any, &b| any | escaped(b))
        {
            at += 16;
            continue;
        }
        let end = bytes.len().min(at + 16);
        for (k, &b) in bytes[at..end].iter().enumerate() {
            if !escaped(b) {
                continue;
            }
            let i = at + k;
            out.write_all(&bytes[start..i])?;
            match b {
                b'"' => out.write_all(b"\\\"")?,
                b'\\' => out.write_all(b"\\\\")?,
                0x08 => out.write_all(b"\\b")?,
                b'\t' => out.write_all(b"\\t")?,
                b'\n' => out.write_all(b"\\n")?,
                0x0c => out.write_all(b"\\f")?,
                b'\r' => out.write_all(b"\\r")?,
                _ => out.write_all(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ])?,
            }
            start = i + 1;
        }
        at = end;
    }
    out.write_all(&bytes[start..])?;
    out.write_all(b"\"")
}

/// Reads an event back from its JSON (as stored in a thread's log), with the trace id
/// `run_started` carries; `None` for JSON this bridge did not write.
pub(crate) fn from_json(json: &[u8]) -> Option<(ChatEvent, Option<String>)> {
    use agent_bridge_proto::v1::{
        RunCompleted, RunStarted, TextDelta, Thought, ToolCall, ToolResult,
    };
    use serde_json::Value;

    let v: Value = serde_json::from_slice(json).ok()?;
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let message = |m: &Value| Message {
        message_id: text(m, "message_id"),
        role: text(m, "role"),
        content: text(m, "content"),
    };
    let payload = match v["type"].as_str()? {
        "run_started" => Payload::RunStarted(RunStarted {
            user_message_id: text(&v, "user_message_id"),
        }),
        "thought" => Payload::Thought(Thought {
            content: text(&v, "content"),
        }),
        "tool_call" => Payload::ToolCall(ToolCall {
            call_id: text(&v, "call_id"),
            tool_name: text(&v, "tool_name"),
            arguments_json: match &v["arguments"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        }),
        "tool_result" => Payload::ToolResult(ToolResult {
            call_id: text(&v, "call_id"),
            content: text(&v, "content"),
            is_error: v["is_error"].as_bool().unwrap_or(false),
            tool_name: text(&v, "tool_name"),
        }),
        "text_delta" => Payload::TextDelta(TextDelta {
            message_id: text(&v, "message_id"),
            delta: text(&v, "delta"),
        }),
        "message" => Payload::Message(message(&v)),
        "run_completed" => Payload::RunCompleted(RunCompleted {
            final_message: v.get("final_message").map(message),
            usage: v.get("usage").map(|u| Usage {
                input_tokens: u["input_tokens"].as_u64().unwrap_or(0) as u32,
                output_tokens: u["output_tokens"].as_u64().unwrap_or(0) as u32,
                tool_calls: u["tool_calls"].as_u64().unwrap_or(0) as u32,
            }),
        }),
        "run_error" => Payload::RunError(RunError {
            code: text(&v, "code"),
            message: text(&v, "message"),
        }),
        _ => return None,
    };
    let event = ChatEvent {
        run_id: text(&v, "run_id"),
        thread_id: text(&v, "thread_id"),
        agent: text(&v, "agent"),
        sequence: v["sequence"].as_u64().unwrap_or(0),
        timestamp: v["timestamp"].as_str().and_then(|t| t.parse().ok()),
        payload: Some(payload),
    };
    let trace_id = v["trace_id"].as_str().map(str::to_owned);
    Some((event, trace_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_bridge_proto::v1::{ToolCall, ToolResult};

    fn event(payload: Payload) -> ChatEvent {
        ChatEvent {
            run_id: "r".into(),
            thread_id: "t".into(),
            agent: "Coder".into(),
            sequence: 3,
            timestamp: None,
            payload: Some(payload),
        }
    }

    fn read_file_call() -> ChatEvent {
        event(Payload::ToolCall(ToolCall {
            call_id: "c".into(),
            tool_name: "read_file".into(),
            arguments_json: r#"{"path":"a"}"#.into(),
        }))
    }

    #[test]
    fn tool_arguments_pass_through_as_json() {
        let e = read_file_call();
        let v: serde_json::Value = serde_json::from_str(&to_json(&e)).unwrap();
        assert_eq!(v["type"], "tool_call");
        assert_eq!(v["arguments"]["path"], "a");
        assert_eq!(v["sequence"], 3);

        let e = event(Payload::ToolCall(ToolCall {
            arguments_json: "not json".into(),
            ..Default::default()
        }));
        let v: serde_json::Value = serde_json::from_str(&to_json(&e)).unwrap();
        assert_eq!(v["arguments"], "not json");
    }

    #[test]
    fn json_reads_back_as_the_same_event() {
        let e = read_file_call();
        let (back, trace) = from_json(to_json(&e).as_bytes()).unwrap();
        assert_eq!(back, e);
        assert_eq!(trace, None);
        assert!(from_json(b"{\"type\":\"from_the_future\"}").is_none());
    }

    #[test]
    fn newlines_never_reach_the_frame() {
        let e = event(Payload::ToolResult(ToolResult {
            content: "a\nb\r\nc".into(),
            ..Default::default()
        }));
        let json = to_json(&e);
        assert!(!json.contains('\n') && !json.contains('\r'), "{json}");
    }

    #[test]
    fn times_read_exactly_as_prost_writes_them() {
        let leap_day = 951_782_400; // 2000-02-29T00:00:00Z
        let last_second = 253_402_300_799; // 9999-12-31T23:59:59Z
        let mut cases = Vec::new();
        for seconds in [
            0,
            1,
            leap_day,
            leap_day + 86_399,
            1_733_270_400,
            4_102_444_800, // 2100-01-01, not a leap year
            last_second,
            last_second + 1, // year 10000: prost's own formatter
            -1,
            -62_135_596_800, // 0001-01-01
            i64::MIN / 2,
        ] {
            for nanos in [
                0,
                1,
                120_000_000,
                123_000,
                123_456_789,
                999_999_999,
                1_000_000_000,
                -1,
            ] {
                cases.push(prost_types::Timestamp { seconds, nanos });
            }
        }
        for ts in cases {
            let expected = serde_json::to_string(&ts.to_string()).unwrap();
            assert_eq!(
                serde_json::to_string(&Rfc3339(ts)).unwrap(),
                expected,
                "{ts:?}"
            );
        }
    }

    #[test]
    fn streamed_events_are_written_as_serde_writes_them() {
        let mut texts: Vec<String> = vec![
            String::new(),
            "plain".into(),
            "é, 😀, \u{2028}, \u{7f}".into(),
            "x".repeat(15) + "\"",
            "x".repeat(16) + "\\",
            "x".repeat(17) + "\n" + &"y".repeat(40) + "\u{1f}",
        ];
        texts.push((0u8..0x80).map(char::from).collect());
        texts.push(
            (0u8..0x80)
                .rev()
                .map(char::from)
                .cycle()
                .take(300)
                .collect(),
        );
        for text in &texts {
            for timestamp in [
                None,
                Some(prost_types::Timestamp {
                    seconds: 1_733_270_400,
                    nanos: 5,
                }),
            ] {
                for payload in [
                    Payload::TextDelta(agent_bridge_proto::v1::TextDelta {
                        message_id: format!("m\"{text}"),
                        delta: text.clone(),
                    }),
                    Payload::Thought(agent_bridge_proto::v1::Thought {
                        content: text.clone(),
                    }),
                ] {
                    let e = ChatEvent {
                        run_id: format!("{text}r"),
                        thread_id: "t\\".into(),
                        agent: text.clone(),
                        sequence: u64::MAX,
                        timestamp,
                        payload: Some(payload),
                    };
                    let mut fast = Vec::new();
                    write_json(&mut fast, &e, Some("trace"));
                    let serde = serde_json::to_string(&WireEvent::from(&e)).unwrap();
                    assert_eq!(String::from_utf8(fast).unwrap(), serde);
                }
            }
        }
    }
}
