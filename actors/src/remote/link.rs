//! What this instance knows of its link to Redis: not known yet, up, or down (and why).
//!
//! [`Remote`](super::Remote) owns the one [`Link`] and feeds it every command's outcome and
//! the heartbeat's, which probes Redis every `heartbeat_ms` whatever the state. It is the
//! circuit breaker of the shared queues: while Redis is known to be down, commands that can
//! be refused ([`Link::check`]) are refused at once, before anything is sent, instead of
//! piling up behind a connection that does not answer; `/health` reads the state and never
//! waits for Redis; the first answer (the heartbeat's, at the latest) closes the breaker.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::{Error, ErrorKind};

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// The state of the link to Redis; see the module's docs.
#[derive(Debug, Default)]
pub(crate) struct Link {
    /// `UNKNOWN` until the first outcome, then `UP` or `DOWN`; read without a lock.
    state: AtomicU8,
    /// Why it is down (the last error), while it is.
    why: Mutex<Option<String>>,
    /// Told when the link comes up.
    up: Notify,
}

impl Link {
    /// A link whose state is not known yet.
    pub(crate) fn new() -> Link {
        Link::default()
    }

    /// Whether any command has had an outcome yet.
    pub(crate) fn known(&self) -> bool {
        self.state.load(Ordering::Acquire) != UNKNOWN
    }

    /// Whether the last outcome was an answer.
    pub(crate) fn is_up(&self) -> bool {
        self.state.load(Ordering::Acquire) == UP
    }

    /// Why Redis is down, while it is known to be; `None` otherwise.
    pub(crate) fn down(&self) -> Option<String> {
        if self.state.load(Ordering::Acquire) != DOWN {
            return None;
        }
        self.why.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Refuses at once while Redis is known to be down: nothing is sent, so nothing can
    /// have been done.
    pub(crate) fn check(&self) -> Result<(), Error> {
        match self.down() {
            Some(why) => Err(Error::new(ErrorKind::Unavailable, format!("Redis unavailable: {why}"))),
            None => Ok(()),
        }
    }

    /// Notes an answer from Redis. Cheap when it was up already (the hot path).
    pub(crate) fn answered(&self) {
        if self.state.load(Ordering::Acquire) == UP {
            return;
        }
        let mut why = self.why.lock().unwrap_or_else(|e| e.into_inner());
        if self.state.swap(UP, Ordering::AcqRel) == DOWN {
            log::info!("Redis answers again (it was down: {})", why.as_deref().unwrap_or("?"));
        }
        *why = None;
        drop(why);
        self.up.notify_waiters();
    }

    /// Notes that Redis did not answer (unreachable, timed out, or refusing this client).
    pub(crate) fn failed(&self, error: String) {
        let mut why = self.why.lock().unwrap_or_else(|e| e.into_inner());
        if self.state.swap(DOWN, Ordering::AcqRel) != DOWN {
            log::warn!("Redis is unreachable: {error}");
        }
        *why = Some(error);
    }

    /// Waits at most `limit` for the link to be up; says whether it is.
    pub(crate) async fn until_up(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let told = self.up.notified();
            tokio::pin!(told);
            // Registered before the state is read, so an answer in between is not missed.
            told.as_mut().enable();
            if self.is_up() {
                return true;
            }
            if tokio::time::timeout_at(deadline, told).await.is_err() {
                return self.is_up();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_then_down_then_up() {
        let link = Link::new();
        assert!(!link.known() && !link.is_up());
        // Not known yet is not down: nothing is refused on a guess.
        assert!(link.check().is_ok());
        link.failed("connection refused".into());
        assert!(link.known() && !link.is_up());
        assert_eq!(link.down().as_deref(), Some("connection refused"));
        let refused = link.check().expect_err("refused while down");
        assert_eq!(refused.kind(), ErrorKind::Unavailable);
        assert_eq!(refused.message(), "Redis unavailable: connection refused");
        link.failed("timed out".into());
        assert_eq!(link.down().as_deref(), Some("timed out"));
        link.answered();
        assert!(link.is_up() && link.down().is_none() && link.check().is_ok());
    }

    #[tokio::test]
    async fn until_up_waits_for_an_answer_within_its_limit() {
        let link = std::sync::Arc::new(Link::new());
        link.failed("stalled".into());
        assert!(!link.until_up(Duration::from_millis(20)).await);
        let answering = link.clone();
        let waiter = tokio::spawn(async move { link.until_up(Duration::from_secs(10)).await });
        tokio::task::yield_now().await;
        answering.answered();
        assert!(waiter.await.expect("the waiter"));
        assert!(answering.until_up(Duration::ZERO).await);
    }
}
