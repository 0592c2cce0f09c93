#!/usr/bin/env bash
# Benchmark: environments of 10, 100, 1000 and 2000 nodes on a lab (real sshd, named, dhcpd, haproxy,
# nginx, firewalld, SELinux tools). Prints, per size: first apply, no-change plan, no-op apply and
# one-change apply (the last node moved to another address: a zone, a reverse zone and dhcpd.conf
# rewritten, checked and reloaded, then the verify plan) wall time (median of 3), one OpenSSH round trip
# to the bastion (`ssh host true`, median of 3) and the plan's ratio to it, peak RSS of the plans and of
# the applies (no-op and one-change; the first apply is not counted), SSH exec sessions
# per host during one plan, the load average when the size started; then where one one-change apply's
# time went. Figures, not assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
sizes=${SIZES:-"10 100 1000 2000"}
export GW_LAB_INDEX=${GW_LAB_INDEX:-200}   # a multiple of 8: 2000 nodes span a /21
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

printf '%-6s %8s %8s %8s %9s %7s %6s %9s %10s  %-28s %-14s %s\n' nodes "apply s" "plan s" "no-op s" "1-change" "ssh s" "plan/ssh" "plan RSS" "apply RSS" "exec sessions (one plan)" "loadavg" "plan phases ms"
breakdowns=()
for n in $sizes; do
  bash scripts/lab.sh down >/dev/null 2>&1 || true
  bash scripts/lab.sh up >/dev/null 2>&1
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  env="$work/env$n"; scaled_env "$n" "$env"
  read -r apply_s _ < <(measure "$gw" apply --auto-approve "$env")
  plans=(); plan_rss=0; rss=0
  for _ in 1 2 3; do
    read -r s r < <(measure "$gw" plan --detailed-exitcode "$env"); plans+=("$s"); [ "$r" -gt "$plan_rss" ] && plan_rss=$r
  done
  noops=()
  for _ in 1 2 3; do read -r s r < <(measure "$gw" apply --auto-approve "$env"); noops+=("$s"); [ "$r" -gt "$rss" ] && rss=$r; done
  changes=()
  for _ in 1 2 3; do
    one_change "$env"
    read -r s r < <(measure "$gw" apply --auto-approve "$env"); changes+=("$s"); [ "$r" -gt "$rss" ] && rss=$r
  done
  # Where one one-change apply's time goes: its event stream's timestamps.
  one_change "$env"
  t0=$(date +%s.%N)
  "$gw" apply --auto-approve --json "$env" > "$work/events.json" 2>/dev/null
  breakdowns+=("$n nodes: $(python3 - "$t0" "$work/events.json" <<'PY'
import json, sys
t0 = float(sys.argv[1])
ev = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
at = lambda e: (e["time_unix"] - t0) * 1000
first = {}
for e in ev:
    first.setdefault(e["event"], e)
started = [e for e in ev if e["event"] == "change_started"]
done = [e for e in ev if e["event"] == "change_done"]
parts = [f"start+connect+lock {at(first['lock_taken']):.0f}", f"plan {at(first['plan']) - at(first['lock_taken']):.0f}"]
for d in done:
    s = next(x for x in started if x["address"] == d["address"])
    parts.append(f"{d['address']} {at(d) - at(s):.0f}")
parts.append(f"verify plan {at(first['verified']) - at(done[-1]):.0f}")
parts.append(f"unlock {at(first['finished']) - at(first['verified']):.0f}")
print(f"{at(first['finished']):.0f} ms = " + ", ".join(parts))
PY
)")
  floors=(); for _ in 1 2 3; do floors+=("$(ssh_floor)"); done
  plan=$(median3 "${plans[@]}"); floor=$(median3 "${floors[@]}")
  line=$(RUST_LOG=info NO_COLOR=1 "$gw" plan "$env" 2>&1 >/dev/null | grep 'round_trips=' | head -1)
  trips=$(printf '%s' "$line" | grep -o 'round_trips=[^"]*' | sed 's/round_trips=//')
  # Each phase's field on its own: the line has others between them (`expansion=...`).
  phases=$(for f in expand refresh diff; do printf '%s' "$line" | grep -o " ${f}_ms=[0-9]*" | sed 's/_ms//'; done | tr -d '\n')
  printf '%-6s %8s %8s %8s %9s %7s %6.2f %9.1f %10.1f  %-28s %-14s %s\n' "$n" "$apply_s" "$plan" "$(median3 "${noops[@]}")" \
    "$(median3 "${changes[@]}")" "$floor" "$(echo "$plan/$floor" | bc -l)" "$(echo "$plan_rss/1024" | bc -l)" \
    "$(echo "$rss/1024" | bc -l)" "$trips" "$load" "$phases"
done
echo
echo "One one-change apply, from the process's start (event timestamps):"
printf '  %s\n' "${breakdowns[@]}"
