//! Plain task data: requests, ids, statuses and the task record.

use std::fmt;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A task's id: a UUID v4, unique across instances; cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Arc<str>);

impl TaskId {
    /// A fresh random version-4 UUID. The 122 random bits come from SipHash, keyed once per
    /// process with random keys, over a counter: as unguessable as the keys, unique across
    /// processes, and without a system call per id.
    pub fn new() -> TaskId {
        use std::hash::{BuildHasher, RandomState};
        static KEYS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let (a, b) = KEYS.get_or_init(|| (RandomState::new(), RandomState::new()));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.hash_one(n).to_be_bytes());
        bytes[8..].copy_from_slice(&b.hash_one(n).to_be_bytes());
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut buf = uuid::Uuid::encode_buffer();
        TaskId(Arc::from(&*id.hyphenated().encode_lower(&mut buf)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TaskId {
    fn default() -> Self {
        TaskId::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TaskId {
    fn from(s: &str) -> TaskId {
        TaskId(Arc::from(s))
    }
}

impl From<String> for TaskId {
    fn from(s: String) -> TaskId {
        TaskId(Arc::from(s))
    }
}

/// Where a task is in its life (the contract's statuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting: in the queue, delayed, or backing off before a retry.
    Queued,
    /// On a worker now.
    Running,
    /// Finished with a result.
    Completed,
    /// Finished with an error that is not retried (a non-retryable error, a shutdown).
    Failed,
    /// The last attempt ran past its timeout and no attempts remain.
    TimedOut,
    /// Cancelled by a caller.
    Cancelled,
    /// Out of attempts after crashes or retryable errors; in the dead-letter list.
    Dead,
}

impl TaskStatus {
    /// Whether the task has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, TaskStatus::Queued | TaskStatus::Running)
    }

    /// The contract's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::TimedOut => "timed_out",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Dead => "dead",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-task options; each one unset takes the type's configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskOptions {
    /// Higher runs first; equal priorities run in submission order. Default 0.
    pub priority: Option<i32>,
    /// Timeout of each attempt in milliseconds.
    pub timeout: Option<u64>,
    /// Retries after the first attempt.
    pub max_retries: Option<u32>,
    /// Milliseconds to wait before the task becomes runnable.
    pub delay: Option<u64>,
    /// Whether a caller waits for the result (used by the REST API; the library ignores it).
    pub wait: Option<bool>,
}

/// A task to submit: its type, its input and options.
///
/// # Examples
/// ```
/// use workerpool_actors::TaskRequest;
/// let req = TaskRequest::new("text_processing", serde_json::json!({"text": "hi"})).priority(5);
/// assert_eq!(req.options.priority, Some(5));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRequest {
    /// The task type.
    #[serde(rename = "type")]
    pub task_type: String,
    /// The input handed to the worker.
    #[serde(default)]
    pub data: Value,
    /// Options.
    #[serde(default)]
    pub options: TaskOptions,
}

impl TaskRequest {
    /// A request with default options.
    pub fn new(task_type: impl Into<String>, data: Value) -> TaskRequest {
        TaskRequest { task_type: task_type.into(), data, options: TaskOptions::default() }
    }

    /// Sets the priority (higher first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.options.priority = Some(priority);
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.options.timeout = Some(ms);
        self
    }

    /// Sets the number of retries.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.options.max_retries = Some(n);
        self
    }

    /// Delays the start by `ms` milliseconds.
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.options.delay = Some(ms);
        self
    }
}

/// The last progress a worker reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// 0 to 100.
    pub progress: u8,
    /// What the worker says it is doing.
    pub stage: Option<String>,
}

/// What one attempt used: the figures of the last attempt that ended, in the task's record.
///
/// `wall_ms` is exact (the pool's clock, from the attempt's start to its end). The others are
/// sampled by the resource monitor every `resource_monitor_interval_ms`, so they are known
/// only for process workers that were sampled while the attempt ran (`docs/API.md`,
/// "Resource accounting", says how): `None` for in-process attempts and for attempts that
/// no sample saw.
///
/// # Examples
/// ```
/// use workerpool_actors::TaskResources;
/// let r = TaskResources { wall_ms: 1500, gpus: vec!["GPU-1".into()], ..TaskResources::default() };
/// assert_eq!(r.gpu_seconds(), 1.5);
/// let json = serde_json::to_value(&r).unwrap();
/// assert_eq!(json["cpu_ms"], serde_json::Value::Null);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResources {
    /// Milliseconds from the attempt's start to its end.
    pub wall_ms: u64,
    /// CPU time of the worker process between the samples that bracket the attempt (a lower
    /// bound); `None` when too few samples saw it.
    pub cpu_ms: Option<u64>,
    /// The highest resident memory of the worker process seen while the attempt ran.
    pub peak_rss_bytes: Option<u64>,
    /// The UUIDs of the GPUs the worker was given (empty without GPU placement).
    #[serde(default)]
    pub gpus: Vec<String>,
    /// The highest GPU memory of the worker process seen while the attempt ran, over all GPUs.
    pub peak_gpu_memory_bytes: Option<u64>,
}

impl TaskResources {
    /// Wall seconds times the GPUs held: what `workerpool_task_gpu_seconds_total` adds.
    pub fn gpu_seconds(&self) -> f64 {
        self.wall_ms as f64 / 1000.0 * self.gpus.len() as f64
    }
}

/// Everything known about one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Its id.
    pub id: TaskId,
    /// Its type.
    #[serde(rename = "type")]
    pub task_type: String,
    /// Where it is.
    pub status: TaskStatus,
    /// Its priority.
    pub priority: i32,
    /// Attempts started so far.
    pub attempts: u32,
    /// Retries allowed after the first attempt.
    pub max_retries: u32,
    /// When it was submitted (Unix milliseconds).
    pub created_at: u64,
    /// When its last attempt started.
    pub started_at: Option<u64>,
    /// When it ended.
    pub finished_at: Option<u64>,
    /// The last progress reported by its current or last attempt.
    pub progress: Option<Progress>,
    /// The result, when completed.
    pub result: Option<Value>,
    /// The last error, if any.
    pub error: Option<String>,
    /// The worker of its current or last attempt.
    pub worker_id: Option<String>,
    /// The process id of that worker (process executor only).
    pub worker_pid: Option<u32>,
    /// With shared queues: the instance of its current or last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// What its last ended attempt used; `None` until an attempt has ended.
    #[serde(default)]
    pub resources: Option<TaskResources>,
}

impl TaskRecord {
    pub(crate) fn new(id: TaskId, task_type: &str, priority: i32, max_retries: u32) -> TaskRecord {
        Self::new_at(id, task_type, priority, max_retries, now_ms())
    }

    pub(crate) fn new_at(
        id: TaskId,
        task_type: &str,
        priority: i32,
        max_retries: u32,
        created_at: u64,
    ) -> TaskRecord {
        TaskRecord {
            id,
            task_type: task_type.to_string(),
            status: TaskStatus::Queued,
            priority,
            attempts: 0,
            max_retries,
            created_at,
            started_at: None,
            finished_at: None,
            progress: None,
            result: None,
            error: None,
            worker_id: None,
            worker_pid: None,
            instance_id: None,
            resources: None,
        }
    }
}

/// Milliseconds since the Unix epoch at `at`, from one reading of the wall clock taken at the
/// first call and the monotonic clock since (one clock read per event instead of two).
pub(crate) fn ms_at(at: impl Into<std::time::Instant>) -> u64 {
    let at: std::time::Instant = at.into();
    static BASE: OnceLock<(std::time::Instant, u64)> = OnceLock::new();
    let (base, base_ms) = *BASE.get_or_init(|| (std::time::Instant::now(), now_ms()));
    match at.checked_duration_since(base) {
        Some(d) => base_ms + d.as_millis() as u64,
        None => base_ms.saturating_sub(base.duration_since(at).as_millis() as u64),
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_version_4_uuids() {
        let a = TaskId::new();
        let b = TaskId::new();
        assert_ne!(a, b);
        for id in [&a, &b] {
            let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
        }
    }
}
