//! Errors of the library: one [`Error`] with a [`ErrorKind`], and [`SubmitError`], which hands
//! a refused task back to the caller.

use std::fmt;

use crate::task::{TaskId, TaskRequest};

/// What went wrong, for callers that map errors (the server maps kinds to HTTP statuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is invalid; the message names the key.
    Config,
    /// No such task type.
    UnknownType,
    /// No such task.
    UnknownTask,
    /// No such worker.
    UnknownWorker,
    /// The request itself is invalid; the message names the field.
    InvalidRequest,
    /// The type's queue is full; nothing was queued.
    QueueFull,
    /// The pool is shutting down and takes no new work.
    ShuttingDown,
    /// The type cannot run tasks now (for example no usable GPU).
    Unavailable,
    /// A scale request beyond a limit; the message says which.
    Limit,
    /// The task has already ended (it cannot be cancelled any more).
    Finished,
    /// The task ended without a result (failed, dead, timed out or cancelled).
    TaskFailed,
    /// The task's result did not have the expected shape.
    Decode,
    /// The actor tree could not be started or has stopped.
    Internal,
    /// A request was sent to the shared queues but no answer came back in time, so whether it
    /// took effect is not known. The error names the task ([`Error::task_id`]): look it up
    /// rather than submitting it again.
    OutcomeUnknown,
}

/// The library's error: a kind and a message (lowercase, no trailing period).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    task_id: Option<TaskId>,
}

impl Error {
    /// A new error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), task_id: None }
    }

    /// The same error, naming the task it is about.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn with_task(mut self, id: &TaskId) -> Error {
        self.task_id = Some(id.clone());
        self
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Its message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The task it is about, when it names one: with [`ErrorKind::OutcomeUnknown`], the id to
    /// look up.
    ///
    /// # Examples
    /// ```
    /// use workerpool_actors::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::QueueFull, "the queue of text_processing is full");
    /// assert_eq!(e.task_id(), None);
    /// ```
    pub fn task_id(&self) -> Option<&TaskId> {
        self.task_id.as_ref()
    }

    pub(crate) fn stopped() -> Error {
        Error::new(ErrorKind::ShuttingDown, "the pool has shut down")
    }

    /// No task has this id (or its record is no longer kept).
    pub(crate) fn unknown_task(id: &TaskId) -> Error {
        Error::new(ErrorKind::UnknownTask, format!("no task {id}"))
    }

    /// No type has this name.
    pub(crate) fn unknown_type(task_type: &str) -> Error {
        Error::new(ErrorKind::UnknownType, format!("unknown task type {task_type:?}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<actix::MailboxError> for Error {
    fn from(_: actix::MailboxError) -> Error {
        Error::stopped()
    }
}

/// A submission that was refused; [`SubmitError::into_inner`] gives the request back, so
/// nothing is lost.
#[derive(Debug)]
pub struct SubmitError {
    error: Error,
    request: Box<TaskRequest>,
}

impl SubmitError {
    pub(crate) fn new(error: Error, request: TaskRequest) -> SubmitError {
        SubmitError { error, request: Box::new(request) }
    }

    /// Why it was refused.
    pub fn kind(&self) -> ErrorKind {
        self.error.kind
    }

    /// The error without the request.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The refused request.
    pub fn into_inner(self) -> TaskRequest {
        *self.request
    }
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for SubmitError {}

impl From<SubmitError> for Error {
    fn from(e: SubmitError) -> Error {
        e.error
    }
}
