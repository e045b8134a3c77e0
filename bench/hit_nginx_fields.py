#!/usr/bin/env python3
"""Does the reference answer with as much as inferd? nginx as the hit
benchmarks run it (bench/cache_e2e_bench.py: `return 200` with inferd's
body), the same nginx also sending inferd's four extra response fields
(X-Inferd-Cache, Age, X-Request-Id, traceparent, with `add_header`), and
inferd itself, under `wrk -t1 -c32` posting the memo-hit workload
(bench/wrk_hits_bench.py). Rounds alternate between the three servers;
per request: server CPU, context switches and epoll_wait calls
(`perf stat`, needs root), and CPU per round against plain nginx. wrk and
the servers share the machine's 2 cores.

    /usr/bin/python3 bench/hit_nginx_fields.py [--build build] [--rounds 20] [--out FILE]
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_e2e_bench as e2e  # noqa: E402
import hit_ab_bench as ab  # noqa: E402
import wrk_hits_bench as wrk_hits  # noqa: E402

EXTRA_FIELDS = ("add_header X-Inferd-Cache hit-memory; add_header Age 0; "
                "add_header X-Request-Id 4bf92f3577b34da6a3ce929d0e0e4736; "
                "add_header traceparent 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01; ")


def start_nginx_with_fields(metadata, response):
    """An nginx whose infer answer also carries inferd's extra fields."""
    tmp = tempfile.mkdtemp(prefix="inferd-nginx-fields-")
    port = e2e.free_port()
    first = e2e.start_nginx(tmp, port, metadata, response, workers=2)  # writes the config
    first.send_signal(signal.SIGQUIT)
    first.wait()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf) as f:
        text = f.read()
    text = text.replace("location = /v2/models/mlp_cached/infer {",
                        "location = /v2/models/mlp_cached/infer { " + EXTRA_FIELDS)
    with open(conf, "w") as f:
        f.write(text)
    proc = subprocess.Popen(["/usr/sbin/nginx", "-c", conf, "-p", tmp])
    url = "http://127.0.0.1:%d" % port
    for _ in range(200):  # bounded wait for the listener
        try:
            e2e.http_get(url + "/v2/models/mlp_cached")
            return proc, url
        except OSError:
            time.sleep(0.01)  # not a synchronization of measured work
    raise RuntimeError("nginx with the extra fields did not listen")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build", help="directory with an inferd binary and backends/")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--duration-s", type=int, default=2)
    ap.add_argument("--out", help="write the runs and medians as JSON")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="inferd-nginx-fields-")
    repo, req, script = wrk_hits.hit_workload(tmp)
    e2e.INFERD = os.path.join(os.path.abspath(args.build), "inferd")
    servers = []
    try:
        proc, url = e2e.start_inferd(repo, ["--http-threads", "2"])
        servers.append(("inferd", proc, url))
        metadata = e2e.http_get(url + "/v2/models/mlp_cached")
        for _ in range(3):  # a miss, a canonical hit (memoized), then a memo hit
            response = e2e.http_get(url + ab.PATH, req.encode())
        port = e2e.free_port()
        servers.append(("nginx", e2e.start_nginx(tmp, port, metadata, response, workers=2),
                        "http://127.0.0.1:%d" % port))
        servers.append(("nginx+fields",) + start_nginx_with_fields(metadata, response))
        runs = {name: [] for name, _, _ in servers}
        for _ in range(args.rounds):
            for name, p, u in servers:
                runs[name].append(ab.run(u + ab.PATH, script, p.pid, args.duration_s, syscalls=True))
    finally:
        for name, p, _ in servers:
            p.send_signal(signal.SIGTERM if name == "inferd" else signal.SIGQUIT)
            p.wait(timeout=60)
    result = {"command": " ".join([os.path.relpath(sys.argv[0], e2e.ROOT)] + sys.argv[1:]),
              "machine": "2 cores shared by the servers and wrk",
              "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "servers": {}}
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs)
               for k in ("cpu_us_per_req", "user_us_per_req", "sys_us_per_req")}
        for k in ("context-switches", "epoll_wait"):
            med[k] = statistics.median(r["per_request"][k] for r in rs)
        med["round_ratio_to_nginx"] = statistics.median(
            r["cpu_us_per_req"] / n["cpu_us_per_req"] for r, n in zip(rs, runs["nginx"]))
        result["servers"][name] = {"median": med, "runs": rs}
        print("%-14s CPU %.2f us/req (user %.2f, sys %.2f), switches %.3f, epoll_wait %.3f per "
              "request; x nginx round by round %.3f"
              % (name, med["cpu_us_per_req"], med["user_us_per_req"], med["sys_us_per_req"],
                 med["context-switches"], med["epoll_wait"], med["round_ratio_to_nginx"]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
