//! What ends the wait for a task from outside it: Ctrl-C, and `--wait-timeout`. Both leave
//! the task running on the server and say so (with `--cancel-on-interrupt`, Ctrl-C cancels it
//! first). The wait itself blocks in a read of the event stream, so both act from their own
//! thread and end the process with the exit code that says what happened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::ProgressBar;

use super::error::{ClientError, exit, goes_on};
use super::http::Client;

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
    /// Set once the task's end was seen: neither may act after that.
    done: AtomicBool,
}

// ===== impl Waiting =====

impl Waiting {
    /// The wait for task `id`.
    pub(super) fn new(client: &Client, id: &str, interrupt: OnInterrupt) -> Waiting {
        Waiting(Arc::new(Shared {
            client: client.clone(),
            id: id.to_string(),
            bar: Mutex::new(None),
            interrupt,
            done: AtomicBool::new(false),
        }))
    }

    /// Catches Ctrl-C, and starts the timer of `timeout`.
    pub(super) fn arm(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        let shared = Arc::clone(&self.0);
        if let Err(e) = ctrlc::set_handler(move || shared.interrupted()) {
            // Without the handler Ctrl-C still ends the process; only the note is lost.
            log::warn!("cannot catch Ctrl-C: {e}");
        }
        if let Some(after) = timeout {
            let shared = Arc::clone(&self.0);
            std::thread::Builder::new()
                .name("wait-timeout".into())
                .spawn(move || {
                    std::thread::sleep(after);
                    shared.timed_out(after);
                })
                .map_err(ClientError::Output)?;
        }
        Ok(())
    }

    /// The bar that draws the task's progress, cleared before a note.
    pub(super) fn show(&self, bar: ProgressBar) {
        if let Ok(mut slot) = self.0.bar.lock() {
            *slot = Some(bar);
        }
    }

    /// The task's end was seen: Ctrl-C and the timer no longer act.
    pub(super) fn disarm(&self) {
        self.0.done.store(true, Ordering::SeqCst);
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

    fn interrupted(&self) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        self.clear_bar();
        let id = &self.id;
        let code = match self.interrupt {
            OnInterrupt::Leave => {
                eprintln!("workerpool: interrupted; {}", goes_on(id));
                exit::INTERRUPTED
            }
            OnInterrupt::Cancel => match self.client.delete_json(&format!("/api/tasks/{id}")) {
                Ok(_) => {
                    eprintln!("workerpool: interrupted; task {id} cancelled");
                    exit::FAILED
                }
                Err(e) => {
                    eprintln!("workerpool: interrupted, but cancelling task {id} failed: {e}");
                    e.exit_code()
                }
            },
        };
        std::process::exit(i32::from(code));
    }

    fn timed_out(&self, after: Duration) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        self.clear_bar();
        let e = ClientError::WaitTimeout { id: self.id.clone(), after_s: after.as_secs() };
        eprintln!("workerpool: {e}");
        std::process::exit(i32::from(e.exit_code()));
    }
}
