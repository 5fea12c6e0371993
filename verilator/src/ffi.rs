//! The only unsafe code of the crate: the C ABI of the verilated models (csrc/shim.h), linked
//! in at build time or loaded from a shared library built on demand (src/jit.rs).
//!
//! # Safety invariants
//! * A [`Handle`] owns exactly one pointer returned non-null by a model constructor; it is
//!   freed exactly once, in `Drop`, through the functions of the same library that created it
//!   (the handle keeps that library's [`Functions`]), and never used afterwards.
//! * Libraries loaded with `dlopen` are never closed, so their function pointers stay valid
//!   for the life of the process (`&'static Functions`).
//! * Function pointers taken from `dlsym` are cast to the exact signatures the shim defines
//!   with `extern "C"` (csrc/shim.h, csrc/shim.cpp).
//! * `Handle` is neither `Send` nor `Sync` (it holds a raw pointer), so a model is only used
//!   from the thread that created it, one call at a time (`&mut self`).
//! * Every buffer passed to C++ is a live Rust slice and the length passed is its length (the
//!   shim reads `n` bytes from `send`'s pointer and writes at most `n` bytes to `take`'s).
//! * The trace path is a NUL-terminated `CString` alive during the constructor call.
//! * The C++ side catches exceptions in the constructor (returns null) and throws none
//!   elsewhere (plain loops over the model's ports).
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;

/// A model constructor: `void* trimac_vl_new_<name>(const char* trace_path)`.
pub(crate) type NewFn = unsafe extern "C" fn(*const c_char) -> *mut c_void;

/// One model linked in at build time: an array size, with or without waveform support.
pub(crate) struct ModelEntry {
    pub rows: usize,
    pub cols: usize,
    pub traced: bool,
    pub new: NewFn,
}

include!(concat!(env!("OUT_DIR"), "/models.rs"));

/// The size-independent functions of one copy of the shim.
pub(crate) struct Functions {
    free: unsafe extern "C" fn(*mut c_void),
    send: unsafe extern "C" fn(*mut c_void, *const u8, usize, u64) -> usize,
    recv: unsafe extern "C" fn(*mut c_void, usize, u64) -> usize,
    take: unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> usize,
    cycles: unsafe extern "C" fn(*mut c_void) -> u64,
    flush: unsafe extern "C" fn(*mut c_void),
}

#[cfg(trimac_verilated)]
unsafe extern "C" {
    fn trimac_vl_free(h: *mut c_void);
    fn trimac_vl_send(h: *mut c_void, data: *const u8, n: usize, accept_limit: u64) -> usize;
    fn trimac_vl_recv(h: *mut c_void, n: usize, idle_limit: u64) -> usize;
    fn trimac_vl_take(h: *mut c_void, out: *mut u8, n: usize) -> usize;
    fn trimac_vl_cycles(h: *mut c_void) -> u64;
    fn trimac_vl_flush(h: *mut c_void);
}

/// The functions of the shim linked into this binary.
#[cfg(trimac_verilated)]
pub(crate) static LINKED: Option<&Functions> = Some(&Functions {
    free: trimac_vl_free,
    send: trimac_vl_send,
    recv: trimac_vl_recv,
    take: trimac_vl_take,
    cycles: trimac_vl_cycles,
    flush: trimac_vl_flush,
});

/// Without Verilator at build time nothing is linked.
#[cfg(not(trimac_verilated))]
pub(crate) static LINKED: Option<&Functions> = None;

/// A model library built on demand, loaded for the rest of the process.
pub(crate) struct Library {
    pub new: NewFn,
    pub functions: &'static Functions,
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl call
    // on this thread; it is copied at once.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

/// Loads a model library built by src/jit.rs (never unloaded).
pub(crate) fn load(path: &Path, new_symbol: &str) -> Result<Library, String> {
    let cpath = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("library path {} contains NUL", path.display()))?;
    // SAFETY: cpath is a valid C string; the library is a model built by jit.rs, whose
    // initialisers only set up Verilator's runtime.
    let lib = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if lib.is_null() {
        return Err(format!("cannot load {}: {}", path.display(), dl_error()));
    }
    let sym = |name: &str| -> Result<*mut c_void, String> {
        let c = CString::new(name).map_err(|_| "symbol name contains NUL".to_string())?;
        // SAFETY: lib is a live handle (never closed), c a valid C string.
        let p = unsafe { libc::dlsym(lib, c.as_ptr()) };
        if p.is_null() {
            return Err(format!("{}: no symbol {name}", path.display()));
        }
        Ok(p)
    };
    // SAFETY (all transmutes): each symbol is defined by the shim with exactly this
    // signature (csrc/shim.h, csrc/shim.cpp), and the library stays loaded forever.
    unsafe {
        let functions = Box::leak(Box::new(Functions {
            free: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void)>(sym(
                "trimac_vl_free",
            )?),
            send: std::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(*mut c_void, *const u8, usize, u64) -> usize,
            >(sym("trimac_vl_send")?),
            recv: std::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(*mut c_void, usize, u64) -> usize,
            >(sym("trimac_vl_recv")?),
            take: std::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> usize,
            >(sym("trimac_vl_take")?),
            cycles: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void) -> u64>(
                sym("trimac_vl_cycles")?,
            ),
            flush: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void)>(sym(
                "trimac_vl_flush",
            )?),
        }));
        let new = std::mem::transmute::<*mut c_void, NewFn>(sym(new_symbol)?);
        Ok(Library { new, functions })
    }
}

/// A live model instance.
pub(crate) struct Handle {
    ptr: *mut c_void,
    f: &'static Functions,
}

impl Handle {
    /// Constructs a model with `new` (which resets it: one cycle with reset asserted), whose
    /// library's functions are `f`, writing a waveform to `trace` if given.
    pub fn new(new: NewFn, f: &'static Functions, trace: Option<&Path>) -> Result<Handle, String> {
        let path = match trace {
            Some(p) => Some(
                CString::new(p.as_os_str().as_encoded_bytes())
                    .map_err(|_| format!("waveform path {} contains NUL", p.display()))?,
            ),
            None => None,
        };
        let arg = path.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: `new` is a shim constructor; `arg` is null or a C string alive for the call.
        let ptr = unsafe { new(arg) };
        if ptr.is_null() {
            return Err(match trace {
                Some(p) => format!("cannot open the waveform file {}", p.display()),
                None => "the verilated model could not be constructed".into(),
            });
        }
        Ok(Handle { ptr, f })
    }

    /// Presents `bytes` in order; returns how many were taken.
    pub fn send(&mut self, bytes: &[u8], accept_limit: u64) -> usize {
        // SAFETY: live handle of this library; the pointer and length are the slice's.
        unsafe { (self.f.send)(self.ptr, bytes.as_ptr(), bytes.len(), accept_limit) }
    }

    /// Runs until `n` output bytes are queued or the line stays idle for more than
    /// `idle_limit` cycles; returns how many are queued.
    pub fn recv(&mut self, n: usize, idle_limit: u64) -> usize {
        // SAFETY: live handle of this library.
        unsafe { (self.f.recv)(self.ptr, n, idle_limit) }
    }

    /// Takes up to `out.len()` queued output bytes; returns how many were written.
    pub fn take(&mut self, out: &mut [u8]) -> usize {
        // SAFETY: live handle; the shim writes at most `out.len()` bytes.
        unsafe { (self.f.take)(self.ptr, out.as_mut_ptr(), out.len()) }
    }

    /// Clock cycles simulated since construction (the reset cycle included).
    pub fn cycles(&self) -> u64 {
        // SAFETY: live handle.
        unsafe { (self.f.cycles)(self.ptr) }
    }

    /// Flushes the waveform file, if any.
    pub fn flush(&mut self) {
        // SAFETY: live handle.
        unsafe { (self.f.flush)(self.ptr) }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the pointer is live and freed exactly once, here, by its own library.
        unsafe { (self.f.free)(self.ptr) }
    }
}
