#!/usr/bin/env python3
"""What tenants cost on the hit path (issue 10, items 1-2): inferd's CPU
per memo hit under `wrk -t1 -c32`, posting the same JSON body to the
cached mlp, (a) without a key (the default tenant, no limits) and (b) with
`Authorization: Bearer KEY` of a tenant with a rate limit too high to
refuse anything (1,000,000/s): the key's SHA-256 and the constant-time
compare, the GCRA take and the RateLimit fields. One server, the runs
alternating a / b. wrk and the server share the machine's 2 cores.

    /usr/bin/python3 bench/auth_overhead_bench.py [--repeats 5] [--out FILE]
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_e2e_bench as e2e  # noqa: E402
import wrk_hits_bench as w  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--duration-s", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(e2e.ROOT, "bench", "results", "auth_overhead.json"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="inferd-auth-")
    inferd = None
    try:
        repo = os.path.join(tmp, "models")
        e2e.copy_model("mlp", repo, "mlp_cached", e2e.CACHE_TABLE)
        out = subprocess.run([e2e.INFERD, "keygen"], capture_output=True, text=True, check=True).stdout
        key = out.split('key = "', 1)[1].split('"', 1)[0]
        digest = out.split('api_key_sha256 = ["', 1)[1].split('"', 1)[0]
        config = os.path.join(tmp, "inferd.toml")
        with open(config, "w") as f:
            f.write('[[tenants]]\nname = "acme"\napi_key_sha256 = ["%s"]\n'
                    'requests_per_s = 1000000\nburst = 1000000\n' % digest)
        inferd, url = e2e.start_inferd(repo, ["--config", config])
        req = json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                                      "data": [0.5] * 16}]})
        plain = os.path.join(tmp, "plain.lua")
        w.lua_script(plain, req)
        keyed = os.path.join(tmp, "keyed.lua")
        w.lua_script(keyed, req)
        with open(keyed, "a") as f:
            f.write('wrk.headers["Authorization"] = "Bearer %s"\n' % key)
        path = url + "/v2/models/mlp_cached/infer"
        for _ in range(3):  # a miss, a canonical hit (memoized), a memo hit: per tenant
            e2e.http_get(path, req.encode())
        subprocess.run(["wrk", "-t1", "-c4", "-d1s", "-s", keyed, path], capture_output=True, check=True)
        runs = {"no_key": [], "key_and_limit": []}
        for _ in range(args.repeats):
            runs["no_key"].append(w.wrk_run(path, plain, 32, args.duration_s, inferd.pid))
            runs["key_and_limit"].append(w.wrk_run(path, keyed, 32, args.duration_s, inferd.pid))
        med = {k: statistics.median(r["server_us_per_req"] for r in v) for k, v in runs.items()}
        rps = {k: statistics.median(r["rps"] for r in v) for k, v in runs.items()}
        errors = sum(r["non_2xx"] for v in runs.values() for r in v)
        result = {"machine": "2 cores shared by the server and wrk -t1", "repeats": args.repeats,
                  "duration_s": args.duration_s, "cpu_us_per_req": med, "rps": rps,
                  "cpu_ratio_key_over_no_key": med["key_and_limit"] / med["no_key"],
                  "pair_ratios": [b["server_us_per_req"] / a["server_us_per_req"]
                                  for a, b in zip(runs["no_key"], runs["key_and_limit"])],
                  "non_2xx": errors, "runs": runs}
    finally:
        if inferd and inferd.poll() is None:
            inferd.send_signal(signal.SIGTERM)
            inferd.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("| request | req/s | server CPU µs/req |")
    print("|---|---:|---:|")
    for k in ("no_key", "key_and_limit"):
        print("| %s | %.0f | %.2f |" % (k, rps[k], med[k]))
    print("ratio %.3f (pairs %s), non-2xx %d" % (result["cpu_ratio_key_over_no_key"],
          ", ".join("%.3f" % p for p in result["pair_ratios"]), errors))


if __name__ == "__main__":
    main()
