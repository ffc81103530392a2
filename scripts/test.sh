#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need,
# builds the workspace once, and runs every test. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing what the tests need"
rustup target add wasm32-unknown-unknown

# The default members are every crate except the wasm guest, which only
# builds for wasm32 (patterns/build.rs builds it); a native cdylib of it
# cannot link its component-model export names.
echo "== building (one build shared by every test)"
cargo build --all-targets --locked

echo "== running the tests"
cargo test --locked
