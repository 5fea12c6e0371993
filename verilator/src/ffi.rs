//! The only unsafe code of the crate: the C ABI of the verilated models (csrc/shim.h).
//!
//! # Safety invariants
//! * A [`Handle`] owns exactly one pointer returned non-null by a model constructor from the
//!   generated table; it is freed exactly once, in `Drop`, and never used afterwards.
//! * `Handle` is neither `Send` nor `Sync` (it holds a raw pointer), so the model is only ever
//!   used from the thread that created it, one call at a time (`&mut self`).
//! * Every buffer passed to C++ is a live Rust slice and the length passed is its length (the
//!   shim reads `n` bytes from `send`'s pointer and writes at most `n` bytes to `take`'s).
//! * The trace path is a NUL-terminated `CString` that outlives the constructor call (the
//!   shim copies it when opening the file).
//! * The C++ side catches exceptions in the constructor (returns null) and throws none
//!   elsewhere (plain loops over the model's ports).
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CString};
use std::path::Path;

/// One linked model: an array size, with or without waveform support.
pub(crate) struct ModelEntry {
    pub rows: usize,
    pub cols: usize,
    pub traced: bool,
    pub new: unsafe extern "C" fn(*const c_char) -> *mut c_void,
}

include!(concat!(env!("OUT_DIR"), "/models.rs"));

#[cfg(trimac_verilated)]
unsafe extern "C" {
    fn trimac_vl_free(h: *mut c_void);
    fn trimac_vl_send(h: *mut c_void, data: *const u8, n: usize, accept_limit: u64) -> usize;
    fn trimac_vl_recv(h: *mut c_void, n: usize, idle_limit: u64) -> usize;
    fn trimac_vl_take(h: *mut c_void, out: *mut u8, n: usize) -> usize;
    fn trimac_vl_cycles(h: *mut c_void) -> u64;
    fn trimac_vl_flush(h: *mut c_void);
}

/// A live model instance.
pub(crate) struct Handle {
    #[cfg_attr(not(trimac_verilated), allow(dead_code))]
    ptr: *mut c_void,
}

impl Handle {
    /// Constructs the model of `entry` (resets it: one cycle with reset asserted), writing a
    /// waveform to `trace` if given.
    pub fn new(entry: &ModelEntry, trace: Option<&Path>) -> Result<Handle, String> {
        let path = match trace {
            Some(p) => Some(
                CString::new(p.as_os_str().as_encoded_bytes())
                    .map_err(|_| format!("waveform path {} contains NUL", p.display()))?,
            ),
            None => None,
        };
        let arg = path.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: `entry.new` is a constructor from the generated table; `arg` is null or a
        // NUL-terminated string alive for the call.
        let ptr = unsafe { (entry.new)(arg) };
        if ptr.is_null() {
            return Err(match trace {
                Some(p) => format!("cannot open the waveform file {}", p.display()),
                None => "the verilated model could not be constructed".into(),
            });
        }
        Ok(Handle { ptr })
    }
}

#[cfg(trimac_verilated)]
impl Handle {
    /// Presents `bytes` in order; returns how many were taken.
    pub fn send(&mut self, bytes: &[u8], accept_limit: u64) -> usize {
        // SAFETY: live handle (invariants above); the pointer and length are the slice's.
        unsafe { trimac_vl_send(self.ptr, bytes.as_ptr(), bytes.len(), accept_limit) }
    }

    /// Runs until `n` output bytes are queued or the line stays idle for more than
    /// `idle_limit` cycles; returns how many are queued.
    pub fn recv(&mut self, n: usize, idle_limit: u64) -> usize {
        // SAFETY: live handle.
        unsafe { trimac_vl_recv(self.ptr, n, idle_limit) }
    }

    /// Takes up to `out.len()` queued output bytes; returns how many were written.
    pub fn take(&mut self, out: &mut [u8]) -> usize {
        // SAFETY: live handle; the shim writes at most `out.len()` bytes.
        unsafe { trimac_vl_take(self.ptr, out.as_mut_ptr(), out.len()) }
    }

    /// Clock cycles simulated since construction (the reset cycle included).
    pub fn cycles(&self) -> u64 {
        // SAFETY: live handle.
        unsafe { trimac_vl_cycles(self.ptr) }
    }

    /// Flushes the waveform file, if any.
    pub fn flush(&mut self) {
        // SAFETY: live handle.
        unsafe { trimac_vl_flush(self.ptr) }
    }
}

#[cfg(not(trimac_verilated))]
impl Handle {
    // Without Verilator no entry exists, so no Handle is ever constructed; these keep the
    // device code identical in both builds.
    pub fn send(&mut self, _bytes: &[u8], _accept_limit: u64) -> usize {
        0
    }
    pub fn recv(&mut self, _n: usize, _idle_limit: u64) -> usize {
        0
    }
    pub fn take(&mut self, _out: &mut [u8]) -> usize {
        0
    }
    pub fn cycles(&self) -> u64 {
        0
    }
    pub fn flush(&mut self) {}
}

impl Drop for Handle {
    fn drop(&mut self) {
        #[cfg(trimac_verilated)]
        // SAFETY: the pointer is live and freed exactly once, here.
        unsafe {
            trimac_vl_free(self.ptr)
        }
    }
}
