//! The contract's `workerpool_*` Prometheus collectors, registered once on a registry the
//! caller supplies (or a private one).
//!
//! Counters and histograms are updated by the pools as things happen, so they never miss an
//! event; the gauges of workers, queues and dead letters are set whenever stats are read
//! (`PoolHandle::stats`), which a scrape does first. Every label set of a configured type
//! exists from the start, at 0, so a rate or a sum never starts from a missing series.
//! Labels come from closed sets (types, statuses, reasons) or from the pool's own workers,
//! whose series go when they exit: nothing a client sends becomes a label value.

mod per_type;
mod pool;

pub(crate) use per_type::TypeMetrics;
pub use pool::PoolMetrics;
