#!/usr/bin/env bash
# Benchmark: what waiting on the install gates costs the cluster API, with `openshift.gate_waits: poll`
# (a probe every poll_interval_ms) and `watch` (kube-runtime watchers; a probe per change). A lab with the
# API simulator per mode, its install timeline stretched (GW_SIM_BOOTSTRAP_MS, GW_SIM_STEP_MS; a real one
# takes 30 to 60 minutes) and the default poll interval (POLL_MS, 2000); one `groundwork apply --json`
# from nothing to day 2. Prints, per gate, the
# seconds waited and the API requests groundwork sent while waiting (its own count, from the gate_passed
# events), then the simulator's count of the whole run by verb. Figures, not assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
modes=${MODES:-"poll watch"}
export GW_LAB_INDEX=${GW_LAB_INDEX:-201}
. bench/lib.sh
export GW_LAB_API=sim
export GW_SIM_BOOTSTRAP_MS=${GW_SIM_BOOTSTRAP_MS:-30000} GW_SIM_STEP_MS=${GW_SIM_STEP_MS:-3000}
poll_ms=${POLL_MS:-2000}
cargo build --release --locked --quiet -p groundwork -p groundwork-kubesim
gw=$PWD/target/release/groundwork
sim=$PWD/target/release/groundwork-kubesim
work=$(mktemp -d)
trap 'rm -rf "$work"; bash scripts/lab.sh down >/dev/null 2>&1 || true' EXIT

for mode in $modes; do
  bash scripts/lab.sh down >/dev/null 2>&1 || true
  bash scripts/lab.sh up >/dev/null 2>&1
  bash scripts/lab.sh sim "$sim" >/dev/null 2>&1
  env="$work/$mode"; mkdir -p "$env/cluster"
  for f in environment.yaml nodes.yaml services.yaml openshift.yaml; do
    sed -e "s/10\.88\.0\./$net./g" -e "s|/tmp/groundwork-lab/0/|$state/|g" \
        -e "s/52:54:00:00:00:/52:54:00:00:$(printf %02x "$GW_LAB_INDEX"):/g" "environments/lab/$f" > "$env/$f"
  done
  cp environments/lab/cluster/* "$env/cluster/"
  sed -i "s/^  poll_interval_ms: .*/  poll_interval_ms: $poll_ms\n  gate_waits: $mode/" "$env/openshift.yaml"
  "$gw" apply --auto-approve --json "$env" > "$work/$mode.events" 2> "$work/$mode.err" || { cat "$work/$mode.err"; exit 1; }
  echo "gate_waits: $mode (poll_interval_ms $poll_ms, simulator bootstrap ${GW_SIM_BOOTSTRAP_MS} ms, steps ${GW_SIM_STEP_MS} ms)"
  python3 - "$work/$mode.events" <<'PY'
import json, sys
total = 0
print(f"  {'gate':<20} {'waited s':>9} {'API requests':>13}")
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "gate_passed":
        total += e["api_requests"]
        print(f"  {e['gate']:<20} {e['waited_seconds']:>9.1f} {e['api_requests']:>13}")
print(f"  {'all gate waits':<20} {'':>9} {total:>13}")
PY
  kc=$state/kubeconfig
  sed -n 's/^ *certificate-authority-data: //p' "$kc" | base64 -d > "$work/ca.crt"
  counts=$(curl -s --max-time 5 --cacert "$work/ca.crt" -H "Authorization: Bearer $(sed -n 's/^ *token: //p' "$kc")" \
    "$(sed -n 's/^ *server: //p' "$kc")/sim/requests")
  echo "  simulator, whole run: $counts"
done
