//! Embeds the actor tree in an application, with no HTTP: one in-process handler and one
//! process-worker type (a Python worker speaking the JSON-lines protocol), then a clean shutdown.
//!
//! Run from the repository root: `cargo run --example embed`.

use serde::{Deserialize, Serialize};
use serde_json::json;
use workerpool_actors::{PoolBuilder, PoolConfig, TaskError, TaskRequest, TaskStatus, TypeConfig};

#[derive(Serialize, Deserialize)]
struct Resize {
    width: u32,
    height: u32,
    scale: f32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = PoolConfig { types: Default::default(), ..PoolConfig::default() };
    let worker = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/worker.py");
    let mut words = TypeConfig::defaults_for("word_count");
    words.max_concurrent = 2;
    words.command = Some(vec!["python3".into(), worker.into()]);
    config.types.insert("word_count".into(), words);

    let pool = PoolBuilder::new(config)
        .typed_handler("resize", |r: Resize, ctx| async move {
            ctx.progress(50, Some("scaling"));
            if r.scale <= 0.0 {
                return Err(TaskError::fatal("scale must be positive"));
            }
            Ok(json!({
                "width": (r.width as f32 * r.scale).round() as u32,
                "height": (r.height as f32 * r.scale).round() as u32,
            }))
        })
        .start()?;

    let resized: serde_json::Value =
        pool.execute_typed("resize", &Resize { width: 640, height: 480, scale: 0.5 }).await?;
    println!("resize (in-process): {resized}");

    let mut task =
        pool.submit(TaskRequest::new("word_count", json!({"text": "the quick brown fox"}))).await?;
    while let Some(p) = task.progress().await {
        println!("word_count progress: {}% {}", p.progress, p.stage.unwrap_or_default());
    }
    let record = task.wait().await?;
    println!("word_count (process {:?}): {}", record.worker_pid, record.result.clone().unwrap_or_default());
    assert_eq!(record.status, TaskStatus::Completed);

    let failed = pool.execute(TaskRequest::new("word_count", json!({"text": ""}))).await?;
    println!("word_count with no text: {} ({})", failed.status, failed.error.unwrap_or_default());

    let stats = pool.stats().await?;
    println!("completed {}, failed {}", stats.tasks_completed, stats.tasks_failed);
    let report = pool.shutdown().await;
    println!("shut down: {report:?}");
    Ok(())
}
