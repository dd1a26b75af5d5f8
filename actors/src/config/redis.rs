//! The shared queue in Redis: [`RedisConfig`], the `[redis]` table and its defaults.

use serde::{Deserialize, Serialize};

use crate::redact::SecretUrl;

/// Where and how several instances share their queues in Redis (the `[redis]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]` or `rediss://…` for TLS; `None` runs in-process.
    /// Shown (`Debug`, `Serialize`) with its password as `***`.
    pub url: Option<SecretUrl>,
    /// Every key is `{prefix}:…`: one hash tag, so the scripts also work on Redis Cluster.
    pub prefix: String,
    /// This instance's name, unique among the instances sharing the queues.
    pub instance_id: String,
    /// How long a taken task stays leased without renewal; an instance that stops renewing
    /// (killed, cut off) loses its tasks to the others after this.
    pub lease_ms: u64,
    /// How often an instance renews its leases, reaps expired ones and says it is alive.
    pub heartbeat_ms: u64,
    /// Tasks of a type taken beyond the free workers, to hide the Redis round trip for short
    /// tasks. Each waits locally behind a running one, so keep it 0 for long tasks.
    pub take_ahead: usize,
    /// Whether this instance runs tasks. `false` makes an API front end that only queues,
    /// looks up and cancels tasks; other instances run them.
    pub consume: bool,
    /// With `rediss://`: a PEM file of the certificate authority to trust instead of the
    /// system's (a private CA).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// With `rediss://`: a PEM file of this instance's client certificate, for servers that
    /// authenticate clients (`tls-auth-clients yes`); with `tls_key_file`.
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// The PEM file of the client certificate's private key.
    pub tls_key_file: Option<std::path::PathBuf>,
    /// How long one Redis command (or connecting) may take before Redis counts as not
    /// answering: then the instance refuses work that needs Redis at once until it answers.
    pub command_timeout_ms: u64,
    /// How long a queueing whose reply did not come waits for Redis to answer again, to read
    /// back whether the task was queued; past it the answer says the outcome is unknown.
    pub outcome_wait_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            prefix: "workerpool".into(),
            instance_id: String::new(),
            lease_ms: 30_000,
            heartbeat_ms: 1_000,
            take_ahead: 0,
            consume: true,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            command_timeout_ms: 1_000,
            outcome_wait_ms: 3_000,
        }
    }
}
