#!/usr/bin/env python3
"""report_side.py OUT -- markdown tables from side-by-side.sh's raw data (OUT/runs.jsonl, OUT/rounds.jsonl)."""
import json, statistics, sys

OUT = sys.argv[1]
TOOLS = ["groundwork", "pyinfra", "pyinfra-fast", "ansible", "ansible-fast"]
runs = [json.loads(l) for l in open(f"{OUT}/runs.jsonl")]
rounds = [json.loads(l) for l in open(f"{OUT}/rounds.jsonl")]
ns = sorted({r["n"] for r in runs if r["kind"] == "timed"})
med = statistics.median


def sel(n, tool, kind):
    return [r for r in runs if r["n"] == n and r["tool"] == tool and r["kind"] == kind]


print("| N | tool | runs | median s | min s | max s | × groundwork (median) | × groundwork (min) | CPU s (median) "
      "| peak tree RSS MB (max) | peak tree PSS MB (max) | largest process RSS MB | no-op runs |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for n in ns:
    g = [r["wall_s"] for r in sel(n, "groundwork", "timed")]
    for t in TOOLS:
        tr, ir = sel(n, t, "timed"), sel(n, t, "instr")
        if not tr:
            continue
        w = [r["wall_s"] for r in tr]
        cpu = [r["user_s"] + r["sys_s"] for r in tr]
        ok = sum(r["noop"] for r in tr + ir)
        print(f"| {n} | {t} | {len(w)} | {med(w):.3f} | {min(w):.3f} | {max(w):.3f} | {med(w) / med(g):.1f} | "
              f"{min(w) / min(g):.1f} | {med(cpu):.2f} | {max(r['peak_tree_rss_mb'] for r in ir):.1f} | "
              f"{max(r['peak_tree_pss_mb'] for r in ir):.1f} | {max(r['max_proc_rss_mb'] for r in tr + ir):.1f} | "
              f"{ok}/{len(tr) + len(ir)} |")

print("\nPaired by round: each run's wall time divided by groundwork's in the same round; median (range)\n")
print("| N | " + " | ".join(TOOLS[1:]) + " | floor | groundwork / floor |")
print("|---:|" + "---:|" * (len(TOOLS) + 1))
for n in ns:
    by = {(r["tool"], r["tag"]): r["wall_s"] for r in runs if r["n"] == n and r["kind"] == "timed"}
    tags = sorted({tag for (_, tag) in by})
    cells = []
    for t in TOOLS[1:] + ["floor"]:
        q = [by[(t, g)] / by[("groundwork", g)] for g in tags if (t, g) in by and ("groundwork", g) in by]
        cells.append(f"{med(q):.1f} ({min(q):.1f}–{max(q):.1f})")
    q = [by[("groundwork", g)] / by[("floor", g)] for g in tags if ("floor", g) in by and ("groundwork", g) in by]
    cells.append(f"{med(q):.2f} ({min(q):.2f}–{max(q):.2f})")
    print(f"| {n} | " + " | ".join(cells) + " |")

print("\nFloor: `ssh -i KEY -o UserKnownHostsFile=KH root@ns1 true`, one per round\n")
print("| N | runs | median s | min s | max s |")
print("|---:|---:|---:|---:|---:|")
allf = []
for n in ns:
    f = [r["wall_s"] for r in sel(n, "floor", "timed")]
    allf += f
    print(f"| {n} | {len(f)} | {med(f):.3f} | {min(f):.3f} | {max(f):.3f} |")
print(f"| all | {len(allf)} | {med(allf):.3f} | {min(allf):.3f} | {max(allf):.3f} |")

print("\nLoad: /proc/loadavg 1-min value at the start of each round, and at the start of each timed run\n")
print("| N | rounds | round start min–max | round start median | timed runs min–max | time of first–last round |")
print("|---:|---:|---|---:|---|---|")
for n in ns:
    l = [float(r["loadavg"].split()[0]) for r in rounds if r["n"] == n]
    lt = [float(r["loadavg"].split()[0]) for r in runs if r["n"] == n and r["kind"] == "timed"]
    ts = [r["time"] for r in rounds if r["n"] == n]
    print(f"| {n} | {len(l)} | {min(l):.2f}–{max(l):.2f} | {med(l):.2f} | {min(lt):.2f}–{max(lt):.2f} | {ts[0]}–{ts[-1]} |")

print("\nInstrumented runs (rss_tree.py samples the tree every 20 ms; its wall time includes that overhead)\n")
print("| N | tool | runs | median wall s | peak tree RSS MB (median) | peak tree PSS MB (median) |")
print("|---:|---|---:|---:|---:|---:|")
for n in ns:
    for t in TOOLS:
        ir = sel(n, t, "instr")
        if ir:
            print(f"| {n} | {t} | {len(ir)} | {med([r['wall_s'] for r in ir]):.3f} | "
                  f"{med([r['peak_tree_rss_mb'] for r in ir]):.1f} | {med([r['peak_tree_pss_mb'] for r in ir]):.1f} |")

print("\nEvery timed run (wall s), by round\n")
for n in ns:
    tags = sorted({r["tag"] for r in runs if r["n"] == n and r["kind"] == "timed"}, key=lambda s: int(s[1:]))
    print(f"N={n}: " + "; ".join(
        t + " " + " ".join(f"{r['wall_s']:.2f}" for tag in tags for r in sel(n, t, "timed") if r["tag"] == tag)
        for t in ["floor"] + TOOLS))

fresh_ns = sorted({r["n"] for r in runs if r["kind"] == "fresh"})
if fresh_ns:
    print("\nFresh apply (--fresh): everything each tool manages made on hosts without it; wall s, and each run "
          "divided by groundwork's in the same round (median, range)\n")
    print("| N | tool | runs | median s | min s | × groundwork (paired median, range) | loadavg at the runs |")
    print("|---:|---|---:|---:|---:|---:|---|")
    for n in fresh_ns:
        g = {r["tag"]: r["wall_s"] for r in sel(n, "groundwork", "fresh")}
        for t in TOOLS:
            fr = sel(n, t, "fresh")
            if not fr:
                continue
            w = [r["wall_s"] for r in fr]
            q = [r["wall_s"] / g[r["tag"]] for r in fr if r["tag"] in g]
            loads = [float(r["loadavg"].split()[0]) for r in fr]
            print(f"| {n} | {t} | {len(w)} | {med(w):.3f} | {min(w):.3f} | {med(q):.2f} ({min(q):.2f}–{max(q):.2f}) | "
                  f"{min(loads):.2f}–{max(loads):.2f} |")
