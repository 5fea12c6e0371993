//! The Verilator backend of trimac: the emitted top-level (`trimac_hdl::verilog::emit_top`)
//! verilated and compiled at build time (build.rs), driven from Rust through a small C ABI.
//!
//! [`VerilatorDevice`] is a [`ByteStream`] with exactly the per-cycle semantics of the rust-hdl
//! backend (`trimac_sim::rtl::RtlDevice`): the same bytes in give the same bytes out after the
//! same number of clock cycles. The cycle loop runs in C++; one FFI call moves a whole burst of
//! input bytes or waits for a whole reply, so the simulation runs at the verilated model's
//! speed.
//!
//! The menu sizes 4x4, 8x8 and 16x16 (default configuration) are verilated and linked in at
//! build time; any other configuration (another shape, other memory depths or frame timeout)
//! is verilated and compiled into a shared library on first use and cached (src/jit.rs). See
//! docs/verilator.md. Without Verilator the crate still builds, and [`VerilatorDevice::new`]
//! says that Verilator is missing and how to install it.
#![deny(unsafe_code)]

mod ffi;
mod flags;
mod jit;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use trimac_hdl::Config;
use trimac_sim::stream::{ByteStream, LinkError};

/// Options of the Verilator backend.
#[derive(Clone, Debug, Default)]
pub struct VerilatorOptions {
    /// Write a waveform of the whole session to this file: FST when the name ends in `.fst`,
    /// VCD otherwise. VCD models of 4x4 and 8x8 are linked in (`TRIMAC_VERILATOR_TRACE_SIZES`);
    /// other sizes and FST are built on demand.
    pub trace: Option<PathBuf>,
}

/// Why the backend is unavailable in this build, if it is: Verilator was missing (the message
/// names the tool and the install command) or failed when the crate was built.
pub fn build_error() -> Option<&'static str> {
    ffi::BUILD_ERROR
}

/// Array sizes `(rows, cols)` built into this binary.
pub fn built_sizes() -> Vec<(usize, usize)> {
    let mut v: Vec<_> = ffi::MODELS
        .iter()
        .filter(|m| !m.traced)
        .map(|m| (m.rows, m.cols))
        .collect();
    v.dedup();
    v
}

/// Array sizes built with waveform support.
pub fn traced_sizes() -> Vec<(usize, usize)> {
    ffi::MODELS
        .iter()
        .filter(|m| m.traced)
        .map(|m| (m.rows, m.cols))
        .collect()
}

fn size_list(sizes: &[(usize, usize)]) -> String {
    if sizes.is_empty() {
        return "none".into();
    }
    sizes
        .iter()
        .map(|(r, c)| format!("{r}x{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Set to `1` to refuse configurations that were not built with the crate instead of building
/// them on demand.
pub const NO_JIT_ENV: &str = "TRIMAC_VERILATOR_NO_JIT";

/// The error for a configuration not linked in (with on-demand builds disabled).
fn not_built(cfg: &Config, traced: bool) -> String {
    let default_cfg = Config::new(cfg.rows, cfg.cols).is_ok_and(|d| d == *cfg);
    if !default_cfg {
        return format!(
            "this {} configuration (memory depths, clock or timeout other than the default) \
             is not built in, and {NO_JIT_ENV}=1 forbids building it on demand",
            cfg.array_name()
        );
    }
    match traced {
        false => format!(
            "the {} array was not verilated in this build (built: {}); rebuild with \
             TRIMAC_VERILATOR_SIZES={}, or unset {NO_JIT_ENV}",
            cfg.array_name(),
            size_list(&built_sizes()),
            with_size(&built_sizes(), cfg)
        ),
        true => format!(
            "the {} array was not built with waveform support (built with it: {}); rebuild \
             with TRIMAC_VERILATOR_TRACE_SIZES={}, or unset {NO_JIT_ENV}",
            cfg.array_name(),
            size_list(&traced_sizes()),
            with_size(&traced_sizes(), cfg)
        ),
    }
}

/// Libraries built and loaded on demand in this process, by path.
static LOADED: Mutex<Option<HashMap<PathBuf, (ffi::NewFn, &'static ffi::Functions)>>> =
    Mutex::new(None);

/// The model of a configuration that is not linked in: built (or found in the cache) and
/// loaded once per process.
fn on_demand(
    cfg: &Config,
    trace: jit::Trace,
) -> Result<(ffi::NewFn, &'static ffi::Functions), String> {
    let path = jit::library(cfg, trace).map_err(|e| {
        format!(
            "building the verilated {} model on demand failed: {e}",
            cfg.array_name()
        )
    })?;
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    let map = loaded.get_or_insert_with(HashMap::new);
    if let Some(&found) = map.get(&path) {
        return Ok(found);
    }
    let lib = ffi::load(&path, jit::NEW_SYMBOL)?;
    map.insert(path, (lib.new, lib.functions));
    Ok((lib.new, lib.functions))
}

/// `sizes` plus the size of `cfg`, comma-separated (the value a rebuild needs).
fn with_size(sizes: &[(usize, usize)], cfg: &Config) -> String {
    let mut all = sizes.to_vec();
    all.push((cfg.rows, cfg.cols));
    all.sort();
    all.dedup();
    size_list(&all).replace(", ", ",")
}

/// The whole top-level simulated by Verilator.
pub struct VerilatorDevice {
    model: ffi::Handle,
    accept_limit: u64,
}

impl VerilatorDevice {
    /// Builds and resets the verilated top-level for `cfg`.
    ///
    /// A configuration not linked in is built on demand (once, cached; a minute or more for
    /// large arrays) unless `TRIMAC_VERILATOR_NO_JIT=1`. Fails when the backend was built
    /// without Verilator, when an on-demand build fails or is forbidden (the message lists
    /// the sizes that are linked in), or when the waveform file cannot be written.
    pub fn new(cfg: &Config, opts: VerilatorOptions) -> Result<VerilatorDevice, String> {
        cfg.validate().map_err(|e| e.to_string())?;
        if let Some(why) = ffi::BUILD_ERROR {
            return Err(format!("the Verilator backend is not available: {why}"));
        }
        let trace = match &opts.trace {
            None => jit::Trace::Off,
            Some(p) if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("fst")) => {
                jit::Trace::Fst
            }
            Some(_) => jit::Trace::Vcd,
        };
        let traced = trace != jit::Trace::Off;
        let default_cfg = *cfg == Config::new(cfg.rows, cfg.cols).map_err(|e| e.to_string())?;
        // FST models are only built on demand.
        let linked = ffi::MODELS.iter().find(|m| {
            default_cfg
                && trace != jit::Trace::Fst
                && m.rows == cfg.rows
                && m.cols == cfg.cols
                && m.traced == traced
        });
        let model = match (linked, ffi::LINKED) {
            (Some(entry), Some(functions)) => {
                ffi::Handle::new(entry.new, functions, opts.trace.as_deref())?
            }
            _ => {
                if std::env::var_os(NO_JIT_ENV).is_some_and(|v| v == "1") {
                    return Err(not_built(cfg, traced));
                }
                let (new, functions) = on_demand(cfg, trace)?;
                ffi::Handle::new(new, functions, opts.trace.as_deref())?
            }
        };
        Ok(VerilatorDevice {
            model,
            accept_limit: 16 * cfg.frame_timeout_cycles as u64 + 100_000,
        })
    }
}

impl ByteStream for VerilatorDevice {
    fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let taken = self.model.send(bytes, self.accept_limit);
        if taken < bytes.len() {
            return Err(LinkError::NotAccepting {
                pending: bytes.len() - taken,
            });
        }
        Ok(())
    }

    fn recv(&mut self, n: usize, idle_cycles: u64) -> Result<Vec<u8>, LinkError> {
        let queued = self.model.recv(n, idle_cycles);
        if queued < n {
            self.model.flush();
            return Err(LinkError::Timeout {
                missing: n - queued,
                waited: format!("{idle_cycles} cycles"),
            });
        }
        let mut out = vec![0u8; n];
        let got = self.model.take(&mut out);
        if got != n {
            return Err(LinkError::Io(format!(
                "the verilated model handed out {got} of {n} queued bytes"
            )));
        }
        Ok(out)
    }

    fn cycles(&self) -> Option<u64> {
        Some(self.model.cycles())
    }

    fn backend(&self) -> &'static str {
        "verilator"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_built_messages_say_what_to_do() {
        let m = not_built(&Config::new(32, 32).unwrap(), false);
        assert!(
            m.contains("32x32") && m.contains("TRIMAC_VERILATOR_SIZES="),
            "{m}"
        );
        assert!(m.contains(",32x32"), "{m}");
        let t = not_built(&Config::new(16, 16).unwrap(), true);
        assert!(t.contains("TRIMAC_VERILATOR_TRACE_SIZES="), "{t}");
        let mut odd = Config::new(4, 4).unwrap();
        odd.frame_timeout_cycles = 64;
        assert!(not_built(&odd, false).contains(NO_JIT_ENV));
    }
}
