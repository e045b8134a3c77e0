#!/usr/bin/env python3
"""Adaptive batching against fixed settings (issue 10, item 7: "the benchmark
shows what it buys against the best fixed setting and against a badly chosen
one").

resnet18 (examples/models/resnet18, model.pt symlinked into a temporary
repository), instance_count 2, max_queue_size 256, intra_op_threads 1, served
by the real build/inferd; a fresh server per run.

1. Capacity C: closed-loop `inferd bench` (binary payload, concurrency 16,
   --capacity-duration-s, default 8 s after 3 s of warm-up) against a good
   fixed setting (max_batch_size 8, max_queue_delay_us 2000).
2. At each load factor f (default 0.5 and 0.9): open-loop Poisson runs of
   `inferd bench --mix "all:rate=f*C,slo_ms=TARGET" --arrival poisson
   --payload binary --duration-s 12 --warmup-s 3 --timeout-ms 30000
   --max-connections 1024`, one per setting:
     - adaptive: `[dynamic_batching] adaptive = true, latency_target_us =
       TARGET` (300 ms), max_batch_size 32;
     - fixed: max_batch_size x max_queue_delay_us over {1, 4, 8, 16} x {0,
       5000, 20000, 100000}, trimmed: max_batch_size 1 only with delay 0 (a
       batch of one item is full as soon as it is formed, so the delay is
       never waited: 1 / 5000, 1 / 20000 and 1 / 100000 are the same server as
       1 / 0);
     - the two bad settings: 1 / 0 (in the sweep) and 32 / 100000.
   No setting has preferred_batch_sizes (they must be <= max_batch_size, and
   the sweep is over the cap and the delay only).
   Per run: throughput, p50 / p99 of the 200s, goodput (200s within the
   target, per second, from --mix's slo_ms), the share of the responses of the
   window that were 200s within the target (see derive()), errors,
   and from /metrics the mean batch size and compute time per request over the
   run. Every --sample-s (1 s) while the bench runs: inferd_adaptive_batch_cap,
   inferd_adaptive_batch_delay_seconds, inferd_adaptive_batch_infeasible,
   inferd_batch_cost_seconds{term="fixed"|"per_item"}, the queue depth, the
   batch-size and compute counters (for per-second mean batch sizes) and the
   CPU time of the server, of the load generator and of the machine.
3. Per load: the best fixed setting (highest goodput; goodput within --tie,
   1 %, of the highest counts as equal, and then the lower p99 wins), and
   adaptive against it and against the two bad settings.
   --summarize FILE recomputes this from a results file without running.

The server and the load generator share the machine's 2 cores.

Usage, from the repo root, after the build (nothing is built here):

    /usr/bin/python3 bench/adaptive_batching_bench.py --out bench/results/adaptive_batching-DATE.json
    /usr/bin/python3 bench/adaptive_batching_bench.py --quick        # smoke test, ~2 min

About 9 minutes for the default sweep (15 settings x 2 loads, and C). Results: --out
(default bench/results/adaptive_batching.json; --quick: /tmp), a summary on
stdout, commands on stderr.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_e2e_bench as e2e  # noqa: E402
import overload_bench as ob  # noqa: E402  (Server, metrics parsing, machine_info, git_info)

MODEL = ob.MODEL  # resnet18
QUICK_OUT = os.path.join(tempfile.gettempdir(), "adaptive_batching_quick.json")


# ---------------------------------------------------------------- settings


def setting_name(s):
    if s["adaptive"]:
        return "adaptive %d ms (max %d)" % (s["target_us"] // 1000, s["max_batch_size"])
    return "fixed %d / %g ms" % (s["max_batch_size"], s["delay_us"] / 1000)


def model_config(s):
    """The example resnet18 config with the setting's [dynamic_batching]."""
    with open(os.path.join(e2e.MODELS, MODEL, "config.toml")) as f:
        config = f.read()
    config, n = re.subn(r"(?m)^max_batch_size\s*=\s*\d+", "max_batch_size = %d" % s["max_batch_size"], config)
    if n != 1:
        raise RuntimeError("cannot find max_batch_size in the resnet18 config")
    table = ["[dynamic_batching]", "max_queue_delay_us = %d" % s["delay_us"], "max_queue_size = 256"]
    if s["adaptive"]:
        table += ["adaptive = true", "latency_target_us = %d" % s["target_us"]]
    config, n = re.subn(r"(?ms)^\[dynamic_batching\].*?(?=^\[)", "\n".join(table) + "\n\n", config)
    if n != 1:
        raise RuntimeError("cannot find [dynamic_batching] in the resnet18 config")
    return config


def make_repo(root, label, s):
    repo = os.path.join(root, "models-" + label)
    os.makedirs(os.path.join(repo, MODEL, "1"))
    config = model_config(s)
    with open(os.path.join(repo, MODEL, "config.toml"), "w") as f:
        f.write(config)
    os.symlink(os.path.join(e2e.MODELS, MODEL, "1", "model.pt"), os.path.join(repo, MODEL, "1", "model.pt"))
    return repo, config


def settings(args):
    out = [{"kind": "adaptive", "adaptive": True, "max_batch_size": args.adaptive_max_batch_size,
            "delay_us": 2000, "target_us": args.target_us}]
    for b in [int(x) for x in args.batch_sizes.split(",")]:
        for d in [int(x) for x in args.delays_us.split(",")]:
            if b == 1 and d != 0:
                continue  # the same server as 1 / 0 (see the docstring)
            kind = "bad" if (b, d) == (1, 0) else "fixed"
            out.append({"kind": kind, "adaptive": False, "max_batch_size": b, "delay_us": d})
    out.append({"kind": "bad", "adaptive": False, "max_batch_size": 32, "delay_us": 100000})
    if not any(s["max_batch_size"] == 1 and s["delay_us"] == 0 for s in out):
        out.insert(1, {"kind": "bad", "adaptive": False, "max_batch_size": 1, "delay_us": 0})
    for s in out:
        s["name"] = setting_name(s)
    return out


# ---------------------------------------------------------------- sampling


class Sampler(threading.Thread):
    """Every period_s: the adaptive gauges, queue depth, batch and compute
    counters from /metrics, and CPU ticks of the server, the load generator
    and the machine."""

    def __init__(self, server, period_s):
        super().__init__(daemon=True)
        self.server, self.period_s = server, period_s
        self.loadgen_pid = None
        self.t0 = time.monotonic()
        self.samples = []
        self.scrape_failures = 0
        self.stopping = threading.Event()

    def sample(self):
        s = {"t": round(time.monotonic() - self.t0, 3), "server_ticks": ob.ticks(self.server.proc.pid),
             "loadgen_ticks": ob.ticks(self.loadgen_pid) if self.loadgen_pid else None,
             "machine_ticks": ob.machine_busy_ticks()}
        try:
            m = ob.parse_metrics(ob.http_text(self.server.url + "/metrics", timeout_s=max(2, self.period_s)))
            lab = {"model": MODEL}
            s["cap"] = ob.metric_sum(m, "inferd_adaptive_batch_cap", **lab)
            s["delay_ms"] = (None if ob.metric_sum(m, "inferd_adaptive_batch_delay_seconds", **lab) is None
                             else 1e3 * ob.metric_sum(m, "inferd_adaptive_batch_delay_seconds", **lab))
            s["infeasible"] = ob.metric_sum(m, "inferd_adaptive_batch_infeasible", **lab)
            cost = ob.metric_by(m, "inferd_batch_cost_seconds", "term", **lab)
            s["cost_fixed_ms"] = 1e3 * cost["fixed"] if "fixed" in cost else None
            s["cost_per_item_ms"] = 1e3 * cost["per_item"] if "per_item" in cost else None
            s["queue_depth"] = ob.metric_sum(m, "inferd_queue_depth", **lab)
            s["batches"] = ob.metric_sum(m, "inferd_batch_size_count", **lab)
            s["batch_items"] = ob.metric_sum(m, "inferd_batch_size_sum", **lab)
            s["compute_count"] = ob.metric_sum(m, "inferd_compute_duration_seconds_count", **lab)
            s["compute_sum_s"] = ob.metric_sum(m, "inferd_compute_duration_seconds_sum", **lab)
        except (OSError, ValueError):
            self.scrape_failures += 1
        self.samples.append(s)

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            self.sample()
            self.stopping.wait(max(0.0, self.period_s - (time.monotonic() - started)))

    def stop(self):
        self.stopping.set()
        self.join()


def per_second(samples):
    """Per sample interval: mean batch size of the batches that ended in it."""
    out = []
    for a, b in zip(samples, samples[1:]):
        if None in (a.get("batches"), b.get("batches"), a.get("batch_items"), b.get("batch_items")):
            continue
        n = b["batches"] - a["batches"]
        out.append({"t": b["t"], "batches": n,
                    "mean_batch": (b["batch_items"] - a["batch_items"]) / n if n else None})
    return out


def stats(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    return {"min": v[0], "median": statistics.median(v), "max": v[-1], "n": len(v)}


# ---------------------------------------------------------------- runs


def capacity(args, tmp):
    s = {"adaptive": False, "max_batch_size": 8, "delay_us": 2000}
    repo, config = make_repo(tmp, "capacity", s)
    server = ob.Server(repo, os.path.join(tmp, "serve-capacity.log"))
    try:
        cmd, out = ob.bench_cmd(server.url, tmp,
                                ["--concurrency", str(args.capacity_concurrency),
                                 "--duration-s", str(args.capacity_duration_s), "--warmup-s", str(args.warmup_s),
                                 "--timeout-ms", str(args.timeout_ms)], "capacity")
        t0, m0, s0 = time.monotonic(), ob.machine_busy_ticks(), ob.ticks(server.proc.pid)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        report, failure, stdout = ob.finish_bench(proc, out, 300)
        span = time.monotonic() - t0
        m1, s1 = ob.machine_busy_ticks(), ob.ticks(server.proc.pid)
        if report is None:
            raise RuntimeError("capacity run failed (%s):\n%s" % (failure, stdout))
        level = report["levels"][0]
        return {"setting": "fixed 8 / 2 ms", "config": config, "concurrency": args.capacity_concurrency,
                "throughput_rps": level["throughput_rps"], "errors": level["errors"],
                "p50_ms": level["latency_ms"].get("p50"), "p99_ms": level["latency_ms"].get("p99"),
                "server_cores": (s1 - s0) / e2e.CLK_TCK / span,
                "non_server_cores": ((m1 - m0) - (s1 - s0)) / e2e.CLK_TCK / span,
                "command": " ".join(cmd)}
    finally:
        server.stop()


def open_loop_run(args, tmp, s, factor, cap_rps, index):
    label = "%d-%g" % (index, factor)
    repo, config = make_repo(tmp, label, s)
    server = ob.Server(repo, os.path.join(tmp, "serve-%s.log" % label))
    sampler = Sampler(server, args.sample_s)
    rate = factor * cap_rps
    try:
        sampler.start()
        time.sleep(min(1.0, args.sample_s))
        mix = "all:rate=%.3f,slo_ms=%g" % (rate, args.target_us / 1000)
        cmd, out = ob.bench_cmd(server.url, tmp,
                                ["--mix", mix, "--arrival", "poisson", "--duration-s", str(args.duration_s),
                                 "--warmup-s", str(args.warmup_s), "--timeout-ms", str(args.timeout_ms),
                                 "--max-connections", str(args.max_connections), "--seed", str(args.seed)], label)
        before = ob.counters(ob.parse_metrics(ob.http_text(server.url + "/metrics")))
        t_launch = time.monotonic() - sampler.t0
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sampler.loadgen_pid = proc.pid
        report, failure, stdout = ob.finish_bench(
            proc, out, 120 + (args.duration_s + args.warmup_s) * 3 + args.timeout_ms / 1000)
        t_exit = time.monotonic() - sampler.t0
        sampler.loadgen_pid = None
        alive = server.alive_and_ready()
        after = ob.counters(ob.parse_metrics(ob.http_text(server.url + "/metrics"))) if alive else None
    finally:
        sampler.stop()
        code = server.stop()
    rec = {"setting": s["name"], "kind": s["kind"], "adaptive": s["adaptive"],
           "max_batch_size": s["max_batch_size"], "delay_us": s["delay_us"], "factor": factor,
           "offered_rps": rate, "mix": mix, "config": config, "command": " ".join(cmd),
           "bench_failure": failure, "server_alive_after": alive, "server_exit_code": code}
    if failure:
        rec["bench_stdout"] = stdout[-4000:]
    if after is not None:
        d = ob.delta(before, after)
        d["mean_batch_size"] = d["batch_items"] / d["batches"] if d["batches"] else None
        rec["server_counters"] = d
    w_from = t_launch + args.warmup_s + 0.5
    w_to = min(t_exit, w_from + args.duration_s)
    window = [x for x in sampler.samples if w_from <= x["t"] <= w_to]
    cores = {k: ob.cpu_cores(sampler.samples, k + "_ticks", w_from, w_to) for k in ("server", "loadgen", "machine")}
    cores["other"] = (cores["machine"] - cores["server"] - cores["loadgen"] if None not in cores.values() else None)
    rec["cpu_cores"] = cores
    if len(window) >= 2 and None not in (window[0].get("compute_count"), window[-1].get("compute_count")):
        a, b = window[0], window[-1]
        nb = b["batches"] - a["batches"]
        nc = b["compute_count"] - a["compute_count"]
        rec["window_mean_batch_size"] = (b["batch_items"] - a["batch_items"]) / nb if nb else None
        rec["window_compute_ms_per_request"] = 1e3 * (b["compute_sum_s"] - a["compute_sum_s"]) / nc if nc else None
    rec["window_queue_depth"] = stats(x.get("queue_depth") for x in window)
    if s["adaptive"]:
        rec["adaptive_window"] = {
            "cap": stats(x.get("cap") for x in window),
            "delay_ms": stats(x.get("delay_ms") for x in window),
            "infeasible_samples": sum(1 for x in window if x.get("infeasible")),
            "cost_fixed_ms": stats(x.get("cost_fixed_ms") for x in window),
            "cost_per_item_ms": stats(x.get("cost_per_item_ms") for x in window),
        }
    rec["per_second_batches"] = per_second(sampler.samples)
    rec["samples"] = [{k: v for k, v in x.items() if not k.endswith("_ticks")} for x in sampler.samples]
    rec["t_launch_s"], rec["t_exit_s"] = round(t_launch, 3), round(t_exit, 3)
    if report is None:
        return rec
    level = report["levels"][0]
    c = level["classes"][0]
    lat = c.get("latency_ms", {})
    rec.update({
        "throughput_rps": c.get("throughput_rps"), "goodput_rps": c.get("goodput_rps"),
        "sent": c.get("sent"), "completed": c.get("completed"), "errors": c.get("errors"),
        "errors_by_kind": c.get("errors_by_kind", {}), "served_fraction": c.get("served_fraction"),
        "window_s": level.get("window_s"),
        "p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"), "p99_ms": lat.get("p99"), "max_ms": lat.get("max"),
        "connections": c.get("connections"), "backlog": c.get("backlog"),
    })
    derive(rec)
    rec["loadgen_fell_behind"] = bool((c.get("connections") or 0) >= args.max_connections or
                                      (c.get("backlog") or 0) > 0.01 * max(1, c.get("sent") or 0))
    return rec


def derive(rec):
    """The within-target shares of a run record (from the bench's counts).

    within_target_fraction: of the responses that arrived in the window
    (200s and errors), the 200s within the target (goodput counts the 200s
    completed in the window within it). Requests still in flight at the end
    of the window are not in it; a server that falls behind has answered
    only late requests in the window, so it scores near 0 all the same.
    within_target_of_sent: the same count over the requests sent in the
    window, capped at 1 (completions and sends straddle the window's edges
    differently: +-1% at these rates)."""
    good = rec["goodput_rps"] * rec["window_s"]
    answered = (rec["completed"] or 0) + (rec["errors"] or 0)
    rec["within_target_count"] = round(good)
    rec["within_target_fraction"] = good / answered if answered else None
    rec["within_target_of_sent"] = min(1.0, good / rec["sent"]) if rec["sent"] else None


# ---------------------------------------------------------------- output


def fmt(v, spec="%.0f", none="-"):
    return none if v is None else spec % v


def comparisons(runs, factors, tie=0.01):
    out = {}
    for f in factors:
        rs = [r for r in runs if r["factor"] == f and r.get("goodput_rps") is not None]
        fixed = [r for r in rs if not r["adaptive"]]
        ad = next((r for r in rs if r["adaptive"]), None)
        if not fixed or ad is None:
            continue
        # Highest goodput. Goodput within --tie of the highest counts as equal
        # (when every request meets the target, goodput is the offered rate,
        # +-0.1/s as completions straddle the window's end), and then the
        # lower p99 wins.
        top = max(r["goodput_rps"] for r in fixed)
        best = min((r for r in fixed if r["goodput_rps"] >= (1 - tie) * top), key=lambda r: r["p99_ms"] or 0)
        bad = [r for r in rs if r["kind"] == "bad"]
        entry = {"best_fixed": best["setting"], "best_fixed_goodput_rps": best["goodput_rps"],
                 "best_fixed_p99_ms": best["p99_ms"], "adaptive_p99_ms": ad["p99_ms"],
                 "tied_fixed_settings": sum(1 for r in fixed if r["goodput_rps"] >= (1 - tie) * top),
                 "highest_fixed_goodput_rps": top,
                 "adaptive_goodput_rps": ad["goodput_rps"],
                 "adaptive_over_best_fixed": ad["goodput_rps"] / best["goodput_rps"] if best["goodput_rps"] else None,
                 "fixed_settings_above_adaptive": sum(1 for r in fixed
                                                      if r["goodput_rps"] * (1 - tie) > ad["goodput_rps"]),
                 "settings": len(rs)}
        for b in bad:
            entry["adaptive_over_" + b["setting"]] = (ad["goodput_rps"] / b["goodput_rps"]
                                                      if b["goodput_rps"] else None)
        out["%g" % f] = entry
    return out


def print_summary(result):
    c = result["capacity"]
    print("\nCapacity C = %.1f req/s (closed loop c=%d, fixed 8 / 2 ms; server %.2f cores, others %.2f)" % (
        c["throughput_rps"], c["concurrency"], c["server_cores"], c["non_server_cores"]))
    print("Target %g ms; %g s per run after %g s warm-up; server and load generator share 2 cores\n" % (
        result["args"]["target_us"] / 1000, result["args"]["duration_s"], result["args"]["warmup_s"]))
    print("| load | setting | req/s | goodput/s | within target | p50 / p99 / max ms | errors | mean batch | "
          "compute ms/req | cores srv + gen + other | adaptive cap / delay ms / a ms / b ms (medians) |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|---|---|")
    for r in result["runs"]:
        if r.get("goodput_rps") is None:
            print("| %gx | %s | run failed: %s |" % (r["factor"], r["setting"], r.get("bench_failure")))
            continue
        cores = r["cpu_cores"]
        ad = "-"
        if r["adaptive"]:
            w = r["adaptive_window"]
            med = lambda k: fmt(w[k] and w[k]["median"], "%.1f")  # noqa: E731
            ad = "%s / %s / %s / %s (cap %s-%s)" % (med("cap"), med("delay_ms"), med("cost_fixed_ms"),
                                                    med("cost_per_item_ms"),
                                                    fmt(w["cap"] and w["cap"]["min"]),
                                                    fmt(w["cap"] and w["cap"]["max"]))
        errs = " ".join("%s:%d" % kv for kv in sorted(r["errors_by_kind"].items())) or "0"
        print("| %gx (%.1f/s)%s | %s%s | %.1f | %.1f | %.1f%% | %s / %s / %s | %s | %s | %s | %s + %s + %s | %s |" % (
            r["factor"], r["offered_rps"], " gen behind" if r["loadgen_fell_behind"] else "",
            r["setting"], " (bad)" if r["kind"] == "bad" else "",
            r["throughput_rps"], r["goodput_rps"], 100 * (r["within_target_fraction"] or 0),
            fmt(r["p50_ms"]), fmt(r["p99_ms"]), fmt(r["max_ms"]), errs, fmt(r.get("window_mean_batch_size"), "%.2f"),
            fmt(r.get("window_compute_ms_per_request"), "%.0f"),
            fmt(cores["server"], "%.2f"), fmt(cores["loadgen"], "%.2f"), fmt(cores["other"], "%.2f"), ad))
    print()
    for f, e in result["comparisons"].items():
        print("%sx: best fixed %s (goodput %.1f/s, p99 %.0f ms; %d fixed settings within 1%% of the highest "
              "goodput %.1f/s); adaptive %.1f/s (p99 %.0f ms) = %.3f x best; fixed settings more than 1%% above "
              "adaptive's goodput: %d of %d; %s" % (
            f, e["best_fixed"], e["best_fixed_goodput_rps"], e["best_fixed_p99_ms"], e["tied_fixed_settings"],
            e["highest_fixed_goodput_rps"], e["adaptive_goodput_rps"], e["adaptive_p99_ms"],
            e["adaptive_over_best_fixed"] or 0, e["fixed_settings_above_adaptive"], e["settings"] - 1,
            ", ".join("%s: %s" % (k[len("adaptive_over_"):], fmt(v, "%.2fx")) for k, v in e.items()
                      if k.startswith("adaptive_over_") and k != "adaptive_over_best_fixed")))
    for w in result["warnings"]:
        print("warning: " + w)


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--factors", default="0.5,0.9", help="multiples of C to offer")
    ap.add_argument("--target-us", type=int, default=300000, help="adaptive latency_target_us and slo_ms")
    ap.add_argument("--adaptive-max-batch-size", type=int, default=32)
    ap.add_argument("--batch-sizes", default="1,4,8,16", help="fixed sweep: max_batch_size")
    ap.add_argument("--delays-us", default="0,5000,20000,100000", help="fixed sweep: max_queue_delay_us")
    ap.add_argument("--duration-s", type=float, default=12)
    ap.add_argument("--warmup-s", type=float, default=3)
    ap.add_argument("--capacity", type=float, default=0, help="use this C instead of measuring it")
    ap.add_argument("--capacity-concurrency", type=int, default=16)
    ap.add_argument("--capacity-duration-s", type=float, default=8)
    ap.add_argument("--timeout-ms", type=int, default=30000)
    ap.add_argument("--max-connections", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--sample-s", type=float, default=1.0)
    ap.add_argument("--tie", type=float, default=0.01,
                    help="goodput within this fraction of the best counts as equal (then the lower p99 wins)")
    ap.add_argument("--other-cpu-warn", type=float, default=0.25)
    ap.add_argument("--out", default=os.path.join(e2e.ROOT, "bench", "results", "adaptive_batching.json"))
    ap.add_argument("--quick", action="store_true", help="smoke test: a few settings, short runs")
    ap.add_argument("--summarize", metavar="FILE",
                    help="run nothing: recompute the comparisons of a results file, rewrite it, print its summary")
    if ap.parse_args().summarize:
        args = ap.parse_args()
        with open(args.summarize) as f:
            result = json.load(f)
        factors = sorted({r["factor"] for r in result["runs"]})
        for r in result["runs"]:
            if r.get("goodput_rps") is not None:
                derive(r)
        result["comparisons"] = comparisons(result["runs"], factors, args.tie)
        with open(args.summarize, "w") as f:
            json.dump(result, f, indent=1)
        print_summary(result)
        return
    if ap.parse_args().quick:
        ap.set_defaults(batch_sizes="1,8", delays_us="0,20000", duration_s=4, warmup_s=1,
                        capacity_duration_s=3, out=QUICK_OUT)
    args = ap.parse_args()
    factors = [float(f) for f in args.factors.split(",")]

    ob.wait_for_binary()
    result = {"benchmark": "adaptive batching (issue 10 item 7)", "machine": ob.machine_info(),
              "git": ob.git_info(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(args),
              "model": MODEL, "warnings": []}
    tmp = tempfile.mkdtemp(prefix="inferd-adaptive-bench-")
    t_start = time.monotonic()
    try:
        if args.capacity > 0:
            result["capacity"] = {"given": True, "throughput_rps": args.capacity, "concurrency": 0,
                                  "server_cores": 0, "non_server_cores": 0}
        else:
            result["capacity"] = capacity(args, tmp)
        cap_rps = result["capacity"]["throughput_rps"]
        print("capacity C = %.1f req/s" % cap_rps, file=sys.stderr, flush=True)
        sets = settings(args)
        result["settings"] = sets
        runs = []
        index = 0
        for f in factors:
            for s in sets:
                index += 1
                rec = open_loop_run(args, tmp, s, f, cap_rps, index)
                runs.append(rec)
                if rec.get("bench_failure"):
                    result["warnings"].append("bench failed: %s at %gx: %s" % (s["name"], f, rec["bench_failure"]))
                if rec.get("loadgen_fell_behind"):
                    result["warnings"].append("load generator fell behind: %s at %gx" % (s["name"], f))
                other = rec["cpu_cores"]["other"]
                if other is not None and other > args.other_cpu_warn:
                    result["warnings"].append("other processes used %.2f cores during %s at %gx" % (
                        other, s["name"], f))
                if not rec["server_alive_after"] or rec["server_exit_code"] != 0:
                    result["warnings"].append("server %s at %gx: alive %s, exit %s" % (
                        s["name"], f, rec["server_alive_after"], rec["server_exit_code"]))
                print("done %d: %gx %s: goodput %s/s, p99 %s ms, within %s" % (
                    index, f, s["name"], fmt(rec.get("goodput_rps"), "%.1f"), fmt(rec.get("p99_ms")),
                    fmt(rec.get("within_target_fraction") and 100 * rec["within_target_fraction"], "%.1f%%")),
                    file=sys.stderr, flush=True)
        result["runs"] = runs
        result["comparisons"] = comparisons(runs, factors, args.tie)
        result["elapsed_s"] = round(time.monotonic() - t_start, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print_summary(result)
    print("\nJSON: %s (%.0f s)" % (args.out, result["elapsed_s"]))


if __name__ == "__main__":
    main()
