//! Integration tests of `workerpool demo-worker`: each test spawns the real binary, writes JSON
//! lines to its stdin and reads its stdout, with every read bounded in time.

mod support;

use std::io::Cursor;
use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use support::demo_worker::DemoWorker;

/// Decodes a base64 field of a result.
fn decode_base64(result: &Value, field: &str) -> Vec<u8> {
    let text = result[field].as_str().expect("a base64 string");
    STANDARD.decode(text).expect("valid base64")
}

#[test]
fn ping_is_answered_with_pong() {
    let mut worker = DemoWorker::spawn();
    worker.write("{\"ping\":42}\n");
    assert_eq!(worker.recv(), json!({"pong": 42}));
    worker.finish();
}

#[test]
fn echo_returns_the_data_and_the_childs_pid() {
    let mut worker = DemoWorker::spawn();
    let data = json!({"op": "echo", "payload": {"list": [1, 2.5, "three"], "nested": null}});
    let line = worker.run("e1", "text_processing", data.clone());
    assert_eq!(line, json!({"id": "e1", "result": {"echo": data, "pid": worker.pid()}}));
    worker.finish();
}

#[test]
fn unknown_type_without_op_echoes_its_data() {
    let mut worker = DemoWorker::spawn();
    let result = worker.result("u1", "my_custom_type", json!([1, 2, 3]));
    assert_eq!(result, json!({"echo": [1, 2, 3], "pid": worker.pid()}));
    worker.write("{\"id\":\"u2\",\"type\":\"my_custom_type\"}\n");
    assert_eq!(worker.recv()["result"]["echo"], Value::Null);
    worker.finish();
}

#[test]
fn progress_reports_each_step_then_the_result() {
    let mut worker = DemoWorker::spawn();
    worker.send("p1", "x", json!({"op": "progress", "steps": 4, "step_ms": 5}));
    for (i, percent) in [25, 50, 75, 100].into_iter().enumerate() {
        let stage = format!("step {}/4", i + 1);
        assert_eq!(worker.recv(), json!({"id": "p1", "progress": percent, "stage": stage}));
    }
    assert_eq!(worker.recv(), json!({"id": "p1", "result": {"steps": 4, "pid": worker.pid()}}));
    worker.finish();
}

#[test]
fn fail_answers_an_error_retryable_by_default() {
    let mut worker = DemoWorker::spawn();
    assert_eq!(
        worker.run("f1", "x", json!({"op": "fail"})),
        json!({"id": "f1", "error": "requested failure", "retryable": true})
    );
    let data = json!({"op": "fail", "retryable": false, "message": "bad input"});
    assert_eq!(worker.run("f2", "x", data), json!({"id": "f2", "error": "bad input", "retryable": false}));
    worker.finish();
}

#[test]
fn crash_exits_with_its_code_without_answering() {
    let mut worker = DemoWorker::spawn();
    worker.send("c1", "x", json!({"op": "crash", "code": 7}));
    assert_eq!(worker.wait().code(), Some(7));
    assert_eq!(worker.remaining_stdout(), Vec::<String>::new());
    assert!(worker.stderr().contains("exit code 7"));

    let mut worker = DemoWorker::spawn();
    worker.send("c2", "x", json!({"op": "crash"}));
    assert_eq!(worker.wait().code(), Some(3), "the default code");
    assert_eq!(worker.remaining_stdout(), Vec::<String>::new());
}

#[test]
fn unknown_op_is_not_retryable() {
    let mut worker = DemoWorker::spawn();
    assert_eq!(
        worker.run("o1", "x", json!({"op": "teleport"})),
        json!({"id": "o1", "error": "unknown op 'teleport'", "retryable": false})
    );
    worker.finish();
}

#[test]
fn wrong_parameters_name_the_field_and_the_expectation() {
    let mut worker = DemoWorker::spawn();
    let cases = [
        (json!({"op": "sleep", "ms": "x"}), "field 'ms' must be a non-negative integer, got \"x\""),
        (json!({"op": "spin", "ms": -5}), "field 'ms' must be a non-negative integer, got -5"),
        (json!({"op": "fail", "retryable": "yes"}), "field 'retryable' must be a boolean, got \"yes\""),
        (json!({"op": "sleep"}), "field 'ms' is required: a non-negative integer"),
        (json!({"op": 1}), "field 'op' must be a string, got 1"),
    ];
    for (i, (data, message)) in cases.into_iter().enumerate() {
        let id = format!("w{i}");
        assert_eq!(worker.run(&id, "x", data), json!({"id": id, "error": message, "retryable": false}));
    }
    let data = json!({"width": 5000});
    assert_eq!(
        worker.run("w9", "image_generation", data)["error"],
        "field 'width' must be at most 1024, got 5000"
    );
    worker.finish();
}

#[test]
fn malformed_lines_are_refused_and_serving_goes_on() {
    let mut worker = DemoWorker::spawn();
    // No id can be recovered from the first two: they are only logged.
    worker.write("this is not json\n[1,2,3]\n");
    worker.write("{\"id\":\"m1\",\"type\":\"x\",\"data\":{\n");
    let answer = worker.recv();
    assert_eq!(answer["id"], "m1");
    assert_eq!(answer["retryable"], false);
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("invalid task line: "), "{error}");

    worker.write("{\"id\":\"m2\"}\n");
    assert_eq!(
        worker.recv(),
        json!({"id": "m2", "error": "invalid task line: missing field 'type'", "retryable": false})
    );
    worker.write("{\"id\":\"m3\",\"type\":[]}\n");
    assert_eq!(worker.recv()["error"], "invalid task line: field 'type' must be a string");

    worker.write("{\"ping\":1}\n");
    assert_eq!(worker.recv(), json!({"pong": 1}));
    worker.finish();
}

#[test]
fn malformed_lines_are_logged_on_stderr() {
    let mut worker = DemoWorker::spawn();
    worker.write("this is not json\n");
    worker.close_stdin();
    assert!(worker.wait().success());
    assert_eq!(worker.remaining_stdout(), Vec::<String>::new());
    let log = worker.stderr();
    assert!(log.contains("invalid line") && log.contains("this is not json"), "{log}");
}

#[test]
fn end_of_input_exits_with_status_zero() {
    let mut worker = DemoWorker::spawn();
    worker.close_stdin();
    assert_eq!(worker.wait().code(), Some(0));
}

#[test]
fn sleep_spin_and_alloc_report_what_they_did() {
    let mut worker = DemoWorker::spawn();
    let pid = worker.pid();
    let started = Instant::now();
    let slept = worker.result("s1", "x", json!({"op": "sleep", "ms": 30}));
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(slept, json!({"slept_ms": 30, "pid": pid}));

    let spun = worker.result("s2", "x", json!({"op": "spin", "ms": 20}));
    assert_eq!((spun["spun_ms"].clone(), spun["pid"].clone()), (json!(20), json!(pid)));
    assert!(spun["iterations"].as_u64().is_some_and(|n| n > 0), "{spun}");

    let allocated = worker.result("s3", "x", json!({"op": "alloc", "mb": 16, "hold_ms": 10}));
    assert_eq!(allocated, json!({"allocated_mb": 16, "pid": pid}));
    worker.finish();
}

#[test]
fn text_processing_computes_statistics() {
    let mut worker = DemoWorker::spawn();
    let text = "The quick brown fox. The lazy dog!\nThe end?";
    let result = worker.result("t1", "text_processing", json!({"text": text}));
    assert_eq!(result["chars"], 43);
    assert_eq!(result["words"], 9);
    assert_eq!(result["lines"], 2);
    assert_eq!(result["sentences"], 3);
    assert_eq!(result["top_words"][0], json!({"word": "the", "count": 3}));
    assert_eq!(result["pid"], worker.pid());
    worker.finish();
}

#[test]
fn content_analysis_scores_sentiment_and_flags() {
    let mut worker = DemoWorker::spawn();
    let text = "Great tool, I love it. Docs at https://example.org, mail help@example.org";
    let result = worker.result("a1", "content_analysis", json!({"text": text}));
    assert_eq!(result["sentiment"]["label"], "positive");
    assert_eq!(result["sentiment"]["positive"], 2);
    let flags = result["flags"].as_array().expect("a flag list");
    assert!(flags.contains(&json!("contains_url")), "{flags:?}");
    assert!(flags.contains(&json!("contains_email")), "{flags:?}");
    assert_eq!(result["keywords"][0]["word"], "example");
    assert!(result["reading_time_seconds"].as_u64() > Some(0));
    worker.finish();
}

#[test]
fn image_generation_returns_a_decodable_png() {
    let mut worker = DemoWorker::spawn();
    worker.send("i1", "image_generation", json!({"width": 40, "height": 30, "prompt": "fox"}));
    assert!(worker.recv().get("progress").is_some(), "a progress line first");
    let mut line = worker.recv();
    while line.get("progress").is_some() {
        line = worker.recv();
    }
    let result = &line["result"];
    assert_eq!(result["format"], "png");
    let png = decode_base64(result, "png_base64");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(result["bytes"].as_u64(), Some(png.len() as u64));
    let reader = png::Decoder::new(Cursor::new(&png)).read_info().expect("a valid png");
    assert_eq!((reader.info().width, reader.info().height), (40, 30));
    worker.finish();
}

#[test]
fn audio_synthesis_returns_a_wav() {
    let mut worker = DemoWorker::spawn();
    let data = json!({"frequency_hz": 220, "duration_ms": 100, "sample_rate": 8000});
    let result = worker.result("s1", "audio_synthesis", data);
    assert_eq!(result["samples"], 800);
    let wav = decode_base64(&result, "wav_base64");
    assert_eq!(result["bytes"].as_u64(), Some(wav.len() as u64));
    assert_eq!(wav.len(), 44 + 800 * 2);
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    assert_eq!(&wav[36..40], b"data");
    assert_eq!(u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]), 8000);
    worker.finish();
}

#[test]
fn video_generation_reports_every_frame() {
    let mut worker = DemoWorker::spawn();
    worker.send("v1", "video_generation", json!({"frames": 3, "width": 16, "height": 12}));
    for frame in 1..=3 {
        let line = worker.recv();
        assert_eq!(line["stage"], format!("frame {frame}/3"), "{line}");
    }
    let result = worker.recv()["result"].take();
    assert_eq!(result["format"], "png-sequence");
    assert_eq!(result["frames"], 3);
    let sizes: Vec<u64> =
        result["frame_bytes"].as_array().expect("frame sizes").iter().filter_map(Value::as_u64).collect();
    assert_eq!(sizes.len(), 3);
    assert_eq!(result["total_bytes"].as_u64(), Some(sizes.iter().sum()));
    worker.finish();
}

#[test]
fn world_building_is_deterministic_per_seed() {
    let mut worker = DemoWorker::spawn();
    let data = json!({"seed": 1234, "width": 24, "height": 6});
    let first = worker.result("w1", "world_building", data.clone());
    let again = worker.result("w2", "world_building", data);
    let other = worker.result("w3", "world_building", json!({"seed": 99, "width": 24, "height": 6}));
    assert_eq!(first, again);
    assert_ne!(first["rows"], other["rows"]);
    let rows = first["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|row| row.as_str().map(str::len) == Some(24)));
    let counted: u64 = first["counts"].as_object().expect("counts").values().filter_map(Value::as_u64).sum();
    assert_eq!(counted, 24 * 6);
    worker.finish();
}

#[test]
fn many_echo_tasks_written_at_once_are_answered_in_order() {
    const TASKS: usize = 2000;
    let mut worker = DemoWorker::spawn();
    let batch: String = (0..TASKS)
        .map(|i| format!("{{\"id\":\"t{i}\",\"type\":\"x\",\"data\":{{\"op\":\"echo\",\"i\":{i}}}}}\n"))
        .collect();
    worker.write(&batch);
    for i in 0..TASKS {
        let line = worker.recv();
        assert_eq!(line["id"], format!("t{i}"));
        assert_eq!(line["result"]["echo"]["i"], i);
    }
    worker.finish();
}
