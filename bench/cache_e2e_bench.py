#!/usr/bin/env python3
"""End-to-end response-cache benchmark (issue 3, item 8c), in one run:

1. `inferd bench` at concurrency 64 against inferd serving a cached mlp (every
   request after the first is an L1 hit; small tensors), and against nginx
   returning the same response body as a fixed string, same load generator,
   same machine, runs alternating nginx / inferd. Reports the ratio inferd /
   nginx both as the median of the per-pair ratios (nginx run i, inferd run i)
   and as the ratio of the medians, and the server CPU time per request of each
   (utime + stime of all the server's processes over the measurement window)
   and of the load generator, which shares the machine: a throughput ratio
   below the CPU ratio means the load generator takes cores from the server.
2. Hit latency p50/p99/p99.9 in open loop at half of inferd's maximum
   throughput, and nginx's at the same rate: a tail that nginx shows too comes
   from the machine or the load generator, not from inferd.
3. resnet18 with 80% repeated requests (20% unique, binary payload) with the
   cache on vs the same server's uncached copy of the model: the speed-up.

Each figure is the median of --repeats runs. The load generator shares the two
cores with the servers, so single runs are noisy (+-15%). Usage, from the repo
root after scripts/build:

    /usr/bin/python3 bench/cache_e2e_bench.py [--repeats 5] [--duration-s 5] [--quick]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("INFERD_BUILD_DIR", os.path.join(ROOT, "build"))
INFERD = os.path.join(BUILD, "inferd")
MODELS = os.path.join(ROOT, "examples", "models")
CACHE_TABLE = "\n[response_cache]\nttl_s = 3600\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.05  # CPU sampling period during a bench run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_model(src, dst_repo, name, extra=""):
    os.makedirs(os.path.join(dst_repo, name, "1"))
    with open(os.path.join(MODELS, src, "config.toml")) as f:
        config = f.read()
    with open(os.path.join(dst_repo, name, "config.toml"), "w") as f:
        f.write(config + extra)
    os.symlink(os.path.join(MODELS, src, "1", "model.pt"), os.path.join(dst_repo, name, "1", "model.pt"))


def start_inferd(repo, extra=()):
    proc = subprocess.Popen([INFERD, "serve", "--model-repository", repo, "--http-port", "0",
                             "--log-level", "warn", "--load-model", "*"] + list(extra), stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("inferd: listening on "):
            return proc, line.split()[-1]
    raise RuntimeError("inferd exited before listening")


def http_get(url, data=None):
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req) as r:
        return r.read().decode()


def start_nginx(tmp, port, metadata, response, workers=2):
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes %(workers)d;
daemon off;
pid %(tmp)s/nginx.pid;
error_log %(tmp)s/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %(tmp)s/body;
  proxy_temp_path %(tmp)s/proxy;
  fastcgi_temp_path %(tmp)s/fastcgi;
  uwsgi_temp_path %(tmp)s/uwsgi;
  scgi_temp_path %(tmp)s/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:%(port)d;
    default_type application/json;
    location = /v2/models/mlp_cached { return 200 '%(metadata)s'; }
    location = /v2/models/mlp_cached/infer { return 200 '%(response)s'; }
  }
}
""" % {"tmp": tmp, "port": port, "metadata": metadata, "response": response,
       "workers": workers})
    proc = subprocess.Popen(["/usr/sbin/nginx", "-c", conf, "-p", tmp])
    for _ in range(2000):  # bounded wait for the listener
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("nginx exited")
            subprocess.run(["true"])
    raise RuntimeError("nginx did not listen")


def cpu_ticks(pid):
    """utime + stime of a process, all its threads (exited ones too), in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()  # fields 3.. (comm may hold spaces)
    return int(fields[11]) + int(fields[12])  # fields 14 (utime) and 15 (stime)


def process_tree(pid):
    """pid and its descendants (nginx: the master and its workers), from /proc/*/stat ppid."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):  # exited meanwhile
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def sample_cpu(pids):
    """{pid: cpu ticks} for the given processes, skipping any that exited."""
    ticks = {}
    for pid in pids:
        try:
            ticks[pid] = cpu_ticks(pid)
        except (OSError, IndexError, ValueError):
            pass
    return ticks


def cpu_seconds(before, after):
    return sum(after[p] - before[p] for p in before.keys() & after.keys()) / CLK_TCK


def bench(url, model, args, tmp, extra, server_pid=None):
    """One `inferd bench` run; returns its level (the bench JSON's levels[0]).

    With server_pid, also samples the CPU time of the server (the process tree
    of server_pid) and of the load generator every SAMPLE_S while it runs, and
    adds "cpu": the CPU microseconds per request (over the requests completed
    meanwhile: throughput x interval) and the cores used by each, between the
    first and the last sample inside the measurement window, which ends when
    the load generator exits (a margin each side). The window is located from
    the exit, not from the start, as the binary takes ~0.5 s to start."""
    out = os.path.join(tmp, "bench.json")
    cmd = [INFERD, "bench", "--url", url, "--model", model, "--duration-s", str(args.duration_s),
           "--warmup-s", str(args.warmup_s), "--json", out] + extra
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    samples = []  # (time, server ticks by pid, load generator ticks)
    try:
        servers = process_tree(server_pid) if server_pid is not None else None
        while True:
            if servers is not None:
                samples.append((time.monotonic(), sample_cpu(servers), sample_cpu([proc.pid])))
            try:
                rc = proc.wait(timeout=SAMPLE_S)
                break
            except subprocess.TimeoutExpired:
                pass
        end = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc != 0:
        raise subprocess.CalledProcessError(rc, cmd)
    with open(out) as f:
        level = json.load(f)["levels"][0]
    if servers is not None:
        margin = min(0.2, args.duration_s / 5)
        inside = [x for x in samples if end - args.duration_s + margin <= x[0] <= end - margin]
        if len(inside) < 2:
            raise RuntimeError("too few CPU samples in the measurement window of: %s" % cmd)
        (t0, s0, g0), (t1, s1, g1) = inside[0], inside[-1]
        interval = t1 - t0
        requests = level["throughput_rps"] * interval
        server_s, loadgen_s = cpu_seconds(s0, s1), cpu_seconds(g0, g1)
        level["cpu"] = {"interval_s": interval, "server_processes": len(servers),
                        "server_us_per_req": server_s * 1e6 / requests,
                        "loadgen_us_per_req": loadgen_s * 1e6 / requests,
                        "server_cores": server_s / interval, "loadgen_cores": loadgen_s / interval}
    return level


def median(levels, key):
    return statistics.median(l[key] for l in levels)


def median_cpu(levels, key):
    return statistics.median(l["cpu"][key] for l in levels)


def median_latency(levels, key):
    """Median over runs of latency_ms[key] (None if this bench's JSON lacks the key)."""
    values = [l["latency_ms"].get(key) for l in levels]
    return None if None in values else statistics.median(values)


def run_record(server, mode, level):
    record = {"server": server, "mode": mode, "throughput_rps": level["throughput_rps"],
              "errors": level["errors"],
              "latency_ms": {k: level["latency_ms"].get(k) for k in ("p50", "p99", "p99_9")}}
    record.update(level.get("cpu", {}))
    return record


def ms(value):
    return "n/a" if value is None else "%.2f" % value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--duration-s", type=float, default=5)
    ap.add_argument("--warmup-s", type=float, default=1)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.duration_s, args.warmup_s = 1, 1, 0.5
    tmp = tempfile.mkdtemp(prefix="inferd-cache-bench-")
    result = {"machine": "2 cores shared by server and load generator", "repeats": args.repeats,
              "duration_s": args.duration_s, "warmup_s": args.warmup_s}
    runs = []  # every run, in order: run_record()s
    inferd = nginx = nomemo = None
    try:
        repo = os.path.join(tmp, "models")
        copy_model("mlp", repo, "mlp_cached", CACHE_TABLE)
        copy_model("resnet18", repo, "resnet18_cached", CACHE_TABLE)
        copy_model("resnet18", repo, "resnet18")
        inferd, url = start_inferd(repo)
        # The same server without the exact-repeat memo: what the memo buys.
        nomemo, nomemo_url = start_inferd(repo, ["--cache-exact-repeat-max-bytes", "0"])
        # One request, sent as-is by the load generator (--input-file), and
        # inferd's response to it, which nginx returns as a fixed string: both
        # servers answer every request with the same bytes.
        request_file = os.path.join(tmp, "request.json")
        req = json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                                      "data": [0.5] * 16}]})
        with open(request_file, "w") as f:
            f.write(req)
        metadata = http_get(url + "/v2/models/mlp_cached")
        response = http_get(url + "/v2/models/mlp_cached/infer", req.encode())
        port = free_port()
        nginx = start_nginx(tmp, port, metadata, response)
        nginx_url = "http://127.0.0.1:%d" % port

        # Closed loop, c=64, alternating nginx / inferd: run i of each is a pair.
        c64 = ["--concurrency", "64", "--input-file", request_file]
        n_runs, i_runs, m_runs = [], [], []
        http_get(nomemo_url + "/v2/models/mlp_cached/infer", req.encode())  # fill its cache
        for _ in range(args.repeats):
            n_runs.append(bench(nginx_url, "mlp_cached", args, tmp, c64, nginx.pid))
            i_runs.append(bench(url, "mlp_cached", args, tmp, c64, inferd.pid))
            m_runs.append(bench(nomemo_url, "mlp_cached", args, tmp, c64, nomemo.pid))
            runs += [run_record("nginx", "c=64", n_runs[-1]), run_record("inferd", "c=64", i_runs[-1]),
                     run_record("inferd, memo off", "c=64", m_runs[-1])]
        result["inferd_memo_off_rps"] = median(m_runs, "throughput_rps")
        result["inferd_memo_off_cpu_us_per_req"] = median_cpu(m_runs, "server_us_per_req")
        result["response_bytes"] = len(response)
        result["nginx_rps"] = median(n_runs, "throughput_rps")
        result["inferd_hit_rps"] = median(i_runs, "throughput_rps")
        result["nginx_runs"] = [l["throughput_rps"] for l in n_runs]
        result["inferd_runs"] = [l["throughput_rps"] for l in i_runs]
        result["ratio_inferd_over_nginx"] = result["inferd_hit_rps"] / result["nginx_rps"]  # of medians
        result["pair_ratios"] = [i["throughput_rps"] / n["throughput_rps"] for n, i in zip(n_runs, i_runs)]
        result["ratio_median_of_pair_ratios"] = statistics.median(result["pair_ratios"])
        result["server_cpu_us_per_req"] = {"inferd": median_cpu(i_runs, "server_us_per_req"),
                                           "nginx": median_cpu(n_runs, "server_us_per_req")}
        result["server_cpu_ratio_inferd_over_nginx"] = (result["server_cpu_us_per_req"]["inferd"] /
                                                        result["server_cpu_us_per_req"]["nginx"])
        result["loadgen_cpu_us_per_req"] = {"inferd": median_cpu(i_runs, "loadgen_us_per_req"),
                                            "nginx": median_cpu(n_runs, "loadgen_us_per_req")}
        result["cores_used"] = {
            name: {"server": median_cpu(l, "server_cores"), "loadgen": median_cpu(l, "loadgen_cores")}
            for name, l in (("inferd", i_runs), ("nginx", n_runs))}

        # Open loop at half of inferd's maximum, against both servers at the same rate.
        half = result["inferd_hit_rps"] / 2
        rate = ["--rate", "%.0f" % half, "--input-file", request_file]
        h_runs, hn_runs = [], []
        for _ in range(args.repeats):
            hn_runs.append(bench(nginx_url, "mlp_cached", args, tmp, rate, nginx.pid))
            h_runs.append(bench(url, "mlp_cached", args, tmp, rate, inferd.pid))
            runs += [run_record("nginx", "rate %.0f" % half, hn_runs[-1]),
                     run_record("inferd", "rate %.0f" % half, h_runs[-1])]
        result["half_load_rps"] = half
        result["hit_p50_ms"] = median_latency(h_runs, "p50")
        result["hit_p99_ms"] = median_latency(h_runs, "p99")
        result["hit_p99_9_ms"] = median_latency(h_runs, "p99_9")
        result["nginx_half_load_latency_ms"] = {k: median_latency(hn_runs, k) for k in ("p50", "p99", "p99_9")}

        mix = ["--concurrency", "16", "--payload", "binary", "--unique-fraction", "0.2"]
        on = [bench(url, "resnet18_cached", args, tmp, mix) for _ in range(args.repeats)]
        off = [bench(url, "resnet18", args, tmp, mix) for _ in range(args.repeats)]
        runs += [run_record("inferd", "resnet18 80% rep. cache on", l) for l in on]
        runs += [run_record("inferd", "resnet18 80% rep. cache off", l) for l in off]
        result["resnet18_80pct_cache_on_rps"] = median(on, "throughput_rps")
        result["resnet18_80pct_cache_off_rps"] = median(off, "throughput_rps")
        result["speedup_80pct_repeated"] = (result["resnet18_80pct_cache_on_rps"] /
                                            result["resnet18_80pct_cache_off_rps"])
        result["resnet18_80pct_p50_ms"] = {"on": median_latency(on, "p50"), "off": median_latency(off, "p50")}
        result["errors"] = sum(r["errors"] for r in runs)
        result["runs"] = runs
        result["cache_stats"] = json.loads(http_get(url + "/v2/cache/stats"))
    finally:
        for p in (inferd, nomemo, nginx):
            if p and p.poll() is None:
                p.send_signal(signal.SIGQUIT if p is nginx else signal.SIGTERM)
                p.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)

    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "cache_e2e.json"), "w") as f:
        json.dump(result, f, indent=2)
    cpu, gen, cores = result["server_cpu_us_per_req"], result["loadgen_cpu_us_per_req"], result["cores_used"]
    nl = result["nginx_half_load_latency_ms"]
    print("| measure | value |\n|---|---|")
    print("| nginx fixed body (%d B), c=64 | %.0f req/s |" % (result["response_bytes"], result["nginx_rps"]))
    print("| inferd cached mlp (L1 hits), c=64 | %.0f req/s |" % result["inferd_hit_rps"])
    print("| ratio inferd / nginx, median of %d per-pair ratios | %.2f |" % (
        len(result["pair_ratios"]), result["ratio_median_of_pair_ratios"]))
    print("| ratio inferd / nginx, ratio of medians | %.2f |" % result["ratio_inferd_over_nginx"])
    print("| inferd with the exact-repeat memo off, c=64 | %.0f req/s, %.1f us CPU/request |" % (
        result["inferd_memo_off_rps"], result["inferd_memo_off_cpu_us_per_req"]))
    print("| server CPU per request, inferd / nginx | %.1f / %.1f us |" % (cpu["inferd"], cpu["nginx"]))
    print("| server CPU ratio inferd / nginx | %.2f |" % result["server_cpu_ratio_inferd_over_nginx"])
    print("| load generator CPU per request, vs inferd / vs nginx | %.1f / %.1f us |" % (gen["inferd"], gen["nginx"]))
    print("| cores used, server + load generator: inferd / nginx runs | %.2f + %.2f / %.2f + %.2f |" % (
        cores["inferd"]["server"], cores["inferd"]["loadgen"], cores["nginx"]["server"], cores["nginx"]["loadgen"]))
    print("| hit latency at %.0f req/s (half max), p50 / p99 / p99.9 | %s / %s / %s ms |" % (
        result["half_load_rps"], ms(result["hit_p50_ms"]), ms(result["hit_p99_ms"]), ms(result["hit_p99_9_ms"])))
    print("| nginx at the same rate, p50 / p99 / p99.9 | %s / %s / %s ms |" % (
        ms(nl["p50"]), ms(nl["p99"]), ms(nl["p99_9"])))
    print("| resnet18, 80%% repeated, c=16: cache on / off | %.1f / %.1f req/s |" % (
        result["resnet18_80pct_cache_on_rps"], result["resnet18_80pct_cache_off_rps"]))
    print("| speed-up with the cache | %.2fx |" % result["speedup_80pct_repeated"])
    print("| errors, all runs | %d |" % result["errors"])
    print("\n| # | server | load | req/s | p50 / p99 / p99.9 ms | server us/req | load gen us/req "
          "| cores server + load gen | errors |\n|---|---|---|---|---|---|---|---|---|")
    for n, r in enumerate(runs, 1):
        lat = " / ".join(ms(r["latency_ms"][k]) for k in ("p50", "p99", "p99_9"))
        if "server_us_per_req" in r:
            cpu_cells = "%.1f | %.1f | %.2f + %.2f" % (r["server_us_per_req"], r["loadgen_us_per_req"],
                                                       r["server_cores"], r["loadgen_cores"])
        else:
            cpu_cells = "- | - | -"
        print("| %d | %s | %s | %.0f | %s | %s | %d |" % (n, r["server"], r["mode"], r["throughput_rps"],
                                                         lat, cpu_cells, r["errors"]))

if __name__ == "__main__":
    main()
