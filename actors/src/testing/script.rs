//! What a scripted attempt does: [`Attempt`], built step by step with [`Steps`].

use std::time::Duration;

use serde_json::Value;

use crate::executor::TaskError;

/// What one attempt of a scripted task does: its steps in order (sleeps on the tokio clock,
/// progress reports), then its end (an answer, an error, a panic, or no end at all).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use workerpool_actors::testing::Attempt;
///
/// let quick = Attempt::answer(serde_json::json!({"ok": true}));
/// let slow = Attempt::progress(50, Some("half")).after(Duration::from_millis(200)).fail("busy");
/// assert!(quick.duration().is_zero());
/// assert_eq!(slow.duration(), Duration::from_millis(200));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub(super) steps: Vec<Step>,
    pub(super) end: End,
}

/// The steps of an attempt before its end; finish them with one of the ends
/// ([`Steps::answer`], [`Steps::fail`], …).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use workerpool_actors::testing::Attempt;
///
/// let attempt = Attempt::after(Duration::from_secs(1)).progress(100, None).echo();
/// assert_eq!(attempt.duration(), Duration::from_secs(1));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use = "steps do nothing until they end with `answer`, `fail`, …"]
pub struct Steps {
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Step {
    Sleep(Duration),
    Progress(u8, Option<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum End {
    Answer(Value),
    Echo,
    Fail(TaskError),
    Crash(String),
    Hang,
}

// ===== impl Steps =====

impl Steps {
    /// Sleeps for `duration` on the tokio clock.
    pub fn after(mut self, duration: Duration) -> Steps {
        self.steps.push(Step::Sleep(duration));
        self
    }

    /// Reports progress (0–100) and an optional stage.
    pub fn progress(mut self, percent: u8, stage: Option<&str>) -> Steps {
        self.steps.push(Step::Progress(percent, stage.map(str::to_string)));
        self
    }

    /// Ends by answering `result`.
    pub fn answer(self, result: impl Into<Value>) -> Attempt {
        self.end(End::Answer(result.into()))
    }

    /// Ends by answering the task's input.
    pub fn echo(self) -> Attempt {
        self.end(End::Echo)
    }

    /// Ends with a retryable error.
    pub fn fail(self, message: impl Into<String>) -> Attempt {
        self.end(End::Fail(TaskError::retryable(message)))
    }

    /// Ends with an error no retry can fix.
    pub fn fatal(self, message: impl Into<String>) -> Attempt {
        self.end(End::Fail(TaskError::fatal(message)))
    }

    /// Ends with a panic carrying `message`, which the pool treats as a crash of the worker.
    pub fn crash(self, message: impl Into<String>) -> Attempt {
        self.end(End::Crash(message.into()))
    }

    /// Never ends: the attempt waits until the pool drops it (timeout, cancel, shutdown).
    pub fn hang(self) -> Attempt {
        self.end(End::Hang)
    }

    fn end(self, end: End) -> Attempt {
        Attempt { steps: self.steps, end }
    }
}

// ===== impl Attempt =====

impl Attempt {
    /// Steps that start with a sleep of `duration` on the tokio clock.
    pub fn after(duration: Duration) -> Steps {
        Steps::default().after(duration)
    }

    /// Steps that start with a progress report.
    pub fn progress(percent: u8, stage: Option<&str>) -> Steps {
        Steps::default().progress(percent, stage)
    }

    /// Answers `result` at once.
    pub fn answer(result: impl Into<Value>) -> Attempt {
        Steps::default().answer(result)
    }

    /// Answers the task's input at once.
    pub fn echo() -> Attempt {
        Steps::default().echo()
    }

    /// Fails at once with a retryable error.
    pub fn fail(message: impl Into<String>) -> Attempt {
        Steps::default().fail(message)
    }

    /// Fails at once with an error no retry can fix.
    pub fn fatal(message: impl Into<String>) -> Attempt {
        Steps::default().fatal(message)
    }

    /// Panics at once (a crash).
    pub fn crash(message: impl Into<String>) -> Attempt {
        Steps::default().crash(message)
    }

    /// Never answers.
    pub fn hang() -> Attempt {
        Steps::default().hang()
    }

    /// The time its sleeps add up to (how long it runs, unless it hangs).
    pub fn duration(&self) -> Duration {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Sleep(d) => *d,
                Step::Progress(..) => Duration::ZERO,
            })
            .sum()
    }
}
