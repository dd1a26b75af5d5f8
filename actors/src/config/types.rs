//! The settings of one task type: [`TypeConfig`], its [`Weight`] and [`ExecutorKind`], and
//! the per-type defaults, the contract's row for each of the six default types.

use serde::{Deserialize, Serialize};

/// How heavy one task of a type is; informational, shown by the API and used by the docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weight {
    /// Short, cheap tasks (text).
    Light,
    /// Seconds of work (audio, images).
    Medium,
    /// Minutes of work and most of a machine (video, worlds).
    Heavy,
}

/// Where the tasks of a type run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    /// A long-lived child process speaking JSON lines (see `command`).
    Process,
    /// An async Rust handler registered through the library.
    InProcess,
}

/// The settings of one task type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TypeConfig {
    /// How heavy a task of this type is.
    pub weight: Weight,
    /// Most tasks of the type running at once (one task per worker).
    pub max_concurrent: usize,
    /// Workers kept alive even when idle.
    pub min_workers: usize,
    /// A worker whose resident memory passes this is killed and replaced.
    pub memory_limit_mb: u64,
    /// While system CPU (percent) is above this, no further worker of the type starts (its
    /// first one always may).
    pub cpu_threshold: f32,
    /// Tasks run only where a usable GPU is reported.
    pub gpu_required: bool,
    /// GPUs each worker is placed on (`None`: 1 when `gpu_required`, else 0); see
    /// [`TypeConfig::gpus`].
    pub gpus_per_worker: Option<usize>,
    /// GPU memory a worker of the type may use on each of its GPUs, reserved there while it
    /// lives; `None`: the worker takes its GPUs for itself (no other worker is placed there).
    pub gpu_memory_mb: Option<u64>,
    /// Default per-task timeout in milliseconds.
    pub timeout_ms: u64,
    /// Most tasks waiting (queued, delayed or backing off) before submissions are refused.
    pub queue_size: usize,
    /// Retries after the first attempt for crashes, timeouts and retryable errors.
    pub max_retries: u32,
    /// Delay before the first retry; doubled for every further attempt.
    pub retry_delay_ms: u64,
    /// An idle worker above `min_workers` is retired after this long.
    pub idle_timeout_ms: u64,
    /// Tasks sent ahead to a busy process worker, so that it finds the next one in its pipe
    /// (like Celery's prefetch). 0, the default, sends a task only to an idle worker. A task
    /// sent ahead starts its timeout when the worker reaches it; cancelling it does not stop
    /// the worker from running it (its result is dropped).
    pub prefetch: usize,
    /// With `prefetch = 0`: a busy process worker of a type whose recent attempts took under
    /// a millisecond on average gets one task sent ahead while a backlog waits, so that it
    /// does not wait for the pool between tasks (for such tasks that wait is most of their
    /// cost). A longer task, or none, turns it off again. Default on.
    pub auto_prefetch: bool,
    /// A worker is recycled after this many tasks (`None`: never).
    pub max_tasks_per_worker: Option<u64>,
    /// Whether a task whose worker passed `memory_limit_mb` is retried (default: it fails).
    pub retry_on_memory_limit: bool,
    /// Longest line a process worker may write to stdout, in MiB; a worker that writes a
    /// longer one is killed and its task fails with `output_too_large`.
    pub max_output_line_mb: u64,
    /// How long a new worker may take to answer its first ping; one that does not is killed,
    /// and counts as a failed start.
    pub start_timeout_ms: u64,
    /// Wait before trying again after a worker failed to start (its program cannot run, it
    /// exited or never answered before it was ready); doubled for every further failure in a
    /// row.
    pub start_retry_delay_ms: u64,
    /// The longest wait between start tries.
    pub start_retry_max_delay_ms: u64,
    /// Failed starts in a row after which the type's waiting tasks fail with the reason and
    /// new ones are refused, until a worker starts again.
    pub max_start_failures: u32,
    /// Where tasks run.
    pub executor: ExecutorKind,
    /// The worker command for the process executor, program first; no shell.
    pub command: Option<Vec<String>>,
    /// Upper bounds (seconds) of the type's `workerpool_task_duration_seconds` buckets, in
    /// place of the default 10 ms to 30 min; strictly increasing and positive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_buckets_s: Option<Vec<f64>>,
    /// The same for `workerpool_task_wait_seconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_buckets_s: Option<Vec<f64>>,
}

// ===== defaults =====

/// The contract's table: (name, weight, max_concurrent, memory MB, CPU %, GPU, timeout).
pub(super) const DEFAULT_TYPES: [(&str, Weight, usize, u64, f32, bool, u64); 6] = [
    ("video_generation", Weight::Heavy, 1, 4096, 80.0, true, 600_000),
    ("audio_synthesis", Weight::Medium, 3, 2048, 70.0, false, 180_000),
    ("image_generation", Weight::Medium, 2, 3072, 75.0, true, 300_000),
    ("text_processing", Weight::Light, 10, 512, 60.0, false, 60_000),
    ("world_building", Weight::Heavy, 1, 4096, 85.0, true, 480_000),
    ("content_analysis", Weight::Light, 8, 1024, 65.0, false, 120_000),
];

// ===== impl TypeConfig =====

impl TypeConfig {
    /// The defaults of a type: the contract's row for a default type, generic ones otherwise.
    ///
    /// # Examples
    /// ```
    /// let t = workerpool_actors::TypeConfig::defaults_for("text_processing");
    /// assert_eq!(t.max_concurrent, 10);
    /// assert_eq!(workerpool_actors::TypeConfig::defaults_for("mine").max_concurrent, 1);
    /// ```
    pub fn defaults_for(name: &str) -> TypeConfig {
        let row = DEFAULT_TYPES.iter().find(|row| row.0 == name);
        let (weight, max_concurrent, memory_limit_mb, cpu_threshold, gpu_required, timeout_ms) = match row {
            Some(&(_, w, c, m, cpu, gpu, t)) => (w, c, m, cpu, gpu, t),
            None => (Weight::Medium, 1, 1024, 90.0, false, 60_000),
        };
        TypeConfig {
            weight,
            max_concurrent,
            min_workers: 0,
            memory_limit_mb,
            cpu_threshold,
            gpu_required,
            gpus_per_worker: None,
            gpu_memory_mb: None,
            timeout_ms,
            queue_size: 100,
            max_retries: 3,
            retry_delay_ms: 1000,
            idle_timeout_ms: 300_000,
            max_tasks_per_worker: None,
            prefetch: 0,
            auto_prefetch: true,
            retry_on_memory_limit: false,
            max_output_line_mb: 64,
            start_timeout_ms: 30_000,
            start_retry_delay_ms: 500,
            start_retry_max_delay_ms: 30_000,
            max_start_failures: 5,
            executor: ExecutorKind::Process,
            command: None,
            duration_buckets_s: None,
            wait_buckets_s: None,
        }
    }

    /// GPUs each worker of the type is placed on: `gpus_per_worker`, or 1 for a type with
    /// `gpu_required` and 0 for one without.
    ///
    /// # Examples
    /// ```
    /// let video = workerpool_actors::TypeConfig::defaults_for("video_generation");
    /// assert_eq!(video.gpus(), 1);
    /// assert_eq!(workerpool_actors::TypeConfig::defaults_for("text_processing").gpus(), 0);
    /// ```
    pub fn gpus(&self) -> usize {
        self.gpus_per_worker.unwrap_or(usize::from(self.gpu_required))
    }
}
