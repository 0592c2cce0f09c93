# Shared by the bench scripts; source it after exporting GW_LAB_INDEX. Sets $net and $state: the lab's
# network prefix and state directory, as scripts/lab.sh places them (GW_LAB_STATE honoured).
net=10.88.$GW_LAB_INDEX
state=${GW_LAB_STATE:-/tmp/groundwork-lab}/$GW_LAB_INDEX

# scaled_env N DIR: environments/lab's infra hosts and services, N nodes (1 bootstrap, 3 masters, 3 infra,
# the rest workers) on the lab's /22, router on the infra nodes.
scaled_env() {
  local n=$1 env=$2 f
  mkdir -p "$env"
  for f in environment.yaml services.yaml; do
    sed -e "s/10\.88\.0\./$net./g" -e "s|/tmp/groundwork-lab/0/|$state/|g" -e "s|$net.0/24|$net.0/22|g" "environments/lab/$f" > "$env/$f"
  done
  sed -i 's/^loadbalancer:.*//' "$env/services.yaml"
  printf '\nloadbalancer:\n  ingress: infra\n' >> "$env/services.yaml"
  python3 - "$n" "$net" > "$env/nodes.yaml" <<'PY'
import sys, ipaddress
n, net = int(sys.argv[1]), sys.argv[2]
base = ipaddress.ip_address(net + ".0")
taken = {2, 3, 4, 10}
ips = (base + i for i in range(11, 1020) if i not in taken and (i % 256) not in (0, 255))
roles = ["bootstrap"] + ["master"] * 3 + ["infra"] * 3 + ["worker"] * (n - 7)
print("nodes:")
for i, role in enumerate(roles):
    mac = "52:54:01:%02x:%02x:%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255)
    print(f"  - {{ name: n{i:04d}, role: {role}, mac: \"{mac}\", ip: {next(ips)} }}")
PY
}
