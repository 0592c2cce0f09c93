#!/usr/bin/env bash
# The test command: everything, lab-backed tests included. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
bash scripts/lab-deps.sh
# The OS the lab's virtual machines boot (a Debian cloud kernel and a busybox initramfs), built once.
bash lab/standin-os.sh
# The machines that PXE-boot (tests/lab_boot.rs, tests named vm_*) need QEMU and tap devices. Where they
# cannot run at all they are skipped, and the run says so at its end; run directly, they fail with why.
skip=()
if ! why=$(bash scripts/lab.sh vm-probe); then
  skip=(-- --skip vm_)
fi
# --no-fail-fast: one failing test binary must not hide the others.
status=0
cargo test --workspace --locked --no-fail-fast "$@" "${skip[@]}" || status=$?
if [ ${#skip[@]} -gt 0 ]; then
  echo "SKIPPED: the virtual-machine boot tests (vm_*, tests/lab_boot.rs): $why" >&2
fi
exit $status
