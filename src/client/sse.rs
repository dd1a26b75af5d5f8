//! Server-sent events: [`SseParser`] assembles [`SseEvent`]s from the lines of a
//! `text/event-stream`, and [`read_line`] reads those lines with a bound on their length.

use std::io::{BufRead, Read};

/// The longest line accepted on the event stream.
const MAX_EVENT_LINE: u64 = 64 << 20;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name (`message` when none was given).
    pub event: String,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// Assembles server-sent events from lines (the WHATWG `text/event-stream` rules, without
/// `id` and `retry`, which this client does not use).
#[derive(Debug, Default)]
pub struct SseParser {
    event: Option<String>,
    data: Option<String>,
}

// ===== impl SseParser =====

impl SseParser {
    /// A parser with nothing pending.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds one line (with or without its line ending); returns the event a blank line
    /// completes. Comments (`:` lines) and unknown fields are ignored.
    pub fn feed(&mut self, line: &str) -> Option<SseEvent> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            // An event without data is not dispatched.
            return data.map(|data| SseEvent { event: event.unwrap_or_else(|| "message".to_string()), data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
        None
    }
}

/// Reads one line of at most [`MAX_EVENT_LINE`] bytes; `Ok(None)` at the end of the stream.
pub(super) fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = reader.by_ref().take(MAX_EVENT_LINE).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if n as u64 == MAX_EVENT_LINE && buf.last() != Some(&b'\n') {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "an event line is too long"));
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;

    use super::*;

    fn feed_all(parser: &mut SseParser, text: &str) -> Vec<SseEvent> {
        text.split_inclusive('\n').filter_map(|l| parser.feed(l)).collect()
    }

    #[test]
    fn sse_parser_reads_events_and_skips_comments() {
        let mut p = SseParser::new();
        let stream =
            "event: status\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: progress\r\ndata:{\"p\":2}\r\n\r\n";
        let events = feed_all(&mut p, stream);
        assert_eq!(
            events,
            vec![
                SseEvent { event: "status".into(), data: "{\"a\":1}".into() },
                SseEvent { event: "progress".into(), data: "{\"p\":2}".into() },
            ]
        );
    }

    #[test]
    fn sse_parser_joins_data_lines_and_defaults_the_name() {
        let mut p = SseParser::new();
        let events = feed_all(&mut p, "data: one\ndata:  two\nid: 7\nretry: 10\n\n");
        assert_eq!(events, vec![SseEvent { event: "message".into(), data: "one\n two".into() }]);
        // An event name without data is dropped at the blank line, and does not leak.
        assert_eq!(feed_all(&mut p, "event: lonely\n\ndata: x\n\n")[0].event, "message");
        // A field without a colon is a field with an empty value.
        assert_eq!(feed_all(&mut p, "data\n\n")[0].data, "");
        // Nothing is dispatched before the blank line.
        assert!(feed_all(&mut p, "event: result\ndata: {}\n").is_empty());
        assert_eq!(p.feed("\n").map(|e| e.event), Some("result".to_string()));
    }

    #[test]
    fn read_line_bounds_and_ends() {
        let mut r = BufReader::new(&b"a\nb"[..]);
        assert_eq!(read_line(&mut r).ok().flatten().as_deref(), Some("a\n"));
        assert_eq!(read_line(&mut r).ok().flatten().as_deref(), Some("b"));
        assert!(matches!(read_line(&mut r), Ok(None)));
    }
}
