//! `workerpool bench`: the project's own benchmarks (contract §7).

/// Arguments of `workerpool bench`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BenchArgs {
    /// Cases to run (default: all).
    pub cases: Vec<String>,
}

/// Runs the benchmarks.
pub fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("no benchmark cases yet")
}
