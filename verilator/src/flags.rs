// Verilator and C++ flags, the choice of the models' C++ compiler and the single-eval guard,
// shared by build.rs (which `include!`s this file) and the on-demand builds of src/jit.rs, so
// both produce the same models.

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

/// Names the C++ compiler of the generated model code (overrides the search for clang++).
pub const MODEL_CXX_ENV: &str = "TRIMAC_MODEL_CXX";

/// Compilers tried on PATH for the model code when `TRIMAC_MODEL_CXX` is unset, in order:
/// clang++ makes the models 30 to 40 % faster than g++ -O2 (docs/verilator.md, "Figures").
pub const CLANG_NAMES: &[&str] = &[
    "clang++",
    "clang++-21",
    "clang++-20",
    "clang++-19",
    "clang++-18",
    "clang++-17",
    "clang++-16",
    "clang++-15",
    "clang++-14",
    "clang++-13",
    "clang++-12",
    "clang++-11",
];

/// What to do when no clang++ is found (the models are then compiled with the default C++
/// compiler, g++ on Debian).
pub const NO_CLANG_HINT: &str = "no clang++ found (TRIMAC_MODEL_CXX unset; tried clang++, \
     clang++-21 .. clang++-11 on PATH): the verilated models are compiled with the default C++ \
     compiler and simulate about 30 % slower; install clang (Debian/Ubuntu: `apt-get install \
     clang`, or run scripts/install-toolchain.sh as root) or set TRIMAC_MODEL_CXX";

/// A C++ compiler and its identity (the path or name given, then the first line of its
/// `--version`), which goes into the cache keys so that another compiler rebuilds.
#[derive(Clone, Debug)]
pub struct Compiler {
    pub program: String,
    pub identity: String,
}

/// Runs `program --version`: the compiler's identity, or why it cannot be run.
pub fn compiler(program: &str) -> Result<Compiler, String> {
    let out = std::process::Command::new(program)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{program} --version` failed ({})", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("").trim();
    Ok(Compiler {
        program: program.to_string(),
        identity: format!("{program}: {first}"),
    })
}

/// The compiler of the generated model code: `$TRIMAC_MODEL_CXX` if set (an error if it does
/// not run), else the first of [`CLANG_NAMES`] that runs, else `None` (use the default C++
/// compiler and say [`NO_CLANG_HINT`]).
pub fn model_compiler() -> Result<Option<Compiler>, String> {
    if let Some(p) = std::env::var_os(MODEL_CXX_ENV).filter(|p| !p.is_empty()) {
        let p = p.to_string_lossy().into_owned();
        return compiler(&p)
            .map(Some)
            .map_err(|e| format!("{MODEL_CXX_ENV}={p}: {e}"));
    }
    Ok(CLANG_NAMES.iter().find_map(|name| compiler(name).ok()))
}

/// Whether a model may take the single-eval path of csrc/shim.h (`TRIMAC_ONE_EVAL`), judged
/// from its generated `<class>___024root.h`: the only edge trigger Verilator keeps state for
/// is `posedge clock` (exactly one `__Vtrigprevexpr` member, `__Vtrigprevexpr___TOP__clock__0`,
/// which the shim resets to 0 in place of the skipped clock-low eval).
pub fn single_eval_ok(root_h: &str) -> bool {
    let mut any = false;
    for word in root_h.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("__Vtrigprevexpr") {
            if word != "__Vtrigprevexpr___TOP__clock__0" {
                return false;
            }
            any = true;
        }
    }
    any
}

/// Why an untraced model of `class` runs two evals per cycle (its root header failed
/// [`single_eval_ok`]).
pub fn two_evals_why(class: &str) -> String {
    format!(
        "{class}___024root.h keeps trigger state other than `__Vtrigprevexpr___TOP__clock__0` \
         (another clock edge or a Verilator version the shim does not know): the model runs \
         the two-eval cycle (slower, still exact)"
    )
}

/// The C++ file that instantiates the shim for one verilated class and defines its constructor
/// `trimac_vl_new_<name>`; `one_eval` enables the single-eval path (untraced models that pass
/// [`single_eval_ok`]).
pub fn model_cpp(name: &str, class: &str, one_eval: bool) -> String {
    let mut s = String::new();
    if one_eval {
        s.push_str("#define TRIMAC_ONE_EVAL 1\n");
    }
    s.push_str(&format!("#include \"{class}.h\"\n"));
    if one_eval {
        s.push_str(&format!("#include \"{class}___024root.h\"\n"));
    }
    s.push_str(&format!(
        "#include \"shim.h\"\nTRIMAC_DEFINE_MODEL({name}, {class})\n"
    ));
    s
}

/// 64-bit FNV-1a (a stable cache key; not a security hash).
pub fn fnv(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_eval_needs_exactly_the_posedge_clock_trigger() {
        let clock_only = "CData/*0:0*/ __VicoFirstIteration;\n\
                          CData/*0:0*/ __Vtrigprevexpr___TOP__clock__0;\n";
        assert!(single_eval_ok(clock_only));
        assert!(!single_eval_ok("CData/*0:0*/ __VicoFirstIteration;\n"));
        let two = format!("{clock_only}CData/*0:0*/ __Vtrigprevexpr___TOP__reset__0;\n");
        assert!(!single_eval_ok(&two));
        let other = "CData/*0:0*/ __Vtrigprevexpr___TOP__top__DOT__x__0;\n";
        assert!(!single_eval_ok(other));
    }

    #[test]
    fn the_model_file_includes_the_root_header_only_for_one_eval() {
        let one = model_cpp("jit", "Vtop_x", true);
        assert!(one.starts_with("#define TRIMAC_ONE_EVAL 1\n"), "{one}");
        assert!(one.contains("#include \"Vtop_x___024root.h\""), "{one}");
        let two = model_cpp("jit", "Vtop_x", false);
        assert!(!two.contains("TRIMAC_ONE_EVAL") && !two.contains("___024root"));
        assert!(two.ends_with("TRIMAC_DEFINE_MODEL(jit, Vtop_x)\n"), "{two}");
    }

    #[test]
    fn a_missing_compiler_is_an_error_naming_it() {
        let e = compiler("/nonexistent/clang++").unwrap_err();
        assert!(e.contains("/nonexistent/clang++"), "{e}");
    }
}
