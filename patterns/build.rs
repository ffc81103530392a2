//! Builds the rules-module guests (`patterns/guest` for 1.0.0,
//! `patterns/flat-guest` for 1.2.0) and the AV-module guest
//! (`patterns/av-guest`) for `wasm32-unknown-unknown` once, when Sandgate
//! itself is built, so that compiling rules or signatures later never needs
//! rustc: the compiler only appends data to these prebuilt modules.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("patterns/ sits in the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for path in [
        "patterns/guest/src",
        "patterns/guest/Cargo.toml",
        "patterns/flat-guest/src",
        "patterns/flat-guest/Cargo.toml",
        "patterns/av-guest/src",
        "patterns/av-guest/Cargo.toml",
        "patterns/matcher/src",
        "patterns/matcher/Cargo.toml",
        "wit",
        "Cargo.lock",
        // The `guest` profile lives in the root manifest.
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }

    let target_dir = root.join("target").join("guest");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root).args([
        "build",
        "--locked",
        "-p",
        "sandgate-rules-guest",
        "-p",
        "sandgate-flat-guest",
        "-p",
        "sandgate-av-guest",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "guest",
        "--target-dir",
    ]);
    cmd.arg(&target_dir);
    // The outer build's flags (sanitizers under cargo-fuzz, clippy's wrapper,
    // coverage) must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC",
        "RUSTDOC",
    ] {
        cmd.env_remove(var);
    }
    // wasm SIMD128 lets memchr and aho-corasick use their vector paths;
    // wasmtime enables SIMD by default.
    cmd.env(
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
        "-Ctarget-feature=+simd128",
    );
    let status = cmd
        .status()
        .expect("could not run cargo for the wasm guest");
    if !status.success() {
        panic!(
            "building the wasm guests failed (is the target installed? \
             run `rustup target add wasm32-unknown-unknown`; the README's test command does this)"
        );
    }
    for name in [
        "sandgate_rules_guest.wasm",
        "sandgate_flat_guest.wasm",
        "sandgate_av_guest.wasm",
    ] {
        let wasm = target_dir.join("wasm32-unknown-unknown/guest").join(name);
        std::fs::copy(&wasm, out_dir.join(name))
            .unwrap_or_else(|e| panic!("copying {}: {e}", wasm.display()));
    }
}
