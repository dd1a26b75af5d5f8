//! What the client prints: lines on stdout (an answer's JSON or a line about it), the fields
//! it reads from answers, and sizes, durations and long texts shortened the way people read
//! them.

use std::io::Write;

use serde_json::Value;

use super::error::ClientError;

/// The number at `key` of an answer, or 0.
pub(super) fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// The text at `key` of an answer, or `-`.
pub(super) fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

/// The server's JSON with `json`, else the line `line` makes.
pub(super) fn report(json: bool, answer: &Value, line: impl FnOnce() -> String) -> Result<(), ClientError> {
    if json { print_stdout(&answer.to_string()) } else { print_stdout(&line()) }
}

/// Writes `text` and a newline to stdout, and flushes.
pub(super) fn print_stdout(text: &str) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).map_err(ClientError::Output)
}

/// `s` cut to its first `max` characters, with `…` when something was cut.
pub(super) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `s` with its control characters escaped (`\n`, `\u{1b}`, …): text a worker or a client
/// wrote (errors, stages) is shown as one line, and never as terminal escapes.
pub(super) fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Bytes as MiB with one decimal (the worker table's RSS column).
pub fn format_mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// A duration for people: `850ms`, `12.3s`, `3m 12s`, `2h 05m`, `3d 04h`.
pub fn format_duration_ms(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{:.1}s", ms as f64 / 1000.0),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(one_line("plain: é ✓"), "plain: é ✓");
        assert_eq!(one_line("a\nb\r\t\u{1b}[31mred"), "a\\nb\\r\\t\\u{1b}[31mred");
    }

    #[test]
    fn bytes_and_durations_read_well() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(3 * 1024 * 1024 * 1024 + 200 * 1024 * 1024), "3.2 GiB");
        assert_eq!(format_bytes(u64::MAX), "16384.0 PiB");
        assert_eq!(format_mib(12 * 1024 * 1024 + 512 * 1024), "12.5");
        assert_eq!(format_duration_ms(850), "850ms");
        assert_eq!(format_duration_ms(12_345), "12.3s");
        assert_eq!(format_duration_ms(192_000), "3m 12s");
        assert_eq!(format_duration_ms(7_500_000), "2h 05m");
        assert_eq!(format_duration_ms(3 * 86_400_000 + 4 * 3_600_000), "3d 04h");
    }
}
