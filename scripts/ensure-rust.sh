#!/usr/bin/env bash
# Make sure a Rust toolchain (cargo, rustfmt, clippy) is on PATH. Idempotent.
set -euo pipefail
if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: installing the stable toolchain with rustup" >&2
  export DEBIAN_FRONTEND=noninteractive
  command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends curl ca-certificates; }
  command -v cc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends build-essential; }
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy
  . "$HOME/.cargo/env"
fi
