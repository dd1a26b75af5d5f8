//! The loops that connect one instance's pools to the shared queues, all on the tree's
//! system:
//! - a feeder per type takes tasks while the type's local pool has room (free workers plus
//!   `take_ahead`), runs each as one local attempt, and writes how it ended;
//! - the heartbeat says the instance is alive, renews its leases and reaps expired ones;
//! - the listener hears which types have ready tasks, which tasks ended and which were
//!   cancelled;
//! - the publisher copies pool events to the contract's channels ([`publisher`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Finish, Finished, InstanceInfo, Reaped, Remote, Taken, Writer, publisher};
use crate::error::ErrorKind;
use crate::local::LocalPools;
use crate::messages::Settled;
use crate::task::{TaskRequest, now_ms};

/// Starts every loop of the bridge on the current arbiter.
pub(crate) fn start(remote: Arc<Remote>, pool: Arc<LocalPools>) {
    // Tasks still leased to this name from before a restart go back to their queues.
    let reconciling = remote.clone();
    actix_rt::spawn(async move {
        if let Ok(n) = reconciling.reconcile().await
            && n > 0
        {
            log::warn!("{n} tasks leased to this instance before it restarted were queued again");
        }
    });
    let consume = remote.config().consume;
    for (name, t) in pool.config.types.iter().filter(|_| consume) {
        // Never more running here than workers may start (`max_workers` caps every type).
        let room =
            t.max_concurrent.min(pool.config.max_workers) + remote.config().take_ahead.min(t.queue_size);
        actix_rt::spawn(feed(remote.clone(), pool.clone(), name.clone(), room));
    }
    let batches = remote.clone();
    actix_rt::spawn(async move { batches.finish_batches().await });
    let batches = remote.clone();
    actix_rt::spawn(async move { batches.enqueue_batches().await });
    actix_rt::spawn(heartbeat(remote.clone(), pool.clone()));
    actix_rt::spawn(listen(remote.clone(), pool.clone()));
    actix_rt::spawn(publisher::publish(remote, pool));
}

/// Takes tasks of one type while its pool has room for them.
async fn feed(remote: Arc<Remote>, pool: Arc<LocalPools>, task_type: String, room: usize) {
    let room = Arc::new(Semaphore::new(room));
    let Some(wake) = remote.wake_for(&task_type) else { return };
    while !remote.stopping() {
        let Ok(first) = room.clone().acquire_owned().await else { return };
        let mut permits = vec![first];
        while let Ok(p) = room.clone().try_acquire_owned() {
            permits.push(p);
        }
        if remote.stopping() {
            return;
        }
        if pool.serves_now(&task_type).is_err() || pool.start_failures(&task_type).is_some() {
            // No GPU here now, or workers that fail to start: leave the tasks to instances
            // that can run them.
            drop(permits);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Taken tasks are held before the take gate opens again (see `leases`).
        let took = remote.take(&task_type, permits.len()).await;
        match took {
            Ok((taken, next_due)) if taken.is_empty() => {
                drop(permits);
                let idle = next_due.map_or(1000, |in_ms| in_ms.clamp(1, 1000));
                // Told when a task of the type becomes ready; the timer covers delayed tasks
                // and notifications lost while the listener reconnects.
                let _ = tokio::time::timeout(Duration::from_millis(idle), wake.notified()).await;
            }
            Ok((taken, _)) => {
                for (task, permit) in taken.into_iter().zip(permits.drain(..)) {
                    actix_rt::spawn(run(remote.clone(), pool.clone(), task_type.clone(), task, permit));
                }
            }
            Err(_) => {
                drop(permits);
                // Redis is down (nothing was sent), or the TAKE may have run without its reply
                // reaching us: once Redis answers again, what it leased here and nobody holds
                // goes back, without spending an attempt.
                while !remote.until_up(Duration::from_millis(500)).await {
                    if remote.stopping() {
                        return;
                    }
                }
                if let Err(e) = remote.reconcile().await {
                    log::debug!("cannot reconcile leases yet: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Runs one taken task as a single local attempt and writes how it ended.
async fn run(
    remote: Arc<Remote>,
    pool: Arc<LocalPools>,
    task_type: String,
    task: Taken,
    permit: OwnedSemaphorePermit,
) {
    let Taken { id, data, priority, max_retries, timeout, attempt, created_at } = task;
    let mut request = TaskRequest::new(task_type.clone(), data).priority(priority).timeout_ms(timeout);
    request.options.max_retries = Some(max_retries);
    let prior = attempt.saturating_sub(1);
    let (how, worker) = match pool.run_attempt(id.clone(), request, prior).await {
        Ok(Settled { record, verdict }) => {
            let mut record = std::sync::Arc::unwrap_or_clone(record);
            record.created_at = created_at;
            record.instance_id = Some(remote.config().instance_id.clone());
            let worker = record.worker_id.clone();
            (Finish::of(verdict, record), worker)
        }
        // Refused here (shutting down, stopped): back to the queue for another instance.
        Err(e) => {
            log::info!("task {id} goes back to the shared queue: {e}");
            (Finish::Requeue, None)
        }
    };
    drop(permit);
    let mut warned = false;
    let give_up = std::time::Instant::now() + Duration::from_millis(remote.config().lease_ms);
    // Write the outcome, retrying while Redis is away; the attempt then stops being held.
    let attempt = loop {
        // The attempt this instance holds now: a later one when the task was taken again
        // while this run went on; none when the task was lost (another instance has it).
        let Some(attempt) = remote.held_attempt(&id) else {
            log::info!("task {id} is no longer held here; its outcome is not recorded");
            return;
        };
        match remote.finish(&task_type, &id, attempt, &how, Writer::Holder).await {
            Ok(Finished::Recorded) => {
                match &how {
                    Finish::Final(record) => {
                        let mut record = record.clone();
                        record.attempts = attempt;
                        remote.wake_waiters(&id, Some(&record));
                    }
                    Finish::Requeue => {
                        publisher::announce_requeued(&remote, &pool, &id, &task_type, worker).await
                    }
                    Finish::Retry { .. } => {}
                }
                break attempt;
            }
            Ok(Finished::Stale) => {
                pool.metrics().stale_results.inc();
                log::warn!(
                    "task {id}: the result of attempt {attempt} came after its lease passed to another attempt; dropped"
                );
                break attempt;
            }
            Ok(Finished::Cancelled | Finished::Gone) => break attempt,
            Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::OutcomeUnknown) => {
                // Keep the outcome until Redis is back; the lease keeps the task ours
                // meanwhile. Past the lease another instance may run it again anyway.
                if !warned {
                    log::warn!("task {id}: cannot record how attempt {attempt} ended yet: {e}");
                    warned = true;
                }
                if remote.stopping() && std::time::Instant::now() > give_up {
                    log::error!(
                        "task {id}: gave up recording attempt {attempt}; its lease will send it to another instance"
                    );
                    break attempt;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                log::error!("task {id}: cannot record how attempt {attempt} ended: {e}");
                break attempt;
            }
        }
    };
    remote.release_held(&id, attempt);
}

/// Every `heartbeat_ms`: says the instance is alive, renews its leases (stopping tasks it
/// lost, e.g. cancelled while a notification was missed), and reaps expired leases.
async fn heartbeat(remote: Arc<Remote>, pool: Arc<LocalPools>) {
    let period = Duration::from_millis(remote.config().heartbeat_ms);
    let mut was_down = false;
    loop {
        let stopping = remote.stopping();
        let stats = pool.stats().await.unwrap_or_default();
        let serving = !stopping && remote.config().consume;
        let types =
            pool.config.types.keys().filter(|t| serving && pool.serves_now(t).is_ok()).cloned().collect();
        let me = InstanceInfo {
            instance_id: remote.config().instance_id.clone(),
            heartbeat_at: now_ms(),
            started_at: remote.started_at(),
            types,
            workers: stats.total,
            busy: stats.busy,
            running: remote.held_count(),
        };
        // A stopping instance leaves the live list (in `release`) and must not re-enter it.
        let beat = if stopping { remote.ping().await } else { remote.heartbeat(&me).await };
        if beat.is_ok() {
            if was_down {
                // Notifications may have been lost meanwhile.
                remote.resync();
            }
            let renewed = match remote.renew().await {
                Ok(lost) => {
                    for (id, attempt, status) in lost {
                        // Taken again here since the renewal was sent: the run going on
                        // carries the newer attempt, which is not lost.
                        if remote.held_attempt(&id).is_some_and(|held| held != attempt) {
                            continue;
                        }
                        // Cancelled, or another attempt has it: stop it here. Its FINISH then
                        // finds the task cancelled, or counts its result as stale.
                        log::info!(
                            "task {id} ({status}) is no longer held here at attempt {attempt}; stopping it"
                        );
                        let _ = pool.cancel(&id).await;
                    }
                    true
                }
                Err(e) => {
                    log::debug!("lease renewal failed: {e}");
                    false
                }
            };
            // Reaping only once this instance's own leases are safe.
            if renewed && !stopping {
                match remote.reap().await {
                    Ok(Reaped { retried: 0, ended: 0, .. }) => {}
                    Ok(Reaped { retried, ended, verdicts }) => {
                        log::warn!(
                            "{} tasks lost their instance (lease expired): {retried} queued again, {ended} dead-lettered",
                            retried + ended
                        );
                        for (task_type, verdict) in verdicts {
                            if pool.config.types.contains_key(&task_type) {
                                pool.metrics().lost_attempt(&task_type, verdict);
                            }
                        }
                    }
                    Err(e) => log::debug!("cannot reap expired leases now: {e}"),
                }
            }
        }
        was_down = beat.is_err();
        if stopping && remote.held_count() == 0 {
            return;
        }
        tokio::time::sleep(period).await;
    }
}

/// Listens on the wake, done and cancel channels; reconnects by itself.
async fn listen(remote: Arc<Remote>, pool: Arc<LocalPools>) {
    let channels =
        [remote.keys().wake_channel(), remote.keys().done_channel(), remote.keys().cancel_channel()];
    let mut first = true;
    while !remote.stopping() {
        let connected = async {
            let mut sub = remote.client().get_async_pubsub().await?;
            for c in &channels {
                sub.subscribe(c).await?;
            }
            Ok::<_, redis::RedisError>(sub)
        }
        .await;
        let mut sub = match remote.observe(connected) {
            Ok(sub) => sub,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if !first {
            // Notifications may have been lost while disconnected.
            remote.resync();
        }
        first = false;
        let mut messages = sub.on_message();
        while let Some(msg) = futures_util::StreamExt::next(&mut messages).await {
            let Ok(payload) = msg.get_payload::<String>() else { continue };
            let channel = msg.get_channel_name();
            if channel == channels[0] {
                remote.wake(&payload);
            } else if channel == channels[1] {
                remote.wake_waiters(&payload.as_str().into(), None);
            } else if channel == channels[2] {
                let id = payload.as_str().into();
                if remote.holds(&id) {
                    log::info!("task {id} was cancelled through Redis; stopping it here");
                    let _ = pool.cancel(&id).await;
                }
            }
            if remote.stopping() {
                return;
            }
        }
        log::warn!("lost the Redis subscription; reconnecting");
    }
}
