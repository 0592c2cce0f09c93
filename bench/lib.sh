# Shared by the bench scripts; source it after exporting GW_LAB_INDEX. Sets $net and $state: the lab's
# network prefix and state directory, as scripts/lab.sh places them (GW_LAB_STATE honoured).
net=10.88.$GW_LAB_INDEX
state=${GW_LAB_STATE:-/tmp/groundwork-lab}/$GW_LAB_INDEX

# scaled_env N DIR: environments/lab's infra hosts and services, N nodes (1 bootstrap, 3 masters, 3 infra,
# the rest workers) on the lab's /22 (a /21 above 1000 nodes: GW_LAB_INDEX must then be a multiple of 8),
# router on the infra nodes.
scaled_env() {
  local n=$1 env=$2 f bits=22
  [ "$n" -gt 1000 ] && bits=21
  mkdir -p "$env"
  for f in environment.yaml services.yaml; do
    sed -e "s/10\.88\.0\./$net./g" -e "s|/tmp/groundwork-lab/0/|$state/|g" -e "s|$net.0/24|$net.0/$bits|g" "environments/lab/$f" > "$env/$f"
  done
  sed -i 's/^loadbalancer:.*//' "$env/services.yaml"
  printf '\nloadbalancer:\n  ingress: infra\n' >> "$env/services.yaml"
  python3 - "$n" "$net" "$bits" > "$env/nodes.yaml" <<'PY'
import sys, ipaddress
n, net, bits = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
base = ipaddress.ip_address(net + ".0")
taken = {2, 3, 4, 10}
size = 2 ** (32 - bits)
ips = (base + i for i in range(11, size - 4) if i not in taken and (i % 256) not in (0, 255))
roles = ["bootstrap"] + ["master"] * 3 + ["infra"] * 3 + ["worker"] * (n - 7)
print("nodes:")
for i, role in enumerate(roles):
    mac = "52:54:01:%02x:%02x:%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255)
    print(f"  - {{ name: n{i:04d}, role: {role}, mac: \"{mac}\", ip: {next(ips)} }}")
PY
}

# one_change DIR: move the last node to a free address of the network (and back on the next call): one A
# record, one PTR record and one dhcpd pin change.
one_change() {
  python3 - "$1/nodes.yaml" <<'PY'
import ipaddress, re, sys
path = sys.argv[1]
lines = open(path).read().splitlines()
last = lines[-1]
m = re.search(r"ip: ([0-9.]+) \}( # moved from ([0-9.]+))?$", last)
ip, back = m.group(1), m.group(3)
if back:
    lines[-1] = last[: m.start()] + f"ip: {back} }}"
else:
    new = ipaddress.ip_address(ip) + 1
    while int(new) % 256 in (0, 255):
        new += 1
    lines[-1] = last[: m.start()] + f"ip: {new} }} # moved from {ip}"
open(path, "w").write("\n".join(lines) + "\n")
PY
}

# ssh_floor: one OpenSSH round trip to the lab's bastion (`ssh host true`), in seconds.
ssh_floor() {
  local t0 t1
  t0=$(date +%s.%N)
  ssh -i "$state/id_ed25519" -o UserKnownHostsFile="$state/known_hosts" -o StrictHostKeyChecking=yes \
    -o BatchMode=yes -F none "root@$net.10" true
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l | xargs printf '%.3f\n'
}
