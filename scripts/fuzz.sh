#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 10) on its checked-in seeds.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Installs cargo-fuzz if missing and the nightly's wasm32 target (the
# patterns build script builds the rules guest for wasm32-unknown-unknown).
# A crash leaves its input under fuzz/artifacts/TARGET/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-10}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(rule_parser bundle load_check decode pcre)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup +nightly target add wasm32-unknown-unknown

echo "== building the fuzz targets"
cargo +nightly fuzz build -O

for t in "${targets[@]}"; do
    echo "== $t for ${secs}s"
    # Seeds are read-only input; new corpus entries go to fuzz/corpus/ (ignored).
    mkdir -p "corpus/$t"
    cargo +nightly fuzz run -O "$t" "corpus/$t" "corpus-seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1
done
