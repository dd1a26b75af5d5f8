//! The pool-wide GPU settings: [`GpuPlacement`] and [`SimulatedGpu`].

use serde::{Deserialize, Serialize};

/// How a starting worker's GPUs are chosen among those with room for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuPlacement {
    /// The GPU with the most free memory after reservations: workers spread over the GPUs.
    #[default]
    Spread,
    /// The GPU with the least free memory that still fits: one GPU fills before the next.
    Pack,
}

/// A GPU that does not exist, on which workers are placed as on a real one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedGpu {
    /// Its name, as `/resources` shows it.
    #[serde(default = "default_name")]
    pub name: String,
    /// Its memory.
    pub memory_mb: u64,
}

fn default_name() -> String {
    "Simulated GPU".to_string()
}

impl SimulatedGpu {
    /// Reads the short form of `WORKERPOOL_SIMULATED_GPUS`: `COUNTxMB`, several joined by
    /// commas (`2x81920` is two GPUs of 81,920 MB; `1x40960,1x81920` two different ones).
    /// The error says what was expected.
    ///
    /// # Examples
    /// ```
    /// use workerpool_actors::SimulatedGpu;
    /// let gpus = SimulatedGpu::parse_list("2x81920").unwrap();
    /// assert_eq!(gpus.len(), 2);
    /// assert_eq!(gpus[1].memory_mb, 81_920);
    /// assert!(SimulatedGpu::parse_list("two").is_err());
    /// ```
    pub fn parse_list(spec: &str) -> Result<Vec<SimulatedGpu>, String> {
        let mut gpus = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parsed = part.split_once(['x', 'X']).and_then(|(count, mb)| {
                Some((count.trim().parse::<usize>().ok()?, mb.trim().parse::<u64>().ok()?))
            });
            let Some((count, memory_mb)) = parsed.filter(|&(c, mb)| c > 0 && c <= 64 && mb > 0) else {
                return Err(format!(
                    "{part:?}: expected COUNTxMB (1 to 64 GPUs of a positive number of MB), e.g. 2x81920"
                ));
            };
            gpus.extend((0..count).map(|_| SimulatedGpu { name: default_name(), memory_mb }));
        }
        if gpus.is_empty() {
            return Err("expected COUNTxMB, e.g. 2x81920".to_string());
        }
        Ok(gpus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_form_reads_counts_and_sizes() {
        let gpus = SimulatedGpu::parse_list(" 1x40960 , 2X100").unwrap();
        let sizes: Vec<u64> = gpus.iter().map(|g| g.memory_mb).collect();
        assert_eq!(sizes, [40960, 100, 100]);
        for bad in ["", "2x", "x100", "0x100", "2x0", "2x-1", "65x1", "2*100"] {
            assert!(SimulatedGpu::parse_list(bad).is_err(), "{bad}");
        }
    }
}
