#!/usr/bin/env python3
"""Where the memo hit's extra CPU comes from (issue 9, item 9): inferd's CPU
per hit under `wrk -t1 -c32` with 1 and 2 HTTP I/O threads, first with the
scheduler free to place threads on both cores (the server's threads and wrk
share them), then with the server pinned to CPU 1 and wrk to CPU 0
(`taskset`). 3 runs of 4 s each; prints and writes per-run requests/s and
server CPU microseconds per request (utime + stime over the run / requests).

    /usr/bin/python3 bench/hit_threads_exp.py [--out FILE]
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_e2e_bench as e2e  # noqa: E402
import wrk_hits_bench as w  # noqa: E402


def run(url, script, pid, pin):
    pids = e2e.process_tree(pid)
    before = e2e.sample_cpu(pids)
    cmd = (["taskset", "-c", "0"] if pin else []) + ["wrk", "-t1", "-c32", "-d4s", "-s", script, url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = e2e.sample_cpu(pids)
    n = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": n / 4, "server_us_per_req": e2e.cpu_seconds(before, after) / n * 1e6}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(e2e.ROOT, "bench", "results", "hit_threads.json"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="inferd-threads-")
    results = []
    try:
        repo, req, script = w.hit_workload(tmp)
        for pin in (False, True):
            for threads in ("1", "2"):
                cmd = (["taskset", "-c", "1"] if pin else []) + [
                    e2e.INFERD, "serve", "--model-repository", repo, "--http-port", "0",
                    "--log-level", "warn", "--http-threads", threads, "--load-model", "*"]
                p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
                url = next(l for l in p.stdout if l.startswith("inferd: listening")).split()[-1]
                for _ in range(3):  # a miss, a canonical hit (memoized), a memo hit
                    e2e.http_get(url + "/v2/models/mlp_cached/infer", req.encode())
                runs = [run(url + "/v2/models/mlp_cached/infer", script, p.pid, pin) for _ in range(3)]
                p.send_signal(signal.SIGTERM)
                p.wait()
                results.append({"pinned": pin, "http_threads": int(threads), "runs": runs})
                print("%s, http_threads %s: %s" % (
                    "server on CPU 1, wrk on CPU 0" if pin else "unpinned", threads,
                    ", ".join("%.0f req/s %.2f us" % (r["rps"], r["server_us_per_req"]) for r in runs)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(args.out, "w") as f:
        json.dump({"machine": "2 cores shared by the server and wrk -t1", "results": results}, f,
                  indent=1)


if __name__ == "__main__":
    main()
