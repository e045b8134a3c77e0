#!/usr/bin/python3
"""Quantization benchmark of issue 11 (item 8): each example model against its
INT8 variant, measured in one run on this machine.

Pairs: mlp / mlp_int8 (dynamic quantization) and, if
examples/models/resnet18_int8/1/model.pt exists, resnet18 / resnet18_int8
(static quantization). For each pair:

1. Accuracy (Python, no server): torch.jit.load of both model.pt files, the
   largest absolute output difference INT8 - FP32 over --inputs seeded uniform
   [0, 1) inputs, each run alone (batch 1, as one request at concurrency 1),
   plus top-1 agreement for resnet18. For mlp also the same inputs as one
   batch: dynamic quantization picks its activation scale per batch, so an
   item's output depends on what it was batched with.
2. Speed: one `inferd serve --load-model A,B` per pair; `inferd bench`
   closed loop at concurrency 1 (p50 latency) and at 64 (mlp, JSON payload)
   or 8 (resnet18, binary payload) for throughput, --duration-s per level,
   --repeats rounds with the order of A and B alternating; medians. Before
   that, one request per model through inferd is compared with
   torch.jit.load of the same file (the served model is the saved one).
3. Memory: --repeats fresh `inferd serve --model-control explicit
   --load-model dither` (dither is a 2.7 KB TorchScript model: libtorch and
   the plugin are mapped and have run a forward); VmRSS and RssAnon from
   /proc/PID/status after 200 dither requests, then after
   POST /v2/repository/models/NAME/load and 200 requests to NAME at
   concurrency 1. The difference is what NAME adds; medians.

The server, the load generator and this script share the machine's cores.
Usage (from the repository root, after scripts/build and scripts/models):

    /usr/bin/python3 bench/quantization_bench.py [--out FILE] [--duration-s 3] [--repeats 3]

Writes the raw results as JSON (default bench/results/quantization-2026-11-30.json)
and prints a Markdown table. About 2-3 minutes.
"""

import argparse
import http.client
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("INFERD_BUILD_DIR", os.path.join(ROOT, "build"))
INFERD = os.path.join(BUILD, "inferd")
PLUGIN = os.path.join(BUILD, "backends", "libinferd_backend_torchscript.so")
MODELS = os.path.join(ROOT, "examples", "models")

# name -> per-item input shape, input name, throughput concurrency, payload, warm-up s
SPECS = {
    "mlp": ((16,), "input", 64, "json", 1.0),
    "resnet18": ((3, 224, 224), "input", 8, "binary", 1.0),
}


def model_file(name):
    return os.path.join(MODELS, name, "1", "model.pt")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Server:
    def __init__(self, *args):
        cmd = [INFERD, "serve", "--model-repository", MODELS, "--http-port", "0",
               "--log-level", "warn"] + list(args)
        log("+ " + " ".join(cmd))
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        for line in self.proc.stdout:
            if line.startswith("inferd: listening on "):
                self.url = line.split()[-1]
                m = re.match(r"http://([^:/]+):(\d+)", self.url)
                self.host, self.port = m.group(1), int(m.group(2))
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                return
        self.stderr.seek(0)
        raise RuntimeError("inferd exited before listening:\n" + self.stderr.read().decode())

    def post(self, path, body, headers=None):
        self.conn.request("POST", path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()

    def status_kib(self, field):
        with open("/proc/%d/status" % self.proc.pid) as f:
            m = re.search(r"^%s:\s+(\d+) kB" % field, f.read(), re.M)
        return int(m.group(1)) if m else -1

    def index(self):
        status, _, body = self.post("/v2/repository/index", b"{}", {"Content-Type": "application/json"})
        return json.loads(body) if status == 200 else body.decode()

    def stop(self):
        self.conn.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def infer(server, model, input_name, x):
    """One request with `x` (a float32 tensor with its batch dim) as binary
    input data; returns the output as a tensor."""
    blob = x.contiguous().numpy().tobytes()
    head = json.dumps({"inputs": [{"name": input_name, "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(blob)}}],
                       "parameters": {"binary_data_output": True}}).encode()
    status, headers, body = server.post(
        "/v2/models/%s/infer" % model, head + blob,
        {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))})
    if status != 200:
        raise RuntimeError("%s: HTTP %d %s" % (model, status, body[:300]))
    hlen = int({k.lower(): v for k, v in headers.items()}.get("inference-header-content-length", len(body)))
    out = json.loads(body[:hlen])["outputs"][0]
    if hlen < len(body):
        return torch.frombuffer(bytearray(body[hlen:]), dtype=torch.float32).reshape(out["shape"])
    return torch.tensor(out["data"], dtype=torch.float32).reshape(out["shape"])


def mtime(path):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(os.path.getmtime(path)))


def git(*args):
    try:
        return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def accuracy(fp32, int8, n_inputs):
    """Largest |int8 - fp32| over n_inputs seeded inputs, each alone."""
    shape = SPECS[fp32][0]
    a = torch.jit.load(model_file(fp32)).eval()
    b = torch.jit.load(model_file(int8)).eval()
    x = torch.rand((n_inputs,) + shape, generator=torch.Generator().manual_seed(3))
    t0 = time.monotonic()
    result = {"inputs": n_inputs, "seed": 3, "distribution": "uniform [0, 1)"}
    with torch.inference_mode():
        if fp32 == "mlp":
            ya = torch.cat([a(x[i:i + 1]) for i in range(n_inputs)])
            yb = torch.cat([b(x[i:i + 1]) for i in range(n_inputs)])
            yb_batched = b(x)
            result["max_abs_diff_one_batch"] = (yb_batched - ya).abs().max().item()
        else:
            # Static quantization has fixed scales: batching changes nothing,
            # so run in chunks of 20 for speed.
            ya = torch.cat([a(x[i:i + 20]) for i in range(0, n_inputs, 20)])
            yb = torch.cat([b(x[i:i + 20]) for i in range(0, n_inputs, 20)])
            result["top1_agreement"] = (ya.argmax(1) == yb.argmax(1)).float().mean().item()
            top5 = ya.topk(5, dim=1).indices
            result["int8_top1_in_fp32_top5"] = (top5 == yb.argmax(1, keepdim=True)).any(1).float().mean().item()
    d = (yb - ya).abs()
    result.update({
        "max_abs_diff": d.max().item(),
        "mean_abs_diff": d.mean().item(),
        "max_abs_fp32_output": ya.abs().max().item(),
        "fp32_output_std": ya.std().item(),
        "seconds": time.monotonic() - t0,
    })
    return result


def served_matches_saved(server, names):
    """One seeded batch-1 request per model through inferd against
    torch.jit.load of the same file: largest |inferd - python|."""
    result = {}
    for name in names:
        base = name.replace("_int8", "")
        shape, input_name = SPECS[base][0], SPECS[base][1]
        x = torch.rand((1,) + shape, generator=torch.Generator().manual_seed(4))
        with torch.inference_mode():
            want = torch.jit.load(model_file(name)).eval()(x)
        got = infer(server, name, input_name, x)
        result[name] = {"max_abs_diff_inferd_vs_python": (got - want).abs().max().item()}
    return result


def bench(server, model, concurrency, payload, duration_s, warmup_s, tmp):
    out = os.path.join(tmp, "bench-%s.json" % model)
    cmd = [INFERD, "bench", "--url", server.url, "--model", model,
           "--concurrency", ",".join(map(str, concurrency)), "--payload", payload,
           "--duration-s", str(duration_s), "--warmup-s", str(warmup_s), "--json", out]
    log("+ " + " ".join(cmd))
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        levels = json.load(f)["levels"]
    return {str(l["concurrency"]): {
        "requests_per_s": l["throughput_rps"],
        "items_per_s": l["throughput_items_per_s"],
        "p50_ms": l["latency_ms"]["p50"],
        "p99_ms": l["latency_ms"]["p99"],
        "errors": l["errors"],
        "completed": l.get("completed"),
    } for l in levels}


def memory(name, input_shape, input_name, requests):
    """A fresh server with only dither loaded (libtorch and the plugin
    mapped, a first forward run): VmRSS after `requests` dither requests is
    the baseline; then POST .../NAME/load and `requests` requests to NAME:
    VmRSS again. The difference is what NAME adds."""
    server = Server("--model-control", "explicit", "--load-model", "dither")
    try:
        image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
        for _ in range(requests):
            infer(server, "dither", "image", image)
        time.sleep(0.3)
        base = {f: server.status_kib(f) for f in ("VmRSS", "RssAnon")}
        t0 = time.monotonic()
        status, _, body = server.post("/v2/repository/models/%s/load" % name, b"")
        if status != 200:
            raise RuntimeError("load %s: HTTP %d %s" % (name, status, body[:300]))
        load_s = time.monotonic() - t0
        loaded = {f: server.status_kib(f) for f in ("VmRSS", "RssAnon")}
        x = torch.rand((1,) + input_shape, generator=torch.Generator().manual_seed(5))
        t0 = time.monotonic()
        for _ in range(requests):
            infer(server, name, input_name, x)
        elapsed = time.monotonic() - t0
        time.sleep(0.3)
        after = {f: server.status_kib(f) for f in ("VmRSS", "RssAnon", "VmHWM")}
        return {"baseline_vmrss_kib": base["VmRSS"], "baseline_rssanon_kib": base["RssAnon"],
                "after_load_vmrss_kib": loaded["VmRSS"],
                "vmrss_kib": after["VmRSS"], "rssanon_kib": after["RssAnon"], "vmhwm_kib": after["VmHWM"],
                "added_vmrss_kib": after["VmRSS"] - base["VmRSS"],
                "added_rssanon_kib": after["RssAnon"] - base["RssAnon"],
                "load_call_s": load_s, "requests": requests,
                "sequential_requests_per_s": requests / elapsed}
    finally:
        server.stop()


def median_of(runs):
    """runs: list of dicts with the same keys -> the median of each number."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]
            if isinstance(runs[0][k], (int, float))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "quantization-2026-11-30.json"))
    ap.add_argument("--duration-s", type=float, default=3.0, help="inferd bench window per level")
    ap.add_argument("--repeats", type=int, default=3, help="speed rounds and memory servers per model")
    ap.add_argument("--inputs", type=int, default=1000, help="seeded inputs for the output difference")
    ap.add_argument("--memory-requests", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the accuracy part")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.monotonic()

    pairs = [("mlp", "mlp_int8")]
    skipped = {}
    if os.path.exists(model_file("resnet18_int8")):
        pairs.append(("resnet18", "resnet18_int8"))
    else:
        skipped["resnet18_int8"] = "no examples/models/resnet18_int8/1/model.pt (static quantization unavailable?)"
    for pair in pairs:
        for name in pair:
            if not os.path.exists(model_file(name)):
                sys.exit("%s is missing: run scripts/models first" % model_file(name))

    results = {
        "command": "/usr/bin/python3 bench/quantization_bench.py",
        "machine": "%s, %d cores shared by server, load generator and this script; %s" % (
            platform.node(), os.cpu_count(), platform.release()),
        "torch": torch.__version__,
        "quantized_engine_python": torch.backends.quantized.engine,
        "binary": INFERD,
        "binary_mtime": mtime(INFERD),
        "plugin_mtime": mtime(PLUGIN),
        "loadavg_start": os.getloadavg(),
        "git_head": git("rev-parse", "HEAD"),
        "git_dirty_files": git("status", "--porcelain", "--untracked-files=no").splitlines(),
        "duration_s": args.duration_s,
        "repeats": args.repeats,
        "skipped": skipped,
        "model_file_bytes": {n: os.path.getsize(model_file(n)) for p in pairs for n in p},
        "pairs": {},
    }
    with tempfile.TemporaryDirectory(prefix="inferd-quant-") as tmp:
        # 1. Accuracy, with no server running.
        for fp32, int8 in pairs:
            log("accuracy %s vs %s over %d inputs" % (int8, fp32, args.inputs))
            results["pairs"][fp32] = {"int8": int8, "accuracy": accuracy(fp32, int8, args.inputs)}

        # 2. Speed: one server per pair with both models loaded; --repeats
        # rounds, the order of the two models alternating between rounds.
        for fp32, int8 in pairs:
            shape, input_name, conc, payload, warmup = SPECS[fp32]
            server = Server("--model-control", "explicit", "--load-model", "%s,%s" % (fp32, int8))
            try:
                entry = results["pairs"][fp32]
                entry["index"] = server.index()
                entry["served_vs_saved"] = served_matches_saved(server, (fp32, int8))
                runs = {fp32: [], int8: []}
                for r in range(args.repeats):
                    for name in ((fp32, int8) if r % 2 == 0 else (int8, fp32)):
                        runs[name].append(bench(server, name, [1, conc], payload, args.duration_s,
                                                warmup, tmp))
                entry["speed_runs"] = runs
                entry["speed"] = {name: {level: median_of([run[level] for run in rs]) for level in rs[0]}
                                  for name, rs in runs.items()}
                entry["throughput_concurrency"] = conc
                entry["payload"] = payload
            finally:
                server.stop()

        # 3. Memory: what loading each model adds to a server that already
        # runs a TorchScript model (dither), --repeats fresh servers each.
        for fp32, int8 in pairs:
            shape, input_name = SPECS[fp32][0], SPECS[fp32][1]
            runs = {name: [memory(name, shape, input_name, args.memory_requests)
                           for _ in range(args.repeats)] for name in (fp32, int8)}
            results["pairs"][fp32]["memory_runs"] = runs
            results["pairs"][fp32]["memory"] = {name: median_of(rs) for name, rs in runs.items()}
    results["total_seconds"] = time.monotonic() - started
    results["loadavg_end"] = os.getloadavg()
    for what, path in (("binary", INFERD), ("plugin", PLUGIN)):
        if mtime(path) != results[what + "_mtime"]:
            results["warning"] = "%s was rebuilt during the run" % path
            log("WARNING: " + results["warning"])

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)

    print("| model | c=1 p50 ms | throughput (c) | VmRSS added, MiB | RssAnon added, MiB | model.pt MB "
          "| largest abs diff vs FP32 |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for fp32, entry in results["pairs"].items():
        conc = str(entry["throughput_concurrency"])
        acc = entry["accuracy"]
        for name in (fp32, entry["int8"]):
            s = entry["speed"][name]
            m = entry["memory"][name]
            if name == fp32:
                diff = "(reference; largest abs output %.3g)" % acc["max_abs_fp32_output"]
            else:
                diff = "%.3g over %d inputs" % (acc["max_abs_diff"], acc["inputs"])
                if "top1_agreement" in acc:
                    diff += ", top-1 agreement %.1f%%" % (100 * acc["top1_agreement"])
                if "max_abs_diff_one_batch" in acc:
                    diff += " (%.3g as one batch)" % acc["max_abs_diff_one_batch"]
            print("| %s | %.2f | %.0f/s (c=%s) | %.1f | %.1f | %.1f | %s |" % (
                name, s["1"]["p50_ms"], s[conc]["items_per_s"], conc, m["added_vmrss_kib"] / 1024,
                m["added_rssanon_kib"] / 1024, results["model_file_bytes"][name] / 1e6, diff))
    print("\nserved vs saved (largest |inferd - torch.jit.load|): %s; total %.0f s; raw: %s" % (
        {n: "%.2g" % v["max_abs_diff_inferd_vs_python"]
         for e in results["pairs"].values() for n, v in e["served_vs_saved"].items()},
        results["total_seconds"], args.out))
    for name, why in skipped.items():
        print("skipped %s: %s" % (name, why))


if __name__ == "__main__":
    main()
