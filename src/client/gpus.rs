//! The GPU table of `workerpool status`: per device its UUID, name, state, used / reserved
//! / total memory, utilisation and the workers placed on it, and whether the devices are
//! simulated.

use serde_json::Value;

use super::output::format_mib;
use super::table::Table;

fn bytes(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_u64).map_or("-".to_string(), format_mib)
}

/// The GPU lines of the report, from its `resources` and `workers`: a table when a GPU is
/// usable, else one line saying why not.
pub(super) fn render_gpus(resources: &Value, workers: &[Value]) -> String {
    let gpu = resources.get("gpu").unwrap_or(&Value::Null);
    if !gpu.get("available").and_then(Value::as_bool).unwrap_or(false) {
        let reason = gpu.get("reason").and_then(Value::as_str).unwrap_or("no reason given");
        return format!("gpu: unavailable ({reason})\n");
    }
    let devices = resources.get("gpus").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let simulated = gpu.get("simulated").and_then(Value::as_bool).unwrap_or(false);
    let mut out = if simulated {
        format!("gpus: {} (simulated: they do not exist)\n", devices.len())
    } else {
        format!("gpus: {}\n", devices.len())
    };
    if devices.is_empty() {
        return out;
    }
    let mut table =
        Table::new(&["GPU", "NAME", "STATE", "USED MiB", "RESERVED MiB", "TOTAL MiB", "UTIL%", "WORKERS"]);
    let mut drained = Vec::new();
    for d in devices {
        let uuid = d.get("uuid").and_then(Value::as_str).unwrap_or("-");
        let on_it: Vec<&str> = workers
            .iter()
            .filter(|w| w.get("gpus").and_then(Value::as_array).is_some_and(|g| g.iter().any(|u| u == uuid)))
            .filter_map(|w| w.get("id").and_then(Value::as_str))
            .collect();
        let state = match d.get("drained").and_then(Value::as_str) {
            Some(why) => {
                drained.push(format!("{uuid} drained: {why}\n"));
                "drained"
            }
            None => "ok",
        };
        table.row(vec![
            uuid.to_string(),
            d.get("name").and_then(Value::as_str).unwrap_or("-").to_string(),
            state.to_string(),
            bytes(d, "memory_used_bytes"),
            bytes(d, "memory_reserved_bytes"),
            bytes(d, "memory_total_bytes"),
            d.get("utilization_percent")
                .and_then(Value::as_f64)
                .map_or("-".to_string(), |u| format!("{u:.0}")),
            if on_it.is_empty() { "-".to_string() } else { on_it.join(",") },
        ]);
    }
    out.push_str(&table.render());
    out.extend(drained);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn one_row_per_gpu_with_its_workers_and_drained_ones_said_why() {
        let resources = json!({
            "gpu": {"available": true, "reason": null, "simulated": true},
            "gpus": [
                {"uuid": "GPU-sim-0", "name": "H100 (simulated)", "memory_used_bytes": 1u64 << 30,
                 "memory_reserved_bytes": 2u64 << 30, "memory_total_bytes": 80u64 << 30,
                 "utilization_percent": 37.0},
                {"uuid": "GPU-sim-1", "name": "H100 (simulated)", "memory_used_bytes": 0,
                 "memory_reserved_bytes": 0, "memory_total_bytes": 80u64 << 30,
                 "utilization_percent": 0.0, "drained": "gone from the GPU sample"}
            ]
        });
        let workers = [
            json!({"id": "image_generation-1", "gpus": ["GPU-sim-0"]}),
            json!({"id": "video_generation-2", "gpus": ["GPU-sim-0"]}),
            json!({"id": "text_processing-1", "gpus": []}),
        ];
        let out = render_gpus(&resources, &workers);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "gpus: 2 (simulated: they do not exist)");
        assert_eq!(
            lines[1],
            "GPU        NAME              STATE    USED MiB  RESERVED MiB  TOTAL MiB  UTIL%  WORKERS"
        );
        assert_eq!(
            lines[2],
            "GPU-sim-0  H100 (simulated)  ok         1024.0        2048.0    81920.0     37  \
             image_generation-1,video_generation-2"
        );
        assert!(lines[3].starts_with("GPU-sim-1  H100 (simulated)  drained") && lines[3].ends_with('-'));
        assert_eq!(lines[4], "GPU-sim-1 drained: gone from the GPU sample");
        let unavailable = json!({"gpu": {"available": false, "reason": "NVML unavailable"}});
        assert_eq!(render_gpus(&unavailable, &[]), "gpu: unavailable (NVML unavailable)\n");
    }
}
