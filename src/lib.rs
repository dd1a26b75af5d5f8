//! The `workerpool` server: settings, the serve loop, the bundled demo worker and the
//! benchmarks, on top of the `workerpool-actors` library.
//!
//! **Architecture Invariant:** this crate talks to the actor tree only through
//! `workerpool_actors::PoolHandle`.

pub mod api;
pub mod bench;
pub mod build_info;
pub mod client;
pub mod demo_worker;
pub mod logging;
pub mod serve;
pub mod settings;
pub mod tls;

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
