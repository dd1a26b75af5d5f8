//! [`PausedSystem`]: an actix system on a runtime whose clock starts paused.

/// An actix system on a current-thread tokio runtime whose clock starts paused.
///
/// Time moves only when every task waits on a timer: the clock then jumps to the earliest
/// one. A sleep of the test therefore returns only once the pool has handled every message it
/// could, which makes it a deterministic way to let the pool settle. Because the clock starts
/// paused (rather than being paused later), it stays on whole milliseconds of the timer
/// wheel and every duration is exact.
///
/// Use it as the `system` of `#[actix_rt::test]`:
/// `#[actix_rt::test(system = "workerpool_actors::testing::PausedSystem")]`.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
///
/// workerpool_actors::testing::PausedSystem::new().block_on(async {
///     let t0 = Instant::now();
///     let real = std::time::Instant::now();
///     tokio::time::sleep(Duration::from_secs(3600)).await;
///     assert_eq!(t0.elapsed(), Duration::from_secs(3600));
///     assert!(real.elapsed() < Duration::from_secs(60));
/// });
/// ```
#[derive(Debug)]
pub struct PausedSystem;

impl PausedSystem {
    /// A new system, ready for `block_on`.
    ///
    /// # Panics
    ///
    /// When the runtime cannot be built (as [`actix_rt::System::new`] does).
    // The name is what `#[actix_rt::test(system = …)]` calls.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> actix_rt::SystemRunner {
        actix_rt::System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .expect("a current-thread runtime with a paused clock")
        })
    }
}
