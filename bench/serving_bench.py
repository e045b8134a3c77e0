#!/usr/bin/env python3
"""Model-serving benchmark of issue 2, measured in one run on this machine.

1. The ceiling: raw libtorch forward of resnet18 in-process (bench/raw_torch_bench)
   over batch sizes 1..32 x instances x intra-op threads; best configuration.
2. inferd serving resnet18 with dynamic batching off and on (same instances),
   driven by `inferd bench` in closed loop at concurrency 1..32, binary payload.
3. The per-request overhead ceiling: the mlp model at concurrency 64, with
   inferd's resident memory.

Every figure is the median of --repeats runs. The load generator shares the
machine's cores with the server. Usage (from the repo root, after scripts/build):

    /usr/bin/python3 bench/serving_bench.py [--repeats 3] [--duration-s 5] [--quick]

Writes bench/results/serving.json and prints a Markdown summary.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("INFERD_BUILD_DIR", os.path.join(ROOT, "build"))
INFERD = os.path.join(BUILD, "inferd")
RAW = os.path.join(BUILD, "bench", "raw_torch_bench")
MODELS = os.path.join(ROOT, "examples", "models")

RESNET_CONFIG = """backend = "torchscript"
max_batch_size = 32
instance_count = 2
max_queue_size = 256
[[input]]
name = "input"
datatype = "FP32"
dims = [3, 224, 224]
[[output]]
name = "output"
datatype = "FP32"
dims = [1000]
[parameters]
intra_op_threads = 1
"""
BATCHING = """[dynamic_batching]
max_queue_delay_us = 2000
preferred_batch_sizes = [4, 8]
"""


def run(cmd, **kw):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def make_repo(tmp):
    """resnet18_nobatch and resnet18_batch share one model.pt; mlp as shipped."""
    repo = os.path.join(tmp, "models")
    for name, extra in (("resnet18_nobatch", ""), ("resnet18_batch", BATCHING)):
        os.makedirs(os.path.join(repo, name, "1"))
        with open(os.path.join(repo, name, "config.toml"), "w") as f:
            f.write(RESNET_CONFIG + extra)
        os.symlink(os.path.join(MODELS, "resnet18", "1", "model.pt"),
                   os.path.join(repo, name, "1", "model.pt"))
    shutil.copytree(os.path.join(MODELS, "mlp"), os.path.join(repo, "mlp"), symlinks=True)
    return repo


class Server:
    def __init__(self, repo):
        self.proc = subprocess.Popen(
            [INFERD, "serve", "--model-repository", repo, "--http-port", "0", "--log-level", "warn",
             "--load-model", "*"],
            stdout=subprocess.PIPE, text=True)
        for line in self.proc.stdout:
            if line.startswith("inferd: listening on "):
                self.url = line.split()[-1]
                return
        raise RuntimeError("inferd exited before listening")

    def rss_bytes(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return -1

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)


def inferd_bench(url, model, concurrency, payload, args, tmp):
    out = os.path.join(tmp, "bench.json")
    run([INFERD, "bench", "--url", url, "--model", model, "--concurrency",
         ",".join(map(str, concurrency)), "--payload", payload,
         "--duration-s", str(args.duration_s), "--warmup-s", str(args.warmup_s), "--json", out],
        stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)["levels"]


def median_levels(runs):
    """runs: list of level lists -> {concurrency: median items/s, p50, p99}."""
    result = {}
    for levels in zip(*runs):
        c = levels[0]["concurrency"]
        result[c] = {
            "items_per_s": statistics.median(l["throughput_items_per_s"] for l in levels),
            "p50_ms": statistics.median(l["latency_ms"]["p50"] for l in levels),
            "p99_ms": statistics.median(l["latency_ms"]["p99"] for l in levels),
            "errors": sum(l["errors"] for l in levels),
            "runs": [l["throughput_items_per_s"] for l in levels],
        }
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration-s", type=float, default=5)
    ap.add_argument("--warmup-s", type=float, default=2)
    ap.add_argument("--raw-duration-s", type=float, default=3)
    ap.add_argument("--quick", action="store_true", help="1 repeat, short windows (smoke test)")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.duration_s, args.warmup_s, args.raw_duration_s = 1, 1, 0.5, 0.5
    concurrency = [1, 2, 4, 8, 16, 32]
    tmp = tempfile.mkdtemp(prefix="inferd-bench-")
    try:
        # The ceiling is the best raw configuration, with and without the
        # freeze + optimize_for_inference that inferd applies by default.
        raw = {"rows": []}
        for optimize in (False, True):
            raw_json = os.path.join(tmp, "raw.json")
            run([RAW, "--model", os.path.join(MODELS, "resnet18", "1", "model.pt"), "--shape", "3,224,224",
                 "--batch-sizes", "1,2,4,8,16,32", "--duration-s", str(args.raw_duration_s),
                 "--repeats", str(args.repeats), "--json", raw_json] + (["--optimize"] if optimize else []),
                stdout=subprocess.DEVNULL)
            with open(raw_json) as f:
                part = json.load(f)
            for r in part["rows"]:
                r["optimize"] = optimize
            raw["rows"] += part["rows"]
        raw["best"] = max(raw["rows"], key=lambda r: r["items_per_s"])
        raw["best_batch1"] = next(r for r in raw["rows"] if r["batch"] == 1 and r["optimize"] == raw["best"]["optimize"]
                                  and r["instances"] == raw["best"]["instances"]
                                  and r["intra_op_threads"] == raw["best"]["intra_op_threads"])

        server = Server(make_repo(tmp))
        try:
            served = {}
            for model in ("resnet18_nobatch", "resnet18_batch"):
                runs = [inferd_bench(server.url, model, concurrency, "binary", args, tmp)
                        for _ in range(args.repeats)]
                served[model] = median_levels(runs)
            mlp_runs, rss = [], []
            for _ in range(args.repeats):
                mlp_runs.append(inferd_bench(server.url, "mlp", [64], "json", args, tmp))
                rss.append(server.rss_bytes())
            mlp = median_levels(mlp_runs)[64]
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    best_raw = raw["best"]
    raw_b1 = raw["best_batch1"]
    best_off = max(served["resnet18_nobatch"].values(), key=lambda r: r["items_per_s"])
    best_on_c, best_on = max(served["resnet18_batch"].items(), key=lambda kv: kv[1]["items_per_s"])
    summary = {
        "machine": "2 cores shared by server and load generator, %s" % os.uname().release,
        "raw": raw,
        "served": {m: {str(c): v for c, v in levels.items()} for m, levels in served.items()},
        "mlp_c64": mlp,
        "rss_bytes_median": statistics.median(rss),
        "ratio_inferd_best_over_raw_best": best_on["items_per_s"] / best_raw["items_per_s"],
        "batching_gain_inferd": best_on["items_per_s"] / best_off["items_per_s"],
        "batching_gain_raw": best_raw["items_per_s"] / raw_b1["items_per_s"],
    }
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "serving.json"), "w") as f:
        json.dump(summary, f, indent=2)

    print("## Raw libtorch resnet18 (in-process, median of %d)\n" % args.repeats)
    print("| batch | instances x threads | as saved img/s | optimized img/s |\n|---|---|---|---|")
    plain = {(r["batch"], r["instances"], r["intra_op_threads"]): r for r in raw["rows"] if not r["optimize"]}
    for r in raw["rows"]:
        if r["optimize"]:
            p = plain.get((r["batch"], r["instances"], r["intra_op_threads"]))
            print("| %d | %d x %d | %.1f | %.1f |" % (r["batch"], r["instances"], r["intra_op_threads"],
                                                    p["items_per_s"] if p else float("nan"), r["items_per_s"]))
    print("\nbest: batch %d, %d x %d, %s: %.1f images/s; batch 1 at that layout: %.1f\n" % (
        best_raw["batch"], best_raw["instances"], best_raw["intra_op_threads"],
        "optimized" if best_raw["optimize"] else "as saved", best_raw["items_per_s"], raw_b1["items_per_s"]))
    print("## inferd resnet18, binary payload (median of %d)\n" % args.repeats)
    print("| concurrency | batching off img/s | p50 ms | p99 ms | batching on img/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for c in concurrency:
        a, b = served["resnet18_nobatch"][c], served["resnet18_batch"][c]
        print("| %d | %.1f | %.0f | %.0f | %.1f | %.0f | %.0f |" % (
            c, a["items_per_s"], a["p50_ms"], a["p99_ms"], b["items_per_s"], b["p50_ms"], b["p99_ms"]))
    print("\ninferd best (batching on, concurrency %d) / raw best: %.2f" % (
        best_on_c, summary["ratio_inferd_best_over_raw_best"]))
    print("batching gain: inferd %.2fx (best on / best off), raw %.2fx (best batch / batch 1)" % (
        summary["batching_gain_inferd"], summary["batching_gain_raw"]))
    print("mlp at concurrency 64 (JSON): %.0f requests/s, p50 %.2f ms, p99 %.2f ms, errors %d, RSS %.0f MiB" % (
        mlp["items_per_s"], mlp["p50_ms"], mlp["p99_ms"], mlp["errors"], summary["rss_bytes_median"] / 2**20))


if __name__ == "__main__":
    main()
