//! The Verilator backend of trimac: the emitted top-level (`trimac_hdl::verilog::emit_top`)
//! verilated and compiled at build time (build.rs), driven from Rust through a small C ABI.
//!
//! [`VerilatorDevice`] is a [`ByteStream`] with exactly the per-cycle semantics of the rust-hdl
//! backend (`trimac_sim::rtl::RtlDevice`): the same bytes in give the same bytes out after the
//! same number of clock cycles. The cycle loop runs in C++; one FFI call moves a whole burst of
//! input bytes or waits for a whole reply, so the simulation runs at the verilated model's
//! speed.
//!
//! Which array sizes are built is fixed at build time (default 4x4, 8x8, 16x16; see
//! docs/verilator.md). Without Verilator the crate still builds, and [`VerilatorDevice::new`]
//! says that Verilator is missing and how to install it.
#![deny(unsafe_code)]

mod ffi;

use std::path::PathBuf;
use trimac_hdl::Config;
use trimac_sim::stream::{ByteStream, LinkError};

/// Options of the Verilator backend.
#[derive(Clone, Debug, Default)]
pub struct VerilatorOptions {
    /// Write a waveform of the whole session to this file (VCD). Needs a size built with
    /// waveform support (`TRIMAC_VERILATOR_TRACE_SIZES`, default 4x4 and 8x8).
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
    /// Fails when the backend was built without Verilator, when the array size was not
    /// built (the message lists the sizes that were), or when the waveform file cannot be
    /// written.
    pub fn new(cfg: &Config, opts: VerilatorOptions) -> Result<VerilatorDevice, String> {
        cfg.validate().map_err(|e| e.to_string())?;
        if let Some(why) = ffi::BUILD_ERROR {
            return Err(format!("the Verilator backend is not available: {why}"));
        }
        if *cfg != Config::new(cfg.rows, cfg.cols).map_err(|e| e.to_string())? {
            return Err(format!(
                "the verilated models are built for the default configuration of each array \
                 size; this {} configuration differs (memory depths, clock or timeout)",
                cfg.array_name()
            ));
        }
        if let Some(p) = &opts.trace {
            if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("fst")) {
                return Err(format!(
                    "{}: the Verilator backend writes VCD waveforms; name the file .vcd \
                     (FST needs lz4 headers, see docs/verilator.md)",
                    p.display()
                ));
            }
        }
        let traced = opts.trace.is_some();
        let entry = ffi::MODELS
            .iter()
            .find(|m| m.rows == cfg.rows && m.cols == cfg.cols && m.traced == traced)
            .ok_or_else(|| match traced {
                false => format!(
                    "the {} array was not verilated in this build (built: {}); rebuild with \
                     TRIMAC_VERILATOR_SIZES={}",
                    cfg.array_name(),
                    size_list(&built_sizes()),
                    with_size(&built_sizes(), cfg)
                ),
                true => format!(
                    "the {} array was not built with waveform support (built with it: {}); \
                     rebuild with TRIMAC_VERILATOR_TRACE_SIZES={}",
                    cfg.array_name(),
                    size_list(&traced_sizes()),
                    with_size(&traced_sizes(), cfg)
                ),
            })?;
        let model = ffi::Handle::new(entry, opts.trace.as_deref())?;
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
