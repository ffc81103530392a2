#!/usr/bin/env bash
# The main job on the bundled example: compile the example rules into a wasm
# component bundle, replay the example capture through the engine, print the
# alerts (EVE JSON goes to out/eve.json).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
cargo build --locked -p sandgate-patc -p sandgate-host --bins
mkdir -p out
rm -f out/eve.json
./target/debug/sandgate-patc build -o out/example.sgb patterns/examples/example.rules
./target/debug/sandgate replay --bundle out/example.sgb --pcap patterns/examples/example.pcap --eve out/eve.json
echo "EVE JSON alerts: out/eve.json"
