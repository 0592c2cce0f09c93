#!/usr/bin/env bash
# Install the Debian packages the lab and the lab-backed tests need. Idempotent; no daemon is started
# on the machine itself (a policy-rc.d forbids package scripts from starting services).
set -euo pipefail
packages=(
  openssh-server openssh-client
  bind9 bind9-utils bind9-dnsutils
  isc-dhcp-server isc-dhcp-client kea-dhcp4-server
  haproxy nginx
  iproute2 socat curl procps psmisc util-linux openssl
  firewalld nftables dbus
  policycoreutils policycoreutils-python-utils selinux-utils semodule-utils selinux-policy-default attr
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then echo "lab-deps: need root to install: ${missing[*]}" >&2; exit 1; fi
echo "lab-deps: installing ${missing[*]}" >&2
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
