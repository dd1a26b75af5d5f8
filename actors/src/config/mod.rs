//! Pool and type configuration.
//!
//! [`PoolConfig::default`] reproduces the contract's table of the six default types.
//! A configuration file is read by the caller (the server reads TOML) into a [`ConfigFile`],
//! whose every key is optional; [`PoolConfig::from_file`] lays it over the defaults, so a
//! `[types.text_processing]` table that sets one key keeps the contract's values for the rest.
//!
//! - `pool.rs`: [`PoolConfig`], the pool-wide settings, and its `Default`.
//! - `types.rs`: [`TypeConfig`], [`Weight`], [`ExecutorKind`] and the per-type defaults.
//! - `gpu.rs`: [`GpuPlacement`] and [`SimulatedGpu`], the pool-wide GPU settings.
//! - `redis.rs`: [`RedisConfig`], the shared queue.
//! - `file.rs`: [`ConfigFile`] and its sections, and the layering over the defaults.
//! - `validate.rs`: [`PoolConfig::validate`].

mod file;
mod gpu;
mod pool;
mod redis;
mod types;
mod validate;

pub use file::{ConfigFile, PoolSection, RedisSection, TypeSection};
pub use gpu::{GpuPlacement, SimulatedGpu};
pub use pool::PoolConfig;
pub use redis::RedisConfig;
pub use types::{ExecutorKind, TypeConfig, Weight};
