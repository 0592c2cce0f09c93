#!/usr/bin/env bash
# Install the Debian packages the lab and the lab-backed tests need. Idempotent; no daemon is started
# on the machine itself (a policy-rc.d forbids package scripts from starting services).
#   scripts/lab-deps.sh           install what is missing
#   scripts/lab-deps.sh --check   only report what is missing (exit 1); never installs (what tests use:
#                                 they run side by side, and installing is done once, before them)
# Concurrent runs take turns (flock), and apt waits for another apt's lock instead of failing.
set -euo pipefail
mode=${1:-install}
packages=(
  openssh-server openssh-client
  bind9 bind9-utils bind9-dnsutils
  isc-dhcp-server isc-dhcp-client kea-dhcp4-server
  haproxy nginx apache2 keepalived
  iproute2 socat curl procps psmisc util-linux openssl
  # The stand-in installer (lab/openshift-install) is Python with PyYAML; it makes certificates with openssl.
  python3 python3-yaml
  firewalld nftables dbus
  policycoreutils policycoreutils-python-utils selinux-utils semodule-utils selinux-policy-default attr
  # The boot chain: a TFTP server and client, iPXE loaders and NIC ROMs, QEMU with BIOS and UEFI firmware,
  # and what the stand-in OS is built from (busybox, cpio; its kernel is downloaded, never installed).
  tftpd-hpa tftp-hpa ipxe ipxe-qemu qemu-system-x86 ovmf busybox-static cpio
  # The generated man pages are rendered with groff in the tests.
  groff-base
  # Real clients held against the API simulator: the official Python client.
  python3-kubernetes
  # The drift loop's status page is loaded in a real browser, headless, and screenshotted.
  chromium fonts-dejavu-core
)
# ...and kubectl: Debian's when none is installed (a kubectl from another source is used as it is).
command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)
# Installed: unpacked and configured. A package whose triggers are still pending (another apt run is
# finishing) is installed too: its files are in place.
missing_packages() {
  missing=()
  local p status
  for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
      "install ok installed"|"install ok triggers-pending"|"install ok triggers-awaited") ;;
      *) missing+=("$p") ;;
    esac
  done
}
missing_packages
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$mode" = --check ]; then
  echo "lab-deps: missing Debian packages: ${missing[*]}; install them with: bash scripts/lab-deps.sh (as root)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then echo "lab-deps: need root to install: ${missing[*]}" >&2; exit 1; fi
exec 9>/var/lock/groundwork-lab-deps.lock
flock 9
# Another run may have installed them while this one waited.
missing_packages
[ ${#missing[@]} -eq 0 ] && exit 0
echo "lab-deps: installing ${missing[*]}" >&2
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
