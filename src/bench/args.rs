//! The arguments of `workerpool bench` and their defaults.

/// Tasks per run of the channel, in-process and process cases by default.
pub const DEFAULT_TASKS: u64 = 100_000;
/// Tasks per run of `spawn-per-task` by default.
pub const DEFAULT_SPAWN_TASKS: u64 = 1_000;
/// Requests in flight by default (like Piscina's `Promise.all` batches of 1,000).
pub const DEFAULT_WINDOW: usize = 1_000;
/// Measured runs per case by default.
pub const DEFAULT_RUNS: u32 = 3;
/// In-process handler slots of `inproc-noop` by default.
pub const DEFAULT_INPROC_SLOTS: usize = 8;
/// Seconds of load per measured run of the HTTP cases by default.
pub const DEFAULT_HTTP_SECS: u64 = 10;
/// Seconds `monitors-idle-cpu` measures each monitor setting by default.
pub const DEFAULT_IDLE_SECS: u64 = 10;
/// Tasks per run of the Redis cases by default (as the BullMQ peer benchmark).
pub const DEFAULT_REDIS_TASKS: u64 = 20_000;

/// Arguments of `workerpool bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Cases to run, in this order (default: all): channel-roundtrip, inproc-noop,
    /// process-noop, process-noop-prefetch, spawn-per-task, http-ceiling, http-execute,
    /// monitor-tick, monitors-idle-cpu, redis-noop, redis-noop-2i (these two with --redis).
    #[arg(value_name = "CASE")]
    pub cases: Vec<String>,
    /// Measured runs per case, after one warm-up run; the figures are the median run's.
    #[arg(long, default_value_t = DEFAULT_RUNS, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Tasks per run of channel-roundtrip, inproc-noop and process-noop.
    #[arg(long, default_value_t = DEFAULT_TASKS, value_parser = clap::value_parser!(u64).range(1..))]
    pub tasks: u64,
    /// Tasks per run of spawn-per-task (two in flight).
    #[arg(long, default_value_t = DEFAULT_SPAWN_TASKS, value_parser = clap::value_parser!(u64).range(1..))]
    pub spawn_tasks: u64,
    /// Requests the client keeps in flight (channel-roundtrip, inproc-noop, process-noop).
    #[arg(long, default_value_t = DEFAULT_WINDOW, value_parser = parse_positive)]
    pub window: usize,
    /// In-process handler slots (the type's max_concurrent) of inproc-noop.
    #[arg(long, default_value_t = DEFAULT_INPROC_SLOTS, value_parser = parse_positive)]
    pub inproc_slots: usize,
    /// Seconds of load per measured run of http-ceiling and http-execute (after a 1 s warm-up).
    #[arg(long, default_value_t = DEFAULT_HTTP_SECS, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub http_secs: u64,
    /// Seconds monitors-idle-cpu measures each of its two monitor settings.
    #[arg(long, default_value_t = DEFAULT_IDLE_SECS, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub idle_secs: u64,
    /// Redis for the redis-* cases (which run only with it), e.g. redis://127.0.0.1:6390/.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Tasks per run of the redis-* cases.
    #[arg(long, default_value_t = DEFAULT_REDIS_TASKS, value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_tasks: u64,
}

impl Default for BenchArgs {
    fn default() -> Self {
        BenchArgs {
            cases: Vec::new(),
            runs: DEFAULT_RUNS,
            tasks: DEFAULT_TASKS,
            spawn_tasks: DEFAULT_SPAWN_TASKS,
            window: DEFAULT_WINDOW,
            inproc_slots: DEFAULT_INPROC_SLOTS,
            http_secs: DEFAULT_HTTP_SECS,
            idle_secs: DEFAULT_IDLE_SECS,
            redis: None,
            redis_tasks: DEFAULT_REDIS_TASKS,
        }
    }
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a positive whole number, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_command_line() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let parsed = Cli::parse_from(["bench"]).bench;
        let default = BenchArgs::default();
        assert_eq!(
            (parsed.runs, parsed.tasks, parsed.spawn_tasks, parsed.window, parsed.inproc_slots),
            (default.runs, default.tasks, default.spawn_tasks, default.window, default.inproc_slots)
        );
        assert_eq!((parsed.http_secs, parsed.idle_secs), (default.http_secs, default.idle_secs));
        assert!(Cli::try_parse_from(["bench", "--runs", "0"]).is_err());
        assert!(Cli::try_parse_from(["bench", "--http-secs", "0"]).is_err());
        assert!(Cli::try_parse_from(["bench", "--window", "0"]).is_err());
    }
}
