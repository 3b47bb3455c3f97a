//! Compiles the sandbox helper (`helper/`) into `$OUT_DIR/dockhand-helper`, a static
//! std-only Linux program that `src/helper.rs` embeds. It is built with `$RUSTC`
//! directly rather than as a workspace member so that it is linked statically (with
//! `crt-static`) whatever the workspace's own flags are.

// A build script talks to cargo on stdout.
#![allow(clippy::print_stdout)]

use std::env;
use std::error::Error;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?);
    let helper_dir = manifest_dir.join("helper");
    println!("cargo:rerun-if-changed=helper");
    // The mux wire format, which the helper includes.
    println!("cargo:rerun-if-changed=src/mux_wire.rs");
    for entry in fs::read_dir(&helper_dir)? {
        let path = entry?.path();
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let rustc = env::var_os("RUSTC").ok_or("RUSTC unset")?;
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR unset")?).join("dockhand-helper");
    // rustc's diagnostics go to stderr, which cargo shows when the build fails.
    let status = Command::new(&rustc)
        .args(["--edition", "2021", "--crate-name", "dockhand_helper"])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "target-feature=+crt-static"])
        .arg("-o")
        .arg(&out)
        .arg(helper_dir.join("main.rs"))
        .status()
        .map_err(|e| format!("running {}: {e}", rustc.to_string_lossy()))?;
    if !status.success() {
        return Err(format!("compiling helper/main.rs failed ({status})").into());
    }
    Ok(())
}
