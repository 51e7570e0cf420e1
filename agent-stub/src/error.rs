//! The crate's failures, and the one place that turns them into gRPC statuses.
//!
//! Scripted failures are not here: they are the stub doing what it was asked.

use tonic::Status;

use crate::trigger::TriggerError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    #[error("invalid thread_id {0:?}: use at most 128 characters of [A-Za-z0-9._:-], or none")]
    ThreadId(String),
    #[error("invalid page_token {0:?}: pass a previous response's next_page_token, or none")]
    PageToken(String),
    #[error("thread {0:?} not found")]
    ThreadNotFound(String),
    #[error("agent is shutting down")]
    ShuttingDown,
    #[error("missing or wrong bearer credential")]
    Unauthenticated,
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        // Every message here is about the caller's own input, so it is safe to send back.
        let message = error.to_string();
        match error {
            Error::Trigger(_) | Error::ThreadId(_) | Error::PageToken(_) => {
                Status::invalid_argument(message)
            }
            Error::ThreadNotFound(_) => Status::not_found(message),
            Error::ShuttingDown => Status::unavailable(message),
            Error::Unauthenticated => Status::unauthenticated(message),
        }
    }
}
