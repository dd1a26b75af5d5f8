//! Event ids of a task's stream, and where a reconnecting stream resumes: pure decisions, no
//! state kept between connections.
//!
//! An id names a [`Position`] in the task's life, which the task's record alone determines,
//! so any instance (with Redis, any instance that reads the shared record) can compare a
//! client's `Last-Event-ID` with where the task is now ([`resume`]):
//!
//! | position | id | sent as |
//! |---|---|---|
//! | waiting for attempt `n` | `n.0` | `status` (queued; `n` = attempts so far + 1) |
//! | attempt `n` running, no progress yet | `n.1` | `status` |
//! | attempt `n` running, last progress `p` | `n.1.p` | `progress`, or `status` |
//! | ended after `n` attempts | `n.end` | `result` |
//!
//! Ids grow as the task moves on (attempt, then waiting < running < progress), the end above
//! all; a report of lower progress than the last one, or a task put back without spending
//! an attempt, moves its id back.

use std::fmt;

use workerpool_actors::{TaskRecord, TaskStatus};

/// Where a task is, as far as its event stream tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Queued, waiting for attempt `attempt`.
    Waiting {
        /// The attempt it waits for (1 for the first).
        attempt: u32,
    },
    /// Attempt `attempt` runs, with the last progress it reported.
    Running {
        /// The attempt.
        attempt: u32,
        /// Its last progress (0 to 100), if any.
        progress: Option<u8>,
    },
    /// Ended after `attempts` attempts.
    Ended {
        /// Attempts started.
        attempts: u32,
    },
}

/// The longest id [`Position::parse`] looks at.
const MAX_ID_LEN: usize = 32;

impl Position {
    /// Where the task of `record` is.
    pub fn of(record: &TaskRecord) -> Position {
        if record.status.is_final() {
            return Position::Ended { attempts: record.attempts };
        }
        match record.status {
            TaskStatus::Running => Position::Running {
                attempt: record.attempts,
                progress: record.progress.as_ref().map(|p| p.progress),
            },
            _ => Position::Waiting { attempt: record.attempts.saturating_add(1) },
        }
    }

    /// The position a progress report of attempt `attempt` moves the task to.
    pub fn progress(attempt: u32, progress: u8) -> Position {
        Position::Running { attempt, progress: Some(progress) }
    }

    /// The attempt this position belongs to (the last one, once ended).
    pub fn attempt(&self) -> u32 {
        match *self {
            Position::Waiting { attempt } | Position::Running { attempt, .. } => attempt,
            Position::Ended { attempts } => attempts,
        }
    }

    /// The position an id names; `None` for anything this server did not write.
    pub fn parse(id: &str) -> Option<Position> {
        if id.len() > MAX_ID_LEN {
            return None;
        }
        let mut parts = id.split('.');
        let attempt: u32 = parts.next()?.parse().ok()?;
        let position = match (parts.next()?, parts.next(), parts.next()) {
            ("0", None, None) => Position::Waiting { attempt },
            ("1", None, None) => Position::Running { attempt, progress: None },
            ("1", Some(p), None) => Position::progress(attempt, p.parse().ok().filter(|p| *p <= 100)?),
            ("end", None, None) => Position::Ended { attempts: attempt },
            _ => return None,
        };
        // Only the spelling written here: no leading zeros, signs or spaces.
        (position.to_string() == id).then_some(position)
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Position) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Position) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Position {
    /// The order of positions: the end above all, then by attempt, waiting before running,
    /// no progress before any.
    fn rank(&self) -> (bool, u32, u8, Option<u8>) {
        match *self {
            Position::Waiting { attempt } => (false, attempt, 0, None),
            Position::Running { attempt, progress } => (false, attempt, 1, progress),
            Position::Ended { attempts } => (true, attempts, 0, None),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Position::Waiting { attempt } => write!(f, "{attempt}.0"),
            Position::Running { attempt, progress: None } => write!(f, "{attempt}.1"),
            Position::Running { attempt, progress: Some(p) } => write!(f, "{attempt}.1.{p}"),
            Position::Ended { attempts } => write!(f, "{attempts}.end"),
        }
    }
}

/// How a task's stream begins, given the client's `Last-Event-ID` and the task's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// `204 No Content`: the client has the final event already.
    NoContent,
    /// The final record (`result`) once, then the stream ends.
    Result,
    /// The record as it is now (`status`), then what happens next.
    Status,
    /// Only what happens next: the client is up to date.
    Live,
}

/// How a stream for a task at `now` begins for a client whose last event id is `last`
/// (absent, malformed or unknown ids count as none).
pub fn resume(last: Option<&str>, now: Position) -> Resume {
    let last = last.and_then(Position::parse);
    match (last, now) {
        (Some(last), Position::Ended { .. }) if last == now => Resume::NoContent,
        (_, Position::Ended { .. }) => Resume::Result,
        (Some(last), _) if last == now => Resume::Live,
        // The same attempt, and the client heard as much progress as the record says, or
        // more: a shared record is written after the report it holds went out.
        (
            Some(Position::Running { attempt: heard, progress: p }),
            Position::Running { attempt, progress: q },
        ) if heard == attempt && p >= q => Resume::Live,
        _ => Resume::Status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workerpool_actors::Progress;

    fn record(status: TaskStatus, attempts: u32, progress: Option<u8>) -> TaskRecord {
        let mut r: TaskRecord = serde_json::from_value(serde_json::json!({
            "id": "t", "type": "x", "status": "queued", "priority": 0, "attempts": 0,
            "max_retries": 3, "created_at": 0, "started_at": null, "finished_at": null,
            "progress": null, "result": null, "error": null, "worker_id": null, "worker_pid": null,
        }))
        .expect("a record");
        r.status = status;
        r.attempts = attempts;
        r.progress = progress.map(|p| Progress { progress: p, stage: None });
        r
    }

    #[test]
    fn a_record_names_its_position() {
        assert_eq!(Position::of(&record(TaskStatus::Queued, 0, None)).to_string(), "1.0");
        assert_eq!(Position::of(&record(TaskStatus::Running, 1, None)).to_string(), "1.1");
        assert_eq!(Position::of(&record(TaskStatus::Running, 1, Some(50))).to_string(), "1.1.50");
        // Failed once, waiting for the retry.
        assert_eq!(Position::of(&record(TaskStatus::Queued, 1, Some(50))).to_string(), "2.0");
        for end in [TaskStatus::Completed, TaskStatus::Failed, TaskStatus::Cancelled, TaskStatus::Dead] {
            assert_eq!(Position::of(&record(end, 2, Some(100))).to_string(), "2.end");
        }
        assert_eq!(Position::of(&record(TaskStatus::Cancelled, 0, None)).to_string(), "0.end");
    }

    #[test]
    fn ids_grow_as_a_task_moves_on() {
        let life = ["1.0", "1.1", "1.1.0", "1.1.50", "1.1.100", "2.0", "2.1", "2.1.10", "0.end"];
        let positions: Vec<Position> = life.iter().map(|id| Position::parse(id).expect(id)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }

    #[test]
    fn ids_read_back_only_as_written() {
        for id in ["1.0", "3.1", "1.1.7", "1.1.100", "4.end", "0.end"] {
            assert_eq!(Position::parse(id).map(|p| p.to_string()).as_deref(), Some(id));
        }
        for bad in [
            "",
            "garbage",
            "1",
            "1.",
            "1.2",
            "1.1.101",
            "1.1.-1",
            "01.1",
            "+1.1",
            "1.1.050",
            " 1.1",
            "1.0.5",
            "1.end.1",
            "x.end",
            "1.1.5.5",
            "99999999999.1",
            "1.1.1111111111111111111111111111111",
        ] {
            assert_eq!(Position::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_ended_task_answers_its_final_id_with_no_content() {
        let end = Position::Ended { attempts: 1 };
        assert_eq!(resume(Some("1.end"), end), Resume::NoContent);
        assert_eq!(resume(None, end), Resume::Result);
        assert_eq!(resume(Some("1.1.75"), end), Resume::Result);
        assert_eq!(resume(Some("2.end"), end), Resume::Result);
        assert_eq!(resume(Some("garbage"), end), Resume::Result);
    }

    #[test]
    fn a_live_task_sends_its_state_unless_the_client_has_it() {
        let at_50 = Position::progress(1, 50);
        assert_eq!(resume(None, at_50), Resume::Status);
        assert_eq!(resume(Some("\u{0}\u{7f}"), at_50), Resume::Status);
        assert_eq!(resume(Some("1.1.50"), at_50), Resume::Live);
        // The client is behind: it gets the state it missed.
        assert_eq!(resume(Some("1.1.25"), at_50), Resume::Status);
        assert_eq!(resume(Some("1.1"), at_50), Resume::Status);
        assert_eq!(resume(Some("1.0"), at_50), Resume::Status);
        // It heard more than the record says yet (a shared record lags the report).
        assert_eq!(resume(Some("1.1.75"), at_50), Resume::Live);
        // Another attempt, an end that was undone (a requeued dead letter), or nonsense.
        assert_eq!(resume(Some("2.1.75"), at_50), Resume::Status);
        assert_eq!(resume(Some("1.end"), at_50), Resume::Status);
        assert_eq!(resume(Some("1.1"), Position::Running { attempt: 1, progress: None }), Resume::Live);
        assert_eq!(resume(Some("2.0"), Position::Waiting { attempt: 2 }), Resume::Live);
        assert_eq!(resume(Some("1.1.100"), Position::Waiting { attempt: 2 }), Resume::Status);
    }
}
