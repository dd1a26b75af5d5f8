//! What the tests on paused time share: pools of in-process types on fake resource sources,
//! and readings of the tokio clock.
//!
//! Every test runs under `PausedSystem`: the clock moves only when every task waits on a
//! timer, so a sleep of the test returns only after the pool has done all it could until then.

use std::time::Duration;

use tokio::time::Instant;
use workerpool_actors::testing::{Call, FakeGpu, FakeProbe, ScriptedExecutor};
use workerpool_actors::{
    EventKind, EventReceiver, ExecutorKind, PoolBuilder, PoolConfig, PoolHandle, TypeConfig,
};

/// A pool-wide configuration with no types, no warm workers and `max_workers` slots.
pub fn config(max_workers: usize) -> PoolConfig {
    PoolConfig { types: Default::default(), max_workers, min_workers: 0, ..PoolConfig::default() }
}

/// An in-process type: `max_concurrent` slots, three retries 100 ms apart (doubling).
pub fn in_process(max_concurrent: usize) -> TypeConfig {
    let mut t = TypeConfig::defaults_for("inproc");
    t.executor = ExecutorKind::InProcess;
    t.max_concurrent = max_concurrent;
    t.max_retries = 3;
    t.retry_delay_ms = 100;
    t
}

/// Starts a pool whose types run on the given executors, with fake resource sources (and
/// returns the probe, whose figures the test may change).
pub fn start(
    mut cfg: PoolConfig,
    types: Vec<(&str, TypeConfig, &ScriptedExecutor)>,
) -> (PoolHandle, FakeProbe) {
    for (name, t, _) in &types {
        cfg.types.insert(name.to_string(), t.clone());
    }
    let probe = FakeProbe::new();
    let mut builder = PoolBuilder::new(cfg).resource_probe(probe.clone()).gpu_source(FakeGpu::unavailable());
    for (name, _, exec) in types {
        builder = builder.handler(name, exec.handler());
    }
    (builder.start().expect("the pool starts"), probe)
}

/// Milliseconds from `t0` to `at`.
pub fn ms(t0: Instant, at: Instant) -> u64 {
    at.duration_since(t0).as_millis() as u64
}

/// When each call started, in milliseconds from `t0`.
pub fn starts(t0: Instant, calls: &[Call]) -> Vec<u64> {
    calls.iter().map(|c| ms(t0, c.started)).collect()
}

/// Sleeps until `t0 + millis` on the paused clock.
pub async fn at(t0: Instant, millis: u64) {
    tokio::time::sleep_until(t0 + Duration::from_millis(millis)).await;
}

/// The events received so far (the buffer is far larger than any test's events).
pub fn events(rx: &mut EventReceiver) -> Vec<EventKind> {
    let mut all = Vec::new();
    while let Ok(e) = rx.try_recv() {
        all.push(e.kind);
    }
    all
}
