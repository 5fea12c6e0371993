// Verilator and C++ flags shared by build.rs (which `include!`s this file) and the on-demand
// builds of src/jit.rs, so both produce the same models.

/// Verilator flags of every model (docs/verilator.md): zero-initialised state like rust-hdl's
/// simulator, assertions off, lint warnings are the lint gate's business (not the build's).
pub const VERILATE_FLAGS: &[&str] = &[
    "--cc",
    "-O3",
    "--x-assign",
    "0",
    "--x-initial",
    "0",
    "--noassert",
    "-Wno-fatal",
    "-Wno-lint",
    "-Wno-style",
    "--output-split",
    "20000",
];

/// C++ flags of the generated code and the runtime (verilated.mk's, optimised with -O2).
pub const CXX_FLAGS: &[&str] = &[
    "-std=gnu++17",
    "-faligned-new",
    "-fcf-protection=none",
    "-Wno-bool-operation",
    "-Wno-sign-compare",
    "-Wno-tautological-compare",
    "-Wno-uninitialized",
    "-Wno-unused-parameter",
    "-Wno-unused-variable",
    "-Wno-unused-but-set-variable",
    "-Wno-shadow",
];

/// 64-bit FNV-1a (a stable cache key; not a security hash).
pub fn fnv(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
