//! [`ScriptedExecutor`]: an in-process handler that follows scripts and records its calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::time::Instant;

use super::script::{Attempt, End, Step};
use crate::executor::{HandlerFuture, TaskContext, TaskError};
use crate::task::TaskId;

/// An in-process handler whose attempts follow scripts, for tests.
///
/// A task follows the script named by the `"script"` field of its input (see
/// [`script_input`]), or the default script when its input has none. Attempt `n` of a task
/// plays entry `n` of its script; past the end, the last entry plays again. An input that
/// names no registered script fails without a retry.
///
/// Every attempt is recorded as a [`Call`], with the tokio instants at which it started and
/// ended. Clones share the scripts and the record, so a test keeps one and hands
/// [`ScriptedExecutor::handler`] to [`PoolBuilder::handler`](crate::PoolBuilder::handler).
///
/// # Examples
/// ```
/// use workerpool_actors::testing::{Attempt, PausedSystem, ScriptedExecutor, script_input};
/// use workerpool_actors::{PoolBuilder, PoolConfig, TaskRequest, TaskStatus};
///
/// PausedSystem::new().block_on(async {
///     let exec = ScriptedExecutor::new([Attempt::echo()]);
///     exec.script("broken", [Attempt::fatal("bad input")]);
///     let mut config = PoolConfig::default();
///     config.types.clear();
///     let pool = PoolBuilder::new(config).handler("job", exec.handler()).start().unwrap();
///
///     let echoed = pool.execute(TaskRequest::new("job", 7.into())).await.unwrap();
///     assert_eq!(echoed.result, Some(7.into()));
///     let broken = pool.execute(TaskRequest::new("job", script_input("broken"))).await.unwrap();
///     assert_eq!((broken.status, broken.attempts), (TaskStatus::Failed, 1));
///
///     let calls = exec.calls();
///     assert_eq!(calls.len(), 2);
///     assert_eq!(calls[1].script.as_deref(), Some("broken"));
///     assert!(calls.iter().all(|c| c.finished.is_some() && c.dropped.is_none()));
///     pool.shutdown().await;
/// });
/// ```
#[derive(Clone, Debug)]
pub struct ScriptedExecutor {
    state: Arc<Mutex<State>>,
}

/// One attempt a [`ScriptedExecutor`] was asked to run.
///
/// At most one of `finished` and `dropped` is set: an attempt either reaches the end of its
/// script or is dropped by the pool before it (timed out, cancelled, stopped by a shutdown).
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The task.
    pub id: TaskId,
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The script it followed (`None`: the default one).
    pub script: Option<String>,
    /// The task's input.
    pub data: Value,
    /// When it started, on the tokio clock.
    pub started: Instant,
    /// When it reached the end of its script (answered, failed, or panicked).
    pub finished: Option<Instant>,
    /// When the pool dropped it before that end.
    pub dropped: Option<Instant>,
}

#[derive(Debug)]
struct State {
    default: Vec<Attempt>,
    scripts: HashMap<String, Vec<Attempt>>,
    calls: Vec<Call>,
    running: usize,
    peak: usize,
}

/// The input of a task that follows the script named `name`: `{"script": name}`.
///
/// # Examples
/// ```
/// assert_eq!(workerpool_actors::testing::script_input("slow"), serde_json::json!({"script": "slow"}));
/// ```
pub fn script_input(name: &str) -> Value {
    serde_json::json!({ "script": name })
}

// ===== impl ScriptedExecutor =====

impl ScriptedExecutor {
    /// An executor whose tasks follow `default` unless their input names another script.
    ///
    /// # Panics
    ///
    /// When `default` is empty.
    pub fn new(default: impl IntoIterator<Item = Attempt>) -> ScriptedExecutor {
        let default: Vec<Attempt> = default.into_iter().collect();
        assert!(!default.is_empty(), "a script needs at least one attempt");
        let state = State { default, scripts: HashMap::new(), calls: Vec::new(), running: 0, peak: 0 };
        ScriptedExecutor { state: Arc::new(Mutex::new(state)) }
    }

    /// Registers (or replaces) the script `name`, for tasks whose input is
    /// [`script_input`]`(name)` or an object with that `"script"` field.
    ///
    /// # Panics
    ///
    /// When `attempts` is empty.
    pub fn script(&self, name: impl Into<String>, attempts: impl IntoIterator<Item = Attempt>) -> &Self {
        let attempts: Vec<Attempt> = attempts.into_iter().collect();
        assert!(!attempts.is_empty(), "a script needs at least one attempt");
        self.lock().scripts.insert(name.into(), attempts);
        self
    }

    /// The handler to register with [`PoolBuilder::handler`](crate::PoolBuilder::handler).
    pub fn handler(&self) -> impl Fn(TaskContext) -> HandlerFuture + Send + Sync + 'static {
        let state = self.state.clone();
        move |ctx: TaskContext| {
            let script = ctx.data().get("script").and_then(Value::as_str).map(str::to_string);
            let (attempt, index) = {
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                let attempts = match &script {
                    Some(name) => s.scripts.get(name),
                    None => Some(&s.default),
                };
                let chosen =
                    attempts.map(|a| a[(ctx.attempt().max(1) as usize - 1).min(a.len() - 1)].clone());
                s.calls.push(Call {
                    id: ctx.id().clone(),
                    attempt: ctx.attempt(),
                    script: script.clone(),
                    data: ctx.data().clone(),
                    started: Instant::now(),
                    finished: None,
                    dropped: None,
                });
                s.running += 1;
                s.peak = s.peak.max(s.running);
                (chosen, s.calls.len() - 1)
            };
            let mut guard = Running { state: state.clone(), index, done: false };
            Box::pin(async move {
                let Some(attempt) = attempt else {
                    guard.finish();
                    let name = script.unwrap_or_default();
                    return Err(TaskError::fatal(format!("no script named {name:?}")));
                };
                for step in &attempt.steps {
                    match step {
                        Step::Sleep(d) => tokio::time::sleep(*d).await,
                        Step::Progress(p, stage) => ctx.progress(*p, stage.as_deref()),
                    }
                }
                match attempt.end {
                    End::Hang => std::future::pending().await,
                    end => {
                        guard.finish();
                        match end {
                            End::Answer(v) => Ok(v),
                            End::Echo => Ok(ctx.data().clone()),
                            End::Fail(e) => Err(e),
                            End::Crash(message) => panic!("{message}"),
                            End::Hang => unreachable!("handled above"),
                        }
                    }
                }
            }) as HandlerFuture
        }
    }

    /// Every attempt asked of it so far, in the order they started.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The attempts of one task, in order.
    pub fn calls_of(&self, id: &TaskId) -> Vec<Call> {
        self.lock().calls.iter().filter(|c| &c.id == id).cloned().collect()
    }

    /// Attempts running now (started, neither finished nor dropped).
    pub fn running(&self) -> usize {
        self.lock().running
    }

    /// The most attempts that ran at once.
    pub fn peak(&self) -> usize {
        self.lock().peak
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Marks the end of a call: `finish` when its script ends, a drop before that when the pool
/// drops the attempt.
struct Running {
    state: Arc<Mutex<State>>,
    index: usize,
    done: bool,
}

impl Running {
    fn finish(&mut self) {
        self.end(|c, at| c.finished = Some(at));
    }

    fn end(&mut self, mark: impl FnOnce(&mut Call, Instant)) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.running -= 1;
        let at = Instant::now();
        if let Some(call) = s.calls.get_mut(self.index) {
            mark(call, at);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.end(|c, at| c.dropped = Some(at));
    }
}
