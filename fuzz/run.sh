#!/usr/bin/env bash
# Run every cargo-fuzz target for SECONDS each (default 60) on nightly Rust, seeded from the repository's
# real inputs (snapshots, environments), and print each target's exec count. Needs the nightly toolchain
# (`rustup toolchain install nightly`); installs cargo-fuzz if missing. CI runs the stable smoke test
# (tests/parsers_smoke.rs) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
rustup run nightly rustc --version >/dev/null
corpus=$(mktemp -d); trap 'rm -rf "$corpus"' EXIT
seed() { mkdir -p "$corpus/$1"; shift; for f in "$@"; do [ -f "$f" ] && cp "$f" "$corpus/$(basename "$(dirname "$f")")-$(basename "$f")" 2>/dev/null || true; done; }
targets=$(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v groundwork-fuzz)
for t in $targets; do
  mkdir -p "$corpus/$t"
  case "$t" in
    environment_loader) cp environments/*/*.yaml "$corpus/$t/" 2>/dev/null || true ;;
    *) cp tests/snapshots/*.snap "$corpus/$t/" 2>/dev/null || true ;;
  esac
  out=$(cargo +nightly fuzz run --fuzz-dir fuzz "$t" "$corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1) || {
    printf '%s\n' "$out" | tail -40; echo "fuzz target $t FAILED" >&2; exit 1; }
  execs=$(printf '%s\n' "$out" | grep -o 'Done [0-9]* runs' | tail -n 1 | grep -o '[0-9]*')
  printf '%-20s %8s s %12s execs\n' "$t" "$secs" "${execs:-?}"
done
