//! The arithmetic and the text of the report: percentiles, the median run, the output lines.

use std::time::Duration;

/// One measured run: how long it took and every task's submit-to-result latency.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    /// From the first submission to the last result.
    pub(crate) elapsed: Duration,
    /// Per-task latencies, sorted ascending.
    pub(crate) latencies: Vec<Duration>,
}

impl Run {
    /// A run of `latencies.len()` tasks (in any order) that took `elapsed`.
    pub(crate) fn new(elapsed: Duration, mut latencies: Vec<Duration>) -> Run {
        latencies.sort_unstable();
        Run { elapsed, latencies }
    }

    /// Tasks per second.
    pub(crate) fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.latencies.len() as f64 / secs } else { 0.0 }
    }
}

/// What a case counts: its rate is `<unit>/s` and its details say how many a run had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Tasks run to their result.
    Tasks,
    /// HTTP requests answered (`http-ceiling`, which runs no task).
    Requests,
    /// Resource-monitor samples taken.
    Samples,
}

impl Unit {
    /// The plural noun: `tasks`, `requests`, `samples`.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Unit::Tasks => "tasks",
            Unit::Requests => "requests",
            Unit::Samples => "samples",
        }
    }
}

/// What one case produced: measured runs, or the CPU figures of `monitors-idle-cpu`.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// Runs with a rate and latencies: the contract's line.
    Runs(CaseResult),
    /// CPU of an idle pool under two monitor settings.
    IdleCpu(IdleCpu),
}

impl Outcome {
    /// The case's name.
    pub(crate) fn case(&self) -> &'static str {
        match self {
            Outcome::Runs(r) => r.case,
            Outcome::IdleCpu(c) => c.case,
        }
    }

    /// The headline figure (the median rate; the fast-interval CPU % for `IdleCpu`).
    pub(crate) fn rate(&self) -> f64 {
        match self {
            Outcome::Runs(r) => r.rate(),
            Outcome::IdleCpu(c) => c.fast_percent,
        }
    }

    /// The case's output line.
    pub(crate) fn line(&self) -> String {
        match self {
            Outcome::Runs(r) => r.line(),
            Outcome::IdleCpu(c) => c.line(),
        }
    }
}

/// CPU an idle pool's process used, in percent of one core, with the monitors at their
/// default intervals and at fast ones.
#[derive(Clone, Debug)]
pub(crate) struct IdleCpu {
    /// The case's name.
    pub(crate) case: &'static str,
    /// With the contract's default intervals.
    pub(crate) default_percent: f64,
    /// With every monitor ticking each second.
    pub(crate) fast_percent: f64,
    /// What else a reader needs to know (`key=value` words).
    pub(crate) details: String,
}

impl IdleCpu {
    /// `<case>: <fast>% of one core | default-intervals=<a>% fast-intervals=<b>% (details)`.
    pub(crate) fn line(&self) -> String {
        format!(
            "{}: {:.2}% of one core | default-intervals={:.2}% fast-intervals={:.2}% ({})",
            self.case, self.fast_percent, self.default_percent, self.fast_percent, self.details
        )
    }
}

/// The measured runs of one case and how it was set up.
#[derive(Clone, Debug)]
pub(crate) struct CaseResult {
    /// The case's name.
    pub(crate) case: &'static str,
    /// What it counts.
    pub(crate) unit: Unit,
    /// The measured runs, in the order they ran (the warm-up is not among them).
    pub(crate) runs: Vec<Run>,
    /// Requests in flight (connections for the HTTP cases).
    pub(crate) window: usize,
    /// What else a reader needs to know (`key=value` words).
    pub(crate) details: String,
}

impl CaseResult {
    /// The median run (the lower one of the middle two for an even count).
    fn median_run(&self) -> Option<&Run> {
        let rates: Vec<f64> = self.runs.iter().map(Run::rate).collect();
        median_index(&rates).map(|i| &self.runs[i])
    }

    /// The median throughput in tasks per second.
    pub(crate) fn rate(&self) -> f64 {
        self.median_run().map_or(0.0, Run::rate)
    }

    /// The case's output line; the count (`tasks=`, `requests=`, `samples=`) is the median
    /// run's.
    pub(crate) fn line(&self) -> String {
        let Some(median) = self.median_run() else {
            return format_line(self.case, self.unit, 0.0, Duration::ZERO, Duration::ZERO, "no runs");
        };
        let rates: Vec<String> = self.runs.iter().map(|r| format!("{:.0}", r.rate())).collect();
        let mut details = format!(
            "runs=[{}] {}={} window={} wall={:.3}s",
            rates.join(", "),
            self.unit.noun(),
            median.latencies.len(),
            self.window,
            median.elapsed.as_secs_f64()
        );
        if !self.details.is_empty() {
            details.push(' ');
            details.push_str(&self.details);
        }
        let p50 = percentile(&median.latencies, 50.0).unwrap_or_default();
        let p99 = percentile(&median.latencies, 99.0).unwrap_or_default();
        format_line(self.case, self.unit, median.rate(), p50, p99, &details)
    }
}

/// The nearest-rank percentile `p` (0–100) of `sorted` (ascending); `None` when it is empty.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The index of the median of `values` (the lower of the middle two for an even count);
/// `None` when there are none.
pub(crate) fn median_index(values: &[f64]) -> Option<usize> {
    if values.is_empty() {
        return None;
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    Some(order[(values.len() - 1) / 2])
}

/// Milliseconds with the precision that keeps sub-millisecond figures readable.
pub(crate) fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{ms:.3}")
    } else if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

/// `<case>: <N> tasks/s | p50=<x>ms p99=<y>ms (details)` (`requests/s`, `samples/s` for
/// those units).
pub(crate) fn format_line(
    case: &str,
    unit: Unit,
    rate: f64,
    p50: Duration,
    p99: Duration,
    details: &str,
) -> String {
    format!("{case}: {rate:.0} {}/s | p50={}ms p99={}ms ({details})", unit.noun(), fmt_ms(p50), fmt_ms(p99))
}

/// How a ratio is written: a fraction (`0.25`) or a multiple (`15.0x`).
#[derive(Clone, Copy)]
enum RatioStyle {
    Fraction,
    Times,
}

/// The ratios worth printing: the library against its ceiling, long-lived process workers
/// against a process per task, the real server against a bare actix-web server.
const RATIOS: [(&str, &str, RatioStyle); 3] = [
    ("inproc-noop", "channel-roundtrip", RatioStyle::Fraction),
    ("process-noop", "spawn-per-task", RatioStyle::Times),
    ("http-execute", "http-ceiling", RatioStyle::Fraction),
];

/// The `# ` lines comparing cases; `rate` gives the headline rate of a case that ran, and a
/// ratio appears only when both of its cases ran.
pub(crate) fn ratio_lines(rate: impl Fn(&str) -> Option<f64>) -> Vec<String> {
    let mut lines = Vec::new();
    for (a, b, style) in RATIOS {
        if let (Some(x), Some(y)) = (rate(a), rate(b))
            && y > 0.0
        {
            lines.push(match style {
                RatioStyle::Fraction => format!("# {a} / {b} = {:.2}", x / y),
                RatioStyle::Times => format!("# {a} / {b} = {:.1}x", x / y),
            });
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(ms(50)));
        assert_eq!(percentile(&sorted, 99.0), Some(ms(99)));
        assert_eq!(percentile(&sorted, 100.0), Some(ms(100)));
        assert_eq!(percentile(&sorted, 0.0), Some(ms(1)));
        assert_eq!(percentile(&[ms(7)], 99.0), Some(ms(7)));
        assert_eq!(percentile(&[ms(1), ms(2), ms(3), ms(4)], 50.0), Some(ms(2)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn median_index_picks_the_middle_value() {
        assert_eq!(median_index(&[3.0, 1.0, 2.0]), Some(2));
        assert_eq!(median_index(&[5.0]), Some(0));
        // Even counts take the lower of the middle two.
        assert_eq!(median_index(&[4.0, 1.0, 3.0, 2.0]), Some(3));
        assert_eq!(median_index(&[]), None);
    }

    #[test]
    fn runs_sort_their_latencies_and_know_their_rate() {
        let run = Run::new(Duration::from_millis(500), vec![ms(3), ms(1), ms(2)]);
        assert_eq!(run.latencies, vec![ms(1), ms(2), ms(3)]);
        assert!((run.rate() - 6.0).abs() < 1e-9);
        assert_eq!(Run::new(Duration::ZERO, vec![ms(1)]).rate(), 0.0);
    }

    #[test]
    fn milliseconds_keep_three_significant_digits_when_small() {
        assert_eq!(fmt_ms(Duration::from_micros(52)), "0.052");
        assert_eq!(fmt_ms(Duration::from_micros(3456)), "3.46");
        assert_eq!(fmt_ms(Duration::from_micros(1_735_500)), "1735.5");
    }

    #[test]
    fn the_line_has_the_contract_shape() {
        let line = format_line(
            "inproc-noop",
            Unit::Tasks,
            28716.6,
            ms(2),
            Duration::from_micros(12_340),
            "tasks=10",
        );
        assert_eq!(line, "inproc-noop: 28717 tasks/s | p50=2.00ms p99=12.3ms (tasks=10)");
        let line = format_line("monitor-tick", Unit::Samples, 950.2, ms(1), ms(2), "workers=50");
        assert_eq!(line, "monitor-tick: 950 samples/s | p50=1.00ms p99=2.00ms (workers=50)");
    }

    #[test]
    fn the_case_line_reports_the_median_run() {
        let slow = Run::new(Duration::from_secs(2), vec![ms(9); 10]);
        let median = Run::new(Duration::from_secs(1), (1..=10).map(ms).collect());
        let fast = Run::new(Duration::from_millis(500), vec![ms(1); 10]);
        let result = CaseResult {
            case: "x",
            unit: Unit::Tasks,
            runs: vec![fast, slow, median],
            window: 4,
            details: "client=current-thread".into(),
        };
        assert!((result.rate() - 10.0).abs() < 1e-9);
        assert_eq!(
            result.line(),
            "x: 10 tasks/s | p50=5.00ms p99=10.0ms \
             (runs=[20, 5, 10] tasks=10 window=4 wall=1.000s client=current-thread)"
        );
    }

    #[test]
    fn ratios_need_both_sides() {
        let rates = |pairs: &'static [(&'static str, f64)]| {
            move |case: &str| pairs.iter().find(|(c, _)| *c == case).map(|(_, r)| *r)
        };
        assert_eq!(
            ratio_lines(rates(&[
                ("inproc-noop", 50.0),
                ("channel-roundtrip", 200.0),
                ("process-noop", 3000.0),
                ("spawn-per-task", 200.0),
                ("http-execute", 4000.0),
                ("http-ceiling", 16000.0),
            ])),
            vec![
                "# inproc-noop / channel-roundtrip = 0.25",
                "# process-noop / spawn-per-task = 15.0x",
                "# http-execute / http-ceiling = 0.25",
            ]
        );
        assert_eq!(
            ratio_lines(rates(&[("inproc-noop", 1.0), ("spawn-per-task", 1.0), ("http-ceiling", 1.0)])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_idle_cpu_line_leads_with_the_fast_figure() {
        let cpu = IdleCpu {
            case: "monitors-idle-cpu",
            default_percent: 0.1,
            fast_percent: 0.456,
            details: "idle-secs=10".into(),
        };
        assert_eq!(
            Outcome::IdleCpu(cpu).line(),
            "monitors-idle-cpu: 0.46% of one core | default-intervals=0.10% fast-intervals=0.46% (idle-secs=10)"
        );
    }
}
