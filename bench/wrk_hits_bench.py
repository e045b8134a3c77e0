#!/usr/bin/env python3
"""Hit path against an independent load generator (issue 9, item 9): wrk
with one thread (-t1) posting the same JSON body (a Lua script) at
concurrency 32 and 64, to inferd (every request after the first a memo hit
of the cached mlp) and to nginx returning inferd's response body as a fixed
string, alternating nginx / inferd run by run. For each run: requests/s from
wrk, the server's CPU time per request (utime + stime of the server's
process tree over the run, sampled as bench/cache_e2e_bench.py does), and
how that CPU time was spread over the server's threads (nginx: worker
processes).

Two configurations, each server with the same number of I/O threads: one
(nginx `worker_processes 1`, inferd `--http-threads 1`) and two (nginx
`worker_processes 2`, inferd's default). With two workers and no
`reuseport`, nginx leaves the spread of wrk's 32 or 64 connections to the
kernel's wake-ups: in some runs one worker takes them all (and costs what
one worker costs), in others they split; the per-worker CPU shows which.
The goal: inferd's CPU per hit <= 1.1 x nginx's. wrk and the servers share
the machine's 2 cores.

    /usr/bin/python3 bench/wrk_hits_bench.py [--repeats 5] [--duration-s 5] [--out FILE]
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_e2e_bench as e2e  # noqa: E402


def lua_script(path, body):
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n'
                % json.dumps(body))


def hit_workload(tmp):
    """The memo-hit workload of the hit-path benchmarks, under `tmp`: a
    repository with the cached mlp, the request body, and a wrk script
    posting it. Returns (repo, body, script)."""
    repo = os.path.join(tmp, "models")
    e2e.copy_model("mlp", repo, "mlp_cached", e2e.CACHE_TABLE)
    req = json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                                  "data": [0.5] * 16}]})
    script = os.path.join(tmp, "post.lua")
    lua_script(script, req)
    return repo, req, script


def thread_times(pids):
    """(utime, stime) in clock ticks per thread of the given processes,
    {"pid/tid": (utime, stime)}."""
    out = {}
    for pid in pids:
        for stat in glob.glob("/proc/%d/task/*/stat" % pid):
            try:
                with open(stat) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out["%d/%s" % (pid, stat.split("/")[-2])] = (int(fields[11]), int(fields[12]))
    return out


def thread_ticks(pids):
    """utime + stime per thread of the given processes, {"pid/tid": ticks}."""
    return {k: u + s for k, (u, s) in thread_times(pids).items()}


def wrk_run(url, script, connections, duration_s, server_pid):
    pids = e2e.process_tree(server_pid)
    before = e2e.sample_cpu(pids)
    t_before = thread_ticks(pids)
    proc = subprocess.run(["wrk", "-t1", "-c%d" % connections, "-d%ds" % duration_s, "-s", script,
                           url], capture_output=True, text=True, check=True)
    after = e2e.sample_cpu(pids)
    t_after = thread_ticks(pids)
    out = proc.stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    cpu_s = e2e.cpu_seconds(before, after)
    spent = sorted((t_after[k] - t_before.get(k, 0) for k in t_after), reverse=True)
    busy = sum(spent) or 1
    return {"rps": rps, "requests": total, "server_cpu_s": cpu_s,
            "server_us_per_req": cpu_s / total * 1e6, "non_2xx": int(errors.group(1)) if errors else 0,
            # the busiest threads' shares of the server's CPU time, largest first
            "thread_cpu_shares": [round(t / busy, 3) for t in spent[:4]],
            "wrk_output": out}


def measure(tmp, repo, req, threads, args):
    """One configuration: nginx with `threads` workers against inferd with
    `threads` HTTP threads."""
    inferd = nginx = None
    levels = {}
    try:
        inferd, url = e2e.start_inferd(repo, ["--http-threads", str(threads)] +
                                       args.inferd_args.split())
        metadata = e2e.http_get(url + "/v2/models/mlp_cached")
        response = ""
        for _ in range(3):  # a miss, a canonical hit (memoized), then a memo hit
            response = e2e.http_get(url + "/v2/models/mlp_cached/infer", req.encode())
        port = e2e.free_port()
        nginx = e2e.start_nginx(tmp, port, metadata, response, workers=threads)
        script = os.path.join(tmp, "post.lua")
        lua_script(script, req)
        path = "/v2/models/mlp_cached/infer"
        for c in (32, 64):
            n_runs, i_runs = [], []
            for _ in range(args.repeats):
                n_runs.append(wrk_run("http://127.0.0.1:%d%s" % (port, path), script, c,
                                      args.duration_s, nginx.pid))
                i_runs.append(wrk_run(url + path, script, c, args.duration_s, inferd.pid))
            med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731
            levels["c=%d" % c] = {
                "nginx_rps": med(n_runs, "rps"), "inferd_rps": med(i_runs, "rps"),
                "rps_ratio_inferd_over_nginx": med(i_runs, "rps") / med(n_runs, "rps"),
                "nginx_cpu_us_per_req": med(n_runs, "server_us_per_req"),
                "inferd_cpu_us_per_req": med(i_runs, "server_us_per_req"),
                "cpu_ratio_inferd_over_nginx": (med(i_runs, "server_us_per_req") /
                                                med(n_runs, "server_us_per_req")),
                "pair_cpu_ratios": [i["server_us_per_req"] / n["server_us_per_req"]
                                    for n, i in zip(n_runs, i_runs)],
                # runs in which one nginx worker did >= 90% of the work
                "nginx_runs_on_one_worker": sum(r["thread_cpu_shares"][0] >= 0.9 for r in n_runs),
                "nginx_runs": n_runs, "inferd_runs": i_runs}
        cache_stats = json.loads(e2e.http_get(url + "/v2/cache/stats"))
    finally:
        for p in (inferd, nginx):
            if p and p.poll() is None:
                p.send_signal(signal.SIGQUIT if p is nginx else signal.SIGTERM)
                p.wait(timeout=60)
    return {"levels": levels, "cache_stats": cache_stats}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--duration-s", type=int, default=5)
    ap.add_argument("--threads", default="1,2", help="I/O thread counts to compare, e.g. '2'")
    ap.add_argument("--out", default=os.path.join(e2e.ROOT, "bench", "results", "wrk_hits.json"))
    ap.add_argument("--inferd-args", default="", help="extra inferd serve arguments")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="inferd-wrk-")
    result = {"machine": "2 cores shared by the server and wrk -t1", "repeats": args.repeats,
              "inferd_args": args.inferd_args, "duration_s": args.duration_s, "configs": {}}
    try:
        repo, req, _ = hit_workload(tmp)
        for threads in (int(t) for t in args.threads.split(",")):
            result["configs"]["threads=%d" % threads] = measure(tmp, repo, req, threads, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("| I/O threads | concurrency | nginx req/s | inferd req/s | ratio | nginx CPU µs/req "
          "| inferd CPU µs/req | CPU ratio | nginx runs on one worker |")
    print("|---|---|---|---|---|---|---|---|---|")
    for config, c in result["configs"].items():
        for level, r in c["levels"].items():
            print("| %s | %s | %.0f | %.0f | %.2f | %.1f | %.1f | %.2f | %d of %d |" % (
                config.split("=")[1], level, r["nginx_rps"], r["inferd_rps"],
                r["rps_ratio_inferd_over_nginx"], r["nginx_cpu_us_per_req"],
                r["inferd_cpu_us_per_req"], r["cpu_ratio_inferd_over_nginx"],
                r["nginx_runs_on_one_worker"], args.repeats))


if __name__ == "__main__":
    main()
