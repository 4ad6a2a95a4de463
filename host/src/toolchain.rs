//! The `wasm32-wasip2` target rules are built for: finding it in the Rust
//! toolchain that will build them, and adding it with rustup when it is
//! missing.
//!
//! rustup adds the targets named in `rust-toolchain.toml` only when it
//! installs the toolchain itself; a toolchain that was installed before
//! lacks them, and the first wasm build then fails with "can't find crate
//! for `core`". `host/build.rs` (which builds the shipped rules) and
//! `weir rule build` both call [`ensure_wasm_target`] first, so a new user
//! never has to know.
//!
//! This file uses only `std`: `host/build.rs` includes it as a module.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target rules are compiled for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// What [`ensure_wasm_target`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WasmTarget {
    /// The toolchain already had the target.
    Present,
    /// rustup added the target to this toolchain just now.
    Added { toolchain: String },
}

/// Why the toolchain has no `wasm32-wasip2` target. Its text is one
/// sentence that says what is wrong and the exact command that fixes it
/// (for a machine without rustup, or offline).
///
/// Written by hand rather than with `thiserror`: host/build.rs includes
/// this file and has no dependencies but `std`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WasmTargetError {
    /// `rustc` could not be run at all.
    NoRustc { rustc: String, reason: String },
    /// `rustc` ran and failed (`command` is the command line).
    RustcFailed { command: String, stderr: String },
    /// The toolchain at `sysroot` lacks the target and rustup did not add
    /// it; `fix` is the command to run.
    NotAdded { sysroot: PathBuf, fix: String, why: AddFailure },
}

/// Why rustup did not add the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddFailure {
    /// rustup succeeded, yet `libdir` still has no standard library.
    StillMissing { libdir: String },
    /// rustup failed; the last line it wrote to stderr.
    RustupFailed { last: String },
    /// rustup could not be run.
    NoRustup { reason: String },
}

impl std::fmt::Display for WasmTargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WasmTargetError::NoRustc { rustc, reason } => write!(
                f,
                "cannot run `{rustc}` to find the {WASM_TARGET} target ({reason}); install Rust with rustup (https://rustup.rs)"
            ),
            WasmTargetError::RustcFailed { command, stderr } => write!(f, "`{command}` failed: {stderr}"),
            WasmTargetError::NotAdded { sysroot, fix, why } => {
                let why = match why {
                    AddFailure::StillMissing { libdir } => {
                        format!("`{fix}` succeeded but {libdir} still has no standard library")
                    }
                    AddFailure::RustupFailed { last } => format!("`{fix}` failed: {last}"),
                    AddFailure::NoRustup { reason } => format!("rustup could not be run ({reason})"),
                };
                write!(
                    f,
                    "the Rust toolchain at {} has no {WASM_TARGET} target, which rules are built for, and it could not be added ({why}); run `{fix}` and try again",
                    sysroot.display()
                )
            }
        }
    }
}

impl std::error::Error for WasmTargetError {}

/// Makes sure the toolchain that `rustc` resolves to in `dir` has the
/// `wasm32-wasip2` standard library, adding it with `rustup` if not.
pub fn ensure_wasm_target(rustc: &OsStr, rustup: &OsStr, dir: &Path) -> Result<WasmTarget, WasmTargetError> {
    let libdir = print(rustc, dir, &["--print", "target-libdir", "--target", WASM_TARGET])?;
    if has_core(Path::new(&libdir)) {
        return Ok(WasmTarget::Present);
    }
    let sysroot = PathBuf::from(print(rustc, dir, &["--print", "sysroot"])?);
    // A rustup toolchain lives in `<rustup home>/toolchains/<name>`.
    let toolchain = sysroot
        .parent()
        .filter(|p| p.file_name() == Some(OsStr::new("toolchains")))
        .and_then(|_| sysroot.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let fix = match &toolchain {
        Some(name) => format!("rustup target add {WASM_TARGET} --toolchain {name}"),
        None => format!("rustup target add {WASM_TARGET}"),
    };
    let mut add = Command::new(rustup);
    add.current_dir(dir).args(["target", "add", WASM_TARGET]);
    if let Some(name) = &toolchain {
        add.args(["--toolchain", name]);
    }
    let why = match add.output() {
        Ok(out) if out.status.success() && has_core(Path::new(&libdir)) => {
            let toolchain = toolchain.unwrap_or_else(|| sysroot.display().to_string());
            return Ok(WasmTarget::Added { toolchain });
        }
        Ok(out) if out.status.success() => AddFailure::StillMissing { libdir },
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("no output");
            AddFailure::RustupFailed { last: last.to_owned() }
        }
        Err(e) => AddFailure::NoRustup { reason: e.to_string() },
    };
    Err(WasmTargetError::NotAdded { sysroot, fix, why })
}

/// The `rustc` and `rustup` to use: `$RUSTC` (cargo sets it for build
/// scripts) and `$RUSTUP`, else the ones on the PATH.
pub fn tools() -> (std::ffi::OsString, std::ffi::OsString) {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let rustup = std::env::var_os("RUSTUP").unwrap_or_else(|| "rustup".into());
    (rustc, rustup)
}

/// Runs `rustc` with `args` in `dir` and returns its first line of output.
fn print(rustc: &OsStr, dir: &Path, args: &[&str]) -> Result<String, WasmTargetError> {
    let shown = Path::new(rustc).display().to_string();
    let out = Command::new(rustc)
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|e| WasmTargetError::NoRustc { rustc: shown.clone(), reason: e.to_string() })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(WasmTargetError::RustcFailed { command: format!("{shown} {}", args.join(" ")), stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").trim().to_owned())
}

/// Whether `libdir` holds a standard library (`libcore-*.rlib`).
fn has_core(libdir: &Path) -> bool {
    std::fs::read_dir(libdir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libcore-") && name.ends_with(".rlib")
        })
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A stand-in toolchain in `home/toolchains/1.95.0-test`: a `rustc`
    /// that prints its sysroot and wasm libdir, and a `rustup` running
    /// `rustup_body`.
    fn fake(home: &Path, with_core: bool, rustup_body: &str) -> (PathBuf, PathBuf, PathBuf) {
        let sysroot = home.join("toolchains/1.95.0-test");
        let libdir = sysroot.join("lib/rustlib/wasm32-wasip2/lib");
        std::fs::create_dir_all(&libdir).unwrap();
        if with_core {
            std::fs::write(libdir.join("libcore-0123.rlib"), "").unwrap();
        }
        let script = |name: &str, body: String| {
            let path = home.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let rustc = script(
            "rustc",
            format!(
                "case \"$2\" in sysroot) echo {};; target-libdir) echo {};; esac",
                sysroot.display(),
                libdir.display()
            ),
        );
        let rustup = script("rustup", rustup_body.replace("LIBDIR", &libdir.display().to_string()));
        (rustc, rustup, libdir)
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("weir-toolchain-").tempdir().unwrap()
    }

    #[test]
    fn a_toolchain_with_the_target_is_left_alone() {
        let home = tempdir();
        let (rustc, rustup, _) = fake(home.path(), true, "echo called > called; exit 1");
        let found = ensure_wasm_target(rustc.as_os_str(), rustup.as_os_str(), home.path());
        assert_eq!(found, Ok(WasmTarget::Present));
        assert!(!home.path().join("called").exists(), "rustup is not run when the target is there");
    }

    #[test]
    fn a_missing_target_is_added_with_rustup_for_that_toolchain() {
        let home = tempdir();
        let (rustc, rustup, _) = fake(home.path(), false, "echo \"$@\" > called; touch LIBDIR/libcore-4567.rlib");
        let added = ensure_wasm_target(rustc.as_os_str(), rustup.as_os_str(), home.path());
        assert_eq!(added, Ok(WasmTarget::Added { toolchain: "1.95.0-test".to_owned() }));
        let args = std::fs::read_to_string(home.path().join("called")).unwrap();
        assert_eq!(args.trim(), "target add wasm32-wasip2 --toolchain 1.95.0-test");
    }

    #[test]
    fn offline_the_error_says_what_failed_and_the_command_to_run() {
        let home = tempdir();
        let (rustc, rustup, _) =
            fake(home.path(), false, "echo 'error: could not download file from static.rust-lang.org' >&2; exit 1");
        let err = ensure_wasm_target(rustc.as_os_str(), rustup.as_os_str(), home.path()).unwrap_err().to_string();
        assert!(err.contains("has no wasm32-wasip2 target"), "{err}");
        assert!(err.contains("could not download file"), "{err}");
        assert!(err.ends_with("run `rustup target add wasm32-wasip2 --toolchain 1.95.0-test` and try again"), "{err}");
    }

    #[test]
    fn without_rustup_the_error_says_the_command_to_run() {
        let home = tempdir();
        let (rustc, _, _) = fake(home.path(), false, "");
        let missing = home.path().join("no-rustup-here");
        let err = ensure_wasm_target(rustc.as_os_str(), missing.as_os_str(), home.path()).unwrap_err().to_string();
        assert!(err.contains("rustup could not be run"), "{err}");
        assert!(err.contains("run `rustup target add wasm32-wasip2 --toolchain 1.95.0-test`"), "{err}");
    }
}
