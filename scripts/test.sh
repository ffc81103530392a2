#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need,
# builds the workspace once, and runs every test. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing what the tests need"
rustup target add wasm32-unknown-unknown

echo "== building (one build shared by every test)"
cargo build --workspace --all-targets --locked

echo "== running the tests"
cargo test --workspace --locked
