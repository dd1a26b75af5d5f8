//! Tasks sent ahead to a worker (`prefetch`, and `auto_prefetch` for short tasks) with real
//! demo-worker processes: their order, a crash or a timeout of the task ahead of them,
//! recycling, and the queue listing that shows them.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use workerpool_actors::TaskStatus;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn prefetched_tasks_run_in_order_and_survive_a_crash_of_the_head() {
    let pool = demo_pool(1, |t| {
        t.prefetch = 3;
        t.max_retries = 1;
    });
    let mut handles = vec![pool.submit(op("crash", json!({ "until_attempt": 1 }))).await.unwrap()];
    for i in 0..6 {
        handles.push(pool.submit(op("echo", json!({ "i": i }))).await.unwrap());
    }
    let mut records = Vec::new();
    for h in handles {
        records.push(within(LIMIT, h.wait()).await.unwrap());
    }
    assert!(records.iter().all(|r| r.status == TaskStatus::Completed), "{records:#?}");
    assert_eq!(records[0].attempts, 2, "the crashed head spends an attempt");
    // The tasks sent ahead to the crashed worker went back without spending theirs.
    assert!(records[1..].iter().all(|r| r.attempts == 1), "{records:#?}");
    for (i, r) in records[1..].iter().enumerate() {
        assert_eq!(r.result.as_ref().unwrap()["echo"]["i"], i);
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn a_timed_out_head_sends_its_prefetched_tasks_elsewhere() {
    let pool = demo_pool(1, |t| {
        t.prefetch = 2;
        t.max_retries = 0;
    });
    let slow = pool.submit(op("sleep", json!({ "ms": 20_000 })).timeout_ms(300)).await.unwrap();
    let mut quick = Vec::new();
    for _ in 0..3 {
        quick.push(pool.submit(op("echo", json!({}))).await.unwrap());
    }
    assert_eq!(within(LIMIT, slow.wait()).await.unwrap().status, TaskStatus::TimedOut);
    for h in quick {
        let r = within(LIMIT, h.wait()).await.unwrap();
        assert_eq!((r.status, r.attempts), (TaskStatus::Completed, 1));
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn prefetch_respects_recycling_and_queue_listing() {
    let pool = demo_pool(1, |t| {
        t.prefetch = 4;
        t.max_tasks_per_worker = Some(3);
    });
    let blocker = pool.submit(op("sleep", json!({ "ms": 300 }))).await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..5 {
        handles.push(pool.submit(op("echo", json!({}))).await.unwrap());
    }
    // While the blocker runs, two tasks sit in the worker's pipe (its budget is 3).
    assert!(wait_until_async(LIMIT, || async { sent_ahead(&pool).await == 2 }).await);
    let first = within(LIMIT, blocker.wait()).await.unwrap();
    let mut pids = vec![u64::from(first.worker_pid.unwrap())];
    for h in handles {
        pids.push(result_pid(&within(LIMIT, h.wait()).await.unwrap()));
    }
    assert_eq!(pids[0], pids[2]);
    assert_ne!(pids[2], pids[3], "recycled after 3 tasks: {pids:?}");
    assert_eq!(pids[3], pids[5]);
    pool.shutdown().await;
}

/// How many of the type's waiting tasks sit in a worker's pipe.
async fn sent_ahead(pool: &workerpool_actors::PoolHandle) -> usize {
    pool.queue("work", 0..10).await.unwrap().tasks.iter().filter(|t| t.state == "sent").count()
}

/// A sleep of `ms` and three echo tasks behind it, on the type's one worker; answers how many
/// of the echo tasks were in the worker's pipe while the sleep ran.
async fn echoes_behind_a_sleep(pool: &workerpool_actors::PoolHandle, ms: u64) -> usize {
    let blocker = pool.submit(op("sleep", json!({ "ms": ms }))).await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..3 {
        handles.push(pool.submit(op("echo", json!({}))).await.unwrap());
    }
    // Read once all three wait (while the sleep runs); at most for a second.
    let mut sent = None;
    for _ in 0..200 {
        if pool.queue("work", 0..10).await.unwrap().length == 3 {
            sent = Some(sent_ahead(pool).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent = sent.expect("the three echo tasks waited behind the sleep");
    within(LIMIT, blocker.wait()).await.unwrap();
    for h in handles {
        assert_eq!(within(LIMIT, h.wait()).await.unwrap().status, TaskStatus::Completed);
    }
    sent
}

#[tokio::test]
async fn short_tasks_get_one_task_sent_ahead_and_a_long_one_stops_it() {
    let pool = demo_pool(1, |_| {});
    // No history yet: nothing is sent ahead of the first sleep.
    assert_eq!(echoes_behind_a_sleep(&pool, 300).await, 0);
    // Echo tasks take well under a millisecond: one task now waits in the worker's pipe.
    for _ in 0..40 {
        within(LIMIT, pool.execute(op("echo", json!({})))).await.unwrap();
    }
    assert_eq!(echoes_behind_a_sleep(&pool, 300).await, 1);
    // That sleep (300 ms) made the recent average long: nothing is sent ahead of the next.
    assert_eq!(echoes_behind_a_sleep(&pool, 300).await, 0);
    pool.shutdown().await;
}

#[tokio::test]
async fn auto_prefetch_off_sends_nothing_ahead() {
    let pool = demo_pool(1, |t| t.auto_prefetch = false);
    for _ in 0..40 {
        within(LIMIT, pool.execute(op("echo", json!({})))).await.unwrap();
    }
    assert_eq!(echoes_behind_a_sleep(&pool, 300).await, 0);
    pool.shutdown().await;
}
