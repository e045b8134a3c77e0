#!/bin/bash
# Where the second HTTP thread's extra CPU per memo hit goes (issue 9, item
# 9): `perf record` of inferd under `wrk -t1 -c32` (the cached mlp, every
# request a memo hit) with 1 and then 2 HTTP threads, 5 s each, and per
# symbol the difference in CPU nanoseconds per request (the symbol's share
# of the samples x the CPU per request given as arguments, measured by
# bench/wrk_hits_bench.py). wrk and the server share the 2 cores.
#
#   bash bench/hit_threads_perf.sh CPU_US_1_THREAD CPU_US_2_THREADS > OUT
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
US1=$1
US2=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp" "$ROOT" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2] + "/bench")
import cache_e2e_bench as e2e, wrk_hits_bench as w
tmp = sys.argv[1]
e2e.copy_model("mlp", tmp + "/models", "mlp_cached", e2e.CACHE_TABLE)
req = json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [0.5] * 16}]})
w.lua_script(tmp + "/post.lua", req)
open(tmp + "/req.json", "w").write(req)
PY
for T in 1 2; do
  "$ROOT/build/inferd" serve --model-repository "$tmp/models" --http-port 0 --log-level warn \
    --http-threads $T --load-model '*' > "$tmp/out$T" 2>&1 &
  PID=$!
  for _ in $(seq 100); do grep -q listening "$tmp/out$T" && break; sleep 0.1; done
  URL=$(grep listening "$tmp/out$T" | awk '{print $NF}')/v2/models/mlp_cached/infer
  for _ in 1 2 3; do curl -s -d @"$tmp/req.json" "$URL" > /dev/null; done
  wrk -t1 -c32 -d8s -s "$tmp/post.lua" "$URL" > "$tmp/wrk$T" &
  WP=$!
  sleep 2
  perf record -F 2000 -g -o "$tmp/perf$T.data" -p $PID -- sleep 5 > /dev/null 2>&1
  wait $WP
  echo "# $T HTTP thread(s): $(grep Requests/sec "$tmp/wrk$T")"
  kill $PID
  wait $PID || true
done
/usr/bin/python3 - "$tmp" "$US1" "$US2" <<'PY'
import re, subprocess, sys
tmp, us1, us2 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def syms(f):
    out = subprocess.run(["perf", "report", "-i", f, "--no-children", "--sort", "sym", "--stdio",
                          "-g", "none"], capture_output=True, text=True).stdout
    d = {}
    for line in out.splitlines():
        m = re.match(r"\s+([0-9.]+)%\s+\[(.)\]\s+(.*)", line)
        if m:
            d[m.group(3).strip()[:100]] = (float(m.group(1)), m.group(2))
    return d
a, b = syms(tmp + "/perf1.data"), syms(tmp + "/perf2.data")
rows = []
for k in set(a) | set(b):
    x = a.get(k, (0, ""))[0] * us1 * 10
    y = b.get(k, (0, ""))[0] * us2 * 10
    rows.append((y - x, x, y, (a.get(k) or b.get(k))[1], k))
rows.sort(reverse=True)
print("# ns per request: 2 threads - 1 thread, 1 thread, 2 threads, [k]ernel or [.]user, symbol")
for r in rows[:30]:
    print("%7.1f %7.1f %7.1f [%s] %s" % r)
tot = {}
for d, x, y, kind, k in rows:
    t = tot.setdefault(kind, [0, 0])
    t[0] += x
    t[1] += y
for kind, (x, y) in sorted(tot.items()):
    print("# total [%s]: 1 thread %.0f ns, 2 threads %.0f ns per request" % (kind, x, y))
PY
