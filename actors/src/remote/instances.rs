//! The live instances: each says it is alive at every heartbeat (with what it serves) and
//! reads who else is; at shutdown it waits for its held tasks' ends to be written, then
//! leaves the list.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::AsyncCommands;

use super::Remote;
use super::keys::{EVENTS_CHANNEL, PROGRESS_CHANNEL};
pub use crate::backend::status::InstanceInfo;
use crate::error::Error;

impl Remote {
    /// Live instances at the last heartbeat.
    pub(crate) fn instances(&self) -> Vec<InstanceInfo> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether some live instance other than this one takes tasks of `task_type`.
    pub(crate) fn served_elsewhere(&self, task_type: &str) -> bool {
        self.instances()
            .iter()
            .any(|i| i.instance_id != self.cfg.instance_id && i.types.iter().any(|t| t == task_type))
    }

    /// Says this instance is alive (with what it serves), and reads who else is.
    pub(crate) async fn heartbeat(&self, me: &InstanceInfo) -> Result<(), Error> {
        let now = me.heartbeat_at;
        let ttl = 3 * self.cfg.heartbeat_ms;
        let info = serde_json::to_string(me).unwrap_or_default();
        let (_, _, _, ids, listeners): ((), (), (), Vec<String>, Vec<(String, u64)>) = self.observe(
            redis::pipe()
                .zadd(self.keys.instances(), &me.instance_id, now)
                .pset_ex(self.keys.instance(&me.instance_id), info, ttl)
                .zrembyscore(self.keys.instances(), "-inf", now.saturating_sub(60_000))
                .zrangebyscore(self.keys.instances(), now.saturating_sub(ttl), "+inf")
                .cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(EVENTS_CHANNEL)
                .arg(PROGRESS_CHANNEL)
                .query_async(&mut self.conn())
                .await,
        )?;
        let listening = |channel: &str| listeners.iter().any(|(c, n)| c == channel && *n > 0);
        self.events_wanted.store(listening(EVENTS_CHANNEL), Ordering::Relaxed);
        self.progress_wanted.store(listening(PROGRESS_CHANNEL), Ordering::Relaxed);
        let mut live = Vec::new();
        if !ids.is_empty() {
            let keys: Vec<String> = ids.iter().map(|id| self.keys.instance(id)).collect();
            let infos: Vec<Option<String>> = self.observe(self.conn().mget(keys).await)?;
            live.extend(infos.into_iter().flatten().filter_map(|text| serde_json::from_str(&text).ok()));
        }
        *self.instances.lock().unwrap_or_else(|e| e.into_inner()) = live;
        Ok(())
    }

    /// Removes this instance from the live list (at shutdown).
    async fn deregister(&self) -> Result<(), Error> {
        let _: ((), ()) = self.observe(
            redis::pipe()
                .zrem(self.keys.instances(), &self.cfg.instance_id)
                .del(self.keys.instance(&self.cfg.instance_id))
                .query_async(&mut self.gated()?)
                .await,
        )?;
        Ok(())
    }

    /// After the drain: waits (a bounded time) until every held task's end or re-queue is
    /// written, then leaves the live list.
    pub(crate) async fn release(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.cfg.lease_ms.min(10_000));
        while self.holds_any() {
            if tokio::time::Instant::now() >= deadline {
                log::warn!("leaving with tasks whose end is not written; their leases will re-queue them");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Err(e) = self.deregister().await {
            log::warn!("cannot leave the live instance list: {e}");
        }
    }
}
