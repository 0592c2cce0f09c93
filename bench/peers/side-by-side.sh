#!/bin/bash
# side-by-side.sh - groundwork's no-op plan next to Ansible check mode and pyinfra dry run: the same three
# hosts of one groundwork lab, reached with the same key and known_hosts, the same desired state, the
# no-op plans timed in interleaved rounds.
#
#   side-by-side.sh [--ns "10 100 1000"] [--rounds "7 7 5"] [--fresh K] [--setup-only]
#
# Needs root; a running lab of the groundwork project (GW_REPO/scripts/lab.sh up, with the same
# GW_LAB_INDEX and GW_LAB_STATE); the groundwork release binary GW; VENV with ansible and pyinfra (created
# when missing). Writes under WORK and OUT only (and, on the lab's hosts, what the three tools manage).
#
# Per N:
#   1. a groundwork environment made as GW_REPO/bench/scale.sh makes it (bench/lib.sh's scaled_env),
#      addresses 10.88.$GW_LAB_INDEX.*, key and known_hosts of this lab;
#   2. the peers' job from that environment (gen_side.py): same nodes, hosts, ingress backends and
#      firewalld services, the peers' files under PREFIX; the rendered configs are checked offline;
#   3. one apply per tool (groundwork, then Ansible, then pyinfra), then every variant's no-op run must
#      report no change; the peers' files must equal the reference render;
#   4. ROUNDS rounds of: ssh floor, groundwork, pyinfra, pyinfra-fast, ansible, ansible-fast; each tool once
#      timed (timed.py, no sampling) and once instrumented (rss_tree.py, whole process tree sampled);
#      /proc/loadavg at the start of every round and run; every run's output checked for "no change".
#   5. with --fresh K, K rounds of: a new lab (scripts/lab.sh down, up); groundwork's apply of everything;
#      then each peer's apply (ansible, ansible-fast, pyinfra, pyinfra-fast), each on hosts where what
#      the peers make (their files, the zone's firewalld services, the custom service) was undone first.
# Raw data: $OUT/runs.jsonl (one line per run), $OUT/rounds.jsonl, $OUT/setup.log, $OUT/versions.txt,
# $OUT/logs/ (one log per tool and N); report_side.py makes the tables.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
GW_REPO=${GW_REPO:-$PWD}   # run from the groundwork checkout, or set GW_REPO
GW=${GW:-$GW_REPO/target/release/groundwork}
export GW_LAB_INDEX=${GW_LAB_INDEX:-220} GW_LAB_STATE=${GW_LAB_STATE:-$(dirname "$(mktemp -u)")/peer-lab}
NET=10.88.$GW_LAB_INDEX STATE=$GW_LAB_STATE/$GW_LAB_INDEX
KEY=$STATE/id_ed25519 KH=$STATE/known_hosts
WORK=${WORK:-$GW_LAB_STATE/side-work} VENV=${VENV:-$GW_LAB_STATE/venv} OUT=${OUT:-$WORK/results}
PREFIX=${PREFIX:-/srv/peer}
HOSTS="ns1 lb1 bastion"
TOOLS="groundwork pyinfra pyinfra-fast ansible ansible-fast"

NS="10 100 1000" ROUNDS="7 7 5" FRESH=0 SETUP_ONLY=0
while [ $# -gt 0 ]; do case $1 in
  --ns) NS=$2; shift ;; --rounds) ROUNDS=$2; shift ;; --fresh) FRESH=$2; shift ;; --setup-only) SETUP_ONLY=1 ;;
  *) echo "usage: $0 [--ns \"10 100 1000\"] [--rounds \"7 7 5\"] [--fresh K] [--setup-only]" >&2; exit 2 ;;
esac; shift; done

# ------------------------------------------------------------ settings (as run.sh; the ones reported)
export HOME=$WORK/home PATH=$VENV/bin:$PATH PYTHONDONTWRITEBYTECODE=1
export ANSIBLE_HOME=$WORK/ansible-home ANSIBLE_LOCAL_TEMP=$WORK/ansible-home/tmp ANSIBLE_PIPELINING=True
export ANSIBLE_MAX_DIFF_SIZE=1048576 ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=False
# ansible and ansible-fast get their own ControlPath dirs: closing the default runs' masters before each of
# them must not close ansible-fast's warm ones (300 s, no compression), and ansible-fast must not reuse a
# default master (which has ssh compression on).
CP_DEF=$WORK/cp-default CP_FAST=$WORK/cp-fast
with_env(){ # TOOL CMD... : run CMD with TOOL's environment
  local t=$1; shift
  case $t in
    ansible) ANSIBLE_SSH_CONTROL_PATH_DIR=$CP_DEF "$@" ;;
    ansible-fast) ANSIBLE_SSH_CONTROL_PATH_DIR=$CP_FAST ANSIBLE_FORKS=3 ANSIBLE_MODULE_COMPRESSION=ZIP_STORED \
      ANSIBLE_SSH_ARGS='-o ControlMaster=auto -o ControlPersist=300s' "$@" ;;
    *) "$@" ;;
  esac
}
plan_cmd(){ # TOOL -> CMD: the no-op plan (dry run) of TOOL
  case $1 in
    groundwork)   CMD=("$GW" plan --detailed-exitcode "$GWENV") ;;
    pyinfra)      CMD=(pyinfra "$JOB/inventory.py" deploy.py --dry --diff) ;;
    pyinfra-fast) CMD=(pyinfra --no-wait "$JOB/inventory.py" deploy.py --dry --diff) ;;
    ansible)      CMD=(ansible-playbook -i "$JOB/inventory.ini" -e "@$JOB/job.json" site.yml --check --diff) ;;
    ansible-fast) CMD=(ansible-playbook -i "$JOB/inventory.ini" -e "@$JOB/job.json" site-fast.yml --check --diff) ;;
    floor)        CMD=(ssh -i "$KEY" -o "UserKnownHostsFile=$KH" "root@$NET.2" true) ;;
  esac
}
close_masters(){ # DIR: end the ControlPersist masters whose sockets are in DIR
  local s
  for s in "$1"/*; do
    [ -S "$s" ] && { ssh -o ControlPath="$s" -O exit x >/dev/null 2>&1 || rm -f "$s"; }
  done; return 0
}
log(){ printf '[side %s] %s\n' "$(date +%T)" "$*" | tee -a "$OUT/setup.log" >&2; }
die(){ log "FAILED: $*"; exit 1; }
hssh(){ local h=$1; shift; ssh -i "$KEY" -o "UserKnownHostsFile=$KH" -o StrictHostKeyChecking=yes -o BatchMode=yes "root@$(hip "$h")" "$@"; }
hip(){ case $1 in ns1) echo "$NET.2" ;; lb1) echo "$NET.3" ;; bastion) echo "$NET.10" ;; esac; }

noop_ok(){ # TOOL LOG RC: did this run report no change? (prints the reason when not)
  local t=$1 f=$2 rc=$3
  case $t in
    groundwork) [ "$rc" = 0 ] || { echo "groundwork plan --detailed-exitcode: exit $rc"; return 1; } ;;
    ansible*)
      [ "$rc" = 0 ] || { echo "exit $rc"; return 1; }
      [ "$(sed -n '/PLAY RECAP/,$p' "$f" | grep -c ' changed=0 .*unreachable=0 *failed=0')" = 3 ] ||
        { echo "recap: $(sed -n '/PLAY RECAP/,$p' "$f" | tr -s ' ' | tr '\n' ';')"; return 1; } ;;
    pyinfra*)
      [ "$rc" = 0 ] || { echo "exit $rc"; return 1; }
      # pyinfra's change summary: every host row must read "No change" only (no "Change" column entry)
      python3 "$HERE/pyinfra_changes.py" "$f" || return 1 ;;
    floor) [ "$rc" = 0 ] || { echo "exit $rc"; return 1; } ;;
  esac
}

# ------------------------------------------------------------ setup
mkdir -p "$HOME" "$ANSIBLE_HOME" "$CP_DEF" "$CP_FAST" "$WORK/logs" "$OUT/logs"
[ -x "$VENV/bin/pyinfra" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q ansible==12.3.0 pyinfra==3.10.0; }
[ -x "$GW" ] || die "no groundwork binary at $GW"
[ -f "$STATE/up" ] && [ -f "$KEY" ] || die "lab $GW_LAB_INDEX is not up under $GW_LAB_STATE"
cd "$HERE"
{ echo "date: $(date -u +%FT%TZ)"; echo "machine: $(nproc) cpus, $(free -g | awk '/Mem/{print $2}') GiB, $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "groundwork: $("$GW" --version) (git $(git -C "$GW_REPO" rev-parse --short HEAD)$(git -C "$GW_REPO" diff --quiet HEAD -- src providers Cargo.toml Cargo.lock || echo ", with uncommitted changes"), release build $(stat -c %y "$GW" | cut -d. -f1))"
  echo "rustc: $(/root/.cargo/bin/rustc --version 2>/dev/null || rustc --version 2>/dev/null || echo ?)"
  ansible --version | sed -n 1p; echo "ansible package $(pip show ansible 2>/dev/null | awk '/^Version/{print $2}')"
  echo "ansible.posix $(grep -m1 '"version"' "$VENV"/lib/python3*/site-packages/ansible_collections/ansible/posix/MANIFEST.json | tr -dc '0-9.')"
  echo "pyinfra $(pyinfra --version | awk '{print $2}'), paramiko $(pip show paramiko | awk '/^Version/{print $2}'), gevent $(pip show gevent | awk '/^Version/{print $2}')"
  echo "python $(python3 -V | cut -d' ' -f2) (controller), $(/usr/bin/python3 -V | cut -d' ' -f2) (targets)"
  ssh -V 2>&1; echo "lab: index $GW_LAB_INDEX, state $STATE, hosts ns1 $NET.2 lb1 $NET.3 bastion $NET.10, peers' prefix $PREFIX"
  env | grep -E '^ANSIBLE_' | sort
  echo "ansible: ANSIBLE_SSH_CONTROL_PATH_DIR=$CP_DEF, masters closed before and after every run (stock ssh_args -C -o ControlMaster=auto -o ControlPersist=60s)"
  echo "ansible-fast: site-fast.yml ANSIBLE_FORKS=3 ANSIBLE_MODULE_COMPRESSION=ZIP_STORED ANSIBLE_SSH_ARGS='-o ControlMaster=auto -o ControlPersist=300s' ANSIBLE_SSH_CONTROL_PATH_DIR=$CP_FAST, masters kept warm"
  echo "pyinfra-fast: pyinfra --no-wait"
} > "$OUT/versions.txt"
for h in $HOSTS; do hssh "$h" true || die "ssh $h"; done
# The directories the peers' files go in (the peers' tasks do not create parents, as on a real host
# where /var/named or /etc/haproxy exist): made once, not managed by any tool.
prepare_prefix(){
  hssh ns1 "mkdir -p $PREFIX/var/named $PREFIX/etc/dhcp"
  hssh lb1 "mkdir -p $PREFIX/etc/haproxy"
  hssh bastion "mkdir -p $PREFIX/var/www/html"
}
prepare_prefix

make_gw_env(){ # N DIR: as bench/scale.sh does it (bench/lib.sh's scaled_env), for this lab
  (cd "$GW_REPO" && . bench/lib.sh && scaled_env "$1" "$2")
}
validate_peers(){ # the peers' rendered configs are valid for the real daemons (checked here)
  local r=$JOB/render z
  for z in "$r"/ns1$PREFIX/var/named/*.zone; do named-checkzone -q "$(basename "$z" .zone)" "$z"; done
  printf 'options { directory "%s"; };\ninclude "%s";\n' "$r/ns1$PREFIX/var/named" "$r/ns1$PREFIX/etc/named.$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["cluster"])' "$JOB/job.json").zones" > "$JOB/named-test.conf"
  named-checkconf -z "$JOB/named-test.conf" >/dev/null
  dhcpd -t -q -cf "$r/ns1$PREFIX/etc/dhcp/dhcpd.conf" 2>/dev/null
  haproxy -c -q -f "$r/lb1$PREFIX/etc/haproxy/haproxy.cfg"
}
verify_peers(){ # every file the peers manage equals the reference render; the services are in the zone
  local h
  for h in $HOSTS; do
    (cd "$JOB/render/$h" && find . -type f | sort | xargs sha256sum | sed 's|  \./|  /|') > "$WORK/want-$h"
    hssh "$h" "sha256sum $(cd "$JOB/render/$h" && find . -type f | sort | cut -c2- | tr '\n' ' ')" > "$WORK/have-$h"
    diff -q "$WORK/want-$h" "$WORK/have-$h" >/dev/null || die "$h: the peers' files differ from the reference render"
  done
  for p in --permanent ""; do
    have=$(hssh lb1 "firewall-cmd $p --zone=public --list-services")
    for s in $(python3 -c 'import json,sys;print(" ".join(json.load(open(sys.argv[1]))["fw_services"]))' "$JOB/job.json"); do
      tr ' ' '\n' <<<"$have" | grep -qx "$s" || die "service $s not in zone public ($p)"
    done
  done
}
count_files(){ # what each tool's files on the hosts hold: bytes, A, PTR, dhcpd host pins, haproxy servers
  local q='for f in "$@"; do [ -f "$f" ] && printf "%-60s %8s bytes  A %5s  PTR %5s  host %5s  server %5s\n" "$f" \
    "$(wc -c < "$f")" "$(grep -Ec "[[:space:]]A[[:space:]]" "$f")" "$(grep -c "PTR" "$f")" "$(grep -Ec "^[[:space:]]*host " "$f")" \
    "$(grep -Ec "^[[:space:]]*server " "$f")"; done; true'
  { echo "== ns1"; hssh ns1 "sh -c '$q' - /etc/named.conf /etc/named/groundwork.zones.conf /var/named/*.zone /etc/dhcp/dhcpd.conf \$(find $PREFIX -type f | sort)"
    echo "== lb1"; hssh lb1 "sh -c '$q' - /etc/haproxy/haproxy.cfg /etc/firewalld/services/*.xml \$(find $PREFIX -type f | sort)"
    echo "== lb1 zone public (runtime, permanent)"; hssh lb1 "firewall-cmd --zone=public --list-services; firewall-cmd --permanent --zone=public --list-services"
    echo "== bastion"; hssh bastion "sh -c '$q' - /usr/share/nginx/html/* \$(find $PREFIX -type f | sort)"
  } > "$OUT/logs/$N-files.txt" 2>&1
}
apply_cmd(){ # TOOL -> CMD: TOOL's apply
  case $1 in
    groundwork)   CMD=("$GW" apply --auto-approve "$GWENV") ;;
    pyinfra)      CMD=(pyinfra -y "$JOB/inventory.py" deploy.py) ;;
    pyinfra-fast) CMD=(pyinfra -y --no-wait "$JOB/inventory.py" deploy.py) ;;
    ansible)      CMD=(ansible-playbook -i "$JOB/inventory.ini" -e "@$JOB/job.json" site.yml) ;;
    ansible-fast) CMD=(ansible-playbook -i "$JOB/inventory.ini" -e "@$JOB/job.json" site-fast.yml) ;;
  esac
}
unapply_peers(){ # what a peer's apply made, undone: its files, the zone's services, the custom service
  local svcs
  svcs=$(python3 -c 'import json,sys;print(" ".join(json.load(open(sys.argv[1]))["fw_services"]))' "$JOB/job.json")
  hssh ns1 "find $PREFIX -type f -delete"
  hssh bastion "find $PREFIX -type f -delete"
  hssh lb1 "find $PREFIX -type f -delete; for s in $svcs; do firewall-cmd -q --zone=public --remove-service=\$s
    firewall-cmd -q --permanent --zone=public --remove-service=\$s; done 2>/dev/null
    rm -f /etc/firewalld/services/machine-config.xml; firewall-cmd -q --reload"
}
run_fresh(){ # TOOL TAG: one timed apply of TOOL on hosts without what it manages; kind "fresh" in runs.jsonl
  local t=$1 tag=$2 f load res rc
  f=$WORK/logs/$N-$t-fresh.log
  apply_cmd "$t"; load=$(cut -d' ' -f1-3 /proc/loadavg)
  [ "$t" = ansible ] && close_masters "$CP_DEF"
  res=$(with_env "$t" python3 "$HERE/timed.py" "$f" "${CMD[@]}")
  rc=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["rc"])' "$res")
  cp "$f" "$OUT/logs/$N-$t-fresh.log"
  [ "$rc" = 0 ] || die "N=$N $t: fresh apply failed (see logs/$N-$t-fresh.log)"
  printf '{"n":%s,"tag":"%s","tool":"%s","kind":"fresh","loadavg":"%s","noop":true,%s\n' \
    "$N" "$tag" "$t" "$load" "${res#\{}" >> "$OUT/runs.jsonl"
}
fresh_round(){ # TAG: a new lab; groundwork applies everything; then each peer, each time on hosts
  # without anything a peer made (its files, and the firewall's services, which it shares with groundwork)
  local t
  bash "$GW_REPO/scripts/lab.sh" down >/dev/null 2>&1 || true
  bash "$GW_REPO/scripts/lab.sh" up >/dev/null 2>&1 || die "lab up"
  close_masters "$CP_DEF"; close_masters "$CP_FAST"
  prepare_prefix
  run_fresh groundwork "$1"
  for t in ansible ansible-fast pyinfra pyinfra-fast; do unapply_peers; run_fresh "$t" "$1"; done
}
run_once(){ # KIND TOOL TAG: one run of TOOL's no-op plan; KIND timed|instr; appends to runs.jsonl
  local kind=$1 t=$2 tag=$3 f load res rc why ok=true
  plan_cmd "$t"; f=$WORK/logs/$N-$t-$kind.log
  [ "$t" = ansible ] && close_masters "$CP_DEF"
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  if [ "$kind" != instr ]; then res=$(with_env "$t" python3 "$HERE/timed.py" "$f" "${CMD[@]}")
  else res=$(RSS_LOG=$f with_env "$t" python3 "$HERE/rss_tree.py" "${CMD[@]}"); fi
  [ "$t" = ansible ] && close_masters "$CP_DEF"
  rc=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["rc"])' "$res")
  why=$(noop_ok "$t" "$f" "$rc") || { ok=false; cp "$f" "$OUT/logs/CHANGED-$N-$t-$kind-$tag.log"; log "N=$N $t $kind $tag: NOT a no-op: $why"; }
  cp "$f" "$OUT/logs/$N-$t-$kind.log"   # the latest run's output of each tool and kind
  printf '{"n":%s,"tag":"%s","tool":"%s","kind":"%s","loadavg":"%s","noop":%s,%s\n' \
    "$N" "$tag" "$t" "$kind" "$load" "$ok" "${res#\{}" >> "$OUT/runs.jsonl"
  $ok
}

set -- $ROUNDS
for N in $NS; do
  R=${1:-5}; shift || true
  GWENV=$WORK/gw/$N JOB=$WORK/job/$N
  export PEER_JOB=$JOB/job.json
  make_gw_env "$N" "$GWENV"
  log "N=$N: groundwork environment $GWENV ($(grep -c 'name: n' "$GWENV/nodes.yaml") nodes)"
  "$GW" apply --auto-approve "$GWENV" > "$OUT/logs/$N-groundwork-apply.log" 2>&1 || die "groundwork apply (see logs/$N-groundwork-apply.log)"
  "$GW" plan --detailed-exitcode "$GWENV" > "$OUT/logs/$N-groundwork-plan-after-apply.log" 2>&1 || die "groundwork plan after its apply: exit $?"
  log "N=$N: groundwork applied; its plan then exits 0 (no changes)"
  hssh lb1 cat /etc/firewalld/services/machine-config.xml > "$WORK/machine-config.xml"
  python3 gen_side.py "$GWENV" "$JOB" "$KEY" "$KH" "$PREFIX" "$WORK/machine-config.xml"
  validate_peers || die "the peers' rendered configs do not validate"
  log "N=$N: peers' job $JOB; its rendered configs pass named-checkzone/named-checkconf -z/dhcpd -t/haproxy -c"
  ansible-playbook -i "$JOB/inventory.ini" -e "@$JOB/job.json" site.yml > "$OUT/logs/$N-ansible-apply.log" 2>&1 ||
    die "ansible apply (see logs/$N-ansible-apply.log)"
  close_masters "$CP_DEF"
  log "N=$N: ansible applied: $(sed -n '/PLAY RECAP/,$p' "$OUT/logs/$N-ansible-apply.log" | grep -o 'changed=[0-9]*' | tr '\n' ' ')"
  pyinfra -y "$JOB/inventory.py" deploy.py > "$OUT/logs/$N-pyinfra-apply.log" 2>&1 || die "pyinfra apply (see logs/$N-pyinfra-apply.log)"
  log "N=$N: pyinfra applied (after Ansible: $(python3 pyinfra_changes.py "$OUT/logs/$N-pyinfra-apply.log" >/dev/null && echo 'no change' || echo 'changes'))"
  verify_peers; log "N=$N: the peers' files on the hosts equal the reference render; services in zone public"
  count_files
  # every variant's no-op run must report no change (this also warms ansible-fast's masters)
  for t in $TOOLS; do run_once check "$t" setup || die "N=$N: $t does not report a no-op"; done
  log "N=$N: all five no-op runs report no change"
  RUST_LOG=info NO_COLOR=1 "$GW" plan "$GWENV" 2>&1 >/dev/null | grep 'round_trips=' | head -1 > "$OUT/logs/$N-groundwork-plan-info.log" || true
  [ $SETUP_ONLY = 1 ] && continue
  for r in $(seq 1 "$R"); do
    printf '{"n":%s,"round":%s,"time":"%s","loadavg":"%s"}\n' "$N" "$r" "$(date +%T)" "$(cut -d' ' -f1-5 /proc/loadavg)" >> "$OUT/rounds.jsonl"
    run_once timed floor "r$r" || true
    for t in $TOOLS; do
      run_once timed "$t" "r$r" || true
      run_once instr "$t" "r$r" || true
    done
    log "N=$N round $r/$R done (load $(cut -d' ' -f1 /proc/loadavg))"
  done
  for r in $(seq 1 "$FRESH"); do
    fresh_round "f$r"
    log "N=$N fresh round $r/$FRESH done (load $(cut -d' ' -f1 /proc/loadavg))"
  done
done
close_masters "$CP_DEF"; close_masters "$CP_FAST"
log "done"
