#!/usr/bin/env bash
# Benchmark: upload of a 1 GiB served file by `groundwork apply` over SSH to a lab host, against scp on
# the same link. Prints wall time, throughput and groundwork's peak RSS. Figures, not assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
size_mib=${SIZE_MIB:-1024}
export GW_LAB_INDEX=${GW_LAB_INDEX:-200}
bash scripts/lab.sh up
trap 'bash scripts/lab.sh down' EXIT
cargo build --release --locked --quiet
work=$(mktemp -d); trap 'rm -rf "$work"; bash scripts/lab.sh down' EXIT
state=/tmp/groundwork-lab/$GW_LAB_INDEX
net=10.88.$GW_LAB_INDEX
echo "generating $size_mib MiB of random data..." >&2
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/image.raw"
mkdir -p "$work/env"
for f in environment.yaml nodes.yaml services.yaml; do
  sed -e "s/10\.88\.0\./$net./g" -e "s|/tmp/groundwork-lab/0/|$state/|g" "environments/lab/$f" > "$work/env/$f"
done
python3 - "$work/env/services.yaml" "$work/image.raw" <<'PY'
import sys
p, src = sys.argv[1], sys.argv[2]
s = open(p).read().replace('    - { path: pxeboot.ipxe', '    - { path: big/image.raw, source: %s }\n    - { path: pxeboot.ipxe' % src)
open(p, 'w').write(s)
PY
measure() { # measure CMD... → "seconds maxrss_kib"
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
dt = time.monotonic() - t
if r.returncode != 0:
    sys.stderr.write(r.stderr.decode()); sys.exit(r.returncode)
print(f"{dt:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PY
}
read -r gw_s gw_rss < <(measure target/release/groundwork apply --auto-approve "$work/env")
ssh_opts=(-i "$state/id_ed25519" -o "UserKnownHostsFile=$state/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes)
read -r scp_s scp_rss < <(measure scp -q "${ssh_opts[@]}" "$work/image.raw" "root@$net.10:/srv/scp-copy.raw")
read -r noop_s noop_rss < <(measure target/release/groundwork apply --auto-approve "$work/env")
remote=$(ssh "${ssh_opts[@]}" "root@$net.10" sha256sum /usr/share/nginx/html/big/image.raw | cut -d' ' -f1)
local_sum=$(sha256sum "$work/image.raw" | cut -d' ' -f1)
[ "$remote" = "$local_sum" ] || { echo "digest mismatch after upload" >&2; exit 1; }
python3 - "$size_mib" "$gw_s" "$gw_rss" "$scp_s" "$noop_s" "$noop_rss" <<'PY'
import sys
mib, gw, rss, scp, noop, noop_rss = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"upload of {mib} MiB to a lab host over SSH (digest verified on the host)")
print(f"{'tool':<28}{'wall s':>9}{'MiB/s':>9}{'peak RSS MiB':>14}")
print(f"{'groundwork apply':<28}{gw:>9.2f}{mib/gw:>9.1f}{rss/1024:>14.1f}")
print(f"{'scp':<28}{scp:>9.2f}{mib/scp:>9.1f}{'-':>14}")
print(f"{'groundwork apply (no-op)':<28}{noop:>9.2f}{'-':>9}{noop_rss/1024:>14.1f}")
print(f"groundwork / scp throughput: {scp/gw:.2f}x")
PY
