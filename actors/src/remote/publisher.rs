//! Pool events out to Redis: the publisher copies this instance's events to the contract's
//! channels (`worker_pool_events`, `task_progress`) and progress to the task's record, a batch
//! per round trip; re-queues are announced where they are written.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::Remote;
use super::keys::{EVENTS_CHANNEL, PROGRESS_CHANNEL};
use crate::error::Error;
use crate::events::{Event, EventKind};
use crate::local::LocalPools;
use crate::task::{Progress, TaskId, now_ms};

/// Announces a task put back in its queue without spending an attempt, once that is written:
/// on this instance's bus, and at once on `worker_pool_events` (the publisher leaves these to
/// this), so that a stopping instance has sent it before it leaves.
pub(super) async fn announce_requeued(
    remote: &Remote,
    pool: &LocalPools,
    id: &TaskId,
    task_type: &str,
    worker_id: Option<String>,
) {
    let reason = if remote.stopping() { "shutdown" } else { "refused" };
    let kind = EventKind::TaskRequeued {
        task_id: id.to_string(),
        task_type: task_type.to_string(),
        worker_id,
        reason: reason.to_string(),
    };
    pool.emit(kind.clone());
    if remote.events_wanted() {
        let event = Event { timestamp: now_ms(), kind };
        let message = event_message(&event, &remote.config().instance_id);
        if let Err(e) = remote.publish(vec![(EVENTS_CHANNEL, message)], Vec::new()).await {
            log::debug!("task {id}: its task_requeued event was not published: {e}");
        }
    }
}

/// An event as the contract's channel carries it: `{"event", "data", "instance_id", "timestamp"}`.
fn event_message(event: &Event, instance: &str) -> String {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("instance_id".into(), instance.into());
    }
    value.to_string()
}

/// Copies pool events to `worker_pool_events` (and progress to `task_progress` and the
/// task's record), a batch per round trip.
pub(super) async fn publish(remote: Arc<Remote>, pool: Arc<LocalPools>) {
    let mut rx = pool.shared.events.subscribe();
    let instance = remote.config().instance_id.clone();
    loop {
        let first = match rx.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                log::warn!("{n} events were not published to Redis (the publisher fell behind)");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let mut batch = vec![first];
        while batch.len() < 512
            && let Ok(e) = rx.try_recv()
        {
            batch.push(e);
        }
        let mut messages = Vec::with_capacity(batch.len());
        let mut progress = Vec::new();
        // Channels nobody listens on (as of the last heartbeat) are skipped; a task's
        // progress is always stored in its record.
        let events_wanted = remote.events_wanted();
        let progress_wanted = remote.progress_wanted();
        for event in batch {
            if let EventKind::TaskProgress { task_id, worker_id, progress: pct, stage, .. } = &event.kind {
                if progress_wanted {
                    let p = serde_json::json!({"job_id": task_id, "stage": stage, "progress": pct, "worker_id": worker_id});
                    messages.push((PROGRESS_CHANNEL, p.to_string()));
                }
                // The record's own shape, as FINISH stores it and look-ups read it.
                let stored = Progress { progress: *pct, stage: stage.clone() };
                let stored = serde_json::to_string(&stored).unwrap_or_default();
                progress.push((task_id.as_str().into(), stored, worker_id.clone()));
            }
            // Re-queues are published where they are written (`announce_requeued`).
            if !events_wanted || matches!(event.kind, EventKind::TaskRequeued { .. }) {
                continue;
            }
            messages.push((EVENTS_CHANNEL, event_message(&event, &instance)));
        }
        // Events are best effort: while Redis is away they are dropped, not queued.
        if !messages.is_empty() || !progress.is_empty() {
            let _ = remote.publish(messages, progress).await;
        }
    }
}

impl Remote {
    /// Publishes pool events and progress (pipelined, one round trip for the batch).
    async fn publish(
        &self,
        messages: Vec<(&'static str, String)>,
        progress: Vec<(TaskId, String, String)>,
    ) -> Result<(), Error> {
        let mut pipe = redis::pipe();
        for (channel, text) in &messages {
            pipe.publish(*channel, text).ignore();
        }
        if !messages.is_empty() {
            self.observe(pipe.query_async::<()>(&mut self.gated()?).await)?;
        }
        for (id, text, worker) in &progress {
            let mut call = self.scripts.progress.key(self.keys.task(id.as_str()));
            call.arg(text).arg(worker);
            self.observe(call.invoke_async::<()>(&mut self.gated()?).await)?;
        }
        Ok(())
    }
}
