#!/usr/bin/env bash
# Hit ratios on the recorded traces (issue 8, item 2): runs hit_ratio_sim on
# the four traces of /work/shared/traces (unit size, with the exact-repeat
# memo column), on the synthetic Zipf workloads, on cloudPhysicsIO in bytes
# mode, and the libCacheSim cross-check. Markdown to stdout; one JSON file
# per run into OUT_DIR.
#
#   bench/hit_ratio_traces.sh [OUT_DIR]    (default bench/results/hit_ratio-DATE/)
#
# Environment: TRACES_DIR (default ../../shared/traces from this script),
# SIM (default build/bench/hit_ratio_sim; build it with
# `ninja -C build hit_ratio_sim`). Traces are decompressed once into
# build/traces/. Exit status: the simulator's (1 when the libCacheSim LRU
# check fails).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
TRACES_DIR=${TRACES_DIR:-$(dirname "$0")/../../shared/traces}
SIM=${SIM:-$root/build/bench/hit_ratio_sim}
out=${1:-$root/bench/results/hit_ratio-$(date +%F)}
plain=$root/build/traces

if [ ! -x "$SIM" ]; then
  echo "no simulator at $SIM; build it: ninja -C build hit_ratio_sim" >&2
  exit 1
fi
mkdir -p "$out" "$plain"

# name format file
traces=(
  "cloudPhysicsIO oracle cloudPhysicsIO.oracleGeneral.bin"
  "scarab-recs be64 scarab-recs.trace"
  "orm-busy be32 orm-busy.trace"
  "web12 be32 web12.trace"
)
for t in "${traces[@]}"; do
  read -r _ _ file <<<"$t"
  if [ ! -f "$plain/$file" ]; then
    xz -dc "$TRACES_DIR/$file.xz" >"$plain/$file.tmp"
    mv "$plain/$file.tmp" "$plain/$file"
  fi
done

start=$(date +%s)
echo "# Hit ratios: LRU, inferd (MemoryCache), S3-FIFO (old), OPT"
echo
echo "$(date -u +%FT%TZ); commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown);" \
  "$SIM; miss ratios (lower is better), cold start, every request counted."
for t in "${traces[@]}"; do
  read -r name format file <<<"$t"
  "$SIM" --trace "$plain/$file" --format "$format" --name "$name" --memo --json "$out/$name.json"
done
"$SIM" --memo --json "$out/synthetic.json"
"$SIM" --trace "$plain/cloudPhysicsIO.oracleGeneral.bin" --format oracle --name cloudPhysicsIO \
  --bytes --memo --json "$out/cloudPhysicsIO-bytes.json"
"$SIM" --trace "$plain/cloudPhysicsIO.oracleGeneral.bin" --format oracle --name cloudPhysicsIO \
  --check-libcachesim --json "$out/libcachesim-check.json"
# What the served choices buy: the same unit-size rows with one choice
# changed (`--variant`), and the memo's copy stored with a plain Put.
for variant in static-window caffeine-sketch arc-ghosts memo-plain memo-unbounded; do
  mkdir -p "$out/$variant"
  case "$variant" in
    memo-plain) args=(--memo-plain) ;;
    memo-unbounded) args=(--memo --copy-share 1) ;;
    *) args=(--variant "$variant") ;;
  esac
  for t in "${traces[@]}"; do
    read -r name format file <<<"$t"
    "$SIM" --trace "$plain/$file" --format "$format" --name "$name" "${args[@]}" \
      --json "$out/$variant/$name.json" >/dev/null
  done
  "$SIM" "${args[@]}" --json "$out/$variant/synthetic.json" >/dev/null
done

# The goal of issue 8 is over every unit-size row of every trace at once.
python3 - "$out" <<'PY'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
def summary(directory, column):
    rows = []
    for name in ["cloudPhysicsIO", "scarab-recs", "orm-busy", "web12", "synthetic"]:
        for r in json.loads((directory / f"{name}.json").read_text())["rows"]:
            if not r["excepted"]:
                lru, ours = r["lru"]["miss_ratio"], r[column]["miss_ratio"]
                rows.append(((ours - lru) / lru * 100, f'{r["trace"]} at {r["fraction"] * 100:g}%',
                             r["trace"].startswith("zipf")))
    worst = max(rows)
    median = statistics.median(-change for change, _, _ in rows)
    real = statistics.median(-change for change, _, synthetic in rows if not synthetic)
    return (f"worst excess {worst[0]:+.2f}% ({worst[1]}), median reduction {median:.2f}% "
            f"(recorded traces alone: {real:.2f}%), {len(rows)} rows")
print("\n## All unit-size rows (excepted rows left out): inferd against LRU\n")
print("Goal: at most +1% on every row, median reduction at least 10%.\n")
print("| configuration | result |\n|---|---|")
print(f"| served policy | {summary(out, 'inferd')} |")
print(f"| served policy, with the exact-repeat memo | {summary(out, 'inferd_memo')} |")
for variant, text in [("static-window", "window fixed at 1% (no adaptation)"),
                      ("caffeine-sketch", "Caffeine's sketch: plain count-min, halved every 10 x ids"),
                      ("arc-ghosts", "ghost lists as large as the cache (ARC)")]:
    print(f"| {text} | {summary(out / variant, 'inferd')} |")
print(f"| memo copies stored with PutCopy but no share limit (copy share 1.0) | {summary(out / 'memo-unbounded', 'inferd_memo')} |")
print(f"| memo copies stored with a plain Put (before PutCopy) | {summary(out / 'memo-plain', 'inferd_memo')} |")
PY
echo
echo "Total: $(($(date +%s) - start)) s; JSON in $out"
