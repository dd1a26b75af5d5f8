//! Real device memory through the CUDA driver API, loaded at run time.
//!
//! The driver (`libcuda.so.1`, `nvcuda.dll` on Windows) is opened on the first `gpu_alloc` and
//! kept for the life of the process, so nothing of CUDA is needed to build the worker and a
//! machine without it only fails the op. Each allocation retains the primary context of device
//! 0 (the first device in `CUDA_VISIBLE_DEVICES`), allocates with `cuMemAlloc`, writes every byte
//! with `cuMemsetD8` so the memory is really in use, holds it, frees it and releases the context,
//! so a worker between allocations holds no device memory at all.
//!
//! The device's UUID comes from `cuDeviceGetUuid_v2` where the driver has it (CUDA 11.4 on),
//! which on a MIG instance answers the instance's UUID; it is written `MIG-…` when the first
//! entry of `CUDA_VISIBLE_DEVICES` names a MIG instance, `GPU-…` otherwise. An older driver's
//! `cuDeviceGetUuid` answers the GPU's UUID even on MIG, which is written `GPU-…`.
//!
//! This is the only module of the project with `unsafe` code: the calls into the driver.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::fmt::Write as _;
use std::ptr;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use libloading::Library;

use crate::demo_worker::protocol::TaskError;

/// The driver's file name.
#[cfg(not(windows))]
const LIBRARY: &str = "libcuda.so.1";
/// The driver's file name.
#[cfg(windows)]
const LIBRARY: &str = "nvcuda.dll";

/// `CUresult`: 0 is success.
type CuResult = c_int;
/// `CUdevice`: an ordinal among the visible devices.
type CuDevice = c_int;
/// `CUcontext`: an opaque handle.
type CuContext = *mut c_void;
/// `CUdeviceptr`: a device address.
type CuDevicePtr = u64;

/// What an allocation was made on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Device {
    /// The device's UUID as `nvidia-smi` writes it (`GPU-…`, or `MIG-…` for a MIG instance).
    pub(super) uuid: String,
    /// The device's name, e.g. `NVIDIA H200`.
    pub(super) name: String,
}

/// The driver entry points the op uses.
struct Driver {
    device_get: unsafe extern "C" fn(*mut CuDevice, c_int) -> CuResult,
    device_get_uuid: unsafe extern "C" fn(*mut [u8; 16], CuDevice) -> CuResult,
    /// Whether `device_get_uuid` is `cuDeviceGetUuid_v2` (MIG instances' own UUIDs).
    uuid_v2: bool,
    device_get_name: unsafe extern "C" fn(*mut c_char, c_int, CuDevice) -> CuResult,
    primary_ctx_retain: unsafe extern "C" fn(*mut CuContext, CuDevice) -> CuResult,
    primary_ctx_release: unsafe extern "C" fn(CuDevice) -> CuResult,
    ctx_set_current: unsafe extern "C" fn(CuContext) -> CuResult,
    ctx_synchronize: unsafe extern "C" fn() -> CuResult,
    mem_alloc: unsafe extern "C" fn(*mut CuDevicePtr, usize) -> CuResult,
    mem_free: unsafe extern "C" fn(CuDevicePtr) -> CuResult,
    memset_d8: unsafe extern "C" fn(CuDevicePtr, u8, usize) -> CuResult,
    get_error_name: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult,
    /// Keeps the entry points above valid.
    _library: Library,
}

/// Allocates `bytes` on the first visible device, holds them for `hold` and frees them;
/// `visible` is the process's `CUDA_VISIBLE_DEVICES`, which says whether that device is a MIG
/// instance.
pub(super) fn allocate(bytes: u64, hold: Duration, visible: Option<&str>) -> Result<Device, TaskError> {
    static DRIVER: OnceLock<Result<Driver, String>> = OnceLock::new();
    let driver = DRIVER.get_or_init(Driver::load).as_ref().map_err(|e| TaskError::invalid(e.clone()))?;
    let size = usize::try_from(bytes)
        .map_err(|_| TaskError::invalid(format!("gpu_alloc: {bytes} bytes do not fit in an address here")))?;
    let device = driver.device()?;
    let described = driver.describe(device, visible)?;
    let _context = Context::retain(driver, device)?;
    let memory = Memory::allocate(driver, size)?;
    // SAFETY: `memory` is a live allocation of exactly `size` bytes in the current context.
    driver.check("cuMemsetD8", unsafe { (driver.memset_d8)(memory.pointer, 0xa5, size) }, true)?;
    // SAFETY: a context is current on this thread.
    driver.check("cuCtxSynchronize", unsafe { (driver.ctx_synchronize)() }, true)?;
    thread::sleep(hold);
    drop(memory);
    Ok(described)
}

/// The prefix of the UUID of device 0: `MIG-` when the driver answers MIG instances' own
/// UUIDs (`uuid_v2`) and the first entry of `CUDA_VISIBLE_DEVICES` (`visible`) names a MIG
/// instance (`MIG-<uuid>`, or the older `MIG-GPU-<uuid>/<gi>/<ci>`); `GPU-` otherwise.
pub(super) fn uuid_prefix(visible: Option<&str>, uuid_v2: bool) -> &'static str {
    let first = visible.and_then(|list| list.split(',').map(str::trim).find(|entry| !entry.is_empty()));
    if uuid_v2 && first.is_some_and(|entry| entry.starts_with("MIG-")) { "MIG-" } else { "GPU-" }
}

/// Writes a device UUID the way `nvidia-smi` does: `prefix` (`GPU-` or `MIG-`) and
/// 8-4-4-4-12 hex digits.
pub(super) fn format_uuid(prefix: &str, bytes: &[u8; 16]) -> String {
    let mut text = String::from(prefix);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        // Writing to a `String` cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text
}

// ===== impl Driver =====

impl Driver {
    /// Opens the driver, finds its entry points and initialises it.
    fn load() -> Result<Self, String> {
        // SAFETY: loading the driver runs its initialisers, which have no preconditions.
        let library = unsafe { Library::new(LIBRARY) }
            .map_err(|error| format!("gpu_alloc: no CUDA driver ({error})"))?;
        /// Copies the entry point `$name` (or else `$fallback`) out of `library`.
        macro_rules! entry {
            ($name:literal $(, $fallback:literal)?) => {{
                // SAFETY: the type written at each use below is the entry point's C signature
                // in `cuda.h`; the pointer is used only while `library` is loaded.
                let found = unsafe { library.get(concat!($name, "\0").as_bytes()) };
                $(let found = found.or_else(|_| unsafe { library.get(concat!($fallback, "\0").as_bytes()) });)?
                *found.map_err(|error| format!("gpu_alloc: the CUDA driver lacks {} ({error})", $name))?
            }};
        }
        let init: unsafe extern "C" fn(c_uint) -> CuResult = entry!("cuInit");
        // SAFETY: as in `entry!`: the signature of `cuDeviceGetUuid_v2` in `cuda.h`.
        let uuid_v2: Option<unsafe extern "C" fn(*mut [u8; 16], CuDevice) -> CuResult> =
            unsafe { library.get(b"cuDeviceGetUuid_v2\0") }.ok().map(|found| *found);
        let driver = Self {
            device_get: entry!("cuDeviceGet"),
            uuid_v2: uuid_v2.is_some(),
            device_get_uuid: match uuid_v2 {
                Some(v2) => v2,
                None => entry!("cuDeviceGetUuid"),
            },
            device_get_name: entry!("cuDeviceGetName"),
            primary_ctx_retain: entry!("cuDevicePrimaryCtxRetain"),
            primary_ctx_release: entry!("cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"),
            ctx_set_current: entry!("cuCtxSetCurrent"),
            ctx_synchronize: entry!("cuCtxSynchronize"),
            mem_alloc: entry!("cuMemAlloc_v2"),
            mem_free: entry!("cuMemFree_v2"),
            memset_d8: entry!("cuMemsetD8_v2"),
            get_error_name: entry!("cuGetErrorName"),
            _library: library,
        };
        // SAFETY: `cuInit(0)` may be called at any time, from any thread.
        let status = unsafe { init(0) };
        driver.check("cuInit", status, false).map_err(|error| error.message)?;
        Ok(driver)
    }

    /// Device 0 of those the process sees.
    fn device(&self) -> Result<CuDevice, TaskError> {
        let mut device = 0;
        // SAFETY: `device` is a valid place for the answer.
        self.check("cuDeviceGet", unsafe { (self.device_get)(&mut device, 0) }, false)?;
        Ok(device)
    }

    /// The UUID and name of `device`, the first of those `visible` names.
    fn describe(&self, device: CuDevice, visible: Option<&str>) -> Result<Device, TaskError> {
        let mut uuid = [0u8; 16];
        // SAFETY: `CUuuid` is 16 bytes, which `uuid` has room for.
        self.check("cuDeviceGetUuid", unsafe { (self.device_get_uuid)(&mut uuid, device) }, false)?;
        let mut name = [0 as c_char; 256];
        let length = c_int::try_from(name.len()).unwrap_or(c_int::MAX);
        // SAFETY: the driver writes at most `length` bytes, NUL included, into `name`.
        let status = unsafe { (self.device_get_name)(name.as_mut_ptr(), length, device) };
        self.check("cuDeviceGetName", status, false)?;
        // SAFETY: the driver wrote a NUL-terminated string within `name`.
        let name = unsafe { CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned();
        Ok(Device { uuid: format_uuid(uuid_prefix(visible, self.uuid_v2), &uuid), name })
    }

    /// `Ok` for success, else an error naming `call` and the driver's name for `status`.
    fn check(&self, call: &str, status: CuResult, retryable: bool) -> Result<(), TaskError> {
        if status == 0 {
            return Ok(());
        }
        let mut name: *const c_char = ptr::null();
        // SAFETY: `name` is a valid place for the answer; the driver answers a static string.
        let known = unsafe { (self.get_error_name)(status, &mut name) } == 0 && !name.is_null();
        let name = if known {
            // SAFETY: checked non-null above; the driver's error names are static C strings.
            unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned()
        } else {
            "unknown error".to_owned()
        };
        Err(TaskError::new(format!("gpu_alloc: {call} failed: {name} ({status})"), retryable))
    }
}

/// The primary context of a device, current on this thread until dropped.
struct Context<'d> {
    driver: &'d Driver,
    device: CuDevice,
}

impl<'d> Context<'d> {
    /// Retains the primary context of `device` and makes it current.
    fn retain(driver: &'d Driver, device: CuDevice) -> Result<Self, TaskError> {
        let mut context: CuContext = ptr::null_mut();
        // SAFETY: `context` is a valid place for the answer; `device` came from `cuDeviceGet`.
        let status = unsafe { (driver.primary_ctx_retain)(&mut context, device) };
        driver.check("cuDevicePrimaryCtxRetain", status, true)?;
        let retained = Self { driver, device };
        // SAFETY: `context` was just retained and stays alive until `retained` is dropped.
        driver.check("cuCtxSetCurrent", unsafe { (driver.ctx_set_current)(context) }, true)?;
        Ok(retained)
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: the context was retained once by `retain`; this is the matching release.
        // Unsetting it first leaves no dangling current context on this thread.
        // A failure here cannot be answered any more; the process exit reclaims the rest.
        unsafe {
            let _ = (self.driver.ctx_set_current)(ptr::null_mut());
            let _ = (self.driver.primary_ctx_release)(self.device);
        }
    }
}

/// A device allocation, freed when dropped.
struct Memory<'d> {
    driver: &'d Driver,
    pointer: CuDevicePtr,
}

impl<'d> Memory<'d> {
    /// Allocates `size` bytes in the current context; running out of memory may pass.
    fn allocate(driver: &'d Driver, size: usize) -> Result<Self, TaskError> {
        let mut pointer: CuDevicePtr = 0;
        // SAFETY: `pointer` is a valid place for the answer; a context is current.
        driver.check("cuMemAlloc", unsafe { (driver.mem_alloc)(&mut pointer, size) }, true)?;
        Ok(Self { driver, pointer })
    }
}

impl Drop for Memory<'_> {
    fn drop(&mut self) {
        // SAFETY: `pointer` came from `cuMemAlloc` and is freed only here, in its context.
        // A failure here cannot be answered any more; releasing the context frees the memory.
        let _ = unsafe { (self.driver.mem_free)(self.pointer) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_written_like_nvidia_smi() {
        let bytes =
            [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        assert_eq!(format_uuid("GPU-", &bytes), "GPU-12345678-9abc-def0-0123-456789abcdef");
        assert_eq!(format_uuid("MIG-", &bytes), "MIG-12345678-9abc-def0-0123-456789abcdef");
    }

    #[test]
    fn a_mig_instance_named_visible_gets_a_mig_uuid_only_from_the_v2_call() {
        let mig = Some(" MIG-4b2b1b3c-aaaa-bbbb-cccc-0123456789ab,GPU-x");
        assert_eq!(uuid_prefix(mig, true), "MIG-");
        assert_eq!(uuid_prefix(Some("MIG-GPU-12345678-9abc-def0-0123-456789abcdef/1/0"), true), "MIG-");
        // The older call answers the GPU's UUID even on MIG.
        assert_eq!(uuid_prefix(mig, false), "GPU-");
        for visible in [None, Some(""), Some("0"), Some("GPU-12345678"), Some("GPU-x,MIG-y")] {
            assert_eq!(uuid_prefix(visible, true), "GPU-", "{visible:?}");
        }
    }
}
