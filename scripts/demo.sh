#!/usr/bin/env bash
# The main job: bring up the lab with the Kubernetes API simulator behind its haproxy (hostile CSRs
# included), then validate, plan, apply (bare hosts to day 2 in one run) and plan again (no changes) on
# environments/lab over SSH; verify (with the service table), reboot every infra host and plan again;
# check with real clients through the load balancer; install again with the ignition made by the
# (stand-in) installer; finally PXE-boot a QEMU worker.
# Leaves the lab running (scripts/lab.sh status|down).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
export GW_LAB_API=sim
bash scripts/lab.sh up
cargo build --locked --quiet --workspace --bins
GW_SIM_HOSTILE="undeclared-node serving-bad-ip client-wrong-requestor duplicate-client ready-master-client" \
  bash scripts/lab.sh sim target/debug/groundwork-kubesim
gw=target/debug/groundwork
env=environments/lab
echo "== groundwork validate $env"; $gw validate "$env"
echo "== groundwork plan $env";     $gw plan "$env"
echo "== groundwork apply $env";    $gw apply --auto-approve "$env"
echo "== groundwork plan $env (again)"; $gw plan --detailed-exitcode "$env"
echo "== groundwork verify $env (probes from bastion, then the service table)"; $gw verify "$env" | sed -n '/^Services:/,$p'
echo "== reboot every infra host: what groundwork enabled comes back with no groundwork run"
for h in ns1 lb1 bastion; do bash scripts/lab.sh reboot "$h"; done
echo "   dig @10.88.0.2 api.lab.example.test: $(dig +short +time=2 @10.88.0.2 api.lab.example.test A)"
echo "== groundwork plan $env (after the reboots)"; $gw plan --detailed-exitcode "$env" | head -1
echo "== curl http://10.88.0.10/pxeboot.ipxe (from the lab bridge)"
curl -sS -o /dev/null -w 'HTTP %{http_code}, %{size_download} bytes\n' http://10.88.0.10/pxeboot.ipxe
echo "== which API server answers through the LB (https://10.88.0.4:6443): never the bootstrap"
for _ in 1 2 3; do curl -sSk https://10.88.0.4:6443/sim/whoami; done
echo "== which node answers ingress through the LB (10.88.0.4:443): an infra node"
timeout 5 bash -c 'exec 3<>/dev/tcp/10.88.0.4/443; echo hello >&3; head -1 <&3'

# The ignition made by the installer (lab/openshift-install: a STAND-IN, the real openshift-install cannot
# be downloaded here). A copy of the lab environment names the installer instead of serving .ign files and
# has no kubeconfig: one apply renders install-config.yaml, runs the installer, sets mastersSchedulable,
# serves the .ign files; the bootstrap stand-in, powered on and waiting, fetches the served bootstrap.ign
# and serves the API with the certificate in it; the gates pass with the kubeconfig the installer wrote.
echo "== ignition from the installer (stand-in): a second install, from a fresh API"
gen_env=$(mktemp -d)
cp -r "$env"/. "$gen_env/"
sed -i '/\.ign, content/d' "$gen_env/services.yaml"
sed -i -e '/^  kubeconfig:/d' \
  -e "s|^openshift:|openshift:\n  installer: $PWD/lab/openshift-install\n  install:\n    pull_secret: { env: PULL_SECRET }\n    ssh_key: { file: ssh-key.pub }|" \
  "$gen_env/openshift.yaml"
ssh-keygen -q -t ed25519 -N '' -f "$gen_env/ssh-key" && rm "$gen_env/ssh-key"
export PULL_SECRET='{"auths":{"registry.example.test":{"auth":"ZGVtbzpkZW1v"}}}'   # a demo credential
bash scripts/lab.sh sim-stop
GW_SIM_FROM_IGNITION=600 bash scripts/lab.sh sim target/debug/groundwork-kubesim &
booting=$!
$gw plan "$gen_env" | sed -n '/# installer.ignition/,/^$/p;/^Plan:/p;/^Waiting for/,/^$/p'
$gw apply --auto-approve "$gen_env" | grep -E '^(\+|~) installer|ign\]: done|✓|Verified'
wait "$booting"
echo "   served bootstrap.ign sha256=$(curl -sS http://10.88.0.10/bootstrap.ign | sha256sum | cut -d' ' -f1)"
echo "   installdir/bootstrap.ign sha256=$(sha256sum < "$gen_env/installdir/bootstrap.ign" | cut -d' ' -f1)"
echo "== groundwork plan (again: nothing regenerated)"; $gw plan --detailed-exitcode "$gen_env" | head -1
echo "== back to environments/lab (its own .ign files; the installer's run forgotten)"
$gw apply --auto-approve "$env" >/dev/null
rm -rf "$gen_env"

# The boot chain with a machine that really boots: a QEMU worker (SeaBIOS, the NIC's iPXE ROM) with w3's
# MAC leases its pin from dhcpd, fetches the chain script and its own script from nginx, then a real
# kernel and the stand-in OS (lab/standin-os.sh, in place of RHCOS), which fetches worker.ign and prints
# its digest. The lab environment serves text stand-ins as the RHCOS kernel and initramfs; a copy of it
# serves the stand-in OS for this part, and the lab is put back to environments/lab afterwards.
echo "== a worker PXE-boots: QEMU (SeaBIOS) with w3's MAC 52:54:00:00:00:33"
if ! why=$(bash scripts/lab.sh vm-probe 2>&1); then
  echo "SKIPPED: this machine cannot run the lab's virtual machines: $why"
  exit 0
fi
bash lab/standin-os.sh
boot_env=$(mktemp -d)
trap 'rm -rf "$boot_env"' EXIT
cp -r "$env"/. "$boot_env/"
mkdir "$boot_env/standin"
cp /var/cache/groundwork-lab/standin/kernel /var/cache/groundwork-lab/standin/initramfs.img "$boot_env/standin/"
sed -i -e 's|{ path: rhcos-kernel, content: [^}]*}|{ path: rhcos-kernel, source: standin/kernel }|' \
       -e 's|{ path: rhcos-initramfs.img, content: [^}]*}|{ path: rhcos-initramfs.img, source: standin/initramfs.img }|' \
       "$boot_env/services.yaml"
$gw apply --auto-approve --target 'files.*' "$boot_env"
bash scripts/lab.sh vm w3 52:54:00:00:00:33 bios
serial=/tmp/groundwork-lab/0/vm/w3.serial
for _ in $(seq 1 1200); do grep -q 'GW-STANDIN done' "$serial" 2>/dev/null && break; sleep 0.5; done
grep -aE 'iPXE initialising|https?://|GW-STANDIN' "$serial" | tr -d '\r' | sed 's/^/  console: /'
echo "   worker.ign served by nginx: sha256=$(curl -sS http://10.88.0.10/worker.ign | sha256sum | cut -d' ' -f1)"
grep -q 'GW-STANDIN done' "$serial" || { echo "the machine did not finish booting: $serial" >&2; exit 1; }
bash scripts/lab.sh vm-stop w3
$gw apply --auto-approve --target 'files.*' "$env" >/dev/null
echo "== groundwork plan $env (the lab is back to the inventory)"; $gw plan --detailed-exitcode "$env"
