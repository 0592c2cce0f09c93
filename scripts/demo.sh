#!/usr/bin/env bash
# The main job: bring the lab up, then validate, plan, apply, and plan again (no changes) on
# environments/lab over SSH; finally fetch a served file with a real HTTP client.
# Leaves the lab running (scripts/lab.sh status|down).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
bash scripts/lab.sh up
cargo build --locked --quiet
gw=target/debug/groundwork
env=environments/lab
echo "== groundwork validate $env"; $gw validate "$env"
echo "== groundwork plan $env";     $gw plan "$env"
echo "== groundwork apply $env";    $gw apply --auto-approve "$env"
echo "== groundwork plan $env (again)"; $gw plan --detailed-exitcode "$env"
echo "== curl http://10.88.0.10/pxeboot.ipxe (from the lab bridge)"
curl -sS -o /dev/null -w 'HTTP %{http_code}, %{size_download} bytes\n' http://10.88.0.10/pxeboot.ipxe
