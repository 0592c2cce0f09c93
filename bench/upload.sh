#!/usr/bin/env bash
# Benchmark: upload of a 1 GiB served file by `groundwork apply` over SSH to a lab host, against scp on
# the same link. Prints wall time, throughput and groundwork's peak RSS. Figures, not assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
size_mib=${SIZE_MIB:-1024}
export GW_LAB_INDEX=${GW_LAB_INDEX:-200}
. bench/lib.sh
bash scripts/lab.sh up
trap 'bash scripts/lab.sh down' EXIT
cargo build --release --locked --quiet
work=$(mktemp -d); trap 'rm -rf "$work"; bash scripts/lab.sh down' EXIT
echo "generating $size_mib MiB of random data..." >&2
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/image.raw"
mkdir -p "$work/env"
for f in environment.yaml nodes.yaml services.yaml; do
  sed -e "s/10\.88\.0\./$net./g" -e "s|/tmp/groundwork-lab/0/|$state/|g" "environments/lab/$f" > "$work/env/$f"
done
# The rest of the lab environment first (not timed), so the timed apply is the upload alone.
target/release/groundwork apply --auto-approve "$work/env" > /dev/null
python3 - "$work/env/services.yaml" "$work/image.raw" <<'PY'
import sys
p, src = sys.argv[1], sys.argv[2]
s = open(p).read().replace('    - { path: pxeboot.ipxe', '    - { path: big/image.raw, source: %s }\n    - { path: pxeboot.ipxe' % src)
open(p, 'w').write(s)
PY
measure() { # measure CMD... → "seconds maxrss_kib" (the command's stderr goes to ours)
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
dt = time.monotonic() - t
if r.returncode != 0:
    sys.exit(r.returncode)
print(f"{dt:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PY
}
ssh_opts=(-i "$state/id_ed25519" -o "UserKnownHostsFile=$state/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes)
image=/usr/share/nginx/html/big/image.raw
# Every timed copy starts alike: no copy on the host, and no dirty pages left from the previous one (the
# disk's writeback of an earlier GiB otherwise throttles the next copy by seconds).
fresh() { ssh "${ssh_opts[@]}" "root@$net.10" rm -f "$image" /srv/scp-copy.raw; sync; }
best() { sort -n | head -n 1; }
# groundwork three times (the first also hashes the new source; then its digest is cached locally).
gw_runs=(); up_runs=(); gw_rss=0
for i in 1 2 3; do
  fresh
  read -r s r < <(measure target/release/groundwork -v apply --auto-approve "$work/env" 2> "$work/apply.log")
  # The upload step alone (the engine's apply phase), without the plan before and the verify after.
  up_runs+=("$(sed 's/\x1b\[[0-9;]*m//g' "$work/apply.log" | sed -n 's/.*apply_ms=\([0-9]*\).*/\1/p' | head -n 1)")
  gw_runs+=("$s"); [ "$r" -gt "$gw_rss" ] && gw_rss=$r
  [ "$i" = 1 ] && gw_first=$s
done
gw_s=$(printf '%s\n' "${gw_runs[@]}" | best)
up_ms=$(printf '%s\n' "${up_runs[@]}" | best)
# scp as it is (data left in the host's page cache), and followed by a sync of the file on the host (the
# durability groundwork gives: fsync before rename). Best of 3 each.
scp_s=$(for _ in 1 2 3; do fresh; measure scp -q "${ssh_opts[@]}" "$work/image.raw" "root@$net.10:/srv/scp-copy.raw" | cut -d' ' -f1; done | best)
scp_then_sync="scp -q ${ssh_opts[*]} $work/image.raw root@$net.10:/srv/scp-copy.raw && ssh ${ssh_opts[*]} root@$net.10 sync /srv/scp-copy.raw"
scp_sync_s=$(for _ in 1 2 3; do fresh; measure sh -c "$scp_then_sync" | cut -d' ' -f1; done | best)
target/release/groundwork apply --auto-approve "$work/env" > /dev/null
read -r noop_s noop_rss < <(measure target/release/groundwork apply --auto-approve "$work/env")
remote=$(ssh "${ssh_opts[@]}" "root@$net.10" sha256sum /usr/share/nginx/html/big/image.raw | cut -d' ' -f1)
local_sum=$(sha256sum "$work/image.raw" | cut -d' ' -f1)
[ "$remote" = "$local_sum" ] || { echo "digest mismatch after upload" >&2; exit 1; }
python3 - "$size_mib" "$gw_s" "$gw_rss" "$scp_s" "$noop_s" "$noop_rss" "${up_ms:-0}" "$scp_sync_s" "$gw_first" <<'PY'
import sys
mib, gw, rss, scp, noop, noop_rss, up_ms, scp_sync, gw_first = int(sys.argv[1]), *map(float, sys.argv[2:])
up = up_ms / 1000
print(f"upload of {mib} MiB to a lab host over SSH (the digest of what was sent checked on the host, fsync before rename)")
print(f"{'tool':<40}{'wall s':>9}{'MiB/s':>9}{'peak RSS MiB':>14}")
print(f"{'groundwork apply, first (hashes source)':<40}{gw_first:>9.2f}{mib/gw_first:>9.1f}{'':>14}")
print(f"{'groundwork apply (best of 3)':<40}{gw:>9.2f}{mib/gw:>9.1f}{rss/1024:>14.1f}")
if up > 0:
    print(f"{'  of which the upload step':<40}{up:>9.2f}{mib/up:>9.1f}{'':>14}")
print(f"{'scp (best of 3)':<40}{scp:>9.2f}{mib/scp:>9.1f}{'-':>14}")
print(f"{'scp, then sync on the host (best of 3)':<40}{scp_sync:>9.2f}{mib/scp_sync:>9.1f}{'-':>14}")
print(f"{'groundwork apply (no-op)':<40}{noop:>9.2f}{'-':>9}{noop_rss/1024:>14.1f}")
print(f"groundwork / scp throughput: {scp/gw:.2f}x end to end" + (f", {scp/up:.2f}x for the upload step" if up > 0 else ""))
if up > 0:
    print(f"groundwork / (scp + sync), the same durability: {scp_sync/up:.2f}x for the upload step")
PY
