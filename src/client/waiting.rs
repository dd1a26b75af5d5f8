//! What ends the wait for a task from outside it: Ctrl-C, and `--wait-timeout`. Both leave
//! the task running on the server and say so (with `--cancel-on-interrupt`, Ctrl-C cancels it
//! first). The wait itself blocks in a read of the event stream, so both act from their own
//! thread and end the process with the exit code that says what happened.
//!
//! Who speaks last is decided once: the wait is `WAITING` until either the main thread saw
//! the task's end (`ENDED`: it prints the outcome) or Ctrl-C or the timer took it (`TAKEN`:
//! that thread prints and exits). A main thread that finds it taken waits for that thread,
//! which ends the process, or gives the wait back when a cancel finds the task already ended.
//! A second Ctrl-C exits at once.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::ProgressBar;

use super::error::{ClientError, exit, goes_on};
use super::http::{Client, task_path};

/// What Ctrl-C does to the task being waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnInterrupt {
    /// Leave it running; say how to follow or cancel it (exit 130).
    Leave,
    /// Cancel it (exit 1, as for any cancelled task; 3 when the server refuses).
    Cancel,
}

/// The wait for one task, as Ctrl-C and the timeout see it.
pub(super) struct Waiting(Arc<Shared>);

struct Shared {
    client: Client,
    id: String,
    /// The progress bar to clear before a note, once there is one.
    bar: Mutex<Option<ProgressBar>>,
    interrupt: OnInterrupt,
    /// `WAITING`, `ENDED` or `TAKEN`.
    state: AtomicU8,
}

const WAITING: u8 = 0;
const ENDED: u8 = 1;
const TAKEN: u8 = 2;

// ===== impl Waiting =====

impl Waiting {
    /// The wait for task `id`.
    pub(super) fn new(client: &Client, id: &str, interrupt: OnInterrupt) -> Waiting {
        Waiting(Arc::new(Shared {
            client: client.clone(),
            id: id.to_string(),
            bar: Mutex::new(None),
            interrupt,
            state: AtomicU8::new(WAITING),
        }))
    }

    /// Catches Ctrl-C, and starts the timer of `timeout`.
    pub(super) fn arm(&self, timeout: Option<Duration>) {
        let shared = Arc::clone(&self.0);
        if let Err(e) = ctrlc::set_handler(move || shared.interrupted()) {
            // Without the handler Ctrl-C still ends the process; only the note is lost.
            log::warn!("cannot catch Ctrl-C: {e}");
        }
        if let Some(after) = timeout {
            let shared = Arc::clone(&self.0);
            let timer = std::thread::Builder::new().name("wait-timeout".into()).spawn(move || {
                std::thread::sleep(after);
                shared.timed_out(after);
            });
            if let Err(e) = timer {
                log::warn!("cannot start the timer of --wait-timeout: {e}");
            }
        }
    }

    /// The bar that draws the task's progress, cleared before a note.
    pub(super) fn show(&self, bar: ProgressBar) {
        if let Ok(mut slot) = self.0.bar.lock() {
            *slot = Some(bar);
        }
    }

    /// The wait is over (the task ended, or following it failed): from now on the main thread
    /// speaks. When Ctrl-C or the timer took the wait first, this waits for that thread, which
    /// ends the process or gives the wait back.
    pub(super) fn disarm(&self) {
        while self.0.state.compare_exchange(WAITING, ENDED, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ===== impl Shared =====

impl Shared {
    fn clear_bar(&self) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.finish_and_clear();
        }
    }

    fn take(&self) -> bool {
        self.state.compare_exchange(WAITING, TAKEN, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }

    fn interrupted(&self) {
        if !self.take() {
            // A second Ctrl-C (a cancel in flight), or one while the outcome is printed.
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
        self.clear_bar();
        let id = &self.id;
        let code = match self.interrupt {
            OnInterrupt::Leave => {
                eprintln!("workerpool: interrupted; {}", goes_on(id));
                exit::INTERRUPTED
            }
            OnInterrupt::Cancel => match self.client.delete_json(&task_path(id)) {
                Ok(_) => {
                    eprintln!("workerpool: interrupted; task {id} cancelled");
                    exit::FAILED
                }
                // It ended just before: the main thread is about to see how, and says so.
                Err(ClientError::Server { status: 409, .. }) => {
                    self.state.store(WAITING, Ordering::SeqCst);
                    return;
                }
                Err(e) => {
                    let why = crate::logging::scrub(&e.to_string()).into_owned();
                    eprintln!("workerpool: interrupted, but cancelling task {id} failed: {why}");
                    e.exit_code()
                }
            },
        };
        std::process::exit(i32::from(code));
    }

    fn timed_out(&self, after: Duration) {
        if !self.take() {
            return;
        }
        self.clear_bar();
        let e = ClientError::WaitTimeout { id: self.id.clone(), after_s: after.as_secs() };
        eprintln!("{}", e.line());
        std::process::exit(i32::from(e.exit_code()));
    }
}
