//! The serving loop: read a line, run it, answer, until stdin ends.
//!
//! Tasks run one at a time on this thread, in the order they arrive, so answers come back in
//! order too. The loop reuses one line buffer, and stdout is locked once and buffered, so a line
//! costs one parse, one serialisation and one `write` + flush.

use std::io::{self, BufRead, BufWriter, Read, Write};
use std::process;

use serde_json::Value;

use super::{
    audio, content, image,
    ops::{self, Op},
    params::{Params, expected},
    protocol::{self, Line, LineProgress, Malformed, Output, Progress, Task, TaskError},
    text, world,
};

/// The longest line read, in bytes (16 MiB); the rest of a longer line is skipped.
const MAX_LINE_BYTES: u64 = 16 << 20;
/// How much of a malformed line goes to the log.
const LOGGED_BYTES: usize = 200;

/// A default task type with real work behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskKind {
    /// `text_processing`: text statistics.
    TextProcessing,
    /// `content_analysis`: sentiment, keywords, reading time, flags.
    ContentAnalysis,
    /// `image_generation`: one PNG.
    ImageGeneration,
    /// `audio_synthesis`: one WAV tone.
    AudioSynthesis,
    /// `video_generation`: a PNG sequence.
    VideoGeneration,
    /// `world_building`: a tile map.
    WorldBuilding,
}

/// Serves the JSON-lines protocol on stdin/stdout until stdin closes.
///
/// Returns an error only when stdin or stdout fails, e.g. when the pool has gone away.
///
/// # Examples
///
/// ```no_run
/// // What `workerpool demo-worker` does: serve until the pool closes stdin.
/// workerpool::demo_worker::run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn run() -> io::Result<()> {
    let input = io::stdin().lock();
    let output = BufWriter::new(io::stdout().lock());
    serve(input, output, process::id())
}

/// Answers every line of `input` on `output`, as process `pid`.
fn serve<R: BufRead, W: Write>(mut input: R, mut output: W, pid: u32) -> io::Result<()> {
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        let read = Read::take(&mut input, MAX_LINE_BYTES).read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && read as u64 == MAX_LINE_BYTES {
            input.skip_until(b'\n')?;
            let malformed = Malformed {
                reason: format!("line longer than {MAX_LINE_BYTES} bytes"),
                id: protocol::scan_id(&line),
            };
            refuse(&line, malformed, pid, &mut output)?;
            continue;
        }
        let line = line.trim_ascii();
        if !line.is_empty() {
            answer(line, pid, &mut output)?;
        }
    }
}

/// Answers one line.
fn answer<W: Write>(line: &[u8], pid: u32, output: &mut W) -> io::Result<()> {
    match protocol::parse(line) {
        Ok(Line::Ping(_)) if ops::MUTED.load(std::sync::atomic::Ordering::Relaxed) => Ok(()),
        Ok(Line::Ping(n)) => protocol::write_pong(output, &n),
        Ok(Line::Task(task)) => run_task(&task, pid, output),
        Err(malformed) => refuse(line, malformed, pid, output),
    }
}

/// Runs a task, writing its progress lines as they come and then its outcome.
fn run_task<W: Write>(task: &Task<'_>, pid: u32, output: &mut W) -> io::Result<()> {
    let mut progress = LineProgress::new(output, &task.id);
    let outcome = execute(&task.kind, &task.data, task.attempt, pid, &mut progress);
    progress.finish()?;
    match outcome {
        Ok(result) => protocol::write_result(output, &task.id, &result),
        Err(error) => protocol::write_error(output, &task.id, &error),
    }
}

/// Logs a malformed line and, when its id is known, fails that task without retries.
fn refuse<W: Write>(line: &[u8], malformed: Malformed, pid: u32, output: &mut W) -> io::Result<()> {
    let shown = String::from_utf8_lossy(&line[..line.len().min(LOGGED_BYTES)]);
    eprintln!("demo-worker[{pid}]: invalid line ({}): {}", malformed.reason, shown.trim_end());
    match malformed.id {
        Some(id) => {
            let error = TaskError::invalid(format!("invalid task line: {}", malformed.reason));
            protocol::write_error(output, &id, &error)
        }
        None => Ok(()),
    }
}

/// Runs task type `kind` on `data`: its control op if it has one, else the type's real work,
/// else (for a type without any) an echo.
fn execute<'d>(
    kind: &str,
    data: &'d Value,
    attempt: u64,
    pid: u32,
    progress: &mut dyn Progress,
) -> Result<Output<'d>, TaskError> {
    match data.get("op") {
        None | Some(Value::Null) => {}
        Some(Value::String(op)) => return Op::parse(op)?.run(data, attempt, pid, progress),
        Some(other) => return Err(expected("op", "a string", other)),
    }
    let Some(kind) = TaskKind::parse(kind) else {
        return Ok(Output::Echo { echo: data, pid });
    };
    let params = Params::new(data);
    let mut result = match kind {
        TaskKind::TextProcessing => text::process(&params)?,
        TaskKind::ContentAnalysis => content::analyse(&params)?,
        TaskKind::ImageGeneration => image::generate_image(&params, progress)?,
        TaskKind::AudioSynthesis => audio::synthesize_tone(&params, progress)?,
        TaskKind::VideoGeneration => image::generate_video(&params, progress)?,
        TaskKind::WorldBuilding => world::build(&params, progress)?,
    };
    if let Some(fields) = result.as_object_mut() {
        fields.insert("pid".to_owned(), pid.into());
    }
    Ok(Output::Json(result))
}

// ===== impl TaskKind =====

impl TaskKind {
    /// The default type called `name`, if it is one.
    fn parse(name: &str) -> Option<Self> {
        match name {
            "text_processing" => Some(Self::TextProcessing),
            "content_analysis" => Some(Self::ContentAnalysis),
            "image_generation" => Some(Self::ImageGeneration),
            "audio_synthesis" => Some(Self::AudioSynthesis),
            "video_generation" => Some(Self::VideoGeneration),
            "world_building" => Some(Self::WorldBuilding),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Serves `input` and returns the output lines as JSON.
    fn serve_lines(input: &str) -> Vec<Value> {
        let mut output = Vec::new();
        assert!(serve(input.as_bytes(), &mut output, 9).is_ok());
        output
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).expect("output lines are JSON"))
            .collect()
    }

    #[test]
    fn answers_pings_tasks_and_malformed_lines_in_order() {
        let input = concat!(
            "{\"ping\":1}\n",
            "\n",
            "{\"id\":\"a\",\"type\":\"x\",\"data\":[1]}\r\n",
            "{\"id\":\"b\",\"type\":\n",
            "garbage\n",
            "{\"id\":\"c\",\"type\":\"x\",\"data\":{\"op\":7}}\n",
            "{\"id\":\"d\",\"type\":\"text_processing\",\"data\":{\"text\":\"Hi there.\"}}",
        );
        let lines = serve_lines(input);
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(lines[0], json!({"pong": 1}));
        assert_eq!(lines[1], json!({"id": "a", "result": {"echo": [1], "pid": 9}}));
        assert_eq!(lines[2]["id"], "b");
        assert_eq!(lines[2]["retryable"], false);
        assert!(lines[2]["error"].as_str().is_some_and(|e| e.starts_with("invalid task line: ")));
        assert_eq!(lines[3]["error"], "field 'op' must be a string, got 7");
        assert_eq!(lines[4]["result"]["words"], 2);
        assert_eq!(lines[4]["result"]["pid"], 9);
    }

    #[test]
    fn overlong_line_is_refused_and_skipped() {
        let mut input = r#"{"id":"big","type":"x","data":""#.to_owned();
        input.extend(std::iter::repeat_n('a', MAX_LINE_BYTES as usize));
        input.push_str("\"}\n{\"ping\":2}\n");
        let error = format!("invalid task line: line longer than {MAX_LINE_BYTES} bytes");
        assert_eq!(
            serve_lines(&input),
            [json!({"id": "big", "error": error, "retryable": false}), json!({"pong": 2}),]
        );
    }

    #[test]
    fn op_wins_over_the_types_work() {
        let lines = serve_lines(
            "{\"id\":\"a\",\"type\":\"image_generation\",\"data\":{\"op\":\"fail\",\"retryable\":false}}\n",
        );
        assert_eq!(lines, [json!({"id": "a", "error": "requested failure", "retryable": false})]);
    }

    #[test]
    fn progress_lines_come_before_the_result() {
        let lines = serve_lines(
            "{\"id\":\"p\",\"type\":\"x\",\"data\":{\"op\":\"progress\",\"steps\":2,\"step_ms\":0}}\n",
        );
        assert_eq!(
            lines,
            [
                json!({"id": "p", "progress": 50, "stage": "step 1/2"}),
                json!({"id": "p", "progress": 100, "stage": "step 2/2"}),
                json!({"id": "p", "result": {"steps": 2, "pid": 9}}),
            ]
        );
    }

    #[test]
    fn every_default_type_has_real_work() {
        for kind in [
            "text_processing",
            "content_analysis",
            "image_generation",
            "audio_synthesis",
            "video_generation",
            "world_building",
        ] {
            assert!(TaskKind::parse(kind).is_some(), "{kind}");
            let line = format!("{{\"id\":\"t\",\"type\":\"{kind}\"}}\n");
            let result = serve_lines(&line).pop().unwrap_or_default();
            assert_eq!(result["result"]["pid"], 9, "{kind}: {result}");
            assert!(result["result"].get("echo").is_none(), "{kind}: {result}");
        }
    }
}
