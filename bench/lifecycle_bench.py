#!/usr/bin/env python3
"""Model lifecycle benchmark of issue 11, measured in one run on this machine.

1. Cold first request per example model: a fresh lazy server; the latency of
   the first request to the model (its load, warm-up and first inference),
   with load_s and warmup_s from /v2/memory/stats, against the warm p50 of
   sequential requests. Twice per model: after another TorchScript model was
   loaded (libtorch already in the process), and as the very first request of
   the process (the backend plugin and libtorch start included).
2. Budget 2-of-5: five copies of resnet18 and a workload that visits them in
   turn (phases of `inferd bench` at concurrency 4), under a memory budget
   with room for 2.5 of them, against the same workload with all five
   resident (no budget, preloaded).
3. Resident memory of resnet18 with 1 and 2 instances (sharing weights, and
   2 with share_weights = false) after load and the peak under load
   (`inferd bench` c = 8, binary payload), with its throughput against raw
   libtorch's (bench/raw_torch_bench, batch 8, 2 instances, optimized) in
   the same run.

The load generator shares the machine's 2 cores with the server. Usage (from
the repo root, after scripts/build and scripts/models):

    /usr/bin/python3 bench/lifecycle_bench.py [--repeats 3] [--quick]

Writes bench/results/lifecycle-<date>.json (or --out) and prints a summary.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("INFERD_BUILD_DIR", os.path.join(ROOT, "build"))
INFERD = os.path.join(BUILD, "inferd")
RAW = os.path.join(BUILD, "bench", "raw_torch_bench")
MODELS = os.path.join(ROOT, "examples", "models")

# name -> (input name, shape with batch 1)
INPUTS = {
    "mlp": ("input", [1, 16]),
    "mlp_int8": ("input", [1, 16]),
    "resnet18": ("input", [1, 3, 224, 224]),
    "resnet18_int8": ("input", [1, 3, 224, 224]),
    "dither": ("image", [1, 3, 64, 64]),
}


class Server:
    def __init__(self, repo, args=()):
        self.proc = subprocess.Popen(
            [INFERD, "serve", "--model-repository", repo, "--http-port", "0", "--log-level", "warn"]
            + list(args), stdout=subprocess.PIPE, text=True)
        for line in self.proc.stdout:
            if line.startswith("inferd: listening on "):
                self.url = line.split()[-1]
                return
        raise RuntimeError("inferd exited before listening")

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=120) as r:
            return json.loads(r.read())

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()

    def status(self, key):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def anonymous(self):
        with open("/proc/%d/smaps_rollup" % self.proc.pid) as f:
            for line in f:
                if line.startswith("Anonymous:"):
                    return int(line.split()[1]) * 1024
        return 0

    def metric(self, name, **labels):
        with urllib.request.urlopen(self.url + "/metrics", timeout=30) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            if all('%s="%s"' % kv in head for kv in labels.items()):
                total += float(value)
        return total

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def peak_rss_during(server, run, interval_s=0.05):
    """VmRSS now, and its peak (sampled every `interval_s`) while `run()`
    runs: (before, peak, run's result)."""
    before = server.status("VmRSS")
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], server.status("VmRSS"))
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = run()
    finally:
        done.set()
        sampler.join()
    return before, peak[0], result


def body(model, seed=0):
    name, shape = INPUTS[model]
    n = 1
    for d in shape:
        n *= d
    data = [((i * 7 + seed) % 100) / 100.0 for i in range(n)]
    return json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": "FP32",
                                   "data": data}]}).encode()


def timed_infer(server, model, payload):
    t = time.perf_counter()
    status, _ = server.post("/v2/models/%s/infer" % model, payload)
    if status != 200:
        raise RuntimeError("%s answered %d" % (model, status))
    return time.perf_counter() - t


def row_of(stats, model):
    for r in stats["models"]:
        if r["name"] == model:
            return r
    return {}


def cold_first_request(models, repeats, warm_requests):
    out = []
    for model in models:
        for primed in (True, False):
            runs = []
            for _ in range(repeats):
                server = Server(MODELS)
                try:
                    if primed:
                        primer = "dither" if model != "dither" else "mlp"
                        timed_infer(server, primer, body(primer))
                    payload = body(model)
                    cold = timed_infer(server, model, payload)
                    warm = sorted(timed_infer(server, model, payload) for _ in range(warm_requests))
                    r = row_of(server.get("/v2/memory/stats"), model)
                    runs.append({"cold_s": cold, "warm_p50_s": warm[len(warm) // 2],
                                 "load_s": r.get("load_s"), "warmup_s": r.get("warmup_s"),
                                 "bytes": r.get("bytes")})
                finally:
                    server.stop()
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            med.update({"model": model, "libtorch_loaded_before": primed, "runs": runs})
            out.append(med)
            print("cold %-14s primed=%-5s cold %.3f s (load %.3f, warm-up %.3f) warm p50 %.2f ms"
                  % (model, primed, med["cold_s"], med["load_s"], med["warmup_s"],
                     med["warm_p50_s"] * 1000), file=sys.stderr, flush=True)
    return out


def bench(url, model, concurrency, duration_s, out_json, warmup_s=0):
    cmd = [INFERD, "bench", "--url", url, "--model", model, "--concurrency", str(concurrency),
           "--duration-s", str(duration_s), "--warmup-s", str(warmup_s), "--payload", "binary",
           "--json", out_json]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out_json) as f:
        return json.load(f)["levels"][0]


def resnet_repo(tmp, copies, config_extra=""):
    repo = os.path.join(tmp, "repo-%d-%d" % (len(copies), abs(hash(config_extra)) % 1000))
    with open(os.path.join(MODELS, "resnet18", "config.toml")) as f:
        config = f.read()
    for name in copies:
        os.makedirs(os.path.join(repo, name, "1"))
        os.symlink(os.path.join(MODELS, "resnet18", "1", "model.pt"),
                   os.path.join(repo, name, "1", "model.pt"))
        with open(os.path.join(repo, name, "config.toml"), "w") as f:
            f.write(config_extra + config)
    return repo


def budget_scenario(tmp, rounds, phase_s):
    names = ["r%d" % i for i in range(5)]
    repo = resnet_repo(tmp, names)
    probe = Server(repo, ["--load-model", "r0", "--model-control", "explicit"])
    try:
        one = row_of(probe.get("/v2/memory/stats"), "r0")["bytes"]
    finally:
        probe.stop()
    budget = int(2.5 * one)
    results = {}
    for label, args in (("all_resident", ["--load-model", "*"]),
                        ("budget_2_of_5", ["--model-memory-budget", str(budget)])):
        server = Server(repo, args)
        phases = []

        def run_phases():
            t0 = time.perf_counter()
            for rnd in range(rounds):
                for name in names:
                    lv = bench(server.url, name, 4, phase_s,
                               os.path.join(tmp, "%s-%d-%s.json" % (label, rnd, name)))
                    phases.append({"model": name, "round": rnd, "completed": lv["completed"],
                                   "errors": lv["errors"], "p50_ms": lv["latency_ms"]["p50"],
                                   "p99_ms": lv["latency_ms"]["p99"],
                                   "throughput_rps": lv["throughput_rps"]})
            return time.perf_counter() - t0

        try:
            _, peak, span = peak_rss_during(server, run_phases, interval_s=0.1)
            loads = server.metric("inferd_model_loads_total", outcome="success")
            evicted = server.metric("inferd_model_unloads_total", reason="evicted")
        finally:
            server.stop()
        completed = sum(p["completed"] for p in phases)
        results[label] = {
            "phases": phases, "completed": completed,
            "errors": sum(p["errors"] for p in phases),
            "throughput_rps": completed / (rounds * len(names) * phase_s),
            "wall_s": span,
            "p50_ms_median_of_phases": statistics.median(p["p50_ms"] for p in phases),
            "p99_ms_median_of_phases": statistics.median(p["p99_ms"] for p in phases),
            "p99_ms_worst_phase": max(p["p99_ms"] for p in phases),
            "loads": loads, "evictions": evicted, "peak_rss_bytes": peak,
        }
        print("budget %-14s %.1f req/s, p99 median %.1f ms (worst %.1f), errors %d, loads %d, "
              "peak RSS %.0f MiB" % (label, results[label]["throughput_rps"],
                                     results[label]["p99_ms_median_of_phases"],
                                     results[label]["p99_ms_worst_phase"], results[label]["errors"],
                                     loads, peak / 2**20), file=sys.stderr, flush=True)
    results["budget_bytes"] = budget
    results["resnet18_bytes"] = one
    results["ratio_throughput"] = (results["budget_2_of_5"]["throughput_rps"]
                                   / results["all_resident"]["throughput_rps"])
    return results


def memory_of_resnet(tmp, duration_s):
    rows = []
    for instances, share in ((1, True), (2, True), (2, False)):
        extra = ""
        with open(os.path.join(MODELS, "resnet18", "config.toml")) as f:
            config = f.read().replace("instance_count = 2", "instance_count = %d" % instances)
        if not share:
            config = config.replace("intra_op_threads = 1", "intra_op_threads = 1\nshare_weights = false")
        repo = os.path.join(tmp, "mem-%d-%s" % (instances, share))
        os.makedirs(os.path.join(repo, "resnet18", "1"))
        os.symlink(os.path.join(MODELS, "resnet18", "1", "model.pt"),
                   os.path.join(repo, "resnet18", "1", "model.pt"))
        with open(os.path.join(repo, "resnet18", "config.toml"), "w") as f:
            f.write(extra + config)
        server = Server(repo, ["--load-model", "resnet18", "--model-control", "explicit"])
        try:
            time.sleep(1)  # settle: the measurement, not a synchronization
            anon_after_load = server.anonymous()
            after_load, peak, lv = peak_rss_during(server, lambda: bench(
                server.url, "resnet18", 8, duration_s,
                os.path.join(tmp, "mem-%d-%s.json" % (instances, share)), warmup_s=1))
            stats = row_of(server.get("/v2/memory/stats"), "resnet18")
        finally:
            server.stop()
        rows.append({"instances": instances, "share_weights": share,
                     "rss_after_load_bytes": after_load, "anonymous_after_load_bytes": anon_after_load,
                     "rss_peak_under_load_bytes": peak,
                     "throughput_items_per_s": lv["throughput_items_per_s"],
                     "p50_ms": lv["latency_ms"]["p50"], "errors": lv["errors"],
                     "reported_bytes": stats.get("bytes"), "concurrency": stats.get("concurrency"),
                     "shares_weights": stats.get("shares_weights")})
        print("memory resnet18 x%d share=%-5s after load %.0f MiB (anon %.0f), peak %.0f MiB, "
              "%.1f img/s" % (instances, share, after_load / 2**20, anon_after_load / 2**20,
                              peak / 2**20, lv["throughput_items_per_s"]),
              file=sys.stderr, flush=True)
    raw_json = os.path.join(tmp, "raw.json")
    subprocess.run([RAW, "--model", os.path.join(MODELS, "resnet18", "1", "model.pt"),
                    "--shape", "3", "224", "224", "--batch-sizes", "8", "--instances", "2",
                    "--threads", "1", "--duration-s", str(min(duration_s, 5)), "--repeats", "1",
                    "--optimize", "--json", raw_json], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    with open(raw_json) as f:
        raw = json.load(f)
    best = raw.get("best", raw)
    raw_ips = best.get("items_per_s") or best.get("throughput_items_per_s")
    for r in rows:
        r["ratio_to_raw"] = r["throughput_items_per_s"] / raw_ips if raw_ips else None
    print("raw libtorch resnet18 batch 8 x2: %.1f img/s" % raw_ips, file=sys.stderr, flush=True)
    return {"rows": rows, "raw_best": best}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["cold", "budget", "memory"],
                    help="run one part and replace it in --out (the others are kept)")
    ap.add_argument("--out", default=os.path.join(
        ROOT, "bench", "results", "lifecycle-%s.json" % time.strftime("%Y-%m-%d")))
    args = ap.parse_args()
    repeats = 1 if args.quick else args.repeats
    tmp = tempfile.mkdtemp(prefix="inferd-lifecycle-bench-")
    parts = {
        "cold_first_request": lambda: cold_first_request(
            ["mlp", "mlp_int8", "dither", "resnet18", "resnet18_int8"], repeats,
            20 if args.quick else 100),
        "budget": lambda: budget_scenario(tmp, 1 if args.quick else 2, 2 if args.quick else 4),
        "memory": lambda: memory_of_resnet(tmp, 4 if args.quick else 10),
    }
    only = {"cold": "cold_first_request", "budget": "budget", "memory": "memory"}.get(args.only)
    result = {}
    if only and os.path.exists(args.out):
        with open(args.out) as f:
            result = json.load(f)
    try:
        stamp = {
            "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
            "machine": "2 cores shared by the server and the load generator",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "git": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip(),
        }
        for key, run_part in parts.items():
            if only and key != only:
                continue
            result[key] = run_part()
            result.setdefault("runs", {})[key] = stamp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote " + args.out, file=sys.stderr)


if __name__ == "__main__":
    main()
