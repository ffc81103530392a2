#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need,
# builds the workspace once, runs every test, then runs every fuzz target for
# a few seconds on its seed corpus. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing what the tests need"
rustup target add wasm32-unknown-unknown
# clamscan and Debian's ClamAV test files: the AV parity test compares our
# detections with ClamAV's own on the same signatures and files. iproute2 and
# curl: the live tests build network namespaces and send HTTP through them.
if ! command -v clamscan >/dev/null || [ ! -d /usr/share/clamav-testfiles ] ||
    ! command -v ip >/dev/null || ! command -v curl >/dev/null; then
    apt_get=(apt-get)
    [ "$(id -u)" = 0 ] || apt_get=(sudo apt-get)
    export DEBIAN_FRONTEND=noninteractive
    "${apt_get[@]}" install -y -q clamav clamav-testfiles iproute2 curl ||
        { "${apt_get[@]}" update -q && "${apt_get[@]}" install -y -q clamav clamav-testfiles iproute2 curl; }
fi

# The default members are every crate except the wasm guest, which only
# builds for wasm32 (patterns/build.rs builds it); a native cdylib of it
# cannot link its component-model export names.
echo "== building (one build shared by every test)"
cargo build --all-targets --locked

echo "== running the tests"
cargo test --locked

echo "== fuzzing every parser for a few seconds (scripts/fuzz.sh)"
scripts/fuzz.sh "${SANDGATE_FUZZ_SECS:-10}"
