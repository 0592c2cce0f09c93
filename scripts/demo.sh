#!/usr/bin/env bash
# The main job: plan, apply, and plan again (no changes) on the built-in environment.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
cargo build --locked --quiet
gw=target/debug/groundwork
env=environments/demo
rm -rf "$env/.hosts"
echo "== groundwork validate $env"; $gw validate "$env"
echo "== groundwork plan $env";     $gw plan "$env"
echo "== groundwork apply $env";    $gw apply --auto-approve "$env"
echo "== groundwork plan $env (again)"; $gw plan --detailed-exitcode "$env"
