//! What a process worker writes, bounded: its stdout protocol lines (at most
//! `max_output_line_mb` each) and its stderr, cut into short log lines and rate-limited.
//!
//! Both are read into buffers whose size the worker cannot raise past a fixed bound, so a
//! worker that writes a gigabyte without a newline costs the pool at most that bound.

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::Decoder;

/// How much of a worker's output is read at a time.
pub(crate) const CHUNK: usize = 64 * 1024;
/// Below this much room, the read buffer makes room (moving a line's start to its front)
/// before the next read, so that reads stay large.
const MIN_READ: usize = 8 * 1024;

/// The worker's stdout as protocol lines of at most `max` bytes each.
///
/// Lines are handed out as slices of the read buffer, so the usual short line costs no
/// allocation. A line longer than the buffer is kept as a list of full chunks, never as one
/// buffer that doubles as it grows, and joined once, at its exact size, when it ends: the
/// memory a line costs is its own size (twice while it is joined), and one past `max` costs
/// at most `max` and two chunks before it is refused. (tokio-util's line codecs keep a growing contiguous
/// buffer: reading a 64 MiB line that way took the server past 180 MiB.)
pub(crate) struct StdoutLines<R> {
    reader: R,
    buf: BytesMut,
    /// The start of a line longer than a chunk, in full chunks.
    long: Vec<Bytes>,
    long_len: usize,
    max: usize,
}

/// A line past the bound was being read: the worker broke the protocol.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LineTooLong;

impl<R: AsyncRead + Unpin> StdoutLines<R> {
    pub(crate) fn new(reader: R, max: usize) -> StdoutLines<R> {
        StdoutLines { reader, buf: BytesMut::with_capacity(CHUNK), long: Vec::new(), long_len: 0, max }
    }

    /// Reads what the worker wrote next; `false` at the end of the pipe (or on a read error).
    /// Cancel-safe: nothing read is lost when the future is dropped.
    pub(crate) async fn fill(&mut self) -> bool {
        if self.buf.capacity() - self.buf.len() < MIN_READ {
            if self.buf.len() >= CHUNK {
                // A full chunk with no line end: set it aside and read into a fresh one.
                self.long_len += self.buf.len();
                self.long.push(self.buf.split().freeze());
            }
            // Otherwise the start of a line sits at the end of the chunk: moved to its front.
            self.buf.reserve(CHUNK);
        }
        matches!(self.reader.read_buf(&mut self.buf).await, Ok(n) if n > 0)
    }

    /// Hands every complete line read so far to `line` (without its newline); refuses once
    /// the line being read passes the bound.
    pub(crate) fn lines(&mut self, mut line: impl FnMut(&[u8])) -> Result<(), LineTooLong> {
        while let Some(end) = memchr::memchr(b'\n', &self.buf) {
            if self.long.is_empty() {
                if end <= self.max {
                    line(&self.buf[..end]);
                } else {
                    return Err(LineTooLong);
                }
            } else {
                let len = self.long_len + end;
                if len > self.max {
                    return Err(LineTooLong);
                }
                let mut whole = Vec::with_capacity(len);
                for piece in self.long.drain(..) {
                    whole.extend_from_slice(&piece);
                }
                whole.extend_from_slice(&self.buf[..end]);
                self.long_len = 0;
                line(&whole);
            }
            self.buf.advance(end + 1);
        }
        if self.long_len + self.buf.len() > self.max {
            return Err(LineTooLong);
        }
        Ok(())
    }
}

/// Longest stderr line logged; the rest of a longer line is dropped and the line marked.
pub(crate) const STDERR_LINE_MAX: usize = 4096;

/// The mark at the end of a stderr line cut at [`STDERR_LINE_MAX`].
pub(crate) const CUT_MARK: &str = " [… line cut]";

/// Splits stderr into log lines: `\n` and `\r` both end a line (a progress bar that redraws
/// itself with `\r` gives one line per redraw), empty lines are skipped, and a line longer
/// than `max` is cut: its first `max` bytes with [`CUT_MARK`], the rest skipped up to its end.
/// Bytes that are not UTF-8 are replaced.
#[derive(Debug)]
pub(crate) struct StderrLines {
    max: usize,
    /// Skipping the rest of a line that was cut.
    skipping: bool,
}

impl StderrLines {
    pub(crate) fn new(max: usize) -> StderrLines {
        StderrLines { max: max.max(1), skipping: false }
    }
}

impl Decoder for StderrLines {
    type Item = String;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<String>, std::io::Error> {
        loop {
            let window = buf.len().min(self.max);
            let end = buf[..window].iter().position(|&b| b == b'\n' || b == b'\r');
            match (end, self.skipping) {
                (Some(i), true) => {
                    buf.advance(i + 1);
                    self.skipping = false;
                }
                (None, true) => {
                    buf.advance(window);
                    if buf.is_empty() {
                        return Ok(None);
                    }
                }
                (Some(0), false) => buf.advance(1),
                (Some(i), false) => {
                    let line = String::from_utf8_lossy(&buf[..i]).into_owned();
                    buf.advance(i + 1);
                    return Ok(Some(line));
                }
                (None, false) if buf.len() >= self.max => {
                    let mut line = String::from_utf8_lossy(&buf[..self.max]).into_owned();
                    line.push_str(CUT_MARK);
                    buf.advance(self.max);
                    self.skipping = true;
                    return Ok(Some(line));
                }
                (None, false) => return Ok(None),
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<String>, std::io::Error> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        // The last line, with no end: logged as it is.
        if buf.is_empty() || self.skipping {
            buf.clear();
            return Ok(None);
        }
        let line = String::from_utf8_lossy(buf).into_owned();
        buf.clear();
        Ok(Some(line))
    }
}

/// Stderr lines logged per second, on average, for one worker.
pub(crate) const LOG_LINES_PER_SEC: u32 = 50;
/// Lines one worker may log in a burst above that rate.
pub(crate) const LOG_BURST: u32 = 200;
/// How often, at most, a worker's suppressed lines are counted in the log.
pub(crate) const SUPPRESSED_EVERY: Duration = Duration::from_secs(5);

/// A token bucket over one worker's stderr log lines: `rate` lines a second with bursts of
/// `burst`; lines beyond it are counted, and the count is reported at most once every
/// `every` (and at the end).
#[derive(Debug)]
pub(crate) struct LogBudget {
    rate: f64,
    burst: f64,
    every: Duration,
    tokens: f64,
    last: Instant,
    suppressed: u64,
    reported: Instant,
}

impl LogBudget {
    pub(crate) fn new(rate: u32, burst: u32, every: Duration, now: Instant) -> LogBudget {
        LogBudget {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            every,
            tokens: f64::from(burst.max(1)),
            last: now,
            suppressed: 0,
            reported: now,
        }
    }

    /// Whether a line may be logged at `now`; a refused line is counted as suppressed.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// The lines suppressed since the last report, when there are some and a report is due
    /// (or `end` is set: the stream is over).
    pub(crate) fn report(&mut self, now: Instant, end: bool) -> Option<u64> {
        if self.suppressed == 0 || (!end && now.saturating_duration_since(self.reported) < self.every) {
            return None;
        }
        self.reported = now;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut codec = StderrLines::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(line) = codec.decode(&mut buf).unwrap() {
                out.push(line);
            }
            assert!(buf.len() <= max, "the buffer stays within the line bound");
        }
        while let Some(line) = codec.decode_eof(&mut buf).unwrap() {
            out.push(line);
        }
        out
    }

    #[test]
    fn carriage_returns_and_newlines_both_end_lines() {
        assert_eq!(lines(64, &[b"10%\r20%\r30%\r\n", b"done\n"]), ["10%", "20%", "30%", "done"]);
        assert_eq!(lines(64, &[b"a\r\n\r\nb"]), ["a", "b"]);
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_skipped() {
        let long = vec![b'x'; 50];
        let out = lines(8, &[&long, &long, b"yy\nnext\n"]);
        assert_eq!(out, [format!("xxxxxxxx{CUT_MARK}"), "next".to_string()]);
        // A line cut at the end of the stream leaves nothing behind.
        assert_eq!(lines(8, &[&long]), [format!("xxxxxxxx{CUT_MARK}")]);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced() {
        assert_eq!(lines(64, &[b"ok \xff\n"]), ["ok \u{fffd}"]);
    }

    /// Every line `StdoutLines` reads from `input` with bound `max`, and how it ended.
    async fn stdout_lines(input: Vec<u8>, max: usize) -> (Vec<Vec<u8>>, Result<(), LineTooLong>) {
        let mut reader = StdoutLines::new(&input[..], max);
        let mut out = Vec::new();
        loop {
            let more = reader.fill().await;
            if let Err(e) = reader.lines(|l| out.push(l.to_vec())) {
                return (out, Err(e));
            }
            if !more {
                return (out, Ok(()));
            }
        }
    }

    #[tokio::test]
    async fn stdout_lines_short_and_longer_than_a_chunk() {
        let long = vec![b'x'; 3 * CHUNK + 17];
        let mut input = b"{\"pong\":1}\n\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nlast\n");
        let (lines, end) = stdout_lines(input, 4 * CHUNK).await;
        assert_eq!(end, Ok(()));
        assert_eq!(lines, vec![b"{\"pong\":1}".to_vec(), Vec::new(), long, b"last".to_vec()]);
    }

    #[tokio::test]
    async fn stdout_lines_past_the_bound_are_refused() {
        let (lines, end) = stdout_lines(b"ok\naaaaaaaaaaaaaaaaaaaaaa".to_vec(), 16).await;
        assert_eq!((lines, end), (vec![b"ok".to_vec()], Err(LineTooLong)));
        // Also when the line ends, and when it spans chunks.
        let (_, end) = stdout_lines([vec![b'a'; 20], b"\n".to_vec()].concat(), 16).await;
        assert_eq!(end, Err(LineTooLong));
        let (_, end) = stdout_lines(vec![b'a'; 2 * CHUNK + 5], CHUNK + 1).await;
        assert_eq!(end, Err(LineTooLong));
        // A line of exactly the bound is fine.
        let (lines, end) = stdout_lines([vec![b'a'; 16], b"\n".to_vec()].concat(), 16).await;
        assert_eq!((lines.len(), end), (1, Ok(())));
    }

    #[test]
    fn the_budget_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut budget = LogBudget::new(10, 5, Duration::from_secs(5), t0);
        let admitted = (0..100).filter(|_| budget.admit(t0)).count();
        assert_eq!(admitted, 5);
        assert_eq!(budget.report(t0, false), None, "not due yet");
        // One second later: ten more tokens.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| budget.admit(t1)).count(), 5, "capped at the burst");
        let t5 = t0 + Duration::from_secs(5);
        assert_eq!(budget.report(t5, false), Some(95 + 95));
        assert_eq!(budget.report(t5, true), None, "nothing new to report");
        // Four idle seconds refill the bucket only up to its burst.
        assert_eq!((0..100).filter(|_| budget.admit(t5)).count(), 5);
    }

    #[test]
    fn the_end_reports_what_is_left() {
        let t0 = Instant::now();
        let mut budget = LogBudget::new(1, 1, Duration::from_secs(60), t0);
        assert!(budget.admit(t0));
        assert!(!budget.admit(t0));
        assert_eq!(budget.report(t0, true), Some(1));
    }
}
