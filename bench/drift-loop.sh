#!/usr/bin/env bash
# Benchmark: `groundwork drift --every` over many ticks on a lab of 10 and 1000 nodes (SIZES). After a
# first apply, drift runs with a 50 ms interval for TICKS ticks (1000). Printed per size, at ticks 1, 100
# and TICKS: the tick's duration (groundwork_drift_last_check_duration_seconds), the process's RSS, the SSH
# round trips per host of the last tick (exec sessions, or requests to the shell kept open on the host), and the SSH connections the lab's sshds accepted since drift
# started (one per host means no new handshake after the first tick). Then a connection is killed on lb1's
# side and the next ticks are watched: the tick that reconnects, and whether the ticks after it are
# checks like the others. Also printed: the mean tick from tick 100 on (groundwork_drift_check_duration_seconds)
# and how many plans were remembered, and the CPU a tick costs (ticks 100 to TICKS), the machine's in all
# and drift's own, the rest being the lab hosts'. Figures, not assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
sizes=${SIZES:-"10 1000"}
ticks=${TICKS:-1000}
export GW_LAB_INDEX=${GW_LAB_INDEX:-204}   # a multiple of 4: the scaled environment spans the /22
. bench/lib.sh
cargo build --release --locked --quiet
gw=$PWD/target/release/groundwork
work=$(mktemp -d)
drift_pid=
trap '[ -n "$drift_pid" ] && kill "$drift_pid" 2>/dev/null; rm -rf "$work"; bash scripts/lab.sh down >/dev/null 2>&1 || true' EXIT

in_host() { nsenter -t "$(cat "$state/hosts/$1/init.pid")" -n -m -u -p -- sh -c "$2"; }
accepted() { # SSH connections accepted by the infra hosts' sshds so far
  local h total=0
  for h in bastion ns1 lb1; do
    total=$((total + $(in_host "$h" "grep -c 'Accepted publickey' /var/log/gwlab/sshd.log || true")))
  done
  echo "$total"
}
metric() { curl -s --max-time 2 "$url" | awk -v m="$1" '$1 ~ "^"m"(\\{|$)" {print $2; exit}'; }
busy() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }   # the machine's busy jiffies
own() { awk '{print $14 + $15}' "/proc/$drift_pid/stat"; }                # the drift process's

printf '%-6s %6s %9s %8s  %-28s %s\n' nodes tick "tick ms" "RSS MiB" "round trips per host" "new SSH connections"
for n in $sizes; do
  bash scripts/lab.sh down >/dev/null 2>&1 || true
  bash scripts/lab.sh up >/dev/null 2>&1
  env="$work/env$n"; scaled_env "$n" "$env"
  "$gw" apply --auto-approve "$env" > /dev/null
  before=$(accepted)
  RUST_LOG=info NO_COLOR=1 "$gw" drift "$env" --every 50ms --listen 127.0.0.1:0 > /dev/null 2> "$work/drift.err" &
  drift_pid=$!
  until url=$(grep -o 'http://[0-9.:]*/metrics' "$work/drift.err" 2>/dev/null); do kill -0 "$drift_pid"; sleep 0.1; done
  for at in 1 100 "$ticks"; do
    until [ "$(metric groundwork_drift_checks_total || echo 0)" -ge "$at" ] 2>/dev/null; do sleep 0.05; done
    [ "$at" = 100 ] && { busy100=$(busy); own100=$(own); sum100=$(metric groundwork_drift_check_duration_seconds_sum)
      count100=$(metric groundwork_drift_check_duration_seconds_count); }
    ms=$(awk -v s="$(metric groundwork_drift_last_check_duration_seconds)" 'BEGIN {printf "%.1f", s * 1000}')
    rss=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$drift_pid/status")
    trips=$(grep -o 'round_trips=[^"]*' "$work/drift.err" | tail -1 | sed 's/round_trips=//')
    printf '%-6s %6s %9s %8s  %-28s %s\n' "$n" "$at" "$ms" "$rss" "$trips" "$(( $(accepted) - before ))"
  done
  # The mean tick from tick 100 on (the duration histogram's sum and count), and how many plans were the
  # one remembered (every host answered as the tick before: docs/architecture.md, "plan").
  awk -v s="$(metric groundwork_drift_check_duration_seconds_sum)" -v s0="$sum100" \
      -v c="$(metric groundwork_drift_check_duration_seconds_count)" -v c0="$count100" \
      -v r="$(grep -c 'remembered=true' "$work/drift.err" || true)" -v all="$(grep -c 'INFO plan' "$work/drift.err" || true)" \
      'BEGIN { printf "  mean tick from tick 100 on: %.1f ms over %d ticks; plans remembered: %d of %d\n", (s - s0) * 1000 / (c - c0), c - c0, r, all }'
  # Where a tick's CPU goes, ticks 100 to TICKS: the machine's (everything but idle) and drift's own;
  # the rest is the lab hosts' sshd sessions, shells and tools (and whatever else ran meanwhile).
  hz=$(getconf CLK_TCK)
  awk -v b="$(( $(busy) - busy100 ))" -v o="$(( $(own) - own100 ))" -v n="$(( ticks - 100 ))" -v hz="$hz" -v cpus="$(nproc)" 'BEGIN {
    printf "  CPU per tick (ticks 100-%d): %.1f ms in all, %.1f ms drift itself, %.1f ms the lab hosts; spread over %d cores, %.1f ms of each (the pauses between ticks and other processes included)\n",
      n + 100, b * 1000 / hz / n, o * 1000 / hz / n, (b - o) * 1000 / hz / n, cpus, b * 1000 / hz / n / cpus }' 
  # Where a tick's CPU goes, by program, sampled for PERF_SECONDS (10) with perf where it is installed:
  # drift itself; what groundwork's batch starts on the hosts (sshd's session, the shells, find, awk,
  # tar, wc, cat, mktemp, rm); the daemons' own tools it asks (systemctl, ss, busctl and the D-Bus
  # services behind it, setfiles...); the rest. The tools' share is a floor someone else's code sets.
  if command -v perf >/dev/null 2>&1; then
    from=$(metric groundwork_drift_checks_total)
    perf record -a -q -F 999 -o "$work/perf.data" -- sleep "${PERF_SECONDS:-10}" >/dev/null 2>&1 || true
    ticked=$(( $(metric groundwork_drift_checks_total) - from ))
    perf script -i "$work/perf.data" -F comm 2>/dev/null | awk -v n="$ticked" '
      { c = $0; sub(/^ +/, "", c); sub(/ +$/, "", c); k[c]++ }
      END {
        split("groundwork tokio-rt-worker", a, " "); for (i in a) cat[a[i]] = "drift"
        split("sshd bash sh mktemp rm wc cat tar awk mawk gawk find xargs stat", a, " "); for (i in a) cat[a[i]] = "batch"
        split("systemctl ss busctl readlink setfiles dbus-daemon gdbus polkitd firewalld rpm dpkg-query", a, " "); for (i in a) cat[a[i]] = "tools"
        cat["swapper"] = "idle"
        if (n < 1) { print "  (no tick finished while perf sampled)"; exit }
        for (c in k) { g = (c in cat) ? cat[c] : "other"; by[g] += k[c] }
        printf "  CPU per tick by program (perf, %d ticks): drift %.1f ms, its batch on the hosts %.1f ms, the daemons'"'"' tools %.1f ms, other %.1f ms\n",
          n, by["drift"] / 0.999 / n, by["batch"] / 0.999 / n, by["tools"] / 0.999 / n, by["other"] / 0.999 / n
        for (c in k) if (c != "swapper") printf "%.1f %s\n", k[c] / 0.999 / n, c }' |
      { IFS= read -r head; echo "$head"; sort -rn | head -14 | awk '{ printf "%s%s %s", (NR > 1 ? ", " : "  ms per tick: "), $2, $1 } END { print "" }'; }
  fi
  # A connection dies on the host's side: the next tick reconnects, once.
  done_before=$(metric groundwork_drift_checks_total)
  in_host lb1 "pkill -f '^sshd: root'" || true
  until [ "$(metric groundwork_drift_checks_total)" -ge $((done_before + 5)) ]; do sleep 0.05; done
  ok=$(metric groundwork_drift_last_check_success)
  echo "  lb1's connection killed after tick $done_before: 5 ticks later, last check success=$ok," \
       "new SSH connections since drift started: $(( $(accepted) - before ))," \
       "reconnect logged: $(grep -c 'connection closed; connecting again' "$work/drift.err" || true)"
  kill "$drift_pid"; wait "$drift_pid" 2>/dev/null || true; drift_pid=
done
