//! Build script of the Verilator backend (docs/verilator.md explains the choice of a build
//! script over an xtask).
//!
//! When Verilator is found (`TRIMAC_VERILATOR`, the project toolchain `.toolchain/`, or PATH;
//! see trimac-toolchain), every configured array size is emitted with trimac-hdl, verilated
//! with `--cc`, and compiled with the `cc` crate together with the C ABI shim (csrc/) and the
//! Verilator runtime. The generated model code is compiled with clang++ when there is one
//! (`TRIMAC_MODEL_CXX`, else `clang++` or a versioned `clang++-N` on PATH; 30 to 40 % faster
//! models than g++), else with the default C++ compiler and a warning; the runtime always with
//! the default one. Results are cached under `<target>/trimac-verilator/` by a hash of
//! everything that goes into them (Verilog text, Verilator version, flags, shim source,
//! compiler identities), so a rebuild, or a build in another profile, reuses them.
//!
//! When Verilator is absent (or fails), the crate still builds: the generated table of models
//! is empty and `VerilatorDevice::new` reports why, naming the tool and the install command.
//!
//! Environment:
//! * `TRIMAC_VERILATOR_SIZES`: sizes to build, default `4x4,8x8,16x16` (`all` adds 32x32).
//! * `TRIMAC_VERILATOR_TRACE_SIZES`: sizes that also get a waveform (VCD) model, default
//!   `4x4,8x8`.
//! * `TRIMAC_MODEL_CXX`: the C++ compiler of the model code (default: clang++ if found).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use trimac_hdl::Config;
use trimac_toolchain::{Tool, ToolCommand};

include!("src/flags.rs");

const DEFAULT_SIZES: &str = "4x4,8x8,16x16";
const DEFAULT_TRACE_SIZES: &str = "4x4,8x8";

/// A model to build: one array size, traced (VCD) or not.
struct Variant {
    rows: usize,
    cols: usize,
    traced: bool,
}

impl Variant {
    fn name(&self) -> String {
        format!(
            "r{}c{}_{}",
            self.rows,
            self.cols,
            if self.traced { "vcd" } else { "fast" }
        )
    }
}

fn main() {
    for f in ["build.rs", "src/flags.rs", "csrc/shim.h", "csrc/shim.cpp"] {
        println!("cargo:rerun-if-changed={f}");
    }
    for v in [
        "TRIMAC_VERILATOR",
        "TRIMAC_TOOLCHAIN",
        "TRIMAC_VERILATOR_SIZES",
        "TRIMAC_VERILATOR_TRACE_SIZES",
        "PATH",
        "CXX",
        MODEL_CXX_ENV,
    ] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    println!("cargo::rustc-check-cfg=cfg(trimac_verilated)");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Where src/jit.rs builds configurations that are not built here.
    println!(
        "cargo:rustc-env=TRIMAC_VL_CACHE={}",
        cache_dir(&out).display()
    );
    let result = match trimac_toolchain::locate(Tool::Verilator) {
        Ok(v) => {
            println!("cargo:rerun-if-changed={}", v.program.display());
            build_all(&v, &out)
        }
        Err(e) => {
            // Rerun once the toolchain appears: watch its directory (created here, so the
            // watch is cheap and valid until the venv lands in it).
            let root = trimac_toolchain::root();
            let _ = std::fs::create_dir_all(&root);
            println!("cargo:rerun-if-changed={}", root.display());
            Err(e.to_string())
        }
    };
    let table = match result {
        Ok(built) => {
            println!("cargo:rustc-cfg=trimac_verilated");
            models_rs(&built, None)
        }
        Err(why) => {
            println!("cargo:warning=trimac-verilator: the Verilator backend is not built: {why}");
            models_rs(&[], Some(&why))
        }
    };
    std::fs::write(out.join("models.rs"), table).expect("cannot write models.rs");
}

fn parse_sizes(var: &str, default: &str) -> Result<Vec<(usize, usize)>, String> {
    let text = std::env::var(var).unwrap_or_else(|_| default.to_string());
    let mut sizes = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "all" {
            sizes.extend(trimac_hdl::config::ARRAY_MENU);
            continue;
        }
        let cfg = Config::from_array_spec(item).map_err(|e| format!("{var}: {item}: {e}"))?;
        sizes.push((cfg.rows, cfg.cols));
    }
    sizes.sort();
    sizes.dedup();
    Ok(sizes)
}

/// Builds every variant (or takes it from the cache) and tells cargo to link it.
fn build_all(v: &ToolCommand, out: &Path) -> Result<Vec<Variant>, String> {
    let sizes = parse_sizes("TRIMAC_VERILATOR_SIZES", DEFAULT_SIZES)?;
    let traced = parse_sizes("TRIMAC_VERILATOR_TRACE_SIZES", DEFAULT_TRACE_SIZES)?;
    let version = run(v.command().arg("--version"))?.trim().to_string();
    let vroot = PathBuf::from(
        run(v.command().args(["--getenv", "VERILATOR_ROOT"]))?
            .trim()
            .to_string(),
    );
    let include = vroot.join("include");
    if !include.join("verilated.h").is_file() {
        return Err(format!(
            "Verilator's include directory {} has no verilated.h",
            include.display()
        ));
    }
    let cache = cache_dir(out);
    let shim_src = format!(
        "{}{}",
        include_str!("csrc/shim.h"),
        include_str!("csrc/shim.cpp")
    );
    // The runtime's compiler (cc's default: $CXX, else c++) and the models' (clang++ if any).
    let default_cxx = cc::Build::new().cpp(true).get_compiler();
    let runtime_cxx = compiler(&default_cxx.path().to_string_lossy())
        .map_err(|e| format!("the C++ compiler: {e}"))?;
    let model_cxx = match model_compiler()? {
        Some(c) => c,
        None => {
            println!("cargo:warning=trimac-verilator: {NO_CLANG_HINT}");
            runtime_cxx.clone()
        }
    };
    let common_key = format!(
        "{version}|{VERILATE_FLAGS:?}|{CXX_FLAGS:?}|{}|{shim_src}",
        runtime_cxx.identity
    );

    // The runtime and the size-independent shim functions, once.
    let runtime_dir = cache.join(format!("runtime-{:016x}", fnv(&common_key)));
    if !runtime_dir.join("done").is_file() {
        let tmp = fresh_tmp(&runtime_dir)?;
        let csrc = Path::new(env!("CARGO_MANIFEST_DIR")).join("csrc");
        let mut b = cxx_build(&include, &tmp);
        b.file(include.join("verilated.cpp"))
            .file(include.join("verilated_threads.cpp"))
            .file(include.join("verilated_vcd_c.cpp"))
            .file(csrc.join("shim.cpp"))
            .include(&csrc);
        b.try_compile("trimac_vl_runtime")
            .map_err(|e| format!("compiling the Verilator runtime: {e}"))?;
        finish(&tmp, &runtime_dir)?;
    }
    println!("cargo:rustc-link-search=native={}", runtime_dir.display());

    let mut built = Vec::new();
    let mut variants = Vec::new();
    for &(rows, cols) in &sizes {
        variants.push(Variant {
            rows,
            cols,
            traced: false,
        });
        if traced.contains(&(rows, cols)) {
            variants.push(Variant {
                rows,
                cols,
                traced: true,
            });
        }
    }
    for var in variants {
        let cfg = Config::new(var.rows, var.cols).map_err(|e| e.to_string())?;
        let verilog = trimac_hdl::verilog::emit_top(&cfg);
        let name = var.name();
        let key = format!("{common_key}|{}|{name}|{verilog}", model_cxx.identity);
        let dir = cache.join(format!("{name}-{:016x}", fnv(&key)));
        if !dir.join("done").is_file() {
            let t0 = std::time::Instant::now();
            let tmp = fresh_tmp(&dir)?;
            build_model(v, &model_cxx, &include, &tmp, &var, &verilog)?;
            // Kept beside the library: docs/verilator.md reports these times.
            let secs = format!("{:.1}\n", t0.elapsed().as_secs_f64());
            std::fs::write(tmp.join("build-seconds"), secs).map_err(|e| e.to_string())?;
            finish(&tmp, &dir)?;
        }
        if std::fs::read_to_string(dir.join("evals")).is_ok_and(|e| e.trim() == "2") && !var.traced
        {
            println!(
                "cargo:warning=trimac-verilator: {name}: {}",
                two_evals_why(&format!("Vtop_{name}"))
            );
        }
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=static=trimac_vl_{name}");
        built.push(var);
    }
    // The runtime after the models (static libraries resolve left to right).
    println!("cargo:rustc-link-lib=static=trimac_vl_runtime");
    println!("cargo:rustc-link-lib=dylib=stdc++");
    println!("cargo:rustc-link-lib=dylib=dl");
    Ok(built)
}

/// Verilates and compiles one model into `dir` (library `libtrimac_vl_<name>.a`).
fn build_model(
    v: &ToolCommand,
    cxx: &Compiler,
    include: &Path,
    dir: &Path,
    var: &Variant,
    verilog: &str,
) -> Result<(), String> {
    let name = var.name();
    let class = format!("Vtop_{name}");
    let src = dir.join("top.v");
    std::fs::write(&src, verilog).map_err(|e| format!("writing {}: {e}", src.display()))?;
    let mdir = dir.join("obj");
    let mut c = v.command();
    c.args(VERILATE_FLAGS)
        .arg("--prefix")
        .arg(&class)
        .arg("--Mdir")
        .arg(&mdir);
    if var.traced {
        c.arg("--trace-vcd");
    }
    c.arg(&src);
    run(&mut c).map_err(|e| format!("verilating {name}: {e}"))?;
    // Single eval per cycle for untraced models whose trigger state the shim knows.
    let root_h = mdir.join(format!("{class}___024root.h"));
    let one_eval =
        !var.traced && std::fs::read_to_string(&root_h).is_ok_and(|text| single_eval_ok(&text));
    let evals = if one_eval { "1\n" } else { "2\n" };
    std::fs::write(dir.join("evals"), evals).map_err(|e| e.to_string())?;
    let shim = dir.join(format!("model_{name}.cpp"));
    std::fs::write(&shim, model_cpp(&name, &class, one_eval))
        .map_err(|e| format!("writing {}: {e}", shim.display()))?;
    let mut b = cxx_build(include, dir);
    b.compiler(&cxx.program)
        .include(&mdir)
        .include(Path::new(env!("CARGO_MANIFEST_DIR")).join("csrc"))
        .file(&shim);
    if var.traced {
        b.define("VM_TRACE", "1")
            .define("VM_TRACE_VCD", "1")
            .define("TRIMAC_TRACE", "1");
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&mdir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cpp"))
        .collect();
    files.sort();
    b.files(files);
    b.try_compile(&format!("trimac_vl_{name}"))
        .map_err(|e| format!("compiling {name}: {e}"))
}

fn cxx_build(include: &Path, out: &Path) -> cc::Build {
    let mut b = cc::Build::new();
    b.cpp(true)
        .out_dir(out)
        .cargo_metadata(false)
        .opt_level(2)
        .debug(false)
        .warnings(false)
        .include(include)
        .include(include.join("vltstd"))
        .define("VM_COVERAGE", "0")
        .define("VM_SC", "0")
        .define("VM_TIMING", "0");
    for f in CXX_FLAGS {
        b.flag_if_supported(f);
    }
    b
}

/// `<target>/trimac-verilator`: OUT_DIR is `<target>/<profile>/build/<pkg>/out`.
fn cache_dir(out: &Path) -> PathBuf {
    out.ancestors()
        .nth(4)
        .unwrap_or(out)
        .join("trimac-verilator")
}

fn fresh_tmp(dir: &Path) -> Result<PathBuf, String> {
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
    Ok(tmp)
}

/// Marks `tmp` complete and moves it into place (another build may have won the race).
fn finish(tmp: &Path, dir: &Path) -> Result<(), String> {
    std::fs::write(tmp.join("done"), "").map_err(|e| e.to_string())?;
    if std::fs::rename(tmp, dir).is_err() {
        let _ = std::fs::remove_dir_all(tmp);
        if !dir.join("done").is_file() {
            return Err(format!("cannot move the build into {}", dir.display()));
        }
    }
    Ok(())
}

fn run(c: &mut Command) -> Result<String, String> {
    let out = c
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", c.get_program()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        return Err(format!(
            "{:?} failed ({}): {}",
            c.get_program(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Rust table of built models, included by src/ffi.rs.
fn models_rs(built: &[Variant], error: Option<&str>) -> String {
    let mut s = String::from("// Generated by build.rs: the verilated models linked in.\n");
    let _ = writeln!(s, "pub(crate) const BUILD_ERROR: Option<&str> = {error:?};");
    if !built.is_empty() {
        s.push_str("unsafe extern \"C\" {\n");
        for v in built {
            let _ = writeln!(
                s,
                "    fn trimac_vl_new_{}(trace_path: *const std::ffi::c_char) -> *mut std::ffi::c_void;",
                v.name()
            );
        }
        s.push_str("}\n");
    }
    s.push_str("pub(crate) static MODELS: &[ModelEntry] = &[\n");
    for v in built {
        let _ = writeln!(
            s,
            "    ModelEntry {{ rows: {}, cols: {}, traced: {}, new: trimac_vl_new_{} }},",
            v.rows,
            v.cols,
            v.traced,
            v.name()
        );
    }
    s.push_str("];\n");
    s
}
