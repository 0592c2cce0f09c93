#!/usr/bin/env bash
# groundwork lab: real daemons in Linux network namespaces on a private bridge.
#
#   scripts/lab.sh up|down|status|env     (GW_LAB_INDEX=N selects lab N: bridge gwlabN, 10.88.N.0/24)
#   scripts/lab.sh sim BINARY             start the Kubernetes API simulator (needs GW_LAB_API=sim at up);
#                                         with GW_SIM_FROM_IGNITION=SECONDS, from the served bootstrap.ign
#   scripts/lab.sh sim-stop               stop it
#   scripts/lab.sh vm NAME MAC FIRMWARE   a QEMU machine on the bridge that PXE-boots (bios, uefi, uefi-norom)
#   scripts/lab.sh vm-stop NAME | vm-probe  end one; say whether VMs can run here at all
#   scripts/lab.sh jump-only [HOST...]    ssh on HOSTs reachable only through the bastion (none: lift it)
#
# Infra hosts (bastion, ns1, lb1, and dns0: the site's intranet DNS, outside the inventory) get their own
# network, mount, UTS and PID namespaces, their own view of /etc, /var, /srv, ... and their own sshd; node
# stand-ins (bs, m1-m3, w1-w2, i1-i2) get a network namespace with TCP listeners on 6443/22623/80/443; w3 has no address and boots by DHCP with a pinned MAC. With
# GW_LAB_API=sim nothing listens on 6443 until `sim` starts the API simulator (groundwork-kubesim) on the
# bootstrap and master stand-ins, so the API is reached through the lab's real haproxy. Nothing
# routes out: the namespaces have no default route. `down` removes everything `up` made and signals only
# processes the lab started (each host's PID namespace init, and processes inside the lab's namespaces).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
idx=${GW_LAB_INDEX:-0}
[[ "$idx" =~ ^[0-9]+$ ]] && [ "$idx" -le 250 ] || { echo "GW_LAB_INDEX must be 0..250" >&2; exit 2; }
state=${GW_LAB_STATE:-/tmp/groundwork-lab}/$idx
net=10.88.$idx
br=gwlab$idx
pfx=gw$idx-

# name ip roles mac
infra=(
  "bastion $net.10 http,tftp 52:54:00:88:$(printf %02x "$idx"):10"
  "ns1 $net.2 dns,dhcp 52:54:00:88:$(printf %02x "$idx"):02"
  "lb1 $net.3 lb 52:54:00:88:$(printf %02x "$idx"):03"
  "dns0 $net.53 upstream 52:54:00:88:$(printf %02x "$idx"):53"
)
# GW_LAB_HA=1 at up: a second load balancer and a second name/DHCP server (environments/lab-ha). The VIPs
# (.4 external, .6 internal) then belong to no host: keepalived moves them.
# A lab that is up keeps the mode it was made with (every later command reads it from its state).
ha_infra=(
  "lb2 $net.5 lb 52:54:00:88:$(printf %02x "$idx"):05"
  "ns2 $net.7 dns,dhcp 52:54:00:88:$(printf %02x "$idx"):07"
)
ha=${GW_LAB_HA:-$(cat "$state/ha" 2>/dev/null || echo 0)}
case "$ha" in 0|1) ;; *) echo "GW_LAB_HA must be 0 or 1" >&2; exit 2 ;; esac
[ "$ha" = 1 ] && infra+=("${ha_infra[@]}")
nodes=(
  "bs $net.11 52:54:00:00:$(printf %02x "$idx"):11"
  "m1 $net.21 52:54:00:00:$(printf %02x "$idx"):21"
  "m2 $net.22 52:54:00:00:$(printf %02x "$idx"):22"
  "m3 $net.23 52:54:00:00:$(printf %02x "$idx"):23"
  "w1 $net.31 52:54:00:00:$(printf %02x "$idx"):31"
  "w2 $net.32 52:54:00:00:$(printf %02x "$idx"):32"
  "w3 dhcp 52:54:00:00:$(printf %02x "$idx"):33"
  "i1 $net.41 52:54:00:00:$(printf %02x "$idx"):41"
  "i2 $net.42 52:54:00:00:$(printf %02x "$idx"):42"
)
# GW_LAB_CLUSTERS=2 at up: the nodes of a second cluster, b (environments: tests/data/two-clusters), and
# its VIP .8 on lb1, beside the lab's own cluster. Kept like GW_LAB_HA.
second_nodes=(
  "b0 $net.60 52:54:00:01:$(printf %02x "$idx"):60"
  "b1 $net.61 52:54:00:01:$(printf %02x "$idx"):61"
  "b2 $net.62 52:54:00:01:$(printf %02x "$idx"):62"
  "b3 $net.63 52:54:00:01:$(printf %02x "$idx"):63"
)
clusters=${GW_LAB_CLUSTERS:-$(cat "$state/clusters" 2>/dev/null || echo 1)}
case "$clusters" in 1|2) ;; *) echo "GW_LAB_CLUSTERS must be 1 or 2" >&2; exit 2 ;; esac
[ "$clusters" = 2 ] && nodes+=("${second_nodes[@]}")
api_mode=${GW_LAB_API:-stand-in}
case "$api_mode" in stand-in|sim) ;; *) echo "GW_LAB_API must be stand-in or sim" >&2; exit 2 ;; esac
lb_external=$net.4

log() { echo "lab[$idx]: $*" >&2; }

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

init_pid() { cat "$state/hosts/$1/init.pid" 2>/dev/null; }

# The init of a host is ours if its pidfile names a live process whose argv is our host-init.sh.
init_alive() {
  local pid; pid=$(init_pid "$1") || return 1
  [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -q "lab/host-init.sh $1 "
}

# Run a command inside an infra host (all its namespaces).
enter() { local h=$1; shift; nsenter -t "$(init_pid "$h")" -n -m -u -p -- "$@"; }

link() { # link NAME MAC : veth pair, host end on the bridge, other end eth0 in the namespace
  local ns=$pfx$1 mac=$2 veth=v$idx$1
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$br" up
  ip -n "$ns" link set eth0 address "$mac"
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD... : poll a condition
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then log "timed out waiting for $what"; return 1; fi
    sleep 0.05
  done
}

# Up in any API mode.
is_running() {
  [ -f "$state/up" ] || return 1
  local h; for e in "${infra[@]}"; do read -r h _ <<<"$e"; init_alive "$h" || return 1; done
}

# Up in the API mode asked for (GW_LAB_API).
is_up() {
  is_running && [ "$(cat "$state/api-mode" 2>/dev/null)" = "$api_mode" ] && [ "$(cat "$state/ha" 2>/dev/null)" = "$ha" ]
}

up() {
  # GW_LAB_DEPS=check (what the tests set): never install from here, only say what is missing.
  if [ "${GW_LAB_DEPS:-install}" = check ]; then bash "$here/scripts/lab-deps.sh" --check; else bash "$here/scripts/lab-deps.sh"; fi
  if is_up; then log "already up ($state)"; return 0; fi
  down_quiet
  mkdir -p "$state/hosts"
  chmod 0755 "$state"
  ssh-keygen -q -t ed25519 -N '' -C "groundwork-lab-$idx" -f "$state/id_ed25519"
  # A host certificate authority: every infra host's key is also signed by it (sshd offers the
  # certificate only to clients that ask for one), and known_hosts_ca trusts it for the lab's network.
  ssh-keygen -q -t ed25519 -N '' -C "groundwork-lab-$idx-ca" -f "$state/ssh_ca"
  echo "@cert-authority $net.* $(cut -d' ' -f1,2 "$state/ssh_ca.pub")" > "$state/known_hosts_ca"
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=groundwork-lab-node" \
    -keyout "$state/node.key" -out "$state/node.crt" 2>/dev/null
  cat "$state/node.crt" "$state/node.key" > "$state/node.pem"
  cat > "$state/http-200" <<'S'
#!/bin/sh
# Node stand-in: read the request line, answer 200 with this listener's name.
read -r request
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n%s\n' "$1"
S
  chmod +x "$state/http-200"
  cat > "$state/tcp-name" <<'S'
#!/bin/sh
# Ingress stand-in: wait for the client's line, answer with this listener's name.
read -r request
printf '%s\n' "$1"
S
  chmod +x "$state/tcp-name"
  : > "$state/known_hosts"
  ip link add "$br" type bridge
  ip addr add "$net.1/24" dev "$br"
  ip link set "$br" up
  for e in "${infra[@]}"; do
    read -r h ip roles mac <<<"$e"
    ip netns add "$pfx$h"; link "$h" "$mac"
    ip -n "$pfx$h" addr add "$ip/24" dev eth0
    [ "$h" = lb1 ] && [ "$ha" != 1 ] && ip -n "$pfx$h" addr add "$lb_external/24" dev eth0
    [ "$h" = lb1 ] && [ "$clusters" = 2 ] && ip -n "$pfx$h" addr add "$net.8/24" dev eth0
    local hd="$state/hosts/$h"; mkdir -p "$hd"
    ssh-keygen -q -t ed25519 -N '' -C "$h" -f "$hd/ssh_host_ed25519_key"
    ssh-keygen -q -s "$state/ssh_ca" -I "$h" -h -n "$ip,$h" -V -5m:+30d "$hd/ssh_host_ed25519_key.pub"
    cp "$state/id_ed25519.pub" "$hd/authorized_keys"
    echo "$ip $(cut -d' ' -f1,2 "$hd/ssh_host_ed25519_key.pub")" >> "$state/known_hosts"
    ip netns exec "$pfx$h" unshare --mount --uts --pid --fork --mount-proc \
      "$here/lab/host-init.sh" "$h" "$ip" "$roles" "$hd" "$here/lab" > "$hd/init.log" 2>&1 &
    local outer=$!
    wait_for 5 "$h init" pgrep -P "$outer"
    pgrep -P "$outer" > "$hd/init.pid"
  done
  for e in "${nodes[@]}"; do
    read -r h ip mac <<<"$e"
    ip netns add "$pfx$h"; link "$h" "$mac"
    [ "$ip" = dhcp ] && continue
    ip -n "$pfx$h" addr add "$ip/24" dev eth0
    # API and machine-config stand-ins speak TLS and answer any HTTP request (/readyz, /healthz) with
    # 200 and NAME/PORT, so haproxy's health checks pass; ingress stand-ins answer NAME/PORT over TCP.
    for port in 6443 22623; do
      [ "$port" = 6443 ] && [ "$api_mode" = sim ] && continue
      ip netns exec "$pfx$h" setsid socat -t 10 -T 10 \
        "OPENSSL-LISTEN:$port,bind=$ip,fork,reuseaddr,cert=$state/node.pem,verify=0" \
        "EXEC:$state/http-200 $h/$port" \
        >/dev/null 2>&1 < /dev/null &
    done
    for port in 80 443; do
      ip netns exec "$pfx$h" setsid socat -t 10 -T 10 "TCP-LISTEN:$port,bind=$ip,fork,reuseaddr" "EXEC:$state/tcp-name $h/$port" \
        >/dev/null 2>&1 < /dev/null &
    done
  done
  for e in "${infra[@]}"; do
    read -r h ip _ <<<"$e"
    if ! wait_for 20 "$h services" test -f "$state/hosts/$h/ready"; then cat "$state/hosts/$h/init.log" >&2; return 1; fi
    wait_for 10 "sshd on $h" bash -c "exec 3<>/dev/tcp/$ip/22"
  done
  for e in "${nodes[@]}"; do
    read -r h ip _ <<<"$e"
    [ "$ip" = dhcp ] || wait_for 10 "listeners on $h" bash -c "exec 3<>/dev/tcp/$ip/443 && exec 4<>/dev/tcp/$ip/22623"
  done
  cat > "$state/dhclient-script" <<'S'
#!/bin/sh
# Lab nodes only need the lease (read from the lease file): never touch this machine's resolv.conf.
exit 0
S
  chmod +x "$state/dhclient-script"
  echo "$api_mode" > "$state/api-mode"
  echo "$ha" > "$state/ha"
  echo "$clusters" > "$state/clusters"
  touch "$state/up"
  log "up: bridge $br $net.1/24, API $api_mode, state $state"
}

# Kill only what the lab started: each host's namespace init (its PID namespace dies with it), and
# processes inside the lab's network namespaces.
down_quiet() {
  local e h
  vm_stop_all
  local all=("${infra[@]}")
  [ "$ha" = 1 ] || all+=("${ha_infra[@]}")   # whatever mode the lab was made in
  for e in "${all[@]}"; do
    read -r h _ <<<"$e"
    if init_alive "$h"; then kill -KILL "$(init_pid "$h")" 2>/dev/null || true; fi
  done
  local every_node=("${nodes[@]}")
  [ "$clusters" = 2 ] || every_node+=("${second_nodes[@]}")   # whatever mode the lab was made in
  for e in "${all[@]}" "${every_node[@]}"; do
    read -r h _ <<<"$e"
    if ns_exists "$pfx$h"; then
      local pids; pids=$(ip netns pids "$pfx$h" 2>/dev/null || true)
      [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
      ip netns del "$pfx$h" 2>/dev/null || true
    fi
    # A namespace is destroyed only once its last process is gone, and its veth with it: delete our end
    # now so that an immediate `up` of the same lab does not find the name taken.
    ip link del "v$idx$h" 2>/dev/null || true
  done
  ip link show "$br" >/dev/null 2>&1 && ip link del "$br"
  if [ -d "$state" ]; then rm -rf "$state"; fi
}

down() {
  down_quiet
  log "down"
}

status() {
  if ! is_running; then echo "lab $idx: down"; return 3; fi
  echo "lab $idx: up (bridge $br, $net.0/24, API $(cat "$state/api-mode" 2>/dev/null), state $state)"
  local e h ip
  for e in "${infra[@]}"; do
    read -r h ip roles _ <<<"$e"
    local units; units=$(enter "$h" sh -c 'for u in /etc/gwlab/units/*; do u=${u##*/}; printf "%s=%s " "$u" "$(systemctl is-active "$u")"; done')
    echo "  $h $ip [$roles] $units"
  done
  for e in "${nodes[@]}"; do read -r h ip mac <<<"$e"; echo "  $h $ip $mac"; done
}

# A virtual machine on the lab bridge that network-boots as a declared node would (docs/lab.md):
#   lab.sh vm NAME MAC bios|uefi|uefi-norom
# bios: SeaBIOS and the NIC's iPXE ROM (ipxe-qemu); uefi: OVMF with the same ROM; uefi-norom: OVMF's own
# PXE client (the NIC ROM disabled), which must fetch the UEFI loader over TFTP. QEMU under TCG (KVM is
# not relied on), 512 MiB, a tap device on the lab's bridge with the node's MAC; the serial console goes
# to $state/vm/NAME.serial. A node stand-in that holds the same MAC has its link taken down first (two
# ports with one MAC on a bridge confuse it). The machine powers off by itself; `vm-stop NAME` ends it.
vm() {
  local name=${1:?usage: lab.sh vm NAME MAC bios|uefi|uefi-norom} mac=${2:?MAC} firmware=${3:-bios}
  is_running || { log "lab is not up"; return 1; }
  [[ "$name" =~ ^[a-z0-9]{1,6}$ ]] || { log "vm name: 1-6 lowercase letters or digits"; return 2; }
  [[ "$mac" =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || { log "vm MAC: six lowercase hex pairs"; return 2; }
  command -v qemu-system-x86_64 >/dev/null || { log "qemu-system-x86_64 is missing (scripts/lab-deps.sh)"; return 1; }
  local fw=()
  local nic="virtio-net-pci,netdev=n0,mac=$mac"
  case "$firmware" in
    bios) fw=(-boot n) ;;
    uefi) fw=(-bios /usr/share/ovmf/OVMF.fd) ;;
    uefi-norom) fw=(-bios /usr/share/ovmf/OVMF.fd); nic="$nic,romfile=" ;;
    *) log "firmware: bios, uefi or uefi-norom"; return 2 ;;
  esac
  vm_stop "$name"
  local e h ip m
  for e in "${nodes[@]}"; do
    read -r h ip m <<<"$e"
    [ "$m" = "$mac" ] && ip -n "$pfx$h" link set eth0 down 2>/dev/null || true
  done
  local tap=gw${idx}vm$name
  ip tuntap add dev "$tap" mode tap
  ip link set dev "$tap" master "$br" up
  mkdir -p "$state/vm"
  : > "$state/vm/$name.serial"
  setsid qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot -monitor none \
    -serial "file:$state/vm/$name.serial" "${fw[@]}" \
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" -device "$nic" \
    > "$state/vm/$name.log" 2>&1 < /dev/null &
  echo $! > "$state/vm/$name.pid"
  log "vm $name ($mac, $firmware) started: serial console $state/vm/$name.serial"
}

# Can this machine run the lab's VMs at all? Prints why not and fails; scripts/test.sh then skips the VM
# tests and says so.
# A reboot of one lab host: every process in its PID namespace stops, its /run is emptied, then it
# boots: what is enabled starts. Its network, /etc and /var stay (the disk and the wiring survive).
reboot_host() {
  local h=$1
  init_alive "$h" || { echo "lab[$idx]: no running host $h" >&2; return 2; }
  enter "$h" /usr/local/bin/systemctl gwlab-reboot
  log "rebooted $h"
}

vm_probe() {
  command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 is missing"; return 1; }
  [ -c /dev/net/tun ] || { echo "/dev/net/tun is missing: no tap devices"; return 1; }
  [ -r /usr/share/ovmf/OVMF.fd ] || { echo "/usr/share/ovmf/OVMF.fd is missing"; return 1; }
  local out
  if ! out=$(echo quit | timeout 60 qemu-system-x86_64 -accel tcg -machine pc -display none -nodefaults -S -monitor stdio 2>&1); then
    echo "QEMU does not start under TCG: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
    return 1
  fi
}

# End a VM the lab started (by its pidfile, checked to be our qemu) and remove its tap.
vm_stop() {
  local name=$1 pid
  pid=$(cat "$state/vm/$name.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "qemu-system-x86_64.*gw${idx}vm$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    local n=0; while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$state/vm/$name.pid"
  ip link del "gw${idx}vm$name" 2>/dev/null || true
}

vm_stop_all() {
  local f t
  for f in "$state"/vm/*.pid; do [ -e "$f" ] && vm_stop "$(basename "$f" .pid)"; done
  # Taps of this lab whose pidfile is gone.
  for t in $(ip -o link show 2>/dev/null | grep -o "gw${idx}vm[a-z0-9]*" | sort -u); do ip link del "$t" 2>/dev/null || true; done
  return 0
}

# The bootstrap machine boots from its served ignition: wait up to SECONDS until bastion serves a
# bootstrap.ign that carries the API's identity (the installer's serving certificate and key, and the
# admin client CA under /opt/openshift/tls/), fetched with curl from the bootstrap's own namespace as the
# machine would, then write those files where the simulator reads them.
bootstrap_identity() {
  local secs=$1 out=$state/bs-tls
  rm -rf "$out"; mkdir -p -m 0700 "$out"
  fetch_identity() {
    ip netns exec "${pfx}bs" curl -sf --max-time 2 "http://$net.10/bootstrap.ign" -o "$out/bootstrap.ign" &&
    python3 - "$out" <<'PY'
import base64, json, os, sys
out = sys.argv[1]
ign = json.load(open(os.path.join(out, "bootstrap.ign")))
want = {"/opt/openshift/tls/kube-apiserver-lb-server.crt": "server.crt",
        "/opt/openshift/tls/kube-apiserver-lb-server.key": "server.key",
        "/opt/openshift/tls/admin-kubeconfig-ca-bundle.crt": "client-ca.crt"}
found = {}
for f in ign.get("storage", {}).get("files", []):
    if f.get("path") in want:
        src = f["contents"]["source"]
        found[want[f["path"]]] = base64.b64decode(src.split(",", 1)[1])
if len(found) != len(want):
    sys.exit(1)
for name, data in found.items():
    fd = os.open(os.path.join(out, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data); os.close(fd)
PY
  }
  if ! wait_for "$secs" "bastion to serve a bootstrap.ign with the API's identity" fetch_identity; then
    return 1
  fi
  rm -f "$out/bootstrap.ign"
  log "the bootstrap booted from its served ignition: serving the installer's certificate"
}

# The API simulator: runs in the bootstrap stand-in's namespace and also listens on the masters', so
# haproxy balances real TLS connections to it. Writes $state/kubeconfig once it serves.
#   GW_SIM_BOOTSTRAP_MS, GW_SIM_STEP_MS: timeline delays; GW_SIM_HOSTILE: space-separated hostile cases (docs/simulator.md);
#   GW_SIM_BOOKMARK_MS: how often an idle watch gets a bookmark; GW_SIM_WATCH_WINDOW: events kept per collection.
#   GW_SIM_FROM_IGNITION=SECONDS: first wait (up to SECONDS) for bastion to serve the installer's
#   bootstrap.ign, and serve with the identity in it (the generated kubeconfig then authenticates).
sim() {
  local bin=${1:?usage: lab.sh sim BINARY}
  is_up || { log "lab is not up with GW_LAB_API=sim (scripts/lab.sh down, then GW_LAB_API=sim scripts/lab.sh up)"; return 1; }
  if [ -f "$state/sim.pid" ] && kill -0 "$(cat "$state/sim.pid")" 2>/dev/null && [ -f "$state/kubeconfig" ]; then
    log "simulator already running"; return 0
  fi
  rm -f "$state/kubeconfig"
  local identity=()
  if [ -n "${GW_SIM_FROM_IGNITION:-}" ]; then
    bootstrap_identity "${GW_SIM_FROM_IGNITION}" || return 1
    identity=(--tls-cert "$state/bs-tls/server.crt" --tls-key "$state/bs-tls/server.key" --client-ca "$state/bs-tls/client-ca.crt")
  fi
  local args=("${identity[@]}" --domain lab.example.test --server "https://$lb_external:6443" --kubeconfig "$state/kubeconfig"
    --san "$lb_external" --san "$net.3" --san api.lab.example.test --san api-int.lab.example.test
    --bootstrap-delay-ms "${GW_SIM_BOOTSTRAP_MS:-2000}" --step-ms "${GW_SIM_STEP_MS:-300}"
    --bookmark-interval-ms "${GW_SIM_BOOKMARK_MS:-10000}" --watch-window "${GW_SIM_WATCH_WINDOW:-100}")
  local e h ip role
  for e in "${nodes[@]}"; do
    read -r h ip _ <<<"$e"
    case "$h" in bs|m*) args+=(--listen "$pfx$h/$ip:6443") ;; esac
    [ "$ip" = dhcp ] && ip=$net.33   # w3's address comes from its DHCP pin
    case "$h" in m*) role=master ;; w*) role=worker ;; i*) role=infra ;; *) continue ;; esac
    args+=(--node "$role:$h.lab.example.test:$ip")
  done
  for x in ${GW_SIM_HOSTILE:-}; do args+=(--hostile "$x"); done
  ip netns exec "${pfx}bs" setsid "$bin" "${args[@]}" > "$state/sim.log" 2>&1 < /dev/null &
  echo $! > "$state/sim.pid"
  if ! wait_for 20 "the API simulator" test -f "$state/kubeconfig"; then cat "$state/sim.log" >&2; return 1; fi
  log "simulator up: https://$lb_external:6443 through haproxy, kubeconfig $state/kubeconfig"
}

# Stop the lab's API simulator: only the process the lab started (its pid file, and that process is the
# simulator running in this lab's bootstrap namespace), never anything else.
sim_stop() {
  local pid; pid=$(cat "$state/sim.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && grep -qa groundwork-kubesim "/proc/$pid/cmdline" 2>/dev/null &&
     ip netns pids "${pfx}bs" 2>/dev/null | grep -qx "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_for 10 "the simulator to stop" sh -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$state/sim.pid" "$state/kubeconfig"
}

# ProxyJump for real: `jump-only HOST...` makes the hosts' sshd unreachable from the machine running the
# lab (the bridge address .1) while the bastion (and every other lab host) still reaches it; `jump-only`
# with no host lifts it everywhere. An nftables table of the host's own network namespace, so firewalld's
# tables there are untouched.
jump_only() {
  is_running || { log "lab is not up"; return 1; }
  local e h
  for e in "${infra[@]}"; do
    read -r h _ <<<"$e"
    ip netns exec "$pfx$h" nft delete table inet gwlab_jump 2>/dev/null || true
  done
  for h in "$@"; do
    ns_exists "$pfx$h" || { log "no lab host $h"; return 2; }
    ip netns exec "$pfx$h" nft -f - <<NFT
table inet gwlab_jump {
  chain input {
    type filter hook input priority -10; policy accept;
    ip saddr $net.1 tcp dport 22 reject with tcp reset
  }
}
NFT
  done
  [ $# -eq 0 ] || log "ssh on $* answers only from inside the lab (the bastion), not from $net.1"
}

# Print paths for environments/lab (sourced by tests and the demo).
env_vars() {
  echo "GW_LAB_NET=$net"
  echo "GW_LAB_STATE_DIR=$state"
  echo "GW_LAB_KEY=$state/id_ed25519"
  echo "GW_LAB_KNOWN_HOSTS=$state/known_hosts"
  echo "GW_LAB_KUBECONFIG=$state/kubeconfig"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) env_vars ;;
  sim) shift; sim "$@" ;;
  sim-stop) sim_stop ;;
  vm) shift; vm "$@" ;;
  vm-stop) shift; vm_stop "${1:?usage: lab.sh vm-stop NAME}" ;;
  vm-probe) vm_probe ;;
  reboot) shift; reboot_host "${1:?usage: lab.sh reboot HOST}" ;;
  jump-only) shift; jump_only "$@" ;;
  *) echo "usage: $0 up|down|status|env|sim BINARY|sim-stop|vm NAME MAC FIRMWARE|vm-stop NAME|vm-probe|reboot HOST|jump-only [HOST...]" >&2; exit 2 ;;
esac
