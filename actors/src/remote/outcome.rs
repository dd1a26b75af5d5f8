//! Writes whose reply did not come: was the task queued or not?
//!
//! A queueing that fails before anything reached Redis (the breaker was open, the connection
//! could not be made, Redis refused this client) queued nothing, and is refused with 503. One
//! that was sent and got no reply (a timeout, a connection lost under it, an error from
//! inside the script) may have been done, or may still be done: a stalled Redis runs what it
//! has read once it resumes. Such a write is *settled*: once Redis answers again, within
//! `outcome_wait_ms`, the `RESOLVE` script reads the task back, and when the task is not
//! there, fences its id (`{prefix}:fenced:<id>`), so that the write, should it still arrive,
//! queues nothing. Either answer is then certain. Past the wait, the caller is told the
//! outcome is unknown, with the id to look up.

use std::time::Duration;

use super::Remote;
use crate::error::{Error, ErrorKind};
use crate::task::TaskId;

/// How long a fence stays: far longer than a write can linger in a connection.
const FENCE_MS: u64 = 3_600_000;

/// What a failed write may have left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Nothing reached Redis: nothing was done.
    NotApplied,
    /// It was sent, or may have been: it may have been done, or may still be.
    Unknown,
}

/// The fate of a write that failed with `e`. Only failures to connect, where no command was
/// sent, are certain; anything else is unknown, which is always safe to say.
pub(crate) fn fate_of(e: &redis::RedisError) -> Fate {
    if e.is_connection_refusal() || e.kind() == redis::ErrorKind::AuthenticationFailed {
        Fate::NotApplied
    } else {
        Fate::Unknown
    }
}

/// What reading a task back after an unknown write found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The task is in Redis (with any status): it was queued.
    Queued,
    /// The task is not there, and its id is fenced: it never will be.
    NotQueued,
}

impl Settled {
    /// From `RESOLVE`'s reply: the task's status, or none.
    pub(crate) fn from_reply(status: Option<&str>) -> Settled {
        match status {
            Some(s) if !s.is_empty() => Settled::Queued,
            _ => Settled::NotQueued,
        }
    }
}

/// The error of a task whose queueing cannot be known yet.
pub(crate) fn unknown(id: &TaskId, waited: Duration, why: &str) -> Error {
    Error::new(
        ErrorKind::OutcomeUnknown,
        format!(
            "Redis did not answer ({why}) nor answered again within {} ms: task {id} may or may not \
             be queued; look it up instead of submitting it again",
            waited.as_millis()
        ),
    )
    .with_task(id)
}

impl Remote {
    /// Settles the queueing of `id` that failed with `why` without a known outcome: `Ok` when
    /// the task was queued; 503 (`Unavailable`, naming the id) when it was not and never will
    /// be; [`ErrorKind::OutcomeUnknown`] when Redis did not answer again in time.
    pub(super) async fn settle(&self, id: &TaskId, why: &Error) -> Result<(), Error> {
        let wait = Duration::from_millis(self.cfg.outcome_wait_ms);
        let deadline = tokio::time::Instant::now() + wait;
        let fenced = self.keys.fenced(id.as_str());
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.link.until_up(left).await {
                log::warn!("task {id}: whether it was queued is not known ({why})");
                return Err(unknown(id, wait, why.message()));
            }
            let read = async {
                let conn = self.gated()?;
                let status: Option<String> = self.observe(
                    self.scripts
                        .resolve
                        .key(self.keys.task(id.as_str()))
                        .key(&fenced)
                        .arg(FENCE_MS)
                        .invoke_async(&mut conn.clone())
                        .await,
                )?;
                Ok::<_, Error>(Settled::from_reply(status.as_deref()))
            };
            match tokio::time::timeout(left, read).await {
                Ok(Ok(Settled::Queued)) => {
                    log::info!("task {id}: queued after all (its reply was lost: {why})");
                    return Ok(());
                }
                Ok(Ok(Settled::NotQueued)) => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!("{why}; task {id} was not queued"),
                    )
                    .with_task(id));
                }
                // Down again, or refused: try again while the wait lasts, without spinning.
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(50).min(left)).await,
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn io_error(kind: io::ErrorKind) -> redis::RedisError {
        redis::RedisError::from(io::Error::new(kind, "test"))
    }

    #[test]
    fn only_failures_to_connect_are_known_not_to_have_been_applied() {
        assert_eq!(fate_of(&io_error(io::ErrorKind::ConnectionRefused)), Fate::NotApplied);
        let auth = redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, "WRONGPASS"));
        assert_eq!(fate_of(&auth), Fate::NotApplied);
        // A timeout after sending, a connection lost under the write: maybe done.
        for kind in [
            io::ErrorKind::TimedOut,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert_eq!(fate_of(&io_error(kind)), Fate::Unknown, "{kind:?}");
        }
        // An error from inside a script: part of a batch may have been done.
        let script = redis::RedisError::from((redis::ErrorKind::Client, "script failed"));
        assert_eq!(fate_of(&script), Fate::Unknown);
    }

    #[test]
    fn a_task_read_back_was_queued_whatever_its_status() {
        for status in ["queued", "running", "completed", "cancelled"] {
            assert_eq!(Settled::from_reply(Some(status)), Settled::Queued, "{status}");
        }
        assert_eq!(Settled::from_reply(None), Settled::NotQueued);
        assert_eq!(Settled::from_reply(Some("")), Settled::NotQueued);
    }

    #[test]
    fn an_unknown_outcome_names_the_task() {
        let id = TaskId::from("8ad161bc-78b3-4647-8000-000000000001".to_string());
        let e = unknown(&id, Duration::from_millis(3000), "timed out");
        assert_eq!(e.kind(), ErrorKind::OutcomeUnknown);
        assert_eq!(e.task_id(), Some(&id));
        assert!(e.message().contains("within 3000 ms") && e.message().contains(id.as_str()), "{e}");
    }
}
