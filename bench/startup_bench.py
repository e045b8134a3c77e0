#!/usr/bin/env python3
"""Startup benchmark of issue 9: how fast `inferd serve` is ready, and how
much memory it holds, when its repository has no TorchScript model (the
libtorch backend plugin is never loaded), against the same server with the
example TorchScript models (the plugin and libtorch loaded) measured in the
same run.

For each repository, --repeats times: start `inferd serve --http-port 0`,
poll GET /v2/health/ready until 200 (time from exec to the first 200), then
read VmRSS and RssAnon of the process and whether libtorch is mapped; stop
it with SIGTERM. Reports the median of each figure. The goals: the empty
and the streaming-only repositories are ready in <= 50 ms and resident in
<= 20 MiB. The poller shares the machine's 2 cores with the server.

    /usr/bin/python3 bench/startup_bench.py [--repeats 7] [--out FILE]
"""

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("INFERD_BUILD_DIR", os.path.join(ROOT, "build"))
INFERD = os.path.join(BUILD, "inferd")
MODELS = os.path.join(ROOT, "examples", "models")

STREAM_CONFIG = """backend = "stream_test"
decoupled = true
[[input]]
name = "control"
datatype = "INT32"
dims = [3]
[[output]]
name = "index"
datatype = "INT32"
dims = [1]
"""


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^%s:\s+(\d+) kB" % field, f.read(), re.M)
    return int(m.group(1)) if m else 0


def one_start(repo, extra=()):
    t0 = time.monotonic()
    proc = subprocess.Popen([INFERD, "serve", "--model-repository", repo, "--http-port", "0",
                             "--log-level", "warn"] + list(extra),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r":(\d+)\s*$", line).group(1))
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/v2/health/ready")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    break
            except OSError:
                pass
        ready_ms = (time.monotonic() - t0) * 1000
        with open("/proc/%d/maps" % proc.pid) as f:
            torch_mapped = "libtorch" in f.read()
        return {"ready_ms": ready_ms, "rss_mib": status_kib(proc.pid, "VmRSS") / 1024,
                "anon_mib": status_kib(proc.pid, "RssAnon") / 1024, "libtorch_mapped": torch_mapped}
    finally:
        proc.terminate()
        proc.wait(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "startup.json"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="inferd-startup-")
    try:
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        streaming = os.path.join(tmp, "streaming")
        os.makedirs(os.path.join(streaming, "s", "1"))
        with open(os.path.join(streaming, "s", "config.toml"), "w") as f:
            f.write(STREAM_CONFIG)
        # Since issue 11 models load on their first request: the example
        # repository is ready as fast as an empty one unless preloaded.
        repos = {"empty": (empty, []), "stream_test only": (streaming, []),
                 "examples, lazy (default)": (MODELS, []),
                 "examples, --load-model '*'": (MODELS, ["--load-model", "*"])}
        results = {}
        for name, (repo, extra) in repos.items():
            runs = [one_start(repo, extra) for _ in range(args.repeats)]
            results[name] = {
                "runs": runs,
                "median_ready_ms": statistics.median(r["ready_ms"] for r in runs),
                "median_rss_mib": statistics.median(r["rss_mib"] for r in runs),
                "median_anon_mib": statistics.median(r["anon_mib"] for r in runs),
                "libtorch_mapped": any(r["libtorch_mapped"] for r in runs),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {"machine": "%s, %d cores (shared with the poller)" % (platform.node(), os.cpu_count()),
           "binary": INFERD, "repeats": args.repeats, "results": results}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print("| repository | ready (median ms) | VmRSS (median MiB) | anonymous (MiB) | libtorch mapped |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print("| %s | %.1f | %.1f | %.1f | %s |" % (name, r["median_ready_ms"], r["median_rss_mib"],
                                                   r["median_anon_mib"], r["libtorch_mapped"]))


if __name__ == "__main__":
    main()
