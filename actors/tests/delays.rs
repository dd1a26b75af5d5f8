//! Where a task waits, on a paused clock: delays and retry backoffs share one alarm, each
//! task becomes ready at its own instant whatever the order it came in, and a task that
//! leaves while it waits (cancelled) takes its delay with it.

// Not every test file uses every helper of `support`.
#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::time::Instant;
use workerpool_actors::testing::{Attempt, PausedSystem, ScriptedExecutor, script_input};
use workerpool_actors::{ErrorKind, TaskRequest, TaskStatus};

#[actix_rt::test(system = "PausedSystem")]
async fn delays_end_in_their_own_order_and_a_cancelled_one_never_runs() {
    let exec = ScriptedExecutor::new([Attempt::after(Duration::from_millis(10)).echo()]);
    exec.script("flaky", [Attempt::fail("not yet"), Attempt::echo()]);
    let (pool, _) = start(config(4), vec![("job", in_process(2), &exec)]);
    let t0 = Instant::now();
    let mut labels = HashMap::new();
    let mut handles = HashMap::new();
    // Submitted latest-first, so each new delay ends before every one armed so far.
    for (label, delay) in [("late", 500), ("cancelled", 300), ("middle", 250), ("soon", 100)] {
        let h =
            pool.submit(TaskRequest::new("job", json!({ "label": label })).delay_ms(delay)).await.unwrap();
        labels.insert(h.id().clone(), label);
        handles.insert(label, h);
    }
    // A task that fails at once backs off 100 ms: its retry waits among the delays.
    let flaky = pool.submit(TaskRequest::new("job", script_input("flaky"))).await.unwrap();
    labels.insert(flaky.id().clone(), "flaky");

    at(t0, 50).await;
    let stats = pool.stats().await.unwrap().by_type["job"].clone();
    assert_eq!((stats.queued, stats.ready, stats.busy), (5, 0, 0), "{stats:?}");
    let queue = pool.queue("job", 0..10).await.unwrap();
    assert!(queue.tasks.iter().all(|t| t.state == "waiting"), "{queue:?}");

    at(t0, 200).await;
    let cancelled = handles["cancelled"].id().clone();
    assert_eq!(pool.cancel(&cancelled).await.unwrap().status, TaskStatus::Cancelled);
    for h in handles.into_values() {
        h.wait().await.unwrap();
    }
    assert_eq!(flaky.wait().await.unwrap().status, TaskStatus::Completed);

    at(t0, 1_000).await;
    let calls = exec.calls();
    let mut order: Vec<(u64, &str)> = calls.iter().map(|c| (ms(t0, c.started), labels[&c.id])).collect();
    order.sort();
    assert_eq!(order, [(0, "flaky"), (100, "flaky"), (100, "soon"), (250, "middle"), (500, "late")]);
    assert!(exec.calls_of(&cancelled).is_empty());
    let record = pool.lookup(&cancelled).await.unwrap();
    assert_eq!((record.status, record.attempts), (TaskStatus::Cancelled, 0));
    assert_eq!(pool.cancel(&cancelled).await.unwrap_err().kind(), ErrorKind::Finished);
    let stats = pool.stats().await.unwrap().by_type["job"].clone();
    assert_eq!((stats.queued, stats.ready, stats.tasks_completed), (0, 0, 4), "{stats:?}");
    pool.shutdown().await;
}
