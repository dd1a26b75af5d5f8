//! What a shared backend reports of itself: plain data for `/api/workers/status`.

use serde::{Deserialize, Serialize};

/// One live instance, as it last described itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Its `INSTANCE_ID`.
    pub instance_id: String,
    /// Its last heartbeat (Unix milliseconds).
    pub heartbeat_at: u64,
    /// When it started.
    pub started_at: u64,
    /// The types it takes tasks of now.
    pub types: Vec<String>,
    /// Its live workers.
    pub workers: usize,
    /// Its workers running a task.
    pub busy: usize,
    /// Tasks it holds now.
    pub running: usize,
}

/// What a shared backend reports of itself (the `redis` block of `/api/workers/status`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SharedStatus {
    /// The live instances, at the last heartbeat.
    pub instances: Vec<InstanceInfo>,
    /// Why the backend cannot be reached now, if so.
    pub down: Option<String>,
    /// Results dropped because their attempt had lost its lease, over every instance (when
    /// they could be counted).
    pub stale_results: Option<u64>,
}
