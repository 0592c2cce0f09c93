#!/usr/bin/env bash
# The OS the lab's virtual machines boot in place of RHCOS (which cannot be downloaded here): a real
# Debian cloud kernel and a tiny busybox initramfs. Its init reads /proc/cmdline, leases an address by
# DHCP, fetches coreos.inst.ignition_url (and the image or rootfs URL) over HTTP, prints the MAC, the
# address, each URL and the sha256 of what it fetched on the serial console, and powers off.
#
#   lab/standin-os.sh [DIR]    build DIR/kernel and DIR/initramfs.img (default /var/cache/groundwork-lab/standin)
#
# Idempotent: built once, then reused. The kernel package is downloaded (apt-get download) and unpacked
# with dpkg -x into the cache: it is never installed into this machine's /boot.
set -euo pipefail
out=${1:-/var/cache/groundwork-lab/standin}
if [ -s "$out/kernel" ] && [ -s "$out/initramfs.img" ]; then exit 0; fi
for tool in busybox cpio gzip dpkg apt-get; do
  command -v "$tool" >/dev/null || { echo "standin-os: $tool is missing (bash scripts/lab-deps.sh installs it)" >&2; exit 1; }
done
[ -x /bin/busybox ] && file_busybox=/bin/busybox || file_busybox=$(command -v busybox)
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -s "$out/kernel" ] && [ -s "$out/initramfs.img" ]; then exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The kernel: the package the cloud kernel metapackage points at, unpacked.
pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
[ -n "$pkg" ] || { echo "standin-os: no linux-image-*-cloud-amd64 package known to apt" >&2; exit 1; }
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >/dev/null)
dpkg -x "$work"/"$pkg"_*.deb "$work/k"
ver=${pkg#linux-image-}
cp "$work/k/boot/vmlinuz-$ver" "$work/kernel"

# The initramfs: busybox, the virtio network modules in load order, an init.
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp "$file_busybox" "$root/bin/busybox"
mods=$work/k/lib/modules/$ver/kernel
for m in virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev virtio/virtio_pci_modern_dev virtio/virtio_pci \
         net/net_failover net/virtio_net; do
  f=$(find "$mods" -name "$(basename "$m").ko*" | head -1)
  [ -n "$f" ] || continue
  case "$f" in
    *.xz) xz -dc "$f" > "$root/lib/modules/$(basename "$m").ko" ;;
    *.zst) zstd -qdc "$f" > "$root/lib/modules/$(basename "$m").ko" ;;
    *) cp "$f" "$root/lib/modules/" ;;
  esac
done
f=$(find "$mods" -name 'failover.ko*' -path '*core*' | head -1)
[ -z "$f" ] && f=$(find "$mods" -name 'failover.ko*' | head -1)
if [ -n "$f" ]; then case "$f" in *.xz) xz -dc "$f" > "$root/lib/modules/failover.ko" ;; *) cp "$f" "$root/lib/modules/failover.ko" ;; esac; fi

cat > "$root/udhcpc.sh" <<'S'
#!/bin/busybox sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    echo "$ip" > /tmp/leased ;;
esac
S
cat > "$root/init" <<'S'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
say() { echo "GW-STANDIN $*" > /dev/console; }
say "booted: $(uname -r); the OS is a stand-in for RHCOS (kernel, firmware and network chain are real)"
for m in virtio_ring virtio failover virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci net_failover virtio_net; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done
n=0; while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
ip link set lo up; ip link set eth0 up
mac=$(cat /sys/class/net/eth0/address)
udhcpc -i eth0 -n -q -t 20 -T 1 -s /udhcpc.sh >/dev/null 2>&1 || say "no DHCP lease"
say "mac=$mac ip=$(cat /tmp/leased 2>/dev/null)"
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    coreos.inst.ignition_url=*|coreos.inst.image_url=*|coreos.live.rootfs_url=*)
      url=${arg#*=}
      if wget -q -O /tmp/fetched "$url"; then
        say "fetched ${arg%%=*} $url sha256=$(sha256sum /tmp/fetched | cut -c1-64)"
      else
        say "could not fetch ${arg%%=*} $url"
      fi ;;
  esac
done
say "done"
poweroff -f
S
chmod 0755 "$root/init" "$root/udhcpc.sh"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$work/initramfs.img"
mv "$work/kernel" "$out/kernel"
mv "$work/initramfs.img" "$out/initramfs.img"
echo "standin-os: $out/kernel ($ver) and $out/initramfs.img" >&2
