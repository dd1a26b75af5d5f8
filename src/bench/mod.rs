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
//!
//! `args.rs` holds the arguments, `case.rs` the cases and their names; `cases.rs` runs the
//! channel, library, process and Redis cases, `http/` the HTTP cases and `monitors/` the
//! monitor cases, each through `driver.rs`; `report.rs` turns runs into lines.

mod args;
mod case;
mod cases;
mod driver;
mod http;
mod monitors;
mod report;

use std::io::Write;

use anyhow::{Context, bail};

pub use args::{
    BenchArgs, DEFAULT_HTTP_SECS, DEFAULT_IDLE_SECS, DEFAULT_INPROC_SLOTS, DEFAULT_REDIS_TASKS, DEFAULT_RUNS,
    DEFAULT_SPAWN_TASKS, DEFAULT_TASKS, DEFAULT_WINDOW,
};
use case::{Case, select_cases};
use report::Outcome;

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
        match run_case(case, &args) {
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

/// Runs one case.
fn run_case(case: Case, args: &BenchArgs) -> anyhow::Result<Outcome> {
    match case {
        Case::ChannelRoundtrip => cases::channel_roundtrip(args).map(Outcome::Runs),
        Case::InprocNoop => cases::inproc_noop(args).map(Outcome::Runs),
        Case::ProcessNoop => cases::process_noop(args, 0).map(Outcome::Runs),
        Case::ProcessNoopPrefetch => cases::process_noop(args, cases::PREFETCH).map(Outcome::Runs),
        Case::SpawnPerTask => cases::spawn_per_task(args).map(Outcome::Runs),
        Case::HttpCeiling => http::http_ceiling(args).map(Outcome::Runs),
        Case::HttpExecute => http::http_execute(args).map(Outcome::Runs),
        Case::MonitorTick => monitors::monitor_tick(args).map(Outcome::Runs),
        Case::MonitorsIdleCpu => monitors::monitors_idle_cpu(args).map(Outcome::IdleCpu),
        Case::RedisNoop => cases::redis_noop(args, 1).map(Outcome::Runs),
        Case::RedisNoop2i => cases::redis_noop(args, 2).map(Outcome::Runs),
    }
}
