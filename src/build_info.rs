//! The server's own metrics: `workerpool_build_info{version,revision}` and, on Linux, the
//! standard `process_*` family read from `/proc/self` (what the `prometheus` crate's
//! `process` feature gives, without its `procfs` dependency tree).

use prometheus::core::{Collector, Desc};
use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts, Registry, proto};

/// The git revision the binary was built from (`build.rs`), or `unknown`.
pub const REVISION: &str = env!("WORKERPOOL_REVISION");

/// What `workerpool --version` says: the version and the revision, e.g. `0.1.0 (revision 0c593a8)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (revision ", env!("WORKERPOOL_REVISION"), ")");

/// Registers `workerpool_build_info` and, on Linux, the process collector.
pub fn register(registry: &Registry) -> Result<(), prometheus::Error> {
    let info = IntGaugeVec::new(
        Opts::new("workerpool_build_info", "The version and git revision of this build (always 1)"),
        &["version", "revision"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), REVISION]).set(1);
    registry.register(Box::new(info))?;
    if cfg!(target_os = "linux") {
        registry.register(Box::new(ProcessCollector::new()?))?;
    }
    Ok(())
}

/// USER_HZ, the unit of the times in `/proc/<pid>/stat`: 100 on every Linux ABI.
const CLOCK_TICKS: u64 = 100;

/// The figures of `/proc/self/stat` the collector uses.
#[derive(Debug, PartialEq)]
struct Stat {
    cpu_ticks: u64,
    threads: i64,
    start_ticks: u64,
    vsize: i64,
}

/// Parses `/proc/<pid>/stat`; the command name (field 2) may hold spaces and parentheses,
/// so fields are counted from its last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): field n is at index n - 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        cpu_ticks: num(14)? + num(15)?,
        threads: num(20)? as i64,
        start_ticks: num(22)?,
        vsize: num(23)? as i64,
    })
}

/// The value in kB of `key` in `/proc/<pid>/status`, in bytes.
fn status_bytes(text: &str, key: &str) -> Option<i64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: i64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

/// `btime` of `/proc/stat`: the boot time, in seconds since the epoch.
fn boot_time(text: &str) -> Option<i64> {
    text.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The soft limit of open files in `/proc/<pid>/limits`.
fn max_open_files(text: &str) -> Option<i64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// The `process_*` family of this process.
struct ProcessCollector {
    descs: Vec<Desc>,
    cpu: IntCounter,
    open_fds: IntGauge,
    max_fds: IntGauge,
    vsize: IntGauge,
    rss: IntGauge,
    start_time: IntGauge,
    threads: IntGauge,
}

impl ProcessCollector {
    fn new() -> Result<ProcessCollector, prometheus::Error> {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help);
        let c = ProcessCollector {
            descs: Vec::new(),
            cpu: IntCounter::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            )?,
            open_fds: gauge("process_open_fds", "Number of open file descriptors.")?,
            max_fds: gauge("process_max_fds", "Maximum number of open file descriptors.")?,
            vsize: gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")?,
            rss: gauge("process_resident_memory_bytes", "Resident memory size in bytes.")?,
            start_time: gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            )?,
            threads: gauge("process_threads", "Number of OS threads in the process.")?,
        };
        let mut descs: Vec<Desc> = c.cpu.desc().into_iter().cloned().collect();
        for g in c.gauges() {
            descs.extend(g.desc().into_iter().cloned());
        }
        Ok(ProcessCollector { descs, ..c })
    }

    fn gauges(&self) -> [&IntGauge; 6] {
        [&self.open_fds, &self.max_fds, &self.vsize, &self.rss, &self.start_time, &self.threads]
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        if let Some(stat) = read("/proc/self/stat").as_deref().and_then(parse_stat) {
            let seconds = stat.cpu_ticks / CLOCK_TICKS;
            self.cpu.inc_by(seconds.saturating_sub(self.cpu.get()));
            self.threads.set(stat.threads);
            self.vsize.set(stat.vsize);
            if let Some(boot) = read("/proc/stat").as_deref().and_then(boot_time) {
                self.start_time.set(boot + (stat.start_ticks / CLOCK_TICKS) as i64);
            }
        }
        if let Some(rss) = read("/proc/self/status").as_deref().and_then(|s| status_bytes(s, "VmRSS:")) {
            self.rss.set(rss);
        }
        if let Some(max) = read("/proc/self/limits").as_deref().and_then(max_open_files) {
            self.max_fds.set(max);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as i64);
        }
        let mut families = self.cpu.collect();
        for g in self.gauges() {
            families.extend(g.collect());
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (work (pool) x) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 7 0 12345 987654 321 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat, Stat { cpu_ticks: 200, threads: 7, start_ticks: 12345, vsize: 987654 });
        assert_eq!(parse_stat("4242 (x) S 1"), None);
    }

    #[test]
    fn status_limits_and_boot_time_are_read() {
        assert_eq!(status_bytes("Name:\tx\nVmRSS:\t   2048 kB\n", "VmRSS:"), Some(2048 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(boot_time("cpu 1 2\nbtime 1700000000\n"), Some(1_700_000_000));
    }

    #[test]
    fn the_families_are_registered_and_read() {
        let registry = Registry::new();
        register(&registry).unwrap();
        let names: Vec<String> = registry.gather().iter().map(|f| f.name().to_string()).collect();
        assert!(names.iter().any(|n| n == "workerpool_build_info"), "{names:?}");
        if cfg!(target_os = "linux") {
            assert!(names.iter().any(|n| n == "process_resident_memory_bytes"), "{names:?}");
        }
    }
}
