#!/usr/bin/env bash
# Benchmark: groundwork beside pyinfra and Ansible on one lab (bench/peers/, from ../shared/peer-bench:
# see bench/peers/README.md). Installs pyinfra and Ansible in a throwaway venv under the lab's state
# directory, brings a lab up (GW_LAB_INDEX, default 220; a multiple of 4: the environment spans a /22),
# then per size (NS): one apply per tool, every tool's no-op plan in interleaved rounds (ROUNDS), and
# FRESH rounds of a fresh apply of everything each tool manages. Prints the tables with the ratios
# (report_side.py). Figures, not assertions. Takes a few minutes per size and round: Ansible is slow.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
export GW_LAB_INDEX=${GW_LAB_INDEX:-220}
export GW_LAB_STATE=${GW_LAB_STATE:-$(dirname "$(mktemp -u)")/peer-lab}
ns=${NS:-"10 1000"} rounds=${ROUNDS:-"3 3"} fresh=${FRESH:-3}
cargo build --release --locked --quiet
trap 'bash scripts/lab.sh down >/dev/null 2>&1 || true' EXIT
bash scripts/lab.sh up >/dev/null
out=$GW_LAB_STATE/side-work/results
rm -rf "$out"
GW_REPO=$PWD OUT=$out bash bench/peers/side-by-side.sh --ns "$ns" --rounds "$rounds" --fresh "$fresh"
"$GW_LAB_STATE/venv/bin/python3" bench/peers/report_side.py "$out"
