#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 10) on its checked-in seeds.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   FUZZ_OPT=1 scripts/fuzz.sh 600 rule_parser   # optimised build, for long runs
#
# Uses the stable toolchain: cargo-fuzz's coverage instrumentation needs a few
# unstable rustc flags, which RUSTC_BOOTSTRAP=1 allows. No sanitizer (Rust code
# is memory-safe; libFuzzer's coverage guidance and our assertions are what
# find panics), and by default an unoptimised build: that is what keeps the
# instrumented wasmtime build inside CI's budget (~6 min on 2 cores, against
# ~45 min for an optimised ASan build). Installs cargo-fuzz if missing.
# A crash leaves its input under fuzz/artifacts/TARGET/ and fails the script;
# copy it into fuzz/corpus-seeds/TARGET/ and add a regression test.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-10}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    # Every [[bin]] of fuzz/Cargo.toml.
    mapfile -t targets < <(awk '/^\[\[bin\]\]/{b=1} b&&/^name =/{gsub(/"/,"",$3); print $3; b=0}' Cargo.toml)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi
rustup target add wasm32-unknown-unknown

export RUSTC_BOOTSTRAP=1
profile=(--dev)
if [ "${FUZZ_OPT:-0}" = 1 ]; then
    profile=(-O)
fi

echo "== building the fuzz targets (${profile[*]})"
cargo fuzz build "${profile[@]}" -s none

for t in "${targets[@]}"; do
    echo "== $t for ${secs}s"
    # Seeds are read-only input; new corpus entries go to fuzz/corpus/ (ignored).
    mkdir -p "corpus/$t"
    log="corpus/$t.log"
    rc=0
    cargo fuzz run "${profile[@]}" -s none "$t" "corpus/$t" "corpus-seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E '^(Done|stat::number_of_executed_units)|panicked|ERROR|SUMMARY' "$log" || true
    if [ "$rc" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "fuzz target $t failed (exit $rc); its input is under fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
