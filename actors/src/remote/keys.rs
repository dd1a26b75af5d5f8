//! The names of every key and channel of the shared queues (`docs/REDIS.md`, "Key layout").
//!
//! [`Keys`] is the one place in Rust where a key name is built. The Lua scripts
//! ([`scripts`](super::scripts)) mirror the same layout: a script that reaches a key it cannot
//! be handed (the queue of a task's type, a task's hash while it walks the leases) builds the
//! name in Redis from the key base ([`Keys::base`]) or the task key prefix
//! ([`Keys::task_prefix`]) that it is given as an argument, so a change of layout here must
//! be made in the scripts as well.

/// The contract's channel of pool events.
pub(crate) const EVENTS_CHANNEL: &str = "worker_pool_events";
/// The contract's channel of task progress.
pub(crate) const PROGRESS_CHANNEL: &str = "task_progress";

/// The names of every key and channel, all under one `{prefix}` hash tag.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    base: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys { base: format!("{{{prefix}}}") }
    }

    /// The key base, `{prefix}`: the scripts extend it to `{prefix}:t:<id>`, `:q:<type>`,
    /// `:delayed:<type>`, `:dead:<type>` and `:fenced:<id>`, as the methods below do.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// A task's hash.
    pub(super) fn task(&self, id: &str) -> String {
        format!("{}:t:{id}", self.base)
    }

    /// What [`Keys::task`] puts in front of the id, for a script that finds the ids itself.
    pub(super) fn task_prefix(&self) -> String {
        format!("{}:t:", self.base)
    }

    /// Set when a queueing whose reply was lost is settled as not done: a late write of the
    /// task finds it and queues nothing.
    pub(super) fn fenced(&self, id: &str) -> String {
        format!("{}:fenced:{id}", self.base)
    }

    /// The ready tasks of a type.
    pub(super) fn queue(&self, task_type: &str) -> String {
        format!("{}:q:{task_type}", self.base)
    }

    /// The delayed tasks (and retries in backoff) of a type.
    pub(super) fn delayed(&self, task_type: &str) -> String {
        format!("{}:delayed:{task_type}", self.base)
    }

    /// The dead-letter list of a type.
    pub(super) fn dead(&self, task_type: &str) -> String {
        format!("{}:dead:{task_type}", self.base)
    }

    /// The running tasks, scored by when their lease ends.
    pub(super) fn leases(&self) -> String {
        format!("{}:leases", self.base)
    }

    /// Counters shared by every instance (`stale_results`, `reaped_at`).
    pub(super) fn stats(&self) -> String {
        format!("{}:stats", self.base)
    }

    /// The live instances, scored by their last heartbeat.
    pub(super) fn instances(&self) -> String {
        format!("{}:instances", self.base)
    }

    /// What one instance last said of itself.
    pub(super) fn instance(&self, id: &str) -> String {
        format!("{}:instance:{id}", self.base)
    }

    /// Told the type of a task that became ready, so idle instances take it at once.
    pub(crate) fn wake_channel(&self) -> String {
        format!("{}:wake", self.base)
    }

    /// Told the id of each task that ended, so its waiters on any instance read it.
    pub(crate) fn done_channel(&self) -> String {
        format!("{}:done", self.base)
    }

    /// Told the id of a running task that was cancelled, so its instance stops it.
    pub(crate) fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_under_the_prefix_hash_tag() {
        let keys = Keys::new("wp");
        assert_eq!(keys.base(), "{wp}");
        assert_eq!(keys.task("1"), format!("{}1", keys.task_prefix()));
        for key in [
            keys.task("1"),
            keys.fenced("1"),
            keys.queue("t"),
            keys.delayed("t"),
            keys.dead("t"),
            keys.leases(),
            keys.stats(),
            keys.instances(),
            keys.instance("a"),
            keys.wake_channel(),
            keys.done_channel(),
            keys.cancel_channel(),
        ] {
            assert!(key.starts_with("{wp}:"), "{key}");
        }
        assert_eq!(keys.queue("t"), "{wp}:q:t");
    }
}
