//! Tests of `GpuLedger`: reservations, waits, drained and forgotten GPUs, the environment of a placed worker.

use super::*;

fn sample(free_gib: &[u64]) -> GpuSample {
    let devices = free_gib
        .iter()
        .enumerate()
        .map(|(i, &f)| GpuUsage {
            index: i as u32,
            uuid: format!("GPU-{i}"),
            memory_total_bytes: 8 << 30,
            memory_free_bytes: f << 30,
            ..GpuUsage::default()
        })
        .collect();
    GpuSample { available: true, devices, ..GpuSample::default() }
}

#[test]
fn reservations_follow_workers_and_show_in_the_inventory() {
    let ledger = GpuLedger::new(&PoolConfig::default(), None);
    ledger.observe(sample(&[8, 8]), &[]);
    let (t, cfg): (Arc<str>, _) = (
        Arc::from("t"),
        TypeConfig { gpu_required: true, gpu_memory_mb: Some(6 << 10), ..TypeConfig::defaults_for("t") },
    );
    let (a, b, c): (WorkerId, WorkerId, WorkerId) = (Arc::from("t-1"), Arc::from("t-2"), Arc::from("t-3"));
    assert_eq!(ledger.reserve(&a, &t, &cfg), Ok(vec!["GPU-0".to_string()]));
    assert_eq!(ledger.reserve(&b, &t, &cfg), Ok(vec!["GPU-1".to_string()]));
    let why = ledger.reserve(&c, &t, &cfg).unwrap_err();
    assert_eq!(ledger.wait_reason("t"), Some(why));
    assert_eq!(ledger.waiting_types(), std::slice::from_ref(&t));
    let seen = ledger.observe(sample(&[8, 8]), &[]);
    assert_eq!(seen.devices[0].memory_reserved_bytes, 6 << 30);
    assert!(ledger.release(&a, None));
    assert!(!ledger.release(&a, None));
    assert_eq!(ledger.reserve(&c, &t, &cfg), Ok(vec!["GPU-0".to_string()]));
    assert_eq!(ledger.wait_reason("t"), None);
    assert_eq!(ledger.placed()["t-3"], ["GPU-0"]);
    let env = ledger.env(&["GPU-0".to_string(), "GPU-1".to_string()]);
    assert_eq!(env[0], ("CUDA_VISIBLE_DEVICES".to_string(), "GPU-0,GPU-1".to_string()));
    assert_eq!(env.len(), 2);
    // A worker without GPUs sees none while the pool places workers on GPUs.
    let hidden = ledger.env(&[]);
    assert_eq!(hidden[0], ("CUDA_VISIBLE_DEVICES".to_string(), String::new()));
    assert_eq!(hidden[1], ("NVIDIA_VISIBLE_DEVICES".to_string(), "void".to_string()));
    assert_eq!(GpuLedger::new(&PoolConfig::default(), None).env(&[]), vec![], "no GPU sampled yet");
}

#[test]
fn a_gpu_that_vanishes_is_drained_and_skipped_until_it_returns() {
    let ledger = GpuLedger::new(&PoolConfig::default(), None);
    ledger.observe(sample(&[8, 8]), &[]);
    let mut one = sample(&[8, 8]);
    one.devices.remove(0);
    let seen = ledger.observe(one, &[]);
    assert_eq!(seen.devices.len(), 2, "the vanished GPU is still listed");
    assert_eq!(ledger.drained().get("GPU-0").map(String::as_str), Some("gone from the GPU sample"));
    let (t, cfg): (Arc<str>, _) = (
        Arc::from("t"),
        TypeConfig { gpu_required: true, gpu_memory_mb: Some(1 << 10), ..TypeConfig::defaults_for("t") },
    );
    let w: WorkerId = Arc::from("t-1");
    assert_eq!(ledger.reserve(&w, &t, &cfg), Ok(vec!["GPU-1".to_string()]));
    ledger.observe(sample(&[8, 8]), &[]);
    assert!(ledger.drained().is_empty());
}

#[test]
fn a_sample_that_reads_no_gpu_at_all_drains_nothing() {
    let ledger = GpuLedger::new(&PoolConfig::default(), None);
    ledger.observe(sample(&[8, 8]), &[]);
    let failed = GpuSample { reason: Some("NVML cannot count devices".into()), ..GpuSample::default() };
    let seen = ledger.observe(failed, &[]);
    assert!(!seen.available);
    assert_eq!(seen.devices.len(), 2);
    assert!(ledger.drained().is_empty(), "{:?}", ledger.drained());
}

#[test]
fn a_gpu_seen_only_answering_errors_is_forgotten_once_gone_and_never_refuses_a_type() {
    let ledger = GpuLedger::new(&PoolConfig::default(), None);
    let mut erring = sample(&[8, 8]);
    erring.devices[1] =
        GpuUsage { uuid: "GPU-index-1".into(), error: Some("GPU is lost".into()), ..GpuUsage::default() };
    ledger.observe(erring, &[]);
    assert_eq!(ledger.drained().len(), 1);
    // Two GPUs per worker: the erring one may come back, so the type is not refused.
    let pair = TypeConfig { gpu_required: true, gpus_per_worker: Some(2), ..TypeConfig::defaults_for("t") };
    assert_eq!(ledger.never_fits(&pair), None);
    // It is read again under its real UUID: the entry NVML named while it failed goes.
    ledger.observe(sample(&[8, 8]), &[]);
    assert!(ledger.drained().is_empty(), "{:?}", ledger.drained());
    let three = TypeConfig { gpus_per_worker: Some(3), ..pair };
    assert!(ledger.never_fits(&three).is_some_and(|why| why.contains("needs 3 GPU(s)")));
}

#[test]
fn a_selection_that_names_no_gpu_makes_none_usable() {
    let cfg = PoolConfig { gpu_devices: Some(vec!["GPU-9".into()]), ..PoolConfig::default() };
    let seen = GpuLedger::new(&cfg, None).observe(sample(&[8]), &[]);
    assert!(!seen.available && seen.devices.is_empty());
    assert!(seen.reason.unwrap().contains("pool.gpu_devices"));
}

#[test]
fn what_a_worker_on_two_gpus_uses_counts_on_each_gpu_as_sampled() {
    let ledger = GpuLedger::new(&PoolConfig::default(), None);
    ledger.observe(sample(&[8, 8]), &[]);
    let (t, cfg): (Arc<str>, _) = (
        Arc::from("t"),
        TypeConfig {
            gpu_required: true,
            gpus_per_worker: Some(2),
            gpu_memory_mb: Some(4 << 10),
            ..TypeConfig::defaults_for("t")
        },
    );
    let w: WorkerId = Arc::from("t-1");
    assert_eq!(ledger.reserve(&w, &t, &cfg), Ok(vec!["GPU-0".to_string(), "GPU-1".to_string()]));
    // It holds 3 GiB, all on GPU-0 (NVML reports it per device).
    let mut now = sample(&[5, 8]);
    now.devices[0].memory_used_bytes = 3 << 30;
    now.add_process_memory(7, "GPU-0", 3 << 30);
    ledger.observe(now, &[("t-1", 7)]);
    let rooms: Vec<u64> = {
        let state = ledger.lock();
        state.devices.iter().map(|d| room(&state.reservations, d).free).collect()
    };
    // GPU-0: 5 free less the 1 GiB of its reservation not used yet; GPU-1: all 4 still to come.
    assert_eq!(rooms, [4 << 30, 4 << 30]);
    // Released, what it used comes back where it used it, not half on each.
    assert!(ledger.release(&w, None));
    let used: Vec<u64> = ledger.lock().devices.iter().map(|d| d.memory_used_bytes).collect();
    assert_eq!(used, [0, 0]);
    let free: Vec<u64> = ledger.lock().devices.iter().map(|d| d.memory_free_bytes).collect();
    assert_eq!(free, [8 << 30, 8 << 30]);
}
