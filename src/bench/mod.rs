//! `workerpool bench`: the project's own benchmarks (contract §7).
//!
//! Each case prints one line to stdout, in the shape of the peer benchmarks
//! (`../shared/bench/peers`):
//!
//! ```text
//! <case>: <N> tasks/s | p50=<x>ms p99=<y>ms (details)
//! ```
//!
//! `N` is the median throughput of `--runs` measured runs, after one warm-up run that is not
//! counted (`requests/s` for `http-ceiling`, `samples/s` for `monitor-tick`); p50/p99 are the
//! submit-to-result latencies of that median run; the details give every run's rate, its
//! count (tasks, requests, samples) and the in-flight window. After the cases, `# ` lines give
//! the ratios between cases that ran side by side.
//!
//! | case | what |
//! |---|---|
//! | `channel-roundtrip` | the ceiling: a bare tokio bounded `mpsc` (cap 1024) + `oneshot` request/response loop, one server task on a thread of its own, the client keeping `--window` requests in flight |
//! | `inproc-noop` | the library with an in-process handler that returns its input, driven like `channel-roundtrip` |
//! | `process-noop` | the library with two `workerpool demo-worker` processes answering `echo` tasks |
//! | `process-noop-prefetch` | the same with `prefetch = 8`: each worker finds its next tasks in its pipe |
//! | `spawn-per-task` | the baseline: a fresh `workerpool demo-worker` process per task, two in flight |
//! | `http-ceiling` | the HTTP ceiling: a bare actix-web server (2 workers, in this process) answering `{}` to `POST /api/workers/execute`, 64 keep-alive connections for `--http-secs` (rate in requests/s) |
//! | `http-execute` | the real server (`workerpool serve`, a child process, two prefetching demo workers) executing `echo` tasks over the same 64 connections |
//! | `monitor-tick` | one resource-monitor sample (`SysinfoProbe`) over 50 demo-worker processes (rate in samples/s), plus the cost of NVML and of the pure scaling and health decisions |
//! | `monitors-idle-cpu` | the CPU an idle pool of 50 process workers uses with the monitors at their default intervals and at one second (its own line: `<x>% of one core \| default-intervals=… fast-intervals=…`) |
//! | `redis-noop` | with `--redis URL`: `--redis-tasks` `echo` tasks through the shared queue in Redis (keys under `{workerpool-bench}`, cleared before each run), one instance with two process workers; from the first enqueue to the last result |
//! | `redis-noop-2i` | the same with two instances (two actor trees with their own connections, in this process) taking from the one queue; tasks are submitted through the first |
//!
//! Every task's outcome is checked (status `completed` and the echoed input); a run with a
//! failed task is an error, never a figure. Figures are only meaningful from a release build.

mod cases;
mod driver;
mod http;
mod monitors;
mod report;

use std::io::Write;

use anyhow::{Context, bail};

use report::Outcome;

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

/// One benchmark case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Case {
    ChannelRoundtrip,
    InprocNoop,
    ProcessNoop,
    ProcessNoopPrefetch,
    SpawnPerTask,
    HttpCeiling,
    HttpExecute,
    MonitorTick,
    MonitorsIdleCpu,
    RedisNoop,
    RedisNoop2i,
}

impl Case {
    /// Every case, in the order they run by default.
    const ALL: [Case; 11] = [
        Case::ChannelRoundtrip,
        Case::InprocNoop,
        Case::ProcessNoop,
        Case::ProcessNoopPrefetch,
        Case::SpawnPerTask,
        Case::HttpCeiling,
        Case::HttpExecute,
        Case::MonitorTick,
        Case::MonitorsIdleCpu,
        Case::RedisNoop,
        Case::RedisNoop2i,
    ];

    /// The case's name on the command line and in the output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Case::ChannelRoundtrip => "channel-roundtrip",
            Case::InprocNoop => "inproc-noop",
            Case::ProcessNoop => "process-noop",
            Case::ProcessNoopPrefetch => "process-noop-prefetch",
            Case::SpawnPerTask => "spawn-per-task",
            Case::HttpCeiling => "http-ceiling",
            Case::HttpExecute => "http-execute",
            Case::MonitorTick => "monitor-tick",
            Case::MonitorsIdleCpu => "monitors-idle-cpu",
            Case::RedisNoop => "redis-noop",
            Case::RedisNoop2i => "redis-noop-2i",
        }
    }

    fn from_name(name: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The cases named on the command line (every case when none is), without repeats.
fn select_cases(names: &[String]) -> anyhow::Result<Vec<Case>> {
    if names.is_empty() {
        return Ok(Case::ALL.to_vec());
    }
    let mut cases = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        match Case::from_name(name) {
            Some(case) if !cases.contains(&case) => cases.push(case),
            Some(_) => {}
            None => unknown.push(format!("{name:?}")),
        }
    }
    if !unknown.is_empty() {
        let valid: Vec<&str> = Case::ALL.iter().map(|c| c.name()).collect();
        let noun = if unknown.len() == 1 { "case" } else { "cases" };
        bail!("unknown benchmark {noun} {}; valid cases: {}", unknown.join(", "), valid.join(", "));
    }
    Ok(cases)
}

/// Runs the benchmarks named in `args` and prints one line per case to stdout, then the
/// ratios. A case that fails (a task that did not complete, a worker that did not start) is
/// reported on stderr; the other cases still run, and the whole command then fails.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut cases = select_cases(&args.cases)?;
    let redis_cases = [Case::RedisNoop, Case::RedisNoop2i];
    if args.redis.is_none() {
        if args.cases.is_empty() {
            cases.retain(|c| !redis_cases.contains(c));
        } else if cases.iter().any(|c| redis_cases.contains(c)) {
            bail!("the redis-* cases need --redis URL");
        }
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: workerpool was built without optimisations; build with --release for real figures"
        );
    }
    if std::env::var_os("RUST_LOG").is_none() {
        // Worker starts and stops are logged at info; keep the benchmark's stderr to warnings.
        log::set_max_level(log::LevelFilter::Warn);
    }
    let mut results: Vec<Outcome> = Vec::new();
    let mut failed = Vec::new();
    let mut stdout = std::io::stdout();
    for case in cases {
        match cases::run(case, &args) {
            Ok(result) => {
                writeln!(stdout, "{}", result.line()).context("cannot write to stdout")?;
                stdout.flush().context("cannot write to stdout")?;
                results.push(result);
            }
            Err(e) => {
                eprintln!("{}: failed: {e:#}", case.name());
                failed.push(case.name());
            }
        }
    }
    let rate = |case: &str| results.iter().find(|r| r.case() == case).map(Outcome::rate);
    for line in report::ratio_lines(rate) {
        writeln!(stdout, "{line}").context("cannot write to stdout")?;
    }
    if !failed.is_empty() {
        bail!("{} of the benchmark cases failed: {}", failed.len(), failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_case_means_every_case_in_order() {
        assert_eq!(select_cases(&[]).unwrap(), Case::ALL.to_vec());
    }

    #[test]
    fn named_cases_keep_their_order_without_repeats() {
        let names = ["process-noop", "channel-roundtrip", "process-noop"].map(String::from);
        assert_eq!(select_cases(&names).unwrap(), vec![Case::ProcessNoop, Case::ChannelRoundtrip]);
    }

    #[test]
    fn an_unknown_case_lists_the_valid_ones() {
        let err = select_cases(&["inproc-noop".into(), "nope".into()]).unwrap_err().to_string();
        assert!(err.contains("\"nope\""), "{err}");
        for case in Case::ALL {
            assert!(err.contains(case.name()), "{err}");
        }
    }

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
