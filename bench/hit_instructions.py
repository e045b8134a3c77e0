#!/usr/bin/env python3
"""User-space instructions per memo hit, inferd against nginx, under callgrind.

CPU time per request on this shared 2-core machine drifts by several percent
from run to run; instruction counts do not. This runs each server under
`valgrind --tool=callgrind` with instrumentation off, warms it up, switches
collection on for a fixed number of requests (`wrk -t1 -c32` posting the
memo-hit workload of bench/wrk_hits_bench.py; under valgrind the server is
the bottleneck, so the count is wrk's), and reports instructions (Ir) per
request, whole and by function (the top of callgrind_annotate's inclusive
and exclusive listings). Kernel time is not seen: for the whole cost see
bench/hit_ab_bench.py.

    /usr/bin/python3 bench/hit_instructions.py [--build build] [--nginx] \\
        [--duration-s 10] [--out FILE] [--top 40]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_e2e_bench as e2e  # noqa: E402
import wrk_hits_bench as wrk_hits  # noqa: E402

PATH = "/v2/models/mlp_cached/infer"


def callgrind(out_file, argv):
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + out_file,
            "--dump-instr=no"] + argv


def control(pid, *args):
    subprocess.run(["callgrind_control"] + list(args) + [str(pid)], check=True,
                   capture_output=True)


def wait_listening(port, proc, timeout_s=120):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        if subprocess.run(["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:%d/" % port],
                          capture_output=True).returncode == 0:
            return
        time.sleep(0.2)  # a benchmark's start-up poll, not a test
    raise RuntimeError("server did not listen")


def measure(pid, url, script, duration_s, out_file):
    """Ir per request over one wrk run with collection on."""
    control(pid, "-i", "on")
    out = subprocess.run(["wrk", "-t1", "-c32", "-d%ds" % duration_s, "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    control(pid, "-d")  # the dump (".1"); the one at exit is not read
    control(pid, "-i", "off")
    n = int(re.search(r"(\d+) requests in", out).group(1))
    return n


def annotate(files, n, top):
    """Total Ir per request and the top functions, inclusive and exclusive."""
    total = 0
    exclusive = []
    for f in files:
        text = subprocess.run(["callgrind_annotate", "--threshold=100", f], capture_output=True,
                              text=True, check=True).stdout
        m = re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text, re.M)
        if m:
            total += int(m.group(1).replace(",", ""))
        for line in text.splitlines():
            m = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
            if m and "PROGRAM TOTALS" not in line:
                exclusive.append((int(m.group(1).replace(",", "")), m.group(2)))
    exclusive.sort(reverse=True)
    inclusive = []
    for f in files:
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", f],
                              capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            m = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
            if m and "PROGRAM TOTALS" not in line:
                inclusive.append((int(m.group(1).replace(",", "")), m.group(2)))
    inclusive.sort(reverse=True)
    per = lambda rows: [[round(ir / n), name[:160]] for ir, name in rows[:top]]
    return {"requests": n, "ir_per_request": round(total / n), "exclusive": per(exclusive),
            "inclusive": per(inclusive)}


def run_inferd(build, tmp, repo, req, script, args):
    out_file = os.path.join(tmp, "callgrind.inferd.%p")
    binary = os.path.join(os.path.abspath(build), "inferd")
    proc = subprocess.Popen(callgrind(out_file, [
        binary, "serve", "--model-repository", repo, "--http-port", "0", "--log-level", "warn",
        "--load-model", "*", "--http-threads", "1"]), stdout=subprocess.PIPE, text=True,
        stderr=subprocess.DEVNULL,
        # Valgrind does not run AVX-512: simdjson picks its AVX2 kernel.
        env=dict(os.environ, SIMDJSON_FORCE_IMPLEMENTATION="haswell"))
    url = None
    for line in proc.stdout:
        if line.startswith("inferd: listening on "):
            url = line.split()[-1]
            break
    if url is None:
        raise RuntimeError("inferd exited before listening")
    try:
        end = time.monotonic() + 300
        while True:  # the model loads slowly under valgrind
            try:
                e2e.http_get(url + "/v2/health/ready")
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)  # a benchmark's start-up poll, not a test
        for _ in range(3):  # a miss, a canonical hit (memoized), then a memo hit
            response = e2e.http_get(url + PATH, req.encode())
        subprocess.run(["wrk", "-t1", "-c32", "-d2s", "-s", script, url + PATH],
                       capture_output=True, check=True)  # warm-up
        n = measure(proc.pid, url + PATH, script, args.duration_s, out_file)
        files = [os.path.join(tmp, f) for f in os.listdir(tmp) if f.startswith("callgrind.inferd") and "." in f[len("callgrind.inferd."):]]
        return annotate(files, n, args.top), response
    finally:
        proc.terminate()
        proc.wait()


def run_nginx(tmp, response, script, args):
    port = 18000 + os.getpid() % 1000
    metadata = "{}"
    conf_dir = os.path.join(tmp, "nginx")
    os.makedirs(conf_dir)
    # start_nginx writes the configuration; run it again under valgrind,
    # one process (master_process off), so callgrind sees the worker.
    probe = e2e.start_nginx(conf_dir, port, metadata, response, workers=1)
    probe.terminate()
    probe.wait()
    out_file = os.path.join(tmp, "callgrind.nginx.%p")
    proc = subprocess.Popen(callgrind(out_file, [
        "/usr/sbin/nginx", "-c", os.path.join(conf_dir, "nginx.conf"), "-p", conf_dir, "-g",
        "master_process off;"]), stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        url = "http://127.0.0.1:%d%s" % (port, PATH)
        subprocess.run(["wrk", "-t1", "-c32", "-d2s", "-s", script, url], capture_output=True,
                       check=True)
        n = measure(proc.pid, url, script, args.duration_s, out_file)
        files = [os.path.join(tmp, f) for f in os.listdir(tmp) if f.startswith("callgrind.nginx") and "." in f[len("callgrind.nginx."):]]
        return annotate(files, n, args.top)
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--nginx", action="store_true")
    ap.add_argument("--duration-s", type=int, default=10)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--out")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="inferd-hit-ir-")
    repo, req, script = wrk_hits.hit_workload(tmp)
    result = {"machine": "2 cores shared by wrk and the server (valgrind)",
              "command": " ".join(sys.argv)}
    result["inferd"], response = run_inferd(args.build, tmp, repo, req, script, args)
    print("inferd: %d Ir per request (%d requests)" % (result["inferd"]["ir_per_request"],
                                                       result["inferd"]["requests"]))
    if args.nginx:
        result["nginx"] = run_nginx(tmp, response, script, args)
        print("nginx: %d Ir per request (%d requests)" % (result["nginx"]["ir_per_request"],
                                                          result["nginx"]["requests"]))
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
