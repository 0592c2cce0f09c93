#!/usr/bin/env bash
# Benchmark: environments of 10, 100 and 1000 nodes on a lab (real sshd, named, dhcpd, haproxy, nginx,
# firewalld, SELinux tools). Prints, per size: first apply, no-change plan and no-op apply wall time (median
# of 3), peak RSS, and SSH exec sessions per host during one plan. Figures, not assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
sizes=${SIZES:-"10 100 1000"}
export GW_LAB_INDEX=${GW_LAB_INDEX:-200}
. bench/lib.sh
cargo build --release --locked --quiet
gw=$PWD/target/release/groundwork
work=$(mktemp -d)
trap 'rm -rf "$work"; bash scripts/lab.sh down >/dev/null 2>&1 || true' EXIT

measure() { # measure CMD... → "seconds maxrss_kib" (exit codes 0 and 2 are fine)
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
dt = time.monotonic() - t
if r.returncode not in (0, 2):
    sys.stderr.write(r.stderr.decode()); sys.exit(r.returncode)
print(f"{dt:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PY
}
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

printf '%-7s %10s %10s %10s %9s  %s\n' nodes "apply s" "plan s" "no-op s" "RSS MiB" "exec sessions per host (one plan)  (one plan's phases, ms)"
for n in $sizes; do
  bash scripts/lab.sh down >/dev/null 2>&1 || true
  bash scripts/lab.sh up >/dev/null 2>&1
  env="$work/env$n"; scaled_env "$n" "$env"
  read -r apply_s _ < <(measure "$gw" apply --auto-approve "$env")
  plans=(); rss=0
  for _ in 1 2 3; do
    read -r s r < <(measure "$gw" plan --detailed-exitcode "$env"); plans+=("$s"); [ "$r" -gt "$rss" ] && rss=$r
  done
  noops=()
  for _ in 1 2 3; do read -r s r < <(measure "$gw" apply --auto-approve "$env"); noops+=("$s"); [ "$r" -gt "$rss" ] && rss=$r; done
  line=$(RUST_LOG=info NO_COLOR=1 "$gw" plan "$env" 2>&1 >/dev/null | grep 'round_trips=' | head -1)
  trips=$(printf '%s' "$line" | grep -o 'round_trips=[^"]*' | sed 's/round_trips=//')
  phases=$(printf '%s' "$line" | grep -o 'expand_ms=[0-9]* refresh_ms=[0-9]* diff_ms=[0-9]*' | sed 's/_ms//g')
  printf '%-7s %10s %10s %10s %9.1f  %s  (%s)\n' "$n" "$apply_s" "$(median3 "${plans[@]}")" "$(median3 "${noops[@]}")" "$(echo "$rss/1024" | bc -l)" "$trips" "$phases"
done
