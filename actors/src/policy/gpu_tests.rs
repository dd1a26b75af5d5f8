//! The tests of `policy::gpu`.

use super::*;

const GIB: u64 = 1 << 30;

fn gpu(index: u32, uuid: &str) -> GpuUsage {
    GpuUsage { index, uuid: uuid.into(), ..GpuUsage::default() }
}

fn room(free_gib: u64) -> DeviceRoom {
    DeviceRoom {
        total: 80 * GIB,
        free: free_gib * GIB,
        reserved: 0,
        holders: 0,
        exclusive: false,
        drained: false,
    }
}

fn need(count: usize, gib: Option<u64>) -> GpuNeed {
    GpuNeed { count, memory_bytes: gib.map(|g| g * GIB) }
}

#[test]
fn selection_by_config_then_environment_then_all() {
    let mut mig = gpu(1, "GPU-b");
    mig.mig_enabled = true;
    let instance = GpuUsage { mig_parent: Some("GPU-b".into()), ..gpu(1, "MIG-b1") };
    let devices = [gpu(0, "GPU-a"), mig, instance, gpu(2, "GPU-c")];
    // All placeable ones: the GPU with MIG on gives way to its instance.
    assert_eq!(select(&devices, None, None), (vec![0, 2, 3], vec![]));
    let named = ["2".to_string(), "MIG-b1".to_string(), "GPU-x".to_string()];
    assert_eq!(select(&devices, Some(&named), Some("0")), (vec![2, 3], vec![unknown("GPU-x")]));
    // The environment counts only when the config names nothing.
    assert_eq!(select(&devices, None, Some("GPU-a, 1")), (vec![0, 2], vec![]));
    assert_eq!(select(&devices, None, Some("GPU-b")), (vec![2], vec![]));
    assert_eq!(select(&devices, None, Some("")), (vec![], vec![]));
    assert_eq!(select(&devices, None, Some("7")), (vec![], vec![unknown("7")]));
}

fn unknown(name: &str) -> BadName {
    BadName::Unknown(name.to_string())
}

#[test]
fn a_unique_uuid_prefix_names_its_gpu_and_another_is_named_in_the_warning() {
    let mut mig = gpu(1, "GPU-8932f937-0000");
    mig.mig_enabled = true;
    let instance = GpuUsage { mig_parent: Some(mig.uuid.clone()), ..gpu(1, "MIG-11aa") };
    let devices = [gpu(0, "GPU-8932aaaa-0000"), mig, instance, gpu(2, "GPU-sim-1"), gpu(3, "GPU-sim-10")];
    let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    // A prefix of one GPU's UUID; of a GPU with MIG on (its instances); of an instance's.
    assert_eq!(select(&devices, Some(&names(&["GPU-8932aa"])), None), (vec![0], vec![]));
    assert_eq!(select(&devices, Some(&names(&["GPU-8932f937"])), None), (vec![2], vec![]));
    assert_eq!(select(&devices, None, Some("MIG-11")), (vec![2], vec![]));
    // A whole UUID is that GPU even where it begins a longer one.
    assert_eq!(select(&devices, None, Some("GPU-sim-1")), (vec![3], vec![]));
    // A prefix of several is refused, naming them, as is one of none.
    let (chosen, bad) = select(&devices, Some(&names(&["GPU-8932", "GPU-zz", "GPU-sim-10"])), None);
    assert_eq!(chosen, [4]);
    let ambiguous =
        BadName::Ambiguous("GPU-8932".into(), vec!["GPU-8932aaaa-0000".into(), "GPU-8932f937-0000".into()]);
    assert_eq!(bad, [ambiguous.clone(), unknown("GPU-zz")]);
    assert_eq!(
        ambiguous.to_string(),
        "\"GPU-8932\" (a prefix of several GPUs' UUIDs: GPU-8932aaaa-0000, GPU-8932f937-0000; name one)"
    );
    assert_eq!(unknown("GPU-zz").to_string(), "\"GPU-zz\" (no such GPU)");
}

#[test]
fn indexes_in_the_environment_without_the_bus_order_are_warned_of() {
    let warned = index_order_warning(None, Some("0,1"), None).expect("a warning");
    assert!(warned.contains("CUDA_DEVICE_ORDER") && warned.contains("PCI_BUS_ID"), "{warned}");
    assert!(index_order_warning(None, Some("GPU-a, 1"), Some("FASTEST_FIRST")).is_some());
    // Not with the bus order, not for UUIDs, not when gpu_devices (NVML indexes) decides.
    assert_eq!(index_order_warning(None, Some("0,1"), Some("PCI_BUS_ID")), None);
    assert_eq!(index_order_warning(None, Some("GPU-a,MIG-b"), None), None);
    assert_eq!(index_order_warning(None, Some(""), None), None);
    assert_eq!(index_order_warning(None, None, None), None);
    assert_eq!(index_order_warning(Some(&["0".to_string()]), Some("0"), None), None);
}

#[test]
fn workers_without_gpus_see_none_while_the_pool_places_gpus() {
    let env = |uuids: &[&str], places| {
        let uuids: Vec<String> = uuids.iter().map(|u| u.to_string()).collect();
        visible_devices(&uuids, places)
    };
    let pair = |cuda: &str, nvidia: &str| {
        vec![
            ("CUDA_VISIBLE_DEVICES".to_string(), cuda.to_string()),
            ("NVIDIA_VISIBLE_DEVICES".to_string(), nvidia.to_string()),
        ]
    };
    assert_eq!(env(&["GPU-a", "GPU-b"], true), pair("GPU-a,GPU-b", "GPU-a,GPU-b"));
    assert_eq!(env(&[], true), pair("", "void"));
    // A pool without GPUs leaves the server's variables alone.
    assert_eq!(env(&[], false), vec![]);
}

#[test]
fn spread_takes_the_most_room_and_pack_the_least_that_fits() {
    let devices = [room(40), room(70), room(10), room(70)];
    assert_eq!(place(&devices, need(1, Some(20)), GpuPlacement::Spread), Ok(vec![1]));
    assert_eq!(place(&devices, need(1, Some(20)), GpuPlacement::Pack), Ok(vec![0]));
    assert_eq!(place(&devices, need(1, Some(5)), GpuPlacement::Pack), Ok(vec![2]));
    assert_eq!(place(&devices, need(2, Some(20)), GpuPlacement::Spread), Ok(vec![1, 3]));
    assert_eq!(place(&devices, need(3, Some(20)), GpuPlacement::Pack), Ok(vec![0, 1, 3]));
}

#[test]
fn reservations_count_even_when_the_memory_is_not_used_yet() {
    let reserved = DeviceRoom { reserved: 70 * GIB, holders: 1, ..room(80) };
    assert_eq!(reserved.room(), 10 * GIB);
    let devices = [reserved, room(30)];
    assert_eq!(place(&devices, need(1, Some(20)), GpuPlacement::Pack), Ok(vec![1]));
    assert_eq!(place(&devices, need(1, Some(5)), GpuPlacement::Pack), Ok(vec![0]));
    // Memory others use counts too.
    assert_eq!(DeviceRoom { reserved: 10 * GIB, ..room(20) }.room(), 20 * GIB);
}

#[test]
fn exclusive_workers_take_empty_gpus_and_keep_others_away() {
    let taken = DeviceRoom { holders: 1, exclusive: true, ..room(80) };
    let shared = DeviceRoom { holders: 1, reserved: GIB, ..room(79) };
    let devices = [taken, shared, room(80)];
    assert_eq!(place(&devices, need(1, None), GpuPlacement::Spread), Ok(vec![2]));
    assert_eq!(place(&devices, need(1, Some(1)), GpuPlacement::Spread), Ok(vec![2]));
    assert_eq!(place(&devices, need(1, Some(1)), GpuPlacement::Pack), Ok(vec![1]));
    let err = place(&devices, need(2, None), GpuPlacement::Spread).unwrap_err();
    assert!(err.contains("needs 2 GPU(s)") && err.contains("1 of 3"), "{err}");
}

#[test]
fn drained_gpus_get_nothing_and_come_back_when_read_again() {
    let devices = [DeviceRoom { drained: true, ..room(80) }, room(10)];
    assert_eq!(place(&devices, need(1, Some(5)), GpuPlacement::Spread), Ok(vec![1]));
    assert!(place(&devices, need(1, Some(20)), GpuPlacement::Spread).is_err());
    assert!(could_ever_fit(&devices, need(1, Some(20))), "a drained GPU may come back");

    let failing = GpuUsage { error: Some("GPU is lost".into()), ..gpu(1, "GPU-b") };
    let first = drain(&[], vec![gpu(0, "GPU-a"), failing]);
    assert_eq!(first[0].drained, None);
    assert_eq!(first[1].drained.as_deref(), Some("NVML error: GPU is lost"));
    // GPU-a vanishes: it stays, drained, with its last figures; GPU-b reads well again.
    let second = drain(&first, vec![gpu(1, "GPU-b")]);
    let marks: Vec<(&str, Option<&str>)> =
        second.iter().map(|d| (d.uuid.as_str(), d.drained.as_deref())).collect();
    assert_eq!(marks, [("GPU-b", None), ("GPU-a", Some("gone from the GPU sample"))]);
    // A GPU gone while failing keeps the reason it was drained for.
    let third = drain(&first, vec![gpu(0, "GPU-a")]);
    assert_eq!(third[1].drained.as_deref(), Some("NVML error: GPU is lost"));
    let back = drain(&second, vec![gpu(0, "GPU-a"), gpu(1, "GPU-b")]);
    assert!(back.iter().all(|d| d.drained.is_none()) && back.len() == 2);
}

#[test]
fn nothing_fits_says_why_and_whether_it_ever_could() {
    let devices = [room(10), room(5)];
    let err = place(&devices, need(1, Some(20)), GpuPlacement::Spread).unwrap_err();
    assert!(err.contains("20480 MiB free") && err.contains("0 of 2"), "{err}");
    assert!(could_ever_fit(&devices, need(2, Some(80))));
    assert!(!could_ever_fit(&devices, need(1, Some(81))));
    assert!(!could_ever_fit(&devices, need(3, None)));
    assert_eq!(place(&[], need(1, None), GpuPlacement::Pack).map_err(|_| ()), Err(()));
}

#[test]
fn the_most_workers_at_once_counts_places_on_different_gpus() {
    let gib = 1u64 << 30;
    let empty = |total: u64| DeviceRoom {
        total,
        free: total,
        reserved: 0,
        holders: 0,
        exclusive: false,
        drained: false,
    };
    let two = [empty(80 * gib), empty(80 * gib)];
    let whole = |count| GpuNeed { count, memory_bytes: None };
    let sized = |count, gb: u64| GpuNeed { count, memory_bytes: Some(gb * gib) };
    assert_eq!(most_at_once(&two, whole(1), 100), 2);
    assert_eq!(most_at_once(&two, whole(2), 100), 1);
    assert_eq!(most_at_once(&two, whole(3), 100), 0);
    assert_eq!(most_at_once(&two, sized(1, 20), 100), 8);
    assert_eq!(most_at_once(&two, sized(2, 20), 100), 4, "each worker on both GPUs");
    assert_eq!(most_at_once(&two, sized(1, 20), 5), 5, "no more than asked about");
    assert_eq!(most_at_once(&two, sized(1, 100), 100), 0, "bigger than any GPU");
    // One big GPU and one small: a two-GPU worker needs a place on each.
    assert_eq!(most_at_once(&[empty(80 * gib), empty(20 * gib)], sized(2, 20), 100), 1);
    let mut drained = empty(80 * gib);
    drained.drained = true;
    assert_eq!(most_at_once(&[drained], whole(1), 100), 1, "a drained GPU may come back");
    assert_eq!(most_at_once(&[], whole(0), 7), 7, "a type without GPUs is not bounded here");
}
