#!/usr/bin/env bash
# The test command: everything, lab-backed tests included. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
bash scripts/lab-deps.sh
# The OS the lab's virtual machines boot (a Debian cloud kernel and a busybox initramfs), built once.
bash lab/standin-os.sh
# --no-fail-fast: one failing test binary must not hide the others.
cargo test --workspace --locked --no-fail-fast "$@"
