//! The `Intake` of a pool: where `execute` calls from any thread wait for the pool's next
//! batch.

use crate::messages::Execute;

/// The `execute` calls waiting for a pool: callers on any thread push here, and only the
/// first push after a drain sends the pool a [`DrainIntake`] message, so a burst of calls
/// costs the pool one mailbox message and one wake-up instead of one each.
#[derive(Default)]
pub(crate) struct Intake {
    /// The calls, and whether the pool is gone (then nothing more is queued).
    queue: std::sync::Mutex<(Vec<Execute>, bool)>,
    scheduled: std::sync::atomic::AtomicBool,
}

impl Intake {
    /// Queues a call; says whether the pool must be told. A call to a pool that is gone is
    /// dropped, which answers its caller "stopped".
    pub(crate) fn push(&self, call: Execute) -> Result<bool, PoolGone> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.1 {
            return Err(PoolGone);
        }
        queue.0.push(call);
        Ok(!self.scheduled.swap(true, std::sync::atomic::Ordering::AcqRel))
    }

    /// Takes every queued call into `calls` (empty), whose buffer the intake keeps for the
    /// next burst. The flag is cleared first, so a call pushed after the take schedules
    /// another drain.
    pub(crate) fn take_into(&self, calls: &mut Vec<Execute>) {
        self.scheduled.store(false, std::sync::atomic::Ordering::Release);
        std::mem::swap(&mut self.queue.lock().unwrap_or_else(|e| e.into_inner()).0, calls);
    }

    /// The pool is gone: queued calls are dropped (their callers hear "stopped") and later
    /// ones are handed back.
    pub(crate) fn close(&self) {
        let calls = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.1 = true;
            std::mem::take(&mut queue.0)
        };
        drop(calls);
    }
}

/// The pool of an [`Intake`] has stopped.
#[derive(Debug)]
pub(crate) struct PoolGone;
