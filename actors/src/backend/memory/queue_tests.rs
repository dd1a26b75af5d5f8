//! Tests of `TaskQueue`: order, holds, put-backs, delays and the counts on every move.

use super::*;

/// A test executor's holds: sent ahead (waiting in a pipe) or running.
#[derive(Debug, PartialEq, Eq)]
enum H {
    Sent,
    Running,
}

impl Hold for H {
    fn running(&self) -> bool {
        *self == H::Running
    }
}

fn id(s: &str) -> TaskId {
    TaskId::from(s)
}

fn task(priority: i32) -> Pending {
    Pending {
        data: Arc::new(Value::Null),
        priority,
        timeout: Duration::from_secs(1),
        max_retries: 2,
        attempt: 0,
        waiters: Vec::new(),
    }
}

#[test]
fn takes_by_priority_then_first_come_and_counts_each_attempt() {
    let now = Instant::now();
    let mut q = TaskQueue::<H>::default();
    for (name, priority) in [("a", 0), ("b", 5), ("c", 0)] {
        q.insert(id(name), task(priority), None, now);
    }
    assert_eq!((q.len(), q.ready(), q.waiting()), (3, 3, 3));
    assert_eq!(q.take(H::Running), Some(id("b")));
    assert_eq!(q.take(H::Sent), Some(id("a")));
    assert_eq!((q.ready(), q.waiting()), (1, 2), "a task sent ahead still waits");
    assert_eq!(q.get(&id("b")).map(|e| e.task.attempt), Some(1));
    assert_eq!(q.get(&id("a")).and_then(|e| e.held()), Some(&H::Sent));
    assert!(q.hold(&id("a"), H::Running));
    assert_eq!(q.waiting(), 1);
    assert_eq!(q.take(H::Running), Some(id("c")));
    assert_eq!(q.take(H::Running), None);
    assert_eq!((q.ready(), q.waiting()), (0, 0));
}

#[test]
fn a_task_put_back_keeps_its_place_and_may_get_its_attempt_back() {
    let t0 = Instant::now();
    let mut q = TaskQueue::<H>::default();
    q.insert(id("first"), task(0), None, t0);
    q.insert(id("second"), task(0), None, t0);
    assert_eq!(q.take(H::Sent), Some(id("first")));
    let later = t0 + Duration::from_secs(3);
    assert!(q.put_back(&id("first"), true, later));
    let e = q.get(&id("first")).map(|e| (e.task.attempt, e.ready_since()));
    assert_eq!(e, Some((0, later)));
    assert_eq!(q.ready(), 2);
    assert_eq!(q.take(H::Running), Some(id("first")), "it goes before the later task");
    // Put back without a refund (the attempt was spent), it keeps the count.
    assert!(q.put_back(&id("first"), false, later));
    assert_eq!(q.get(&id("first")).map(|e| e.task.attempt), Some(1));
    assert!(!q.put_back(&id("gone"), true, later));
    assert!(!q.hold(&id("first"), H::Running), "a ready task is not held");
}

#[test]
fn a_delayed_task_is_ready_only_once_its_time_passed() {
    let t0 = Instant::now();
    let mut q = TaskQueue::<H>::default();
    q.insert(id("later"), task(9), Some(Duration::from_secs(5)), t0);
    q.insert(id("soon"), task(0), Some(Duration::from_secs(1)), t0);
    assert_eq!((q.ready(), q.waiting(), q.next_due()), (0, 2, Some(t0 + Duration::from_secs(1))));
    assert_eq!(q.take(H::Running), None);
    assert_eq!(q.wake_due(t0 + Duration::from_millis(999)), 0);
    assert_eq!(q.wake_due(t0 + Duration::from_secs(1)), 1);
    assert_eq!(q.oldest_ready_wait(t0 + Duration::from_secs(3)), Duration::from_secs(2));
    assert_eq!(q.take(H::Running), Some(id("soon")));
    // A retry's backoff delays a held task again.
    assert!(q.delay(&id("soon"), t0 + Duration::from_secs(2)));
    assert_eq!((q.waiting(), q.next_due()), (2, Some(t0 + Duration::from_secs(2))));
    assert_eq!(q.wake_due(t0 + Duration::from_secs(10)), 2);
    assert_eq!(q.ready_ids(), [id("later"), id("soon")]);
    assert_eq!(q.next_due(), None);
}

#[test]
fn a_task_that_ends_leaves_every_count_and_entry() {
    let t0 = Instant::now();
    let mut q = TaskQueue::<H>::default();
    q.insert(id("ready"), task(0), None, t0);
    q.insert(id("delayed"), task(0), Some(Duration::from_secs(1)), t0);
    q.insert(id("running"), task(0), None, t0);
    assert_eq!(q.take(H::Running), Some(id("ready")));
    assert!(q.remove(&id("delayed")).is_some());
    assert_eq!(q.next_due(), None, "its delay went with it");
    assert!(q.remove(&id("ready")).is_some());
    assert_eq!((q.len(), q.ready(), q.waiting()), (1, 1, 1));
    assert!(q.remove(&id("running")).is_some());
    assert_eq!((q.len(), q.ready(), q.waiting()), (0, 0, 0));
    // Its entry in the ready order is skipped.
    assert_eq!(q.take(H::Running), None);
    assert!(q.remove(&id("running")).is_none());
    assert_eq!(q.wake_due(t0 + Duration::from_secs(2)), 0);
}

#[test]
fn a_waiter_joins_a_live_task_only() {
    let mut q = TaskQueue::<H>::default();
    q.insert(id("a"), task(0), None, Instant::now());
    let (tx, _rx) = tokio::sync::oneshot::channel();
    assert!(q.add_waiter(&id("a"), Waiter::Record(tx)).is_ok());
    assert_eq!(q.get(&id("a")).map(|e| e.task.waiters.len()), Some(1));
    let (tx, _rx) = tokio::sync::oneshot::channel();
    assert!(q.add_waiter(&id("b"), Waiter::Record(tx)).is_err());
}

#[test]
fn only_a_held_task_is_put_back_or_delayed() {
    let t0 = Instant::now();
    let mut q = TaskQueue::<H>::default();
    q.insert(id("ready"), task(0), None, t0);
    q.insert(id("delayed"), task(0), Some(Duration::from_secs(1)), t0);
    let later = t0 + Duration::from_secs(5);
    for name in ["ready", "delayed"] {
        assert!(!q.put_back(&id(name), true, later), "{name}");
        assert!(!q.delay(&id(name), later), "{name}");
    }
    // Nothing moved: one ready task, its attempt untouched, the delay as it was.
    assert_eq!((q.ready(), q.next_due()), (1, Some(t0 + Duration::from_secs(1))));
    assert_eq!(q.get(&id("ready")).map(|e| (e.task.attempt, e.ready_since())), Some((0, t0)));
    assert_eq!(q.take(H::Running), Some(id("ready")));
    assert_eq!(q.take(H::Running), None, "the ready task had one entry in the ready order");
}
