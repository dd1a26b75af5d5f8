//! The progress bar `workerpool submit` draws on stderr while it waits for a task.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::output::one_line;
use super::record::{record_message, status_of};

/// The bar on stderr: hidden when stderr is not a terminal or with `--quiet`; cleared when
/// dropped.
pub(super) struct Bar(ProgressBar);

// ===== impl Bar =====

impl Bar {
    /// A bar at 0% saying `queued`, or a hidden one.
    pub(super) fn new(quiet: bool) -> Bar {
        let visible = !quiet && std::io::stderr().is_terminal();
        if !visible {
            return Bar(ProgressBar::hidden());
        }
        let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {pos:>3}% {wide_msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("queued");
        Bar(bar)
    }

    /// Whether the bar is drawn (so notes around it may be printed).
    pub(super) fn visible(&self) -> bool {
        !self.0.is_hidden()
    }

    /// The bar itself, for a thread that must clear it (Ctrl-C).
    pub(super) fn handle(&self) -> ProgressBar {
        self.0.clone()
    }

    /// Shows what a task record says.
    pub(super) fn record(&self, record: &Value) {
        if let Some(p) = record.pointer("/progress/progress").and_then(Value::as_u64) {
            self.0.set_position(p.min(100));
        } else if status_of(record) == "queued" {
            self.0.set_position(0);
        }
        self.0.set_message(record_message(record));
    }

    /// Shows what a `progress` event says.
    pub(super) fn progress(&self, event: &Value) {
        if let Some(p) = event.get("progress").and_then(Value::as_u64) {
            self.0.set_position(p.min(100));
        }
        match event.get("stage").and_then(Value::as_str) {
            Some(stage) => self.0.set_message(one_line(stage)),
            None => self.0.set_message("running"),
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
