#!/usr/bin/env python3
"""Overload benchmark (issue 10, item 11; docs/design-admission.md section 15.1).

resnet18 served by the real `build/inferd` from a temporary model repository,
two priority classes, overload control on and off:

1. Capacity C: a closed-loop `inferd bench` sweep (binary payload, concurrency
   --capacity-concurrency, default 8,16,32) against a fresh server running the
   "off" config; C is the best throughput of the sweep.
2. For each mode (on: the model config has `[overload]`; off: it has not, so the
   only bound is the queue's max_queue_size, 503 "queue is full") and each
   factor f (0.5, 1, 2, 5): one open-loop Poisson run of `inferd bench --mix
   "high:priority=1,rate=0.1*f*C,slo_ms=SLO_H;low:priority=2,rate=0.9*f*C,slo_ms=SLO_L"`
   against a fresh server (see "Server per run" below).
   Per class: goodput (200s within the class's objective, per second), req/s,
   p50/p99 of the 200s, served share, errors by kind (503, 504, timeout, ...).
   In total: goodput / C, the offered rate the load generator achieved
   (requests due in the window and sent, per second) and its backlog.
   From /metrics deltas: shed (inferd_shed_total), queue drops by reason
   (evicted, expired, cancelled), requests by outcome, mean batch size.
   Every --sample-s (1 s) while the run goes: the server's RSS (the
   inferd_process_resident_memory_bytes gauge and /proc/<pid>/status VmRSS),
   the overload limit and slots in use, the standing delay, the queue depth by
   priority, and the CPU time of the server, of the load generator and of the
   machine: the cores other processes took ("other") show a run that shared
   the machine (a warning is printed above --other-cpu-warn). Server-side
   503s are split into shed / evicted / the rest ("queue is full").
3. The goals of the issue, checked at the largest factor: total goodput >= 90%
   of C, the high class's p99 <= its objective with >= 99% of it served, no
   crash (the server alive and ready after the run), RSS flat (it grows by at
   most --rss-tolerance-mib over the second half of the measurement window).

Model config. The example resnet18 config (instance_count 2, dynamic batching,
max_queue_size 256, preferred batch sizes 4 and 8, intra_op_threads 1) with
`[scheduling] priority_levels = 2` added, and `[overload]` in the "on" mode.
One change: max_batch_size 32 -> 8 (--max-batch-size). On these 2-core CPUs a
batch of 32 resnet18 items takes ~0.5 s on one instance and throughput at
batch 16-32 is lower than at 4-8 (closed loop c=8: ~115 req/s; c=32 with
max_batch_size 32: ~90 req/s; with 8: ~120 req/s at c=8 and c=16). Under overload every batch would be full, so
(a) a high-priority request that arrives while both instances run a batch of
32 waits ~0.5 s and then runs in a ~0.5 s batch of its own, which eats a 1 s
objective whatever overload control does, and (b) the capacity reached at 5x
would be that of batch 32, below the C measured at c=8, which would fail the
goodput goal for a reason unrelated to overload control. With 8, batches take
~150 ms, and the design's plan (2 instances, batch 8) is followed. Overload
control's min_limit and max_limit are left to their defaults, derived from
instance_count, max_batch_size and max_queue_size (docs/configuration.md).

Server per run. Every (mode, factor) run gets a fresh server (start-up ~5 s):
the runs are independent (overload control's limit, the instances' warm
state and the allocator's high-water mark are not carried from a 5x run into
the next), and each RSS series starts from a freshly loaded model. `inferd
bench` awaits its requests in flight before it exits, so no backlog would
leak between runs anyway. `--server-per mode` keeps one server per mode across
its factors instead (in increasing order), which shows memory over the whole
sequence; the RSS series then continue from run to run.

Load generator. It shares the machine's cores with the server: at 5x the
request bodies alone (588 KiB each) are ~300 MB/s over loopback. Each run
records the load generator's CPU (cores) and whether it fell behind: its
backlog (requests due but never sent), its achieved offered rate (requests due
in the window and sent, per second) against the intended one, and whether a
class's pool reached --max-connections (per class). A warning is printed when
it did: then the server saw less than f x C.

Usage, from the repo root, after the build (nothing is built here):

    /usr/bin/python3 bench/overload_bench.py                  # full: ~5 min
    /usr/bin/python3 bench/overload_bench.py --quick          # smoke test: factors 1 and 5, short runs
    /usr/bin/python3 bench/overload_bench.py --capacity 110 --factors 5 --modes on

Results: --out (default bench/results/overload.json; with --quick
/tmp/overload_quick.json, so a smoke test never replaces real results), and a
summary table on stdout. The commands run are echoed on stderr.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_e2e_bench as e2e  # noqa: E402  (ROOT, INFERD, MODELS, cpu_ticks, CLK_TCK)

MODEL = "resnet18"
MIB = 1024 * 1024
QUICK_OUT = os.path.join(tempfile.gettempdir(), "overload_quick.json")
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---------------------------------------------------------------- the model


def model_config(mode, max_batch_size):
    """The example resnet18 config, max_batch_size replaced, with two priority
    levels and, in mode "on", adaptive overload control."""
    with open(os.path.join(e2e.MODELS, MODEL, "config.toml")) as f:
        config = f.read()
    config, n = re.subn(r"(?m)^max_batch_size\s*=\s*\d+", "max_batch_size = %d" % max_batch_size, config)
    if n != 1:
        raise RuntimeError("cannot find max_batch_size in the resnet18 config")
    config += "\n[scheduling]\npriority_levels = 2\n"
    if mode == "on":
        config += "\n[overload]\n"
    return config


def make_repo(root, mode, max_batch_size):
    """A model repository under root holding resnet18 (model.pt symlinked)."""
    repo = os.path.join(root, "models-" + mode)
    os.makedirs(os.path.join(repo, MODEL, "1"))
    config = model_config(mode, max_batch_size)
    with open(os.path.join(repo, MODEL, "config.toml"), "w") as f:
        f.write(config)
    os.symlink(os.path.join(e2e.MODELS, MODEL, "1", "model.pt"), os.path.join(repo, MODEL, "1", "model.pt"))
    return repo, config


# ---------------------------------------------------------------- the server


class Server:
    """A running `inferd serve`; its stdout and stderr go to a log file."""

    def __init__(self, repo, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w")
        wait_for_binary()
        self.proc = subprocess.Popen([e2e.INFERD, "serve", "--model-repository", repo, "--http-port", "0",
                                      "--log-level", "warn", "--load-model", "*"],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.url = None
        for line in self.proc.stdout:
            if line.startswith("inferd: listening on "):
                self.url = line.split()[-1]
                break
        if self.url is None:
            self.proc.wait()
            raise RuntimeError("inferd exited (%s) before listening:\n%s" % (self.proc.returncode, self.tail()))
        # Keep draining stdout so the server never blocks on a full pipe.
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def _drain(self):
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()

    def wait_ready(self, timeout_s=180):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("inferd exited (%s) while loading:\n%s" % (self.proc.returncode, self.tail()))
            try:
                if http_status(self.url + "/v2/models/%s/ready" % MODEL) == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("resnet18 not ready after %d s" % timeout_s)

    def alive_and_ready(self):
        if self.proc.poll() is not None:
            return False
        try:
            return http_status(self.url + "/v2/models/%s/ready" % MODEL) == 200
        except OSError:
            return False

    def tail(self, n=20):
        self.log.flush()
        with open(self.log_path) as f:
            return "".join(f.readlines()[-n:])

    def stop(self):
        """SIGTERM, then the exit code (None if it had to be killed)."""
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                code = None
        self.log.close()
        return code


def wait_for_binary(timeout_s=1800):
    """build/inferd may be relinked by someone else's build: wait until it exists
    and has not changed for 5 s."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            st = os.stat(e2e.INFERD)
            if os.access(e2e.INFERD, os.X_OK) and time.time() - st.st_mtime > 5:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("%s missing or changing for %d s" % (e2e.INFERD, timeout_s))
        print("waiting for %s (missing or being rebuilt)" % e2e.INFERD, file=sys.stderr, flush=True)
        time.sleep(10)


def http_status(url, timeout_s=5):
    try:
        with OPENER.open(urllib.request.Request(url), timeout=timeout_s) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def http_text(url, timeout_s=5):
    with OPENER.open(urllib.request.Request(url), timeout=timeout_s) as r:
        return r.read().decode()


# ---------------------------------------------------------------- metrics

LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, value)] from Prometheus text format."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if m:
            try:
                value = float(m.group(4))
            except ValueError:
                continue
            out.append((m.group(1), dict(LABEL.findall(m.group(3) or "")), value))
    return out


def metric_sum(samples, name, **labels):
    """Sum of the series of `name` whose labels include `labels`; None if none."""
    values = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items())]
    return sum(values) if values else None


def metric_by(samples, name, label, **labels):
    """{value of `label`: sum} over the series of `name` that match `labels`."""
    out = {}
    for n, l, v in samples:
        if n == name and all(l.get(k) == x for k, x in labels.items()):
            out[l.get(label, "")] = out.get(l.get(label, ""), 0) + v
    return out


def counters(samples):
    """The counters whose deltas a run reports."""
    m = {"model": MODEL}
    return {
        "shed": metric_sum(samples, "inferd_shed_total", **m) or 0,
        "queue_drops": metric_by(samples, "inferd_queue_drops_total", "reason", **m),
        "requests": metric_by(samples, "inferd_requests_total", "outcome", **m),
        "http_responses": metric_by(samples, "inferd_http_responses_total", "code"),
        "batches": metric_sum(samples, "inferd_batch_size_count", **m) or 0,
        "batch_items": metric_sum(samples, "inferd_batch_size_sum", **m) or 0,
        "internal_errors": metric_sum(samples, "inferd_http_internal_errors_total") or 0,
    }


def delta(before, after):
    out = {}
    for k, v in after.items():
        if isinstance(v, dict):
            out[k] = {x: v[x] - before.get(k, {}).get(x, 0) for x in v if v[x] - before.get(k, {}).get(x, 0)}
        else:
            out[k] = v - before.get(k, 0)
    return out


def vmrss_bytes(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_busy_ticks():
    """Busy (non-idle, non-iowait) CPU ticks of the whole machine, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v[:8]) - v[3] - v[4]  # user..steal, less idle and iowait
    except (OSError, ValueError, IndexError):
        return None


def ticks(pid):
    try:
        return e2e.cpu_ticks(pid)
    except (OSError, IndexError, ValueError):
        return None


class Sampler(threading.Thread):
    """Every period_s: RSS, overload state and queue depths from /metrics,
    VmRSS, and the CPU ticks of the server and of the load generator."""

    def __init__(self, server, period_s):
        super().__init__(daemon=True)
        self.server, self.period_s = server, period_s
        self.loadgen_pid = None
        self.t0 = time.monotonic()
        self.samples = []
        self.scrape_failures = 0
        self.stopping = threading.Event()

    def sample(self):
        s = {"t": round(time.monotonic() - self.t0, 3), "vmrss": vmrss_bytes(self.server.proc.pid),
             "server_ticks": ticks(self.server.proc.pid),
             "loadgen_ticks": ticks(self.loadgen_pid) if self.loadgen_pid else None,
             "machine_ticks": machine_busy_ticks()}
        try:
            m = parse_metrics(http_text(self.server.url + "/metrics", timeout_s=max(2, self.period_s)))
            s["rss"] = metric_sum(m, "inferd_process_resident_memory_bytes")
            s["limit"] = metric_sum(m, "inferd_overload_limit", model=MODEL)
            s["in_use"] = metric_sum(m, "inferd_overload_in_use", model=MODEL)
            s["standing_delay_ms"] = (metric_sum(m, "inferd_overload_standing_delay_seconds", model=MODEL)
                                      or 0) * 1e3
            s["queue_by_priority"] = {k: int(v) for k, v in
                                      metric_by(m, "inferd_queue_depth_by_priority", "priority", model=MODEL).items()}
        except (OSError, ValueError):
            self.scrape_failures += 1
            s["rss"] = None
        self.samples.append(s)

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            self.sample()
            self.stopping.wait(max(0.0, self.period_s - (time.monotonic() - started)))

    def stop(self):
        self.stopping.set()
        self.join()


# ---------------------------------------------------------------- inferd bench


def bench_cmd(url, tmp, extra, label):
    """The command of one `inferd bench` run (binary payload) and its JSON path."""
    out = os.path.join(tmp, "bench-%s.json" % label)
    if os.path.exists(out):
        os.remove(out)
    cmd = [e2e.INFERD, "bench", "--url", url, "--model", MODEL, "--payload", "binary",
           "--json", out] + extra
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    return cmd, out


def finish_bench(proc, out, timeout_s):
    """Waits for the bench: (its JSON report or None, why it failed or None, its output)."""
    try:
        stdout, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, _ = proc.communicate()
        return None, "killed after %d s" % timeout_s, stdout
    if proc.returncode != 0 or not os.path.exists(out):
        return None, "exit %d" % proc.returncode, stdout
    with open(out) as f:
        return json.load(f), None, stdout


def measure_capacity(args, tmp, repo):
    """C: the best closed-loop throughput of the sweep, on a fresh server."""
    server = Server(repo, os.path.join(tmp, "serve-capacity.log"))
    try:
        cmd, out = bench_cmd(server.url, tmp,
                             ["--concurrency", args.capacity_concurrency,
                              "--duration-s", str(args.capacity_duration_s),
                              "--warmup-s", str(args.warmup_s), "--timeout-ms", str(args.timeout_ms)],
                             "capacity")
        t0, m0, s0 = time.monotonic(), machine_busy_ticks(), ticks(server.proc.pid)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        n_levels = len(args.capacity_concurrency.split(","))
        report, failure, stdout = finish_bench(
            proc, out, 120 + n_levels * (args.capacity_duration_s + args.warmup_s) * 3)
        span = time.monotonic() - t0
        m1, s1 = machine_busy_ticks(), ticks(server.proc.pid)
        # Machine CPU besides the server's, over the whole sweep (the load
        # generator's included): cores others took from the server.
        non_server = ((m1 - m0) - (s1 - s0)) / e2e.CLK_TCK / span if None not in (m0, m1, s0, s1) else None
        if report is None:
            raise RuntimeError("capacity sweep failed (%s):\n%s" % (failure, stdout))
        levels = [{"concurrency": l.get("concurrency"), "throughput_rps": l["throughput_rps"],
                   "errors": l["errors"], "errors_by_kind": l.get("errors_by_kind", {}),
                   "p50_ms": l["latency_ms"].get("p50"), "p99_ms": l["latency_ms"].get("p99")}
                  for l in report["levels"]]
        best = max(levels, key=lambda l: l["throughput_rps"])
        return best["throughput_rps"], {"levels": levels, "best_concurrency": best["concurrency"],
                                        "server_cores": (s1 - s0) / e2e.CLK_TCK / span if s0 and s1 else None,
                                        "non_server_cores": non_server}
    finally:
        code = server.stop()
        if code not in (0, None):
            print("warning: the capacity server exited %s" % code, file=sys.stderr)


def series_stats(samples, key, t_from=None, t_to=None):
    vals = [(s["t"], s[key]) for s in samples if s.get(key) is not None
            and (t_from is None or s["t"] >= t_from) and (t_to is None or s["t"] <= t_to)]
    if not vals:
        return None
    v = [x for _, x in vals]
    return {"first": v[0], "last": v[-1], "min": min(v), "max": max(v), "n": len(v),
            "t_first": vals[0][0], "t_last": vals[-1][0]}


def cpu_cores(samples, key, t_from, t_to):
    pts = [(s["t"], s[key]) for s in samples if s.get(key) is not None and t_from <= s["t"] <= t_to]
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return None
    return (pts[-1][1] - pts[0][1]) / e2e.CLK_TCK / (pts[-1][0] - pts[0][0])


def open_loop_run(server, sampler, args, tmp, mode, factor, capacity):
    """One open-loop --mix run at factor x capacity; returns its record."""
    rate_h = args.high_share * factor * capacity
    rate_l = (1 - args.high_share) * factor * capacity
    mix = "high:priority=1,rate=%.3f,slo_ms=%g;low:priority=2,rate=%.3f,slo_ms=%g" % (
        rate_h, args.slo_high_ms, rate_l, args.slo_low_ms)
    label = "%s-%g" % (mode, factor)
    cmd, out = bench_cmd(server.url, tmp,
                         ["--mix", mix, "--arrival", "poisson", "--duration-s", str(args.duration_s),
                          "--warmup-s", str(args.warmup_s), "--timeout-ms", str(args.timeout_ms),
                          "--max-connections", str(args.max_connections), "--threads", str(args.threads),
                          "--seed", str(args.seed)], label)
    before = counters(parse_metrics(http_text(server.url + "/metrics")))
    idle = sampler.samples[-1] if sampler.samples else None
    t_launch = time.monotonic() - sampler.t0
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler.loadgen_pid = proc.pid
    report, failure, stdout = finish_bench(
        proc, out, 120 + (args.duration_s + args.warmup_s) * 3 + args.timeout_ms / 1000)
    t_exit = time.monotonic() - sampler.t0
    sampler.loadgen_pid = None
    alive = server.alive_and_ready()
    after = counters(parse_metrics(http_text(server.url + "/metrics"))) if alive else None
    record = {"mode": mode, "factor": factor, "mix": mix, "offered_rps": factor * capacity,
              "bench_failure": failure, "server_alive_after": alive,
              "t_launch_s": round(t_launch, 3), "t_exit_s": round(t_exit, 3)}
    if failure:
        record["bench_stdout"] = stdout[-4000:]
    if after is not None:
        d = delta(before, after)
        d["mean_batch_size"] = d["batch_items"] / d["batches"] if d["batches"] else None
        # 503s that overload control neither shed nor evicted: the queue's own
        # bound ("queue is full"; with overload off, every 503).
        d["queue_full"] = (d["requests"].get("rejected", 0) - d["shed"] -
                           d["queue_drops"].get("evicted", 0))
        record["server_counters"] = d
    # The measurement window, in sampler time: warm-up starts a moment after
    # launch (the binary starts, fetches the metadata and sends one probe per
    # class); the window ends at the latest duration_s later, and before the
    # exit (the bench awaits its requests in flight after the window).
    w_from = t_launch + args.warmup_s + 0.5
    w_to = min(t_exit, w_from + args.duration_s)
    mid = (w_from + w_to) / 2
    samples = [s for s in sampler.samples if t_launch - args.sample_s <= s["t"] <= t_exit + args.sample_s]
    rss_window = series_stats(samples, "rss", w_from, w_to) or series_stats(samples, "vmrss", w_from, w_to)
    rss_second_half = series_stats(samples, "rss", mid, w_to) or series_stats(samples, "vmrss", mid, w_to)
    record["rss"] = {
        "idle_before_bytes": idle.get("rss") if idle else None,
        "run": series_stats(samples, "rss"),
        "window": rss_window,
        "growth_second_half_bytes": (rss_second_half["last"] - rss_second_half["first"]) if rss_second_half else None,
        "vmrss_run": series_stats(samples, "vmrss"),
    }
    record["overload_limit"] = series_stats(samples, "limit", w_from, w_to)
    cores = {k: cpu_cores(samples, k + "_ticks", w_from, w_to) for k in ("server", "loadgen", "machine")}
    # Other processes' CPU (another build, ...): a run with a large value shared the cores.
    cores["other"] = (cores["machine"] - cores["server"] - cores["loadgen"]
                      if None not in cores.values() else None)
    record["cpu_cores"] = cores
    record["samples"] = [{k: v for k, v in s.items() if not k.endswith("_ticks")} for s in samples]
    if report is None:
        return record
    level = report["levels"][0]
    classes = {}
    for c in level.get("classes", []):
        lat = c.get("latency_ms", {})
        classes[c["name"]] = {
            "priority": c.get("priority"), "rate": c.get("rate"), "slo_ms": c.get("slo_ms"),
            "sent": c.get("sent"), "completed": c.get("completed"), "errors": c.get("errors"),
            "errors_by_kind": c.get("errors_by_kind", {}), "throughput_rps": c.get("throughput_rps"),
            "goodput_rps": c.get("goodput_rps"), "served_fraction": c.get("served_fraction"),
            "p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"), "p99_ms": lat.get("p99"),
            "max_ms": lat.get("max"), "connections": c.get("connections"), "backlog": c.get("backlog"),
            "sent_rps": (c.get("sent") or 0) / args.duration_s,
            "pool_full": (c.get("connections") or 0) >= args.max_connections,
        }
    record["classes"] = classes
    goodput = sum(c["goodput_rps"] or 0 for c in classes.values())
    record["goodput_rps"] = goodput
    record["goodput_over_capacity"] = goodput / capacity
    record["throughput_rps"] = level.get("throughput_rps")
    record["sent_rps"] = sum(c["sent_rps"] for c in classes.values())
    record["backlog"] = level.get("backlog")
    record["connections"] = level.get("connections")
    record["loadgen_fell_behind"] = bool(
        any(c["pool_full"] for c in classes.values()) or
        (level.get("backlog") or 0) > 0.01 * max(1, sum(c["sent"] or 0 for c in classes.values())) or
        record["sent_rps"] < 0.9 * factor * capacity)
    return record


def goals(record, args):
    """The issue's goals, for one run (meant for the largest factor)."""
    if "classes" not in record:
        return {"all_met": False, "why": "no report"}
    high = record["classes"].get("high", {})
    rss = record["rss"]["growth_second_half_bytes"]
    g = {
        "goodput_ge_90pct_of_capacity": record["goodput_over_capacity"] >= 0.9,
        "high_p99_within_slo": high.get("p99_ms") is not None and high["p99_ms"] <= args.slo_high_ms,
        "high_served_ge_99pct": (high.get("served_fraction") or 0) >= 0.99,
        # Exit code 0 after SIGTERM; None: it had to be killed; absent: the
        # server went on to the next factor (--server-per mode).
        "no_crash": bool(record["server_alive_after"]) and record.get("server_exit_code", 0) == 0,
        "rss_flat": rss is not None and rss <= args.rss_tolerance_mib * MIB,
    }
    g["all_met"] = all(g.values())
    return g


# ---------------------------------------------------------------- output


def machine_info():
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "mem_total_bytes": mem,
            "kernel": platform.release(), "loadavg_at_start": os.getloadavg(),
            "note": "server and load generator share the machine's cores"}


def git_info():
    def git(*a):
        r = subprocess.run(["git", "-C", e2e.ROOT] + list(a), capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    st = os.stat(e2e.INFERD)
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "inferd_binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(st.st_mtime))}


def fmt(v, spec="%.0f", none="-"):
    return none if v is None else spec % v


def errors_cell(kinds):
    return " ".join("%s:%d" % (k, v) for k, v in sorted(kinds.items())) or "0"


def print_summary(result, args):
    c = result["capacity_rps"]
    if result["capacity"].get("given"):
        print("\nCapacity C = %.1f req/s (given by --capacity)" % c)
    else:
        cap = result["capacity"]
        print("\nCapacity C = %.1f req/s (closed loop, best of %s; server %s cores, others %s cores)" % (
            c, ", ".join("c=%s %.1f" % (l["concurrency"], l["throughput_rps"]) for l in cap["levels"]),
            fmt(cap["server_cores"], "%.2f"), fmt(cap["non_server_cores"], "%.2f")))
    print("Objectives: high %g ms, low %g ms; high share %.0f%%; %g s per run after %g s warm-up\n" % (
        args.slo_high_ms, args.slo_low_ms, 100 * args.high_share, args.duration_s, args.warmup_s))
    print("| overload | load | offered / sent req/s | goodput req/s (/ C) | class | goodput/s | req/s "
          "| p50 / p99 ms | served | errors | shed / evicted / queue full | limit min-max | RSS MiB first / last / max "
          "| cores srv + gen + other |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in result["runs"]:
        if "classes" not in r:
            print("| %s | %gx | %.0f / - | run failed: %s | | | | | | | | | | |" % (
                r["mode"], r["factor"], r["offered_rps"], r.get("bench_failure")))
            continue
        sc = r.get("server_counters", {})
        shed = "%d / %d / %d" % (sc.get("shed", 0), sc.get("queue_drops", {}).get("evicted", 0),
                                 sc.get("queue_full", 0)) if sc else "-"
        lim = r["overload_limit"]
        lim_cell = "%d-%d" % (lim["min"], lim["max"]) if lim and lim["max"] else "-"
        rss = r["rss"]["window"]
        rss_cell = ("%.0f / %.0f / %.0f" % (rss["first"] / MIB, rss["last"] / MIB, rss["max"] / MIB)) if rss else "-"
        cores = r["cpu_cores"]
        cores_cell = "%s + %s + %s" % (fmt(cores["server"], "%.2f"), fmt(cores["loadgen"], "%.2f"),
                                       fmt(cores["other"], "%.2f"))
        first = True
        for name in ("high", "low"):
            k = r["classes"].get(name)
            if k is None:
                continue
            lead = ("| %s | %gx%s | %.0f / %.0f | %.1f (%.2f) " % (
                r["mode"], r["factor"], " (gen behind)" if r["loadgen_fell_behind"] else "", r["offered_rps"],
                r["sent_rps"], r["goodput_rps"], r["goodput_over_capacity"])) if first else "| | | | "
            tail = ("| %s | %s | %s | %s |" % (shed, lim_cell, rss_cell, cores_cell)) if first else "| | | | |"
            print("%s| %s | %.1f | %.1f | %s / %s | %.1f%% | %s %s" % (
                lead, name, k["goodput_rps"] or 0, k["throughput_rps"] or 0, fmt(k["p50_ms"]), fmt(k["p99_ms"]),
                100 * (k["served_fraction"] or 0), errors_cell(k["errors_by_kind"]), tail))
            first = False
    print("\nPer class (inferd bench, the window only): goodput = 200s within the class's objective; "
          "served = share of the requests due in the window answered 200; errors by kind.\n"
          "Server counters (/metrics, the whole run): shed before decoding / evicted from the queue / "
          "other 503s (the queue's own bound, 'queue is full'). Limit: inferd_overload_limit in the window. "
          "RSS: the gauge in the window. Cores: server + load generator + other processes, in the window.\n"
          "'gen behind': the load generator could not offer the rate (backlog, pool full or < 90% sent).\n")
    for mode, g in result["goals"].items():
        r = next(x for x in result["runs"] if x["mode"] == mode and x["factor"] == result["goal_factor"])
        high = r.get("classes", {}).get("high", {})
        growth = r["rss"]["growth_second_half_bytes"]
        print("goals at %gx, overload %s: %s%s\n  (goodput %s C, high p99 %s ms, high served %s, "
              "RSS growth over the window's second half %s MiB)" % (
                  result["goal_factor"], mode,
                  ", ".join("%s=%s" % (k, "yes" if v else "NO") for k, v in g.items() if k != "all_met"),
                  "  -> all met" if g.get("all_met") else "", fmt(r.get("goodput_over_capacity"), "%.3f"),
                  fmt(high.get("p99_ms")), fmt(high.get("served_fraction") and 100 * high["served_fraction"],
                                               "%.1f%%"),
                  fmt(growth and growth / MIB, "%.1f")))
    for w in result["warnings"]:
        print("warning: " + w)


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--factors", default="0.5,1,2,5", help="multiples of C to offer (comma-separated)")
    ap.add_argument("--modes", default="on,off", help="overload control on, off, or both")
    ap.add_argument("--duration-s", type=float, default=15, help="measurement window per run")
    ap.add_argument("--warmup-s", type=float, default=3, help="warm-up per run (and per capacity level)")
    ap.add_argument("--capacity", type=float, default=0, help="use this C (req/s) instead of measuring it")
    ap.add_argument("--capacity-concurrency", default="8,16,32", help="closed-loop sweep for C")
    ap.add_argument("--capacity-duration-s", type=float, default=10, help="window of each sweep level")
    ap.add_argument("--high-share", type=float, default=0.1, help="share of the rate in the high class")
    ap.add_argument("--slo-high-ms", type=float, default=1000, help="objective of the high class (slo_ms)")
    ap.add_argument("--slo-low-ms", type=float, default=5000, help="objective of the low class (slo_ms)")
    ap.add_argument("--timeout-ms", type=int, default=30000, help="inferd bench per-request timeout")
    ap.add_argument("--max-connections", type=int, default=1024, help="inferd bench pool bound, per class")
    ap.add_argument("--threads", type=int, default=1, help="inferd bench I/O threads")
    ap.add_argument("--seed", type=int, default=42, help="inferd bench seed (Poisson arrivals)")
    ap.add_argument("--max-batch-size", type=int, default=8, help="resnet18's max_batch_size (example: 32)")
    ap.add_argument("--server-per", choices=("run", "mode"), default="run",
                    help="a fresh server per run (default) or one per mode across its factors")
    ap.add_argument("--sample-s", type=float, default=1.0, help="RSS / overload limit sampling period")
    ap.add_argument("--rss-tolerance-mib", type=float, default=32,
                    help="'RSS flat': at most this growth over the second half of the window")
    ap.add_argument("--other-cpu-warn", type=float, default=0.25,
                    help="warn when other processes use more cores than this during a run")
    ap.add_argument("--out", default=os.path.join(e2e.ROOT, "bench", "results", "overload.json"),
                    help="JSON results (--quick: %s unless given)" % QUICK_OUT)
    ap.add_argument("--quick", action="store_true", help="smoke test: factors 1 and 5, short runs")
    if ap.parse_args().quick:  # --quick changes the defaults; flags given still win
        ap.set_defaults(factors="1,5", duration_s=4, warmup_s=1, capacity_concurrency="8,16",
                        capacity_duration_s=3, out=QUICK_OUT)  # never over the real results
    args = ap.parse_args()
    factors = sorted(float(f) for f in args.factors.split(","))
    modes = [m.strip() for m in args.modes.split(",")]
    if not factors or any(f <= 0 for f in factors) or not set(modes) <= {"on", "off"}:
        ap.error("--factors must be positive, --modes on and/or off")

    wait_for_binary()
    result = {"benchmark": "overload (issue 10 item 11)", "machine": machine_info(), "git": git_info(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(args), "model": MODEL,
              "warnings": []}
    tmp = tempfile.mkdtemp(prefix="inferd-overload-bench-")
    live = {}  # the running server and sampler, stopped in `finally` on an error
    try:
        repos, configs = {}, {}
        for mode in ("on", "off"):
            repos[mode], configs[mode] = make_repo(tmp, mode, args.max_batch_size)
        result["model_configs"] = configs
        if args.capacity > 0:
            capacity, result["capacity"] = args.capacity, {"given": True, "levels": []}
        else:
            capacity, result["capacity"] = measure_capacity(args, tmp, repos["off"])
        result["capacity_rps"] = capacity
        busy = result["capacity"].get("non_server_cores")
        if busy is not None and busy > args.other_cpu_warn + 0.1:  # + the closed loop's load generator
            result["warnings"].append("processes besides the server used %.2f cores while C was measured: "
                                      "C is understated" % busy)
        print("capacity C = %.1f req/s" % capacity, file=sys.stderr, flush=True)

        runs = []
        for mode in modes:
            server = sampler = None
            for factor in factors:
                if server is None:
                    server = live["server"] = Server(repos[mode],
                                                     os.path.join(tmp, "serve-%s-%g.log" % (mode, factor)))
                    sampler = live["sampler"] = Sampler(server, args.sample_s)
                    sampler.start()
                    time.sleep(min(1.0, args.sample_s))  # an idle sample first
                rec = open_loop_run(server, sampler, args, tmp, mode, factor, capacity)
                if args.server_per == "run" or not rec["server_alive_after"] or factor == factors[-1]:
                    sampler.stop()
                    rec["sampler_scrape_failures"] = sampler.scrape_failures
                    code = server.stop()
                    # A clean shutdown exits 0; None: it had to be killed.
                    rec["server_exit_code"] = code
                    if not rec["server_alive_after"] or code != 0:
                        rec["server_log_tail"] = server.tail()
                        result["warnings"].append("server %s at %gx: alive after run %s, exit code %s" % (
                            mode, factor, rec["server_alive_after"], code))
                    server = sampler = None
                    live.clear()
                if rec.get("bench_failure"):
                    result["warnings"].append("inferd bench failed at %s %gx: %s" % (
                        mode, factor, rec["bench_failure"]))
                if rec.get("loadgen_fell_behind"):
                    result["warnings"].append(
                        "load generator fell behind at %s %gx: sent %.0f of %.0f req/s, backlog %s, "
                        "connections %s (max %d per class)" % (
                            mode, factor, rec["sent_rps"], rec["offered_rps"], rec["backlog"],
                            rec["connections"], args.max_connections))
                other = rec["cpu_cores"]["other"]
                if other is not None and other > args.other_cpu_warn:
                    result["warnings"].append(
                        "other processes used %.2f cores during %s %gx: the run shared the machine" % (
                            other, mode, factor))
                runs.append(rec)
                summary = ""
                if "classes" in rec:
                    summary = "goodput %.1f req/s (%.2f C), high p99 %s ms served %.1f%%" % (
                        rec["goodput_rps"], rec["goodput_over_capacity"], fmt(rec["classes"]["high"]["p99_ms"]),
                        100 * (rec["classes"]["high"]["served_fraction"] or 0))
                print("done: overload %s, %gx: %s" % (mode, factor, summary), file=sys.stderr, flush=True)
        result["runs"] = runs
        result["goal_factor"] = factors[-1]
        result["goals"] = {r["mode"]: goals(r, args) for r in runs if r["factor"] == factors[-1]}
    finally:
        if "sampler" in live:
            live["sampler"].stop()
        if "server" in live:
            live["server"].stop()
        shutil.rmtree(tmp, ignore_errors=True)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print_summary(result, args)
    print("\nJSON: %s" % args.out)


if __name__ == "__main__":
    main()
