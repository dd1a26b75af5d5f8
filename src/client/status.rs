//! `workerpool status`: the server's workers, queues, resources and GPUs (`GET
//! /api/workers/status`) as text tables, or its JSON; once, or again and again (`--watch`).

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::Value;

use super::args::StatusArgs;
use super::error::ClientError;
use super::gpus::render_gpus;
use super::http::Client;
use super::output::{format_bytes, format_duration_ms, format_mib, num, print_stdout, text};
use super::table::Table;

const PATH: &str = "/api/workers/status";

/// `workerpool status`: the server's workers, queues and resources as tables (or its JSON).
pub fn status(args: &StatusArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.connect)?;
    if args.watch {
        return watch(&client, args);
    }
    let body = client.get_json(PATH)?;
    if args.json {
        let text = serde_json::to_string_pretty(&body).unwrap_or_else(|_| body.to_string());
        return print_stdout(&text);
    }
    print_stdout(render_status(&body).trim_end())
}

/// `status --watch`: a report every `--interval` until interrupted or `--count` were shown.
/// On a terminal each report replaces the last; otherwise they follow each other (with
/// `--json`, one object per line). A failed request goes on to stderr (on a terminal it takes
/// the report's place) and the watch goes on; the last report's failure is the command's,
/// which `main` prints once.
fn watch(client: &Client, args: &StatusArgs) -> Result<(), ClientError> {
    let every = Duration::from_secs_f64(args.interval);
    let terminal = std::io::stdout().is_terminal() && !args.json;
    let header = format!("every {}s: {} (Ctrl-C to stop)", args.interval, client.base());
    let mut shown = 0u64;
    loop {
        let answer = client.get_json(PATH);
        // The last report's failure is the command's, which `main` prints.
        let last = args.count.is_some_and(|n| shown + 1 >= n);
        let text = match &answer {
            Ok(body) if args.json => body.to_string(),
            Ok(body) => render_status(body).trim_end().to_string(),
            Err(_) if last => String::new(),
            Err(e) => {
                let line = e.line();
                if terminal {
                    line
                } else {
                    eprintln!("{line}");
                    String::new()
                }
            }
        };
        if terminal {
            // Home and clear the screen, then the report under a line saying what it is.
            print_stdout(&format!("\x1b[H\x1b[2J{header}\n\n{text}"))?;
        } else if !text.is_empty() {
            print_stdout(&text)?;
            if !args.json {
                print_stdout("")?;
            }
        }
        shown += 1;
        if last {
            return answer.map(|_| ());
        }
        std::thread::sleep(every);
    }
}

fn float(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// The human-readable report of `GET /api/workers/status`.
pub fn render_status(s: &Value) -> String {
    let mut out = String::new();
    let total = num(s, "total");
    out.push_str(&format!(
        "instance {}, up {}: {} workers ({} busy, {} idle), {} tasks completed, {} failed\n",
        text(s, "instance_id"),
        format_duration_ms(num(s, "uptime_ms")),
        total,
        num(s, "busy"),
        num(s, "available"),
        num(s, "tasks_completed"),
        num(s, "tasks_failed"),
    ));

    let mut types =
        Table::new(&["TYPE", "WORKERS", "BUSY", "IDLE", "QUEUED", "COMPLETED", "FAILED", "AVG MS"]);
    if let Some(by_type) = s.get("by_type").and_then(Value::as_object) {
        for (name, t) in by_type {
            types.row(vec![
                name.clone(),
                num(t, "total").to_string(),
                num(t, "busy").to_string(),
                num(t, "available").to_string(),
                num(t, "queued").to_string(),
                num(t, "tasks_completed").to_string(),
                num(t, "tasks_failed").to_string(),
                float(t, "avg_task_ms").map_or("-".to_string(), |ms| format!("{ms:.1}")),
            ]);
        }
    }
    out.push('\n');
    out.push_str(&types.render());

    let usage: Vec<&Value> = s
        .pointer("/resources/workers")
        .and_then(Value::as_array)
        .map(|w| w.iter().collect())
        .unwrap_or_default();
    let usage_of = |id: &str| usage.iter().find(|u| u.get("worker_id").and_then(Value::as_str) == Some(id));
    let workers = s.get("workers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let with_gpu = usage.iter().any(|u| u.get("gpu_memory_bytes").is_some_and(|g| !g.is_null()));
    let mut header = vec!["WORKER", "TYPE", "PID", "STATE", "TASKS", "CPU%", "RSS MiB"];
    if with_gpu {
        header.push("GPU MiB");
    }
    let mut table = Table::new(&header);
    for w in workers {
        let id = text(w, "id");
        let u = usage_of(id);
        let mut row = vec![
            id.to_string(),
            text(w, "task_type").to_string(),
            w.get("pid").and_then(Value::as_u64).map_or("-".to_string(), |p| p.to_string()),
            text(w, "state").to_string(),
            num(w, "tasks_done").to_string(),
            u.and_then(|u| float(u, "cpu_percent")).map_or("-".to_string(), |c| format!("{c:.1}")),
            u.and_then(|u| u.get("memory_bytes")?.as_u64()).map_or("-".to_string(), format_mib),
        ];
        if with_gpu {
            row.push(u.and_then(|u| u.get("gpu_memory_bytes")?.as_u64()).map_or("-".to_string(), format_mib));
        }
        table.row(row);
    }
    out.push('\n');
    if workers.is_empty() {
        out.push_str("no workers running\n");
    } else {
        out.push_str(&table.render());
    }

    out.push('\n');
    let resources = s.get("resources").unwrap_or(&Value::Null);
    out.push_str(&render_resources(resources));
    if num(resources, "sampled_at") > 0 {
        out.push_str(&render_gpus(resources, workers));
    }
    out
}

/// The system line of the status report.
fn render_resources(r: &Value) -> String {
    if num(r, "sampled_at") == 0 {
        return "resources: not sampled yet\n".to_string();
    }
    let sys = r.get("system").unwrap_or(&Value::Null);
    format!(
        "system: CPU {:.1}% of {} CPUs, memory {} used of {} ({} available)\n",
        float(sys, "cpu_percent").unwrap_or(0.0),
        num(sys, "cpus"),
        format_bytes(num(sys, "memory_used_bytes")),
        format_bytes(num(sys, "memory_total_bytes")),
        format_bytes(num(sys, "memory_available_bytes")),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn status_report_has_every_section() {
        let s = json!({
            "total": 2, "available": 1, "busy": 1, "tasks_completed": 14, "tasks_failed": 1, "avg_task_ms": 30.0,
            "instance_id": "wp-1", "uptime_ms": 192_000,
            "by_type": {"text_processing": {"total": 2, "available": 1, "busy": 1, "queued": 3,
                "tasks_completed": 14, "tasks_failed": 1, "avg_task_ms": 32.3}},
            "workers": [
                {"id": "text_processing-1", "task_type": "text_processing", "pid": 4242, "state": "busy",
                 "task_id": "t", "tasks_done": 9, "uptime_ms": 1000},
                {"id": "text_processing-2", "task_type": "text_processing", "pid": null, "state": "starting",
                 "task_id": null, "tasks_done": 0, "uptime_ms": 10}
            ],
            "resources": {"sampled_at": 1, "system": {"cpu_percent": 12.5, "cpus": 16,
                "memory_used_bytes": 2u64 << 30, "memory_available_bytes": 6u64 << 30, "memory_total_bytes": 8u64 << 30},
                "workers": [{"worker_id": "text_processing-1", "task_type": "text_processing", "pid": 4242,
                    "cpu_percent": 3.3, "memory_bytes": 12u64 << 20, "gpu_memory_bytes": null}],
                "gpu": {"available": false, "reason": "NVML unavailable"}, "gpus": []}
        });
        let out = render_status(&s);
        assert!(out.starts_with(
            "instance wp-1, up 3m 12s: 2 workers (1 busy, 1 idle), 14 tasks completed, 1 failed\n"
        ));
        assert!(
            out.contains("text_processing        2     1     1       3         14       1    32.3"),
            "{out}"
        );
        assert!(
            out.contains("text_processing-1  text_processing  4242  busy          9   3.3     12.0"),
            "{out}"
        );
        assert!(
            out.contains("text_processing-2  text_processing     -  starting      0     -        -"),
            "{out}"
        );
        assert!(
            out.contains("system: CPU 12.5% of 16 CPUs, memory 2.0 GiB used of 8.0 GiB (6.0 GiB available)")
        );
        assert!(out.contains("gpu: unavailable (NVML unavailable)"));
        // A server that has not sampled yet, and an empty one, still render.
        let out = render_status(&json!({}));
        assert!(out.contains("no workers running") && out.contains("not sampled yet"), "{out}");
    }
}
