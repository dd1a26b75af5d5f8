//! The client side of every case: keep a window of requests in flight and time each one, on a
//! client runtime of its own; and the binary the cases start as workers and servers.

use std::cell::Cell;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::report::Run;

/// What one client loop measured.
#[derive(Default)]
struct LoopResult {
    latencies: Vec<Duration>,
    failed: u64,
    first_error: Option<String>,
}

/// Submits tasks `0..tasks` through `submit`, keeping `window` of them in flight, and times
/// each one from submission to result.
///
/// `submit(i)` runs task `i` to its end and checks its outcome; an `Err` counts as a failed
/// task. The window is `window` client loops on the current `LocalSet`, each taking the next
/// task number as soon as its previous task ended. A run with a failed task is an error that
/// says how many failed and what the first failure was.
pub(crate) async fn drive<F, Fut>(tasks: u64, window: usize, submit: F) -> anyhow::Result<Run>
where
    F: Fn(u64) -> Fut + 'static,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    let submit = Rc::new(submit);
    let next = Rc::new(Cell::new(0u64));
    let loops = usize::try_from(tasks).map_or(window, |t| t.min(window)).max(1);
    let per_loop = usize::try_from(tasks).unwrap_or(0) / loops + 1;
    let started = Instant::now();
    let handles: Vec<_> = (0..loops)
        .map(|_| {
            let (submit, next) = (submit.clone(), next.clone());
            tokio::task::spawn_local(async move {
                let mut out = LoopResult { latencies: Vec::with_capacity(per_loop), ..LoopResult::default() };
                loop {
                    let i = next.get();
                    if i >= tasks {
                        break;
                    }
                    next.set(i + 1);
                    let t0 = Instant::now();
                    let outcome = submit(i).await;
                    out.latencies.push(t0.elapsed());
                    if let Err(e) = outcome {
                        out.failed += 1;
                        out.first_error.get_or_insert(format!("task {i}: {e}"));
                    }
                }
                out
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(usize::try_from(tasks).unwrap_or(0));
    let mut failed = 0;
    let mut first_error = None;
    for handle in handles {
        let out = handle.await.context("a client loop of the benchmark panicked")?;
        latencies.extend(out.latencies);
        failed += out.failed;
        if first_error.is_none() {
            first_error = out.first_error;
        }
    }
    let elapsed = started.elapsed();
    if failed > 0 {
        bail!("{failed} of {tasks} tasks failed; first: {}", first_error.unwrap_or_default());
    }
    Ok(Run::new(elapsed, latencies))
}

/// A current-thread tokio runtime for the client (I/O and timers enabled).
pub(crate) fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build the client's tokio runtime")
}

/// One warm-up run of size `warmup` (not measured), then `runs` measured runs of size `tasks`;
/// the size is a task count, or milliseconds for the timed HTTP cases.
pub(crate) async fn warm_then_measure<F, Fut>(
    warmup: u64,
    tasks: u64,
    runs: u32,
    mut one_run: F,
) -> anyhow::Result<Vec<Run>>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<Run>>,
{
    one_run(warmup).await.context("warm-up run")?;
    let mut measured = Vec::with_capacity(runs as usize);
    for n in 1..=runs {
        measured.push(one_run(tasks).await.with_context(|| format!("run {n} of {runs}"))?);
    }
    Ok(measured)
}

/// This very binary, which also serves `demo-worker` and `serve`.
pub(crate) fn current_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the workerpool executable for the demo workers")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(f: impl Future<Output = T>) -> T {
        let rt = client_runtime().unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    #[test]
    fn every_task_runs_once_and_is_timed() {
        let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
        let log = seen.clone();
        let run = block_on(drive(25, 4, move |i| {
            let log = log.clone();
            async move {
                tokio::task::yield_now().await;
                log.borrow_mut().push(i);
                Ok(())
            }
        }))
        .unwrap();
        assert_eq!(run.latencies.len(), 25);
        let mut seen = seen.take();
        seen.sort_unstable();
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
    }

    #[test]
    fn the_window_bounds_the_tasks_in_flight() {
        let in_flight = Rc::new(Cell::new(0usize));
        let most = Rc::new(Cell::new(0usize));
        let (a, b) = (in_flight.clone(), most.clone());
        block_on(drive(50, 3, move |_| {
            let (a, b) = (a.clone(), b.clone());
            async move {
                a.set(a.get() + 1);
                b.set(b.get().max(a.get()));
                tokio::task::yield_now().await;
                a.set(a.get() - 1);
                Ok(())
            }
        }))
        .unwrap();
        assert_eq!(most.get(), 3);
    }

    #[test]
    fn failed_tasks_make_the_run_an_error() {
        let err =
            block_on(drive(10, 2, |i| async move { if i % 5 == 3 { Err("boom".into()) } else { Ok(()) } }))
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("2 of 10 tasks failed; first: task "), "{err}");
        assert!(err.ends_with(": boom"), "{err}");
    }
}
