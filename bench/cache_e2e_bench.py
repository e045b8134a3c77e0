#!/usr/bin/env python3
"""End-to-end response-cache benchmark (issue 3, item 8c), in one run:

1. `inferd bench` at concurrency 64 against inferd serving a cached mlp (every
   request after the first is an L1 hit; small tensors), and against nginx
   returning the same response body as a fixed string, same load generator,
   same machine. Reports the ratio inferd / nginx.
2. Hit latency p50/p99 in open loop at half of inferd's maximum throughput.
3. resnet18 with 80% repeated requests (20% unique, binary payload) with the
   cache on vs the same server's uncached copy of the model: the speed-up.

Each figure is the median of --repeats runs. The load generator shares the two
cores with the server. Usage, from the repo root after scripts/build:

    /usr/bin/python3 bench/cache_e2e_bench.py [--repeats 3] [--duration-s 5] [--quick]
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
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("INFERD_BUILD_DIR", os.path.join(ROOT, "build"))
INFERD = os.path.join(BUILD, "inferd")
MODELS = os.path.join(ROOT, "examples", "models")
CACHE_TABLE = "\n[response_cache]\nttl_s = 3600\n"


def run(cmd, **kw):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


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


def start_inferd(repo):
    proc = subprocess.Popen([INFERD, "serve", "--model-repository", repo, "--http-port", "0",
                             "--log-level", "warn"], stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("inferd: listening on "):
            return proc, line.split()[-1]
    raise RuntimeError("inferd exited before listening")


def http_get(url, data=None):
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req) as r:
        return r.read().decode()


def start_nginx(tmp, port, metadata, response):
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 2;
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
""" % {"tmp": tmp, "port": port, "metadata": metadata, "response": response})
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


def bench(url, model, args, tmp, extra):
    out = os.path.join(tmp, "bench.json")
    run([INFERD, "bench", "--url", url, "--model", model, "--duration-s", str(args.duration_s),
         "--warmup-s", str(args.warmup_s), "--json", out] + extra, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)["levels"][0]


def median(levels, key):
    return statistics.median(l[key] for l in levels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration-s", type=float, default=5)
    ap.add_argument("--warmup-s", type=float, default=1)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.duration_s, args.warmup_s = 1, 1, 0.5
    tmp = tempfile.mkdtemp(prefix="inferd-cache-bench-")
    result = {"machine": "2 cores shared by server and load generator"}
    inferd = nginx = None
    try:
        repo = os.path.join(tmp, "models")
        copy_model("mlp", repo, "mlp_cached", CACHE_TABLE)
        copy_model("resnet18", repo, "resnet18_cached", CACHE_TABLE)
        copy_model("resnet18", repo, "resnet18")
        inferd, url = start_inferd(repo)
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

        c64 = ["--concurrency", "64", "--input-file", request_file]
        n_runs, i_runs = [], []
        for _ in range(args.repeats):
            n_runs.append(bench(nginx_url, "mlp_cached", args, tmp, c64))
            i_runs.append(bench(url, "mlp_cached", args, tmp, c64))
        result["nginx_rps"] = median(n_runs, "throughput_rps")
        result["inferd_hit_rps"] = median(i_runs, "throughput_rps")
        result["ratio_inferd_over_nginx"] = result["inferd_hit_rps"] / result["nginx_rps"]
        result["response_bytes"] = len(response)
        result["nginx_runs"] = [l["throughput_rps"] for l in n_runs]
        result["inferd_runs"] = [l["throughput_rps"] for l in i_runs]
        errors = sum(l["errors"] for l in n_runs + i_runs)
        result["errors"] = errors

        half = result["inferd_hit_rps"] / 2
        h_runs = [bench(url, "mlp_cached", args, tmp, ["--rate", "%.0f" % half, "--input-file", request_file])
                  for _ in range(args.repeats)]
        result["half_load_rps"] = half
        result["hit_p50_ms"] = statistics.median(l["latency_ms"]["p50"] for l in h_runs)
        result["hit_p99_ms"] = statistics.median(l["latency_ms"]["p99"] for l in h_runs)

        mix = ["--concurrency", "16", "--payload", "binary", "--unique-fraction", "0.2"]
        on = [bench(url, "resnet18_cached", args, tmp, mix) for _ in range(args.repeats)]
        off = [bench(url, "resnet18", args, tmp, mix) for _ in range(args.repeats)]
        result["resnet18_80pct_cache_on_rps"] = median(on, "throughput_rps")
        result["resnet18_80pct_cache_off_rps"] = median(off, "throughput_rps")
        result["speedup_80pct_repeated"] = (result["resnet18_80pct_cache_on_rps"] /
                                            result["resnet18_80pct_cache_off_rps"])
        result["resnet18_80pct_p50_ms"] = {
            "on": statistics.median(l["latency_ms"]["p50"] for l in on),
            "off": statistics.median(l["latency_ms"]["p50"] for l in off)}
        result["cache_stats"] = json.loads(http_get(url + "/v2/cache/stats"))
    finally:
        for p in (inferd, nginx):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM if p is inferd else signal.SIGQUIT)
                p.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)

    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "cache_e2e.json"), "w") as f:
        json.dump(result, f, indent=2)
    print("| measure | value |\n|---|---|")
    print("| nginx fixed body (%d B), c=64 | %.0f req/s |" % (result["response_bytes"], result["nginx_rps"]))
    print("| inferd cached mlp (L1 hits), c=64 | %.0f req/s |" % result["inferd_hit_rps"])
    print("| ratio inferd / nginx | %.2f |" % result["ratio_inferd_over_nginx"])
    print("| hit latency at %.0f req/s (half max), p50 / p99 | %.2f / %.2f ms |" % (
        result["half_load_rps"], result["hit_p50_ms"], result["hit_p99_ms"]))
    print("| resnet18, 80%% repeated, c=16: cache on / off | %.1f / %.1f req/s |" % (
        result["resnet18_80pct_cache_on_rps"], result["resnet18_80pct_cache_off_rps"]))
    print("| speed-up with the cache | %.2fx |" % result["speedup_80pct_repeated"])
    print("| errors | %d |" % result["errors"])


if __name__ == "__main__":
    main()
