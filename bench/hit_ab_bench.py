#!/usr/bin/env python3
"""CPU per memo hit of several inferd builds (and nginx), interleaved.

For hit-path changes whose effect (a few tenths of a microsecond) is below
this machine's run-to-run drift: every server runs at once, idle except
for its turn, and the runs alternate server by server, so a slow period
hits all of them alike. Each run is `wrk -t1 -c32` posting the same JSON
body (every request after the first a memo hit of the cached mlp, as in
bench/wrk_hits_bench.py); per run the server's user and system CPU time
per request, from /proc/PID/task/*/stat. nginx (`--nginx`) returns
inferd's response body as a fixed string. wrk and the servers share the
machine's 2 cores.

Each build is a directory holding an `inferd` binary and its `backends/`
(or a link to them), e.g. a copy of build/ before and after a change:

    /usr/bin/python3 bench/hit_ab_bench.py OLD_DIR NEW_DIR [--nginx] \\
        [--http-threads 1] [--rounds 5] [--duration-s 4] [--out FILE] [--syscalls] \\
        [--load wrk|bench] [--connections 32]

--load bench drives the servers with `inferd bench --concurrency 64`
(the load generator of bench/cache_e2e_bench.py, from the first build)
instead of wrk; the server's CPU per request is then sampled inside the
measurement window as that benchmark does (user and system time are not
split).

--syscalls also counts, per request, the servers' system calls by kind and
their context switches (`perf stat` on the syscall tracepoints, which
costs some CPU time itself: compare CPU figures from runs without it).
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_e2e_bench as e2e  # noqa: E402
import wrk_hits_bench as wrk_hits  # noqa: E402

PATH = "/v2/models/mlp_cached/infer"


def cpu_ticks(pids):
    """(utime, stime) in clock ticks summed over the processes' threads."""
    times = wrk_hits.thread_times(pids).values()
    return sum(u for u, _ in times), sum(s for _, s in times)


# Counted per request with --syscalls (perf's tracepoints; needs root).
SYSCALLS = ["recvfrom", "recvmmsg", "sendmsg", "writev", "epoll_wait", "epoll_ctl", "futex"]


def run(url, script, pid, duration_s, syscalls=False, all_syscalls=False, connections=32):
    pids = e2e.process_tree(pid)
    wrk = ["wrk", "-t1", "-c%d" % connections, "-d%ds" % duration_s, "-s", script, url]
    perf_out = None
    if syscalls or all_syscalls:
        # perf stat around wrk, on the server's processes: counts only.
        perf_out = tempfile.mktemp(prefix="perf-stat-")
        events = ",".join((["syscalls:sys_enter_*"] if all_syscalls else
                           ["syscalls:sys_enter_" + s for s in SYSCALLS]) +
                          ["context-switches", "page-faults"])
        wrk = ["perf", "stat", "-x,", "-o", perf_out, "-e", events,
               "-p", ",".join(str(p) for p in pids), "--"] + wrk
    before = cpu_ticks(pids)
    out = subprocess.run(wrk, capture_output=True, text=True, check=True).stdout
    after = cpu_ticks(pids)
    n = int(re.search(r"(\d+) requests in", out).group(1))
    hz = os.sysconf("SC_CLK_TCK")
    user = (after[0] - before[0]) / hz / n * 1e6
    system = (after[1] - before[1]) / hz / n * 1e6
    result = {"requests": n, "user_us_per_req": user, "sys_us_per_req": system,
              "cpu_us_per_req": user + system}
    if perf_out:
        per_request = {}
        with open(perf_out) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) > 2 and fields[0].isdigit():
                    name = fields[2].replace("syscalls:sys_enter_", "")
                    if int(fields[0]) > 0 or name in SYSCALLS:
                        per_request[name] = int(fields[0]) / n
        os.unlink(perf_out)
        result["per_request"] = per_request
    return result


def run_bench(url, pid, args, tmp, request_file):
    """One `inferd bench --concurrency 64` run against url; CPU per request
    of the server (process pid) inside the measurement window."""
    level = e2e.bench(url, "mlp_cached", args, tmp,
                      ["--concurrency", "64", "--input-file", request_file], server_pid=pid)
    return {"throughput_rps": level["throughput_rps"], "errors": level["errors"],
            "cpu_us_per_req": level["cpu"]["server_us_per_req"],
            "loadgen_us_per_req": level["cpu"]["loadgen_us_per_req"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs="+", help="directories with an inferd binary and backends/")
    ap.add_argument("--nginx", action="store_true", help="also nginx, as the reference")
    ap.add_argument("--http-threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration-s", type=int, default=4)
    ap.add_argument("--out", help="write the runs and medians as JSON")
    ap.add_argument("--connections", type=int, default=32,
                    help="wrk's connections (-c); --load bench uses 64")
    ap.add_argument("--load", choices=["wrk", "bench"], default="wrk",
                    help="the load generator: wrk -t1 -c32, or inferd bench --concurrency 64")
    ap.add_argument("--syscalls", action="store_true",
                    help="also count system calls and context switches per request (perf stat)")
    ap.add_argument("--all-syscalls", action="store_true",
                    help="as --syscalls, every kind of system call (those made at all)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="inferd-hit-ab-")
    repo, req, script = wrk_hits.hit_workload(tmp)
    request_file = os.path.join(tmp, "request.json")
    with open(request_file, "w") as f:
        f.write(req)
    args.warmup_s = 1  # for e2e.bench (--load bench)
    bench_binary = os.path.join(os.path.abspath(args.builds[0]), "inferd")
    servers = []  # (name, process, url)
    try:
        response = metadata = None
        for build in args.builds:
            e2e.INFERD = os.path.join(os.path.abspath(build), "inferd")
            proc, url = e2e.start_inferd(repo, ["--http-threads", str(args.http_threads)])
            servers.append((build, proc, url))
            metadata = e2e.http_get(url + "/v2/models/mlp_cached")
            for _ in range(3):  # a miss, a canonical hit (memoized), then a memo hit
                response = e2e.http_get(url + PATH, req.encode())
        if args.nginx:
            port = e2e.free_port()
            proc = e2e.start_nginx(tmp, port, metadata, response, workers=args.http_threads)
            servers.append(("nginx", proc, "http://127.0.0.1:%d" % port))
        runs = {name: [] for name, _, _ in servers}
        for _ in range(args.rounds):
            for name, proc, url in servers:
                if args.load == "bench":
                    e2e.INFERD = bench_binary  # the load generator
                    runs[name].append(run_bench(url, proc.pid, args, tmp, request_file))
                else:
                    runs[name].append(run(url + PATH, script, proc.pid, args.duration_s,
                                          args.syscalls, args.all_syscalls, args.connections))
    finally:
        for name, proc, _ in servers:
            proc.send_signal(signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
            proc.wait(timeout=60)
    result = {"command": " ".join([os.path.relpath(sys.argv[0], e2e.ROOT)] + sys.argv[1:]),
              "machine": "2 cores shared by the servers and wrk",
              "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "http_threads": args.http_threads, "load": args.load,
              "connections": 64 if args.load == "bench" else args.connections, "servers": {}}
    first = runs[servers[0][0]]
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs)
               for k in ("cpu_us_per_req", "user_us_per_req", "sys_us_per_req") if k in rs[0]}
        # Against the first build, round by round (the drift cancels out).
        ratio = statistics.median(r["cpu_us_per_req"] / f["cpu_us_per_req"]
                                  for r, f in zip(rs, first))
        counted = []
        if args.syscalls or args.all_syscalls:
            counted = sorted(set(k for r in rs for k in r["per_request"]) | set(SYSCALLS))
            med.update({k: statistics.median(r["per_request"].get(k, 0) for r in rs)
                        for k in counted})
        result["servers"][name] = {"median": med, "median_round_ratio_to_first": ratio, "runs": rs}
        if "nginx" in runs and name != "nginx" and len(rs) >= 2:
            # Against nginx, round by round: the median and the quartiles.
            q = statistics.quantiles((r["cpu_us_per_req"] / n["cpu_us_per_req"]
                                      for r, n in zip(rs, runs["nginx"])), n=4,
                                     method="inclusive")
            result["servers"][name]["round_ratio_to_nginx"] = {"q1": q[0], "median": q[1],
                                                               "q3": q[2]}
        split = (" (user %.2f, sys %.2f)" % (med["user_us_per_req"], med["sys_us_per_req"])
                 if "user_us_per_req" in med else "")
        print("%-28s CPU %.2f us/req%s, %.3f x the first; runs %s"
              % (name, med["cpu_us_per_req"], split, ratio,
                 " ".join("%.2f" % r["cpu_us_per_req"] for r in rs)))
        if "round_ratio_to_nginx" in result["servers"][name]:
            q = result["servers"][name]["round_ratio_to_nginx"]
            print("%-28s x nginx round by round: median %.3f (quartiles %.3f, %.3f)"
                  % ("", q["median"], q["q1"], q["q3"]))
        if counted:
            print("%-28s per request: %s" % ("", ", ".join(
                "%s %.3f" % (k, med[k]) for k in counted)))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
