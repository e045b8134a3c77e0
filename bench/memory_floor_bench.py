#!/usr/bin/env python3
"""The resident-memory floor of resnet18 with 2 instances (issue 11, item 7).

Issue 11's goal is resnet18 with 2 instances <= 250 MiB resident after load
and under load, at >= 0.95 of raw libtorch's best throughput. This measures,
in one run, what libtorch itself needs for that, so that inferd's figure can
be read against it:

1. Raw libtorch (bench/raw_torch_bench --share-module: one frozen, optimized
   module run by 2 threads of 1 intra-op thread each, no server), one process
   per batch size 1, 2, 4, 8: VmRSS after load, after the warm-up, and its
   peak (sampled every 20 ms) while it runs, with its throughput; once with
   glibc's default malloc and once with one arena (GLIBC_TUNABLES
   glibc.malloc.arena_max=1), the setting that keeps the least.
2. inferd serving resnet18 x2 with batches of at most 2, 4 and 8 (the
   example config with max_batch_size, preferred_batch_sizes and the warm-up
   sizes changed): VmRSS 1 s after the load, its peak under `inferd bench`
   (concurrency 8, binary payload), and its throughput against raw
   libtorch's best.
3. What loading libtorch costs before any weights: inferd with only the
   `mlp` example loaded (a few KiB of weights): VmRSS, anonymous memory, and
   the resident pages of shared libraries, split into libtorch's own
   (libtorch_cpu, libtorch, libc10, oneDNN, ...) and the rest, which Debian's
   libtorch_cpu.so pulls in through its DT_NEEDED entries (OpenCV, FFmpeg,
   GDAL, Qt, ...) and inferd never calls.

The load generator shares the machine's 2 cores with the server. Usage (from
the repo root, after scripts/build and scripts/models):

    /usr/bin/python3 bench/memory_floor_bench.py [--duration-s 10] [--out FILE]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lifecycle_bench as lb  # noqa: E402

MIB = 2.0**20
ONE_ARENA = "glibc.malloc.arena_max=1"
# libtorch's own libraries and the ones it uses for CPU inference; every
# other shared library in the process is either inferd's or dragged in.
TORCH_CORE = re.compile(r"lib(torch|torch_cpu|c10|dnnl|gomp|sleef|XNNPACK|blas|openblas|lapack|"
                        r"cpuinfo|pthreadpool|fmt|protobuf|onnx|onnx_proto|numa)\b")
INFERD_OWN = re.compile(r"(/inferd$|libinferd_|librocksdb|libhiredis|libssl|libcrypto|libxxhash|"
                        r"libtomlplusplus|libsimdjson|libz\.|libzstd|libstdc\+\+|libgcc_s|libc\.so|"
                        r"libm\.so|ld-linux|libboost|libsnappy|liblz4|libbz2|libprometheus)")


def raw_rows(tmp, duration_s):
    rows = []
    for tunables in ("", ONE_ARENA):
        for batch in (1, 2, 4, 8):
            out = os.path.join(tmp, "raw-%d-%d.json" % (batch, bool(tunables)))
            env = dict(os.environ)
            if tunables:
                env["GLIBC_TUNABLES"] = tunables
            subprocess.run([lb.RAW, "--model", os.path.join(lb.MODELS, "resnet18", "1", "model.pt"),
                            "--shape", "3,224,224", "--batch-sizes", str(batch), "--instances", "2",
                            "--threads", "1", "--optimize", "--share-module", "--duration-s",
                            str(duration_s / 2), "--repeats", "2", "--json", out],
                           check=True, env=env, stdout=subprocess.DEVNULL)
            with open(out) as f:
                raw = json.load(f)
            row = next(r for r in raw["rows"] if r["batch"] == batch)
            rows.append({"glibc_tunables": tunables, "batch": batch,
                         "rss_after_load_mib": raw["rss_after_load_mib"],
                         "rss_ready_mib": row["rss_ready_mib"], "rss_peak_mib": row["rss_peak_mib"],
                         "items_per_s": row["items_per_s"]})
            print("raw %-26s batch %d: after load %.1f, ready %.1f, peak %.1f MiB, %.1f img/s"
                  % (tunables or "default malloc", batch, raw["rss_after_load_mib"],
                     row["rss_ready_mib"], row["rss_peak_mib"], row["items_per_s"]),
                  file=sys.stderr, flush=True)
    return rows


def resnet_config(batch):
    with open(os.path.join(lb.MODELS, "resnet18", "config.toml")) as f:
        config = f.read()
    sizes = sorted({1, batch})
    for old, new in (("max_batch_size = 32", "max_batch_size = %d" % batch),
                     ("preferred_batch_sizes = [4, 8]", "preferred_batch_sizes = [%d]" % batch),
                     ("batch_sizes = [1, 4, 8]", "batch_sizes = %s" % sizes)):
        if old not in config:
            raise RuntimeError("examples/models/resnet18/config.toml has no '%s'" % old)
        config = config.replace(old, new)
    return config


def serve_one(tmp, name, model, config, files, cmd_args):
    repo = os.path.join(tmp, name)
    os.makedirs(os.path.join(repo, model, "1"))
    for f in files:
        os.symlink(os.path.join(lb.MODELS, model, "1", f), os.path.join(repo, model, "1", f))
    with open(os.path.join(repo, model, "config.toml"), "w") as f:
        f.write(config)
    return lb.Server(repo, ["--model-control", "explicit", "--load-model", model] + cmd_args)


def inferd_rows(tmp, duration_s):
    rows = []
    for batch in (2, 4, 8):
        server = serve_one(tmp, "resnet-%d" % batch, "resnet18", resnet_config(batch),
                           ["model.pt"], [])
        try:
            time.sleep(1)  # settle: the measurement, not a synchronization
            after_load, peak, lv = lb.peak_rss_during(server, lambda: lb.bench(
                server.url, "resnet18", 8, duration_s,
                os.path.join(tmp, "bench-%d.json" % batch), warmup_s=1))
        finally:
            server.stop()
        rows.append({"max_batch": batch, "rss_after_load_mib": after_load / MIB,
                     "rss_peak_under_load_mib": peak / MIB,
                     "items_per_s": lv["throughput_items_per_s"], "errors": lv["errors"]})
        print("inferd resnet18 x2, batches <= %d: after load %.1f, peak %.1f MiB, %.1f img/s"
              % (batch, after_load / MIB, peak / MIB, lv["throughput_items_per_s"]),
              file=sys.stderr, flush=True)
    return rows


def library_floor(tmp):
    with open(os.path.join(lb.MODELS, "mlp", "config.toml")) as f:
        config = f.read()
    server = serve_one(tmp, "mlp-only", "mlp", config,
                       os.listdir(os.path.join(lb.MODELS, "mlp", "1")), [])
    try:
        time.sleep(1)
        rss, anon = server.status("VmRSS"), server.anonymous()
        per_file = {}
        name = None
        with open("/proc/%d/smaps" % server.proc.pid) as f:
            for line in f:
                head = line.split()
                if re.match(r"^[0-9a-f]+-[0-9a-f]+$", head[0]):
                    name = head[5] if len(head) > 5 else None
                elif head[0] == "Rss:" and name and (".so" in name or name.endswith("/inferd")):
                    per_file[name] = per_file.get(name, 0) + int(head[1]) * 1024
    finally:
        server.stop()
    torch = sum(v for k, v in per_file.items() if TORCH_CORE.search(k))
    own = sum(v for k, v in per_file.items() if not TORCH_CORE.search(k) and INFERD_OWN.search(k))
    other = sum(per_file.values()) - torch - own
    result = {"rss_mib": rss / MIB, "anonymous_mib": anon / MIB, "mapped_files": len(per_file),
              "libtorch_core_libraries_rss_mib": torch / MIB,
              "inferd_and_system_libraries_rss_mib": own / MIB,
              "libraries_pulled_in_by_libtorch_rss_mib": other / MIB,
              "largest_pulled_in": sorted(
                  ((k, round(v / MIB, 2)) for k, v in per_file.items()
                   if not TORCH_CORE.search(k) and not INFERD_OWN.search(k)),
                  key=lambda kv: -kv[1])[:15]}
    print("inferd with mlp only: VmRSS %.1f MiB, anonymous %.1f MiB, %d files mapped; libtorch's "
          "own libraries %.1f MiB, inferd's and the system's %.1f MiB, pulled in by libtorch_cpu "
          "%.1f MiB" % (rss / MIB, anon / MIB, len(per_file), torch / MIB, own / MIB, other / MIB),
          file=sys.stderr, flush=True)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration-s", type=float, default=10)
    ap.add_argument("--out", default=os.path.join(
        lb.ROOT, "bench", "results", "memory_floor-%s.json" % time.strftime("%Y-%m-%d")))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="inferd-memory-floor-")
    try:
        result = {
            "command": " ".join([os.path.relpath(sys.argv[0], lb.ROOT)] + sys.argv[1:]),
            "machine": "2 cores shared by the server and the load generator",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "git": subprocess.run(["git", "-C", lb.ROOT, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip(),
            "library_floor": library_floor(tmp),
            "raw_libtorch": raw_rows(tmp, args.duration_s),
            "inferd": inferd_rows(tmp, args.duration_s),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best = max(r["items_per_s"] for r in result["raw_libtorch"] if not r["glibc_tunables"])
    result["raw_best_items_per_s"] = best
    for r in result["raw_libtorch"] + result["inferd"]:
        r["ratio_to_raw_best"] = r["items_per_s"] / best
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("raw libtorch's best: %.1f img/s; wrote %s" % (best, args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
