#!/usr/bin/env python3
"""The cost of admission on the hit path against nginx (issue 10, item 11,
last sentence: "cache hits with auth and rate limits on stay >= 0.9 x
nginx's fixed body (the 8c benchmark)").

Part 1 of bench/cache_e2e_bench.py (section 8c), with its helpers: `inferd
bench` (one load thread) at concurrency 64 sends the same JSON request
(--input-file) to the cached mlp, where every request is an exact-repeat memo
hit, and to nginx returning inferd's response body to that request as a fixed
string (`return 200`, worker_processes 2). Three servers are up, and the runs
rotate over them:

  - nginx, the fixed body;
  - inferd with auth: `--config` with a tenant (a key from `inferd keygen`,
    requests_per_s = 1000000, burst = 1000000: a limit too high to refuse
    anything), and `inferd bench --api-key KEY`: every request pays the key's
    SHA-256, the constant-time compare, one GCRA take and the RateLimit-Policy
    and RateLimit response fields;
  - inferd without auth: the same repository, no config file, no key (the 8c
    server).

Per run: throughput, latency, server CPU per request (utime + stime of the
server's processes over the measurement window, as in 8c) and the load
generator's. Reported: inferd-with-auth / nginx and inferd-without-auth /
nginx as the median of the per-pair ratios (run i of each, adjacent in time)
and as the ratio of the medians, and CPU per request. /metrics deltas check
that the auth server admitted the requests as the tenant (not the default
one) and refused none. The server and the load generator share the machine's
2 cores.

    /usr/bin/python3 bench/auth_hit_path_bench.py [--repeats 7] [--out FILE]   # about 2.5 minutes
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
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_e2e_bench as e2e  # noqa: E402
import overload_bench as ob  # noqa: E402  (parse_metrics, metric_by, machine_info, git_info)

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post(url, body, key=None):
    req = urllib.request.Request(url, data=body, method="POST")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    with OPENER.open(req) as r:
        return r.status, dict(r.headers), r.read().decode()


def admission(url):
    """{(tenant, decision): count} of inferd_admission_decisions_total."""
    out = {}
    for name, labels, value in ob.parse_metrics(ob.http_text(url + "/metrics")):
        if name == "inferd_admission_decisions_total":
            k = "%s/%s" % (labels.get("tenant"), labels.get("decision"))
            out[k] = out.get(k, 0) + value
    return out


def ratios(a_runs, b_runs, key="throughput_rps"):
    return [a[key] / b[key] for a, b in zip(a_runs, b_runs)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--duration-s", type=float, default=5)
    ap.add_argument("--warmup-s", type=float, default=1)
    ap.add_argument("--out", default=os.path.join(e2e.ROOT, "bench", "results", "auth_hit_path.json"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="inferd-auth-hit-")
    result = {"benchmark": "hit path with auth against nginx (issue 10 item 11)",
              "machine": ob.machine_info(), "git": ob.git_info(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "args": vars(args)}
    auth = plain = nginx = None
    try:
        repo = os.path.join(tmp, "models")
        e2e.copy_model("mlp", repo, "mlp_cached", e2e.CACHE_TABLE)
        out = subprocess.run([e2e.INFERD, "keygen"], capture_output=True, text=True, check=True).stdout
        key = out.split('key = "', 1)[1].split('"', 1)[0]
        digest = out.split('api_key_sha256 = ["', 1)[1].split('"', 1)[0]
        config = os.path.join(tmp, "inferd.toml")
        config_text = ('[[tenants]]\nname = "acme"\napi_key_sha256 = ["%s"]\n'
                       'requests_per_s = 1000000\nburst = 1000000\n' % digest)
        with open(config, "w") as f:
            f.write(config_text)
        result["config"] = config_text.replace(digest, "<sha256 of the key>")
        auth, auth_url = e2e.start_inferd(repo, ["--config", config])
        plain, plain_url = e2e.start_inferd(repo)

        request_file = os.path.join(tmp, "request.json")
        req = json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                                      "data": [0.5] * 16}]})
        with open(request_file, "w") as f:
            f.write(req)
        infer = "/v2/models/mlp_cached/infer"
        # A miss, a canonical hit (memoized), a memo hit: on each server, as
        # the tenant on the auth server.
        for _ in range(3):
            _, auth_headers, auth_body = post(auth_url + infer, req.encode(), key)
            _, _, plain_body = post(plain_url + infer, req.encode())
        if auth_body != plain_body:
            raise RuntimeError("the two inferd servers answer differently:\n%s\n%s" % (auth_body, plain_body))
        result["auth_response_headers"] = {k: v for k, v in auth_headers.items() if k.lower().startswith("ratelimit")}
        metadata = e2e.http_get(plain_url + "/v2/models/mlp_cached")
        port = e2e.free_port()
        nginx = e2e.start_nginx(tmp, port, metadata, plain_body)
        nginx_url = "http://127.0.0.1:%d" % port
        result["response_bytes"] = len(plain_body)

        c64 = ["--concurrency", "64", "--input-file", request_file]
        n_runs, a_runs, p_runs = [], [], []
        adm0 = admission(auth_url)
        for _ in range(args.repeats):
            n_runs.append(e2e.bench(nginx_url, "mlp_cached", args, tmp, c64, nginx.pid))
            a_runs.append(e2e.bench(auth_url, "mlp_cached", args, tmp, c64 + ["--api-key", key], auth.pid))
            p_runs.append(e2e.bench(plain_url, "mlp_cached", args, tmp, c64, plain.pid))
        adm1 = admission(auth_url)
        result["auth_server_admission_delta"] = {k: adm1[k] - adm0.get(k, 0) for k in adm1
                                                 if adm1[k] - adm0.get(k, 0)}
        runs = []
        for i in range(args.repeats):
            runs += [e2e.run_record("nginx", "c=64", n_runs[i]),
                     e2e.run_record("inferd, auth", "c=64 --api-key", a_runs[i]),
                     e2e.run_record("inferd, no auth", "c=64", p_runs[i])]
        result["runs"] = runs
        med = e2e.median
        result["rps"] = {"nginx": med(n_runs, "throughput_rps"), "inferd_auth": med(a_runs, "throughput_rps"),
                         "inferd_no_auth": med(p_runs, "throughput_rps")}
        result["pair_ratios"] = {"auth_over_nginx": ratios(a_runs, n_runs),
                                 "no_auth_over_nginx": ratios(p_runs, n_runs),
                                 "auth_over_no_auth": ratios(a_runs, p_runs)}
        result["ratio_median_of_pair_ratios"] = {k: statistics.median(v) for k, v in result["pair_ratios"].items()}
        result["ratio_of_medians"] = {"auth_over_nginx": result["rps"]["inferd_auth"] / result["rps"]["nginx"],
                                      "no_auth_over_nginx": result["rps"]["inferd_no_auth"] / result["rps"]["nginx"]}
        result["server_cpu_us_per_req"] = {"nginx": e2e.median_cpu(n_runs, "server_us_per_req"),
                                           "inferd_auth": e2e.median_cpu(a_runs, "server_us_per_req"),
                                           "inferd_no_auth": e2e.median_cpu(p_runs, "server_us_per_req")}
        result["loadgen_cpu_us_per_req"] = {"nginx": e2e.median_cpu(n_runs, "loadgen_us_per_req"),
                                            "inferd_auth": e2e.median_cpu(a_runs, "loadgen_us_per_req"),
                                            "inferd_no_auth": e2e.median_cpu(p_runs, "loadgen_us_per_req")}
        result["cores_used"] = {name: {"server": e2e.median_cpu(l, "server_cores"),
                                       "loadgen": e2e.median_cpu(l, "loadgen_cores")}
                                for name, l in (("nginx", n_runs), ("inferd_auth", a_runs),
                                                ("inferd_no_auth", p_runs))}
        result["cpu_pair_ratios_auth_over_no_auth"] = [a["cpu"]["server_us_per_req"] / p["cpu"]["server_us_per_req"]
                                                       for a, p in zip(a_runs, p_runs)]
        result["errors"] = sum(r["errors"] for r in runs)
        result["goal_auth_ge_0_9_of_nginx"] = result["ratio_median_of_pair_ratios"]["auth_over_nginx"] >= 0.9
    finally:
        for p in (auth, plain, nginx):
            if p and p.poll() is None:
                p.send_signal(signal.SIGQUIT if p is nginx else signal.SIGTERM)
                p.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    rps, cpu, gen = result["rps"], result["server_cpu_us_per_req"], result["loadgen_cpu_us_per_req"]
    pr, rm = result["ratio_median_of_pair_ratios"], result["ratio_of_medians"]
    print("| server | req/s (median of %d) | / nginx, median of pairs (range) | ratio of medians "
          "| server CPU us/req | load gen CPU us/req |" % args.repeats)
    print("|---|---:|---:|---:|---:|---:|")
    print("| nginx, fixed %d-byte body | %.0f | | | %.2f | %.2f |" % (result["response_bytes"], rps["nginx"],
                                                                   cpu["nginx"], gen["nginx"]))
    for name, k in (("inferd, key and rate limit", "auth"), ("inferd, no auth", "no_auth")):
        v = result["pair_ratios"][k + "_over_nginx"]
        print("| %s | %.0f | %.3f (%.3f-%.3f) | %.3f | %.2f | %.2f |" % (
            name, rps["inferd_" + k], pr[k + "_over_nginx"], min(v), max(v), rm[k + "_over_nginx"],
            cpu["inferd_" + k], gen["inferd_" + k]))
    print("\nauth / no auth: throughput %.3f (median of pairs), server CPU %.3f (median of pairs)" % (
        pr["auth_over_no_auth"], statistics.median(result["cpu_pair_ratios_auth_over_no_auth"])))
    print("auth server admission decisions during the runs: %s" % result["auth_server_admission_delta"])
    print("errors: %d; goal (auth >= 0.9 x nginx, median of pairs): %s" % (
        result["errors"], "met" if result["goal_auth_ge_0_9_of_nginx"] else "NOT met"))
    print("\n| # | server | req/s | p50 / p99 ms | server us/req | load gen us/req | cores server + load gen | errors |")
    print("|---|---|---:|---|---:|---:|---|---:|")
    for n, r in enumerate(result["runs"], 1):
        print("| %d | %s | %.0f | %s / %s | %.2f | %.2f | %.2f + %.2f | %d |" % (
            n, r["server"], r["throughput_rps"], e2e.ms(r["latency_ms"]["p50"]), e2e.ms(r["latency_ms"]["p99"]),
            r["server_us_per_req"], r["loadgen_us_per_req"], r["server_cores"], r["loadgen_cores"], r["errors"]))
    print("\nJSON: %s" % args.out)


if __name__ == "__main__":
    main()
