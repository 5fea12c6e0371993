//! On-demand builds: a configuration that build.rs did not link in (a non-menu shape, or a
//! menu shape with other memory depths or frame timeout, as the test suite uses) is emitted,
//! verilated and compiled into a shared library on first use, with the same flags and shim as
//! the build script, and cached under `<target>/trimac-verilator/` by a hash of its Verilog,
//! the flags and the compilers. As in build.rs, the model code is compiled with clang++ when
//! there is one (`TRIMAC_MODEL_CXX`, else `clang++` or `clang++-N` on PATH), the runtime and
//! the link with `$CXX` (default `c++`).
//! Concurrent users (parallel tests) wait for one build through a lock file holding the
//! builder's process id: a lock whose process is gone (a killed build) is taken over at once.
//! A build says on standard error what it builds, since a large array takes minutes.

use crate::flags::{
    compiler, fnv, model_compiler, model_cpp, single_eval_ok, two_evals_why, Compiler, CXX_FLAGS,
    NO_CLANG_HINT, VERILATE_FLAGS,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};
use trimac_hdl::Config;
use trimac_toolchain::Tool;

const SHIM_H: &str = include_str!("../csrc/shim.h");
const SHIM_CPP: &str = include_str!("../csrc/shim.cpp");
const LZ4_COMPAT: &str = include_str!("../csrc/compat/lz4.h");

/// Waveform support compiled into a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trace {
    /// None.
    Off,
    /// VCD (`--trace-vcd`).
    Vcd,
    /// FST (`--trace-fst`; needs zlib and the LZ4 library).
    Fst,
}

/// The constructor symbol of every on-demand library.
pub(crate) const NEW_SYMBOL: &str = "trimac_vl_new_jit";

/// A lock older than this is taken to be left by a killed process (where the owner's process
/// cannot be looked up).
const STALE_LOCK: Duration = Duration::from_secs(30 * 60);

/// Whether the process that wrote `lock` is known to be gone: the lock names a process id
/// that does not exist (Linux `/proc`), or holds no id at all and is older than a minute (its
/// writer died between creating and writing it).
fn lock_owner_gone(lock: &Path) -> bool {
    let proc_fs = Path::new("/proc/self").exists();
    match std::fs::read_to_string(lock) {
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(pid) => proc_fs && !Path::new(&format!("/proc/{pid}")).exists(),
            Err(_) => std::fs::metadata(lock)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > Duration::from_secs(60)),
        },
        Err(_) => false,
    }
}

/// Builds (or finds in the cache) the shared library of the model of `cfg`; returns its path.
pub(crate) fn library(cfg: &Config, trace: Trace) -> Result<PathBuf, String> {
    let v = trimac_toolchain::locate(Tool::Verilator).map_err(|e| e.to_string())?;
    let version = run(v.command().arg("--version"))?.trim().to_string();
    let vroot = run(v.command().args(["--getenv", "VERILATOR_ROOT"]))?;
    let include = PathBuf::from(vroot.trim()).join("include");
    let cxx = std::env::var("CXX")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "c++".into());
    let runtime_cxx = compiler(&cxx).map_err(|e| format!("the C++ compiler ($CXX): {e}"))?;
    let model_cxx = match model_compiler()? {
        Some(c) => c,
        None => {
            warn_no_clang();
            runtime_cxx.clone()
        }
    };
    let cache = PathBuf::from(env!("TRIMAC_VL_CACHE"));
    let common = format!(
        "{version}|{VERILATE_FLAGS:?}|{CXX_FLAGS:?}|{}|{SHIM_H}{SHIM_CPP}",
        runtime_cxx.identity
    );

    // The runtime and the common shim functions as position-independent objects, once.
    let runtime = cache.join(format!("jit-runtime-{:016x}", fnv(&common)));
    locked_build(&runtime, |tmp| {
        std::fs::write(tmp.join("shim.h"), SHIM_H).map_err(|e| e.to_string())?;
        std::fs::write(tmp.join("shim.cpp"), SHIM_CPP).map_err(|e| e.to_string())?;
        let sources = vec![
            include.join("verilated.cpp"),
            include.join("verilated_threads.cpp"),
            include.join("verilated_vcd_c.cpp"),
            tmp.join("shim.cpp"),
        ];
        compile_all(
            &runtime_cxx,
            &include,
            &[tmp.to_path_buf()],
            &[],
            &sources,
            tmp,
        )
    })?;

    let verilog = trimac_hdl::verilog::emit_top(cfg);
    let hash = fnv(&format!(
        "{common}|{}|{trace:?}|{verilog}",
        model_cxx.identity
    ));
    let class = format!("Vtop_jit{hash:016x}");
    let dir = cache.join(format!(
        "jit-r{}c{}{}-{hash:016x}",
        cfg.rows,
        cfg.cols,
        match trace {
            Trace::Off => "",
            Trace::Vcd => "-vcd",
            Trace::Fst => "-fst",
        }
    ));
    locked_build(&dir, |tmp| {
        let src = tmp.join("top.v");
        std::fs::write(&src, &verilog).map_err(|e| e.to_string())?;
        let mdir = tmp.join("obj");
        let mut c = v.command();
        c.args(VERILATE_FLAGS)
            .arg("--prefix")
            .arg(&class)
            .arg("--Mdir")
            .arg(&mdir);
        match trace {
            Trace::Off => {}
            Trace::Vcd => {
                c.arg("--trace-vcd");
            }
            Trace::Fst => {
                c.arg("--trace-fst");
            }
        }
        c.arg(&src);
        run(&mut c).map_err(|e| format!("verilating {}: {e}", cfg.array_name()))?;
        // Single eval per cycle for untraced models whose trigger state the shim knows.
        let one_eval = trace == Trace::Off
            && std::fs::read_to_string(mdir.join(format!("{class}___024root.h")))
                .is_ok_and(|text| single_eval_ok(&text));
        if trace == Trace::Off && !one_eval {
            eprintln!("trimac-verilator: warning: {}", two_evals_why(&class));
        }
        let evals = if one_eval { "1\n" } else { "2\n" };
        std::fs::write(tmp.join("evals"), evals).map_err(|e| e.to_string())?;
        let model = tmp.join("model.cpp");
        std::fs::write(&model, model_cpp("jit", &class, one_eval)).map_err(|e| e.to_string())?;
        let mut sources: Vec<PathBuf> = std::fs::read_dir(&mdir)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cpp"))
            .collect();
        sources.sort();
        sources.push(model);
        let defines: &[&str] = match trace {
            Trace::Off => &[],
            Trace::Vcd => &["VM_TRACE=1", "VM_TRACE_VCD=1", "TRIMAC_TRACE=1"],
            Trace::Fst => &["VM_TRACE=1", "VM_TRACE_FST=1", "TRIMAC_TRACE=2"],
        };
        let includes = [mdir.clone(), runtime.clone()];
        compile_all(&model_cxx, &include, &includes, defines, &sources, tmp)?;
        let mut libs = Vec::new();
        if trace == Trace::Fst {
            // The FST writer is runtime code: the runtime's compiler.
            let compat = tmp.join("compat");
            std::fs::create_dir_all(&compat).map_err(|e| e.to_string())?;
            std::fs::write(compat.join("lz4.h"), LZ4_COMPAT).map_err(|e| e.to_string())?;
            let fst = [include.join("verilated_fst_c.cpp")];
            compile_all(&runtime_cxx, &include, &includes, defines, &fst, tmp)?;
            libs.push(system_library("z").map_err(|e| format!("FST waveforms: {e}"))?);
            libs.push(system_library("lz4").map_err(|e| format!("FST waveforms: {e}"))?);
        }
        let mut objects = objects_in(&runtime)?;
        objects.extend(objects_in(tmp)?);
        let mut link = Command::new(&cxx);
        link.args(["-shared", "-Wl,-Bsymbolic", "-o"])
            .arg(tmp.join("libmodel.so"))
            .args(&objects)
            .args(&libs)
            .arg("-lpthread");
        run(&mut link).map_err(|e| format!("linking {}: {e}", cfg.array_name()))?;
        Ok(())
    })?;
    Ok(dir.join("libmodel.so"))
}

/// The shared library `lib<name>.so` (or its versioned file, when the development symlink is
/// not installed) in the usual library directories.
fn system_library(name: &str) -> Result<PathBuf, String> {
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/lib64",
        "/lib",
    ];
    for d in dirs {
        for f in [format!("lib{name}.so"), format!("lib{name}.so.1")] {
            let p = Path::new(d).join(f);
            if p.exists() {
                return Ok(p);
            }
        }
    }
    Err(format!(
        "no lib{name}.so found (Debian: apt-get install {}); write a .vcd instead",
        if name == "z" {
            "zlib1g-dev"
        } else {
            "liblz4-1"
        }
    ))
}

fn objects_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    v.sort();
    Ok(v)
}

/// Says once per process that the on-demand models are compiled without clang++.
fn warn_no_clang() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| eprintln!("trimac-verilator: warning: {NO_CLANG_HINT}"));
}

/// Compiles every source to `<out>/<stem>.o`, two compilers at a time.
fn compile_all(
    cxx: &Compiler,
    include: &Path,
    includes: &[PathBuf],
    defines: &[&str],
    sources: &[PathBuf],
    out: &Path,
) -> Result<(), String> {
    for chunk in sources.chunks(2) {
        let mut children = Vec::new();
        for src in chunk {
            let stem = src
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut c = Command::new(&cxx.program);
            c.args(["-c", "-O2", "-fPIC", "-w"])
                .args(CXX_FLAGS)
                .arg(format!("-I{}", include.display()))
                .arg(format!("-I{}", include.join("vltstd").display()));
            for d in includes {
                c.arg(format!("-I{}", d.display()));
            }
            // Fallback headers (lz4.h), after the system's own.
            c.arg("-idirafter").arg(out.join("compat"));
            for d in ["VM_COVERAGE=0", "VM_SC=0", "VM_TIMING=0"]
                .iter()
                .chain(defines)
            {
                c.arg(format!("-D{d}"));
            }
            c.arg(src).arg("-o").arg(out.join(format!("{stem}.o")));
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            let child = c
                .spawn()
                .map_err(|e| format!("cannot run the C++ compiler `{}`: {e}", cxx.program))?;
            children.push((src, child));
        }
        for (src, child) in children {
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "compiling {}: {}",
                    src.display(),
                    last_lines(&String::from_utf8_lossy(&out.stderr), 10)
                ));
            }
        }
    }
    Ok(())
}

/// Runs `build` into a fresh temporary directory and moves it to `dir`, unless `dir` is
/// complete already; one process builds while the others wait on `<dir>.lock`.
fn locked_build(dir: &Path, build: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), String> {
    let done = dir.join("done");
    let lock = dir.with_extension("lock");
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let start = Instant::now();
    let mut said_waiting = false;
    loop {
        if done.is_file() {
            return Ok(());
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(mut f) => {
                use std::io::Write;
                let _ = writeln!(f, "{}", std::process::id());
                break;
            }
            Err(_) => {
                let age = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok());
                if lock_owner_gone(&lock) || age.is_some_and(|a| a > STALE_LOCK) {
                    eprintln!(
                        "trimac-verilator: taking over {} (its builder is gone)",
                        lock.display()
                    );
                    let _ = std::fs::remove_file(&lock);
                    continue;
                } else if start.elapsed() > STALE_LOCK {
                    return Err(format!("gave up waiting for {}", lock.display()));
                }
                if !said_waiting {
                    eprintln!(
                        "trimac-verilator: waiting for another process building {}",
                        dir.display()
                    );
                    said_waiting = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let result = (|| {
        if done.is_file() {
            return Ok(());
        }
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let t0 = Instant::now();
        eprintln!(
            "trimac-verilator: building {} on demand (a 32x32 array takes minutes)",
            dir.file_name().unwrap_or_default().to_string_lossy()
        );
        if let Err(e) = build(&tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let secs = format!("{:.1}\n", t0.elapsed().as_secs_f64());
        std::fs::write(tmp.join("build-seconds"), secs).map_err(|e| e.to_string())?;
        std::fs::write(tmp.join("done"), "").map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::rename(&tmp, dir).map_err(|e| format!("{}: {e}", dir.display()))
    })();
    let _ = std::fs::remove_file(&lock);
    result
}

fn run(c: &mut Command) -> Result<String, String> {
    let out = c
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", c.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            c.get_program(),
            out.status,
            last_lines(&String::from_utf8_lossy(&out.stderr), 15)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("trimac-jit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The id of a process that has exited.
    fn dead_pid() -> u32 {
        let mut child = Command::new("true").spawn().expect("run true");
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_lock_left_by_a_dead_builder_is_taken_over_at_once() {
        let root = scratch("dead");
        let dir = root.join("model");
        std::fs::write(dir.with_extension("lock"), format!("{}\n", dead_pid())).unwrap();
        let t0 = Instant::now();
        locked_build(&dir, |tmp| {
            std::fs::write(tmp.join("lib"), "x").map_err(|e| e.to_string())
        })
        .unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "waited on a dead lock"
        );
        assert!(dir.join("done").is_file() && dir.join("lib").is_file());
        assert!(!dir.with_extension("lock").exists(), "lock released");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_live_builder_keeps_its_lock() {
        let root = scratch("live");
        let lock = root.join("model.lock");
        std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
        assert!(!lock_owner_gone(&lock), "this process is alive");
        std::fs::write(&lock, format!("{}\n", dead_pid())).unwrap();
        assert!(lock_owner_gone(&lock));
        let _ = std::fs::remove_dir_all(&root);
    }
}
