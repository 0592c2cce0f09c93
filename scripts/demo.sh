#!/usr/bin/env bash
# The main job: bring up the lab with the Kubernetes API simulator behind its haproxy (hostile CSRs
# included), then validate, plan, apply (empty hosts to day 2 in one run) and plan again (no changes) on
# environments/lab over SSH; finally check with real clients through the load balancer.
# Leaves the lab running (scripts/lab.sh status|down).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
export GW_LAB_API=sim
bash scripts/lab.sh up
cargo build --locked --quiet --bins
GW_SIM_HOSTILE="undeclared-node serving-bad-ip client-wrong-requestor duplicate-client ready-master-client" \
  bash scripts/lab.sh sim target/debug/groundwork-kubesim
gw=target/debug/groundwork
env=environments/lab
echo "== groundwork validate $env"; $gw validate "$env"
echo "== groundwork plan $env";     $gw plan "$env"
echo "== groundwork apply $env";    $gw apply --auto-approve "$env"
echo "== groundwork plan $env (again)"; $gw plan --detailed-exitcode "$env"
echo "== curl http://10.88.0.10/pxeboot.ipxe (from the lab bridge)"
curl -sS -o /dev/null -w 'HTTP %{http_code}, %{size_download} bytes\n' http://10.88.0.10/pxeboot.ipxe
echo "== which API server answers through the LB (https://10.88.0.4:6443): never the bootstrap"
for _ in 1 2 3; do curl -sSk https://10.88.0.4:6443/sim/whoami; done
echo "== which node answers ingress through the LB (10.88.0.4:443): an infra node"
timeout 5 bash -c 'exec 3<>/dev/tcp/10.88.0.4/443; echo hello >&3; head -1 <&3'
