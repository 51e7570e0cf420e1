//! `stub:` directives: how a user message scripts its own run (grammar in `triggers.md`).

use std::time::Duration;

use tonic::Code;

/// A message that starts with this is a list of directives, not a question.
const PREFIX: &str = "stub:";

/// The delta size of a burst when `size=` is not given.
const DEFAULT_BURST_SIZE: usize = 64;

/// Larger deltas would approach tonic's default 4 MiB message limit on the client side, and a
/// burst is about many events, not big ones.
const MAX_BURST_SIZE: usize = 1 << 20;

/// The status message of every scripted failure, so tests can tell it from a real one.
pub(crate) const SCRIPTED_FAILURE: &str = "scripted failure";

pub(crate) use agent_bridge_proto::code_name;

/// How a run plays, as its message asked. The default is the default script, completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Triggers {
    pub(crate) ending: Ending,
    /// The code of a scripted failure; never `OK`.
    pub(crate) code: Code,
    pub(crate) burst: Option<Burst>,
    /// Overrides `Config::pace` for this run.
    pub(crate) pace: Option<Duration>,
    pub(crate) silent_before: Option<Duration>,
}

impl Default for Triggers {
    fn default() -> Self {
        Self {
            ending: Ending::Complete,
            code: Code::Unavailable,
            burst: None,
            pace: None,
            silent_before: None,
        }
    }
}

/// How a run ends. The counts are events of the script played before the ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The whole script, up to `run_completed`.
    Complete,
    /// The call fails before any event.
    FailBefore,
    /// The stream ends with a gRPC status.
    FailAfter(u64),
    /// An in-band `run_error` event, then a normal end of stream.
    ErrorEventAfter(u64),
    /// Nothing more until the caller cancels or the agent shuts down.
    HangAfter(u64),
}

impl Ending {
    /// How many events of the script come before the ending, the script being `len` long.
    /// Capped so that an ending always takes the place of `run_completed`.
    pub(crate) fn events_before(self, len: u64) -> u64 {
        match self {
            Ending::Complete => len,
            Ending::FailBefore => 0,
            Ending::FailAfter(n) | Ending::ErrorEventAfter(n) | Ending::HangAfter(n) => {
                n.min(len.saturating_sub(1))
            }
        }
    }
}

/// `burst=N size=B`: N text deltas of B bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Burst {
    pub(crate) count: u64,
    pub(crate) size: usize,
}

/// Why a `stub:` message was refused. Each names the directive, so the caller can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TriggerError {
    #[error(
        "unknown directive {0:?} in a `stub:` message (known: fail-before, fail-after=N, \
         error-event-after=N, code=NAME, hang, hang-after=N, burst=N, size=B, pace=DURATION, \
         silent-before=DURATION)"
    )]
    Unknown(String),
    #[error("bad directive {directive:?}: expected {expected}")]
    BadValue {
        directive: String,
        expected: &'static str,
    },
    #[error("directive {0:?} is given twice")]
    Repeated(String),
    #[error("directives {0:?} and {1:?} both say how the run ends; give at most one")]
    Conflict(String, String),
}

impl Triggers {
    /// Reads the directives of `message`; a message without the `stub:` prefix has none.
    pub(crate) fn parse(message: &str) -> Result<Self, TriggerError> {
        let Some(directives) = message.strip_prefix(PREFIX) else {
            return Ok(Self::default());
        };
        let mut triggers = Self::default();
        let mut seen: Vec<&str> = Vec::new();
        let mut ending_directive: Option<&str> = None;
        let mut size = None;

        for directive in directives.split_whitespace() {
            let (key, value) = match directive.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (directive, None),
            };
            let bad = |expected| TriggerError::BadValue {
                directive: directive.to_owned(),
                expected,
            };
            let count = |value: Option<&str>| {
                value
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| bad("`=` and a whole number, as in fail-after=2"))
            };
            let duration = |value: Option<&str>| {
                value
                    .and_then(|v| humantime::parse_duration(v).ok())
                    .ok_or_else(|| bad("`=` and a duration, as in pace=50ms"))
            };
            let flag = |value: Option<&str>| match value {
                None => Ok(()),
                Some(_) => Err(bad("no value")),
            };

            let ending = match key {
                "fail-before" => flag(value).map(|()| Some(Ending::FailBefore))?,
                "hang" => flag(value).map(|()| Some(Ending::HangAfter(1)))?,
                "fail-after" => Some(Ending::FailAfter(count(value)?)),
                "error-event-after" => Some(Ending::ErrorEventAfter(count(value)?)),
                "hang-after" => Some(Ending::HangAfter(count(value)?)),
                "code" => {
                    triggers.code = value.and_then(parse_code).ok_or_else(|| {
                        bad("a gRPC code name other than OK, as in code=INTERNAL")
                    })?;
                    None
                }
                "burst" => {
                    triggers.burst = Some(Burst {
                        count: count(value)?,
                        size: DEFAULT_BURST_SIZE,
                    });
                    None
                }
                "size" => {
                    size = Some(
                        value
                            .and_then(|v| v.parse::<usize>().ok())
                            .filter(|&b| b <= MAX_BURST_SIZE)
                            .ok_or_else(|| bad("a byte count of at most 1048576, as in size=64"))?,
                    );
                    None
                }
                "pace" => {
                    triggers.pace = Some(duration(value)?);
                    None
                }
                "silent-before" => {
                    triggers.silent_before = Some(duration(value)?);
                    None
                }
                _ => return Err(TriggerError::Unknown(directive.to_owned())),
            };

            if seen.contains(&key) {
                return Err(TriggerError::Repeated(key.to_owned()));
            }
            seen.push(key);
            if let Some(ending) = ending {
                if let Some(first) = ending_directive {
                    return Err(TriggerError::Conflict(
                        first.to_owned(),
                        directive.to_owned(),
                    ));
                }
                ending_directive = Some(directive);
                triggers.ending = ending;
            }
        }

        // `size=` without `burst=` is harmless, so it is accepted and ignored.
        if let (Some(burst), Some(size)) = (triggers.burst.as_mut(), size) {
            burst.size = size;
        }
        Ok(triggers)
    }
}

/// A code by canonical name, case-insensitively; `OK` is not a failure, so it is refused.
fn parse_code(name: &str) -> Option<Code> {
    agent_bridge_proto::parse_code(name).filter(|code| *code != Code::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(message: &str) -> Triggers {
        Triggers::parse(message).unwrap_or_else(|e| panic!("{message:?}: {e}"))
    }

    #[test]
    fn a_plain_message_has_no_directives() {
        assert_eq!(parse("please fix the header"), Triggers::default());
        assert_eq!(parse("say stub: hang"), Triggers::default());
        assert_eq!(parse("stub:"), Triggers::default());
    }

    #[test]
    fn each_directive_reads_its_value() {
        assert_eq!(parse("stub: fail-before").ending, Ending::FailBefore);
        assert_eq!(parse("stub: fail-after=2").ending, Ending::FailAfter(2));
        assert_eq!(
            parse("stub: error-event-after=0").ending,
            Ending::ErrorEventAfter(0)
        );
        assert_eq!(parse("stub: hang").ending, Ending::HangAfter(1));
        assert_eq!(parse("stub:hang-after=3").ending, Ending::HangAfter(3));
        assert_eq!(parse("stub: code=INTERNAL").code, Code::Internal);
        assert_eq!(
            parse("stub: code=deadline_exceeded").code,
            Code::DeadlineExceeded
        );
        assert_eq!(
            parse("stub: pace=50ms").pace,
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            parse("stub: silent-before=2s").silent_before,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse("stub: burst=1000").burst,
            Some(Burst {
                count: 1000,
                size: 64
            })
        );
    }

    #[test]
    fn directives_combine_in_any_order() {
        let triggers = parse("stub:  code=INTERNAL   fail-after=2 pace=1ms ");
        assert_eq!(triggers.ending, Ending::FailAfter(2));
        assert_eq!(triggers.code, Code::Internal);
        assert_eq!(triggers.pace, Some(Duration::from_millis(1)));

        let burst = parse("stub: size=8 burst=3 hang-after=2").burst;
        assert_eq!(burst, Some(Burst { count: 3, size: 8 }));
    }

    #[test]
    fn every_failure_code_has_a_name_but_ok_is_refused() {
        for number in 1..=16 {
            let code = Code::from_i32(number);
            let name = code_name(code);
            assert_eq!(parse(&format!("stub: code={name}")).code, code);
        }
        assert!(matches!(
            Triggers::parse("stub: fail-before code=OK"),
            Err(TriggerError::BadValue { directive, .. }) if directive == "code=OK"
        ));
    }

    #[test]
    fn an_unknown_directive_is_named() {
        let err = Triggers::parse("stub: hang explode").unwrap_err();
        assert_eq!(err, TriggerError::Unknown("explode".into()));
        assert!(err.to_string().contains("\"explode\""), "{err}");
        assert_eq!(
            Triggers::parse("stub: fail-later=2").unwrap_err(),
            TriggerError::Unknown("fail-later=2".into())
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for message in [
            "stub: fail-after",
            "stub: fail-after=",
            "stub: fail-after=-1",
            "stub: fail-after=two",
            "stub: hang-after=1.5",
            "stub: burst=99999999999999999999999",
            "stub: burst=10 size=2000000",
            "stub: pace=fast",
            "stub: silent-before=10",
            "stub: hang=3",
            "stub: code=TEAPOT",
        ] {
            let err = Triggers::parse(message).unwrap_err();
            assert!(
                matches!(err, TriggerError::BadValue { .. }),
                "{message}: {err}"
            );
        }
    }

    #[test]
    fn repeated_and_conflicting_directives_are_refused() {
        assert_eq!(
            Triggers::parse("stub: pace=1ms pace=2ms").unwrap_err(),
            TriggerError::Repeated("pace".into())
        );
        assert_eq!(
            Triggers::parse("stub: hang fail-after=2").unwrap_err(),
            TriggerError::Conflict("hang".into(), "fail-after=2".into())
        );
    }

    #[test]
    fn an_ending_always_replaces_run_completed() {
        assert_eq!(Ending::Complete.events_before(8), 8);
        assert_eq!(Ending::FailAfter(2).events_before(8), 2);
        assert_eq!(Ending::HangAfter(100).events_before(8), 7);
        assert_eq!(Ending::ErrorEventAfter(3).events_before(0), 0);
    }
}
