//! The monitor cases: what one resource sample costs (`monitor-tick`, in `tick.rs`) and what
//! the monitors add to an idle pool (`monitors-idle-cpu`, in `idle.rs`).

mod idle;
mod tick;

pub(super) use idle::monitors_idle_cpu;
pub(super) use tick::monitor_tick;
