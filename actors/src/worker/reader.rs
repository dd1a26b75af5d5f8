//! A worker's stdout as reports to its pool: protocol lines read through [`StdoutLines`]
//! (bounded in size), empty lines ignored, invalid ones rate-limited, and the reader made to
//! wait for the pool after a burst (bounded in number).

use actix::Recipient;
use tokio::process::ChildStdout;

use super::output::{self, LogBudget, StdoutLines};
use crate::executor::{self, Line, TaskError};
use crate::messages::{Report, WorkerId, WorkerReport};

/// Most reports sent to the pool for one read before the reader waits for the pool to take
/// them in: a worker that writes tiny lines as fast as it can is slowed to the pool's pace.
const REPORTS_BEFORE_SYNC: usize = 1024;
/// Invalid lines reported per second, on average, for one worker; the rest are counted.
const INVALID_PER_SEC: u32 = 10;

/// What the supervision of one process needs.
pub(crate) struct Watch {
    pub(crate) pool: Recipient<WorkerReport>,
    pub(crate) worker: WorkerId,
    pub(crate) max_line_bytes: usize,
}

/// What one read of stdout brought.
pub(super) enum Taken {
    More,
    End,
    TooLong,
}

/// A worker's stdout as reports to its pool, bounded in size and in number.
pub(super) struct Reader {
    pub(super) lines: StdoutLines<ChildStdout>,
    pool: Recipient<WorkerReport>,
    pub(super) worker: WorkerId,
    max_line_bytes: usize,
    invalid: LogBudget,
}

impl Reader {
    pub(super) fn new(stdout: ChildStdout, watch: Watch) -> Reader {
        let invalid = LogBudget::new(
            INVALID_PER_SEC,
            INVALID_PER_SEC,
            output::SUPPRESSED_EVERY,
            std::time::Instant::now(),
        );
        Reader {
            lines: StdoutLines::new(stdout, watch.max_line_bytes),
            pool: watch.pool,
            worker: watch.worker,
            max_line_bytes: watch.max_line_bytes,
            invalid,
        }
    }

    pub(super) fn report(&self, report: Report) {
        self.pool.do_send(WorkerReport { worker: self.worker.clone(), report });
    }

    /// Reports the lines read so far (`more`: whether the pipe is still open).
    pub(super) async fn take(&mut self, more: bool) -> Taken {
        let now = std::time::Instant::now();
        let (pool, worker, invalid) = (&self.pool, &self.worker, &mut self.invalid);
        let mut sent = 0;
        let read = self.lines.lines(|line| {
            if line.is_empty() {
                return;
            }
            let report = match read_line(line) {
                Report::Invalid(_) if !invalid.admit(now) => return,
                report => report,
            };
            sent += 1;
            pool.do_send(WorkerReport { worker: worker.clone(), report });
        });
        if let Some(n) = self.invalid.report(now, !more) {
            self.report(Report::Invalid(format!("{n} more invalid lines not shown")));
        }
        if read.is_err() {
            self.report(Report::OutputTooLarge { limit_bytes: self.max_line_bytes });
            return Taken::TooLong;
        }
        if sent >= REPORTS_BEFORE_SYNC {
            let _ = self.pool.send(WorkerReport { worker: self.worker.clone(), report: Report::Sync }).await;
        }
        if more { Taken::More } else { Taken::End }
    }
}

/// One stdout line as a report to the pool.
fn read_line(line: &[u8]) -> Report {
    match executor::parse_line(line) {
        Line::Pong(n) => Report::Pong(n),
        Line::Progress { id, progress, stage } => Report::Progress { id, progress, stage },
        Line::Result { id, result } => Report::Done { id, outcome: Ok(result) },
        Line::Error { id, error, retryable } => {
            Report::Done { id, outcome: Err(TaskError { message: error, retryable }) }
        }
        Line::Invalid(why) => Report::Invalid(why),
    }
}
