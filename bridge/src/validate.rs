//! Input validation: what a client sends is checked here before it reaches an agent or an
//! SSE frame. Every refusal names the field and the rule.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use serde::Deserialize;

use crate::error::ApiError;

/// Longest user message, in characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 32 * 1024;
/// Longest thread (and other) id.
pub(crate) const MAX_ID_LEN: usize = 128;
/// Most metadata entries, and the longest key and value.
pub(crate) const MAX_METADATA_ENTRIES: usize = 32;
pub(crate) const MAX_METADATA_KEY: usize = 64;
pub(crate) const MAX_METADATA_VALUE: usize = 1024;

/// True when `s` is 1..=`max` characters of `[A-Za-z0-9._:-]`: safe in URLs, logs, Redis
/// keys and SSE `id:` lines (no whitespace, no newline).
pub(crate) fn is_safe_id(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A thread id a client sent, checked once: 1-128 characters of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ThreadId(String);

impl ThreadId {
    /// Checks `value`, naming `field` in the refusal.
    pub(crate) fn parse(field: &str, value: String) -> Result<Self, ApiError> {
        check_id(field, &value)?;
        Ok(Self(value))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ThreadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The body of `POST /v1/agents/{agent}/chat`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChatBody {
    /// The user's message (1 to 32768 characters, not only whitespace).
    pub message: String,
    /// Runs the message in this thread: recorded for the thread's subscribers, one run at a
    /// time. Without it the run is a one-off.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Passed to the agent as is (at most 32 entries).
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

impl ChatBody {
    /// Checks every field; the thread id comes back typed.
    pub(crate) fn check(&mut self) -> Result<Option<ThreadId>, ApiError> {
        check_message(&self.message)?;
        let thread = self
            .thread_id
            .take()
            .map(|t| ThreadId::parse("thread_id", t))
            .transpose()?;
        check_metadata(&self.metadata)?;
        Ok(thread)
    }
}

/// Checks the content type, parses and validates a JSON body.
#[cfg(test)]
fn chat_body(headers: &HeaderMap, body: &[u8]) -> Result<Option<ThreadId>, ApiError> {
    require_json(headers)?;
    parse_json::<ChatBody>(body)?.check()
}

/// `Content-Type` must be `application/json` (parameters such as charset allowed) or a
/// `+json` type.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|mime| {
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Parses JSON, telling syntax errors (400) from shape errors (422).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::MalformedBody(
            "the body is not valid UTF-8".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::InvalidRequest(e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::MalformedBody(format!("the body is not valid JSON: {e}"))
            }
        }
    })
}

pub(crate) fn check_message(message: &str) -> Result<(), ApiError> {
    if message.trim().is_empty() {
        return Err(ApiError::InvalidRequest(
            "`message` must not be empty".into(),
        ));
    }
    let chars = message.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(ApiError::InvalidRequest(format!(
            "`message` has {chars} characters; at most {MAX_MESSAGE_CHARS} are allowed"
        )));
    }
    Ok(())
}

pub(crate) fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    if is_safe_id(value, MAX_ID_LEN) {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(format!(
            "`{field}` must be 1-{MAX_ID_LEN} characters of A-Z a-z 0-9 . _ : -"
        )))
    }
}

pub(crate) fn check_metadata(metadata: &HashMap<String, String>) -> Result<(), ApiError> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(ApiError::InvalidRequest(format!(
            "`metadata` has {} entries; at most {MAX_METADATA_ENTRIES} are allowed",
            metadata.len()
        )));
    }
    for (key, value) in metadata {
        if !is_safe_id(key, MAX_METADATA_KEY) {
            return Err(ApiError::InvalidRequest(format!(
                "`metadata` keys must be 1-{MAX_METADATA_KEY} characters of A-Z a-z 0-9 . _ : -"
            )));
        }
        if value.len() > MAX_METADATA_VALUE {
            return Err(ApiError::InvalidRequest(format!(
                "`metadata.{key}` is longer than {MAX_METADATA_VALUE} bytes"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        h
    }

    #[test]
    fn safe_ids() {
        assert!(is_safe_id("thread-1.a_b:c", 128));
        for bad in ["", "a b", "a\nb", "a/b", "é", &"x".repeat(129)] {
            assert!(!is_safe_id(bad, 128), "{bad:?}");
        }
    }

    #[test]
    fn bodies() {
        let h = json_headers();
        let ok = chat_body(
            &h,
            br#"{"message":"hi","thread_id":"t1","metadata":{"k":"v"}}"#,
        )
        .unwrap();
        assert_eq!(ok.as_ref().map(ThreadId::as_str), Some("t1"));
        assert!(matches!(
            chat_body(&h, b"{"),
            Err(ApiError::MalformedBody(_))
        ));
        assert!(matches!(
            chat_body(&h, b"\xff"),
            Err(ApiError::MalformedBody(_))
        ));
        assert!(matches!(
            chat_body(&h, br#"{"message":"hi","extra":1}"#),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            chat_body(&h, br#"{"message":" "}"#),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            chat_body(&h, br#"{"message":"hi","thread_id":"a\nb"}"#),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            chat_body(&HeaderMap::new(), b"{}"),
            Err(ApiError::UnsupportedMediaType)
        ));
    }
}
