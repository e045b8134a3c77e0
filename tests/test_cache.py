"""The response cache (issue 3): memory, disk (RocksDB) and Redis tiers,
request coalescing, Cache-Control, invalidation, stats and metrics, warm-up.

Models with a `[response_cache]` table in config.toml cache; their responses
carry `X-Inferd-Cache: miss | hit-memory | hit-disk | hit-redis | coalesced`
and `Age` on hits. Whether a request executed is read from
`inferd_compute_duration_seconds_count` (one observation per executed
request), never from timing.

The disk and Redis classes skip themselves when `inferd serve --help` lacks
their flags; the Redis class also needs /usr/bin/redis-server.
"""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import inferd_harness as h  # noqa: E402

REDIS_SERVER = "/usr/bin/redis-server"
CACHE_TOML = "\n[response_cache]\nenable = true\nttl_s = 3600\n"

# --------------------------------------------------------------------------
# Helpers


def mlp_config(extra=CACHE_TOML):
    with open(os.path.join(h.INFERD_MODELS, "mlp", "config.toml")) as f:
        return f.read() + extra


def make_cached_repo(root, name="mlp"):
    """A repository with mlp (as `name`) plus a [response_cache] table."""
    repo = os.path.join(root, "models")
    os.makedirs(repo, exist_ok=True)
    h.copy_model("mlp", repo, new_name=name, config_text=mlp_config())
    return repo


def infer(client, model, inputs, headers=None, version=None, **kwargs):
    """Like Client.infer, plus extra request headers (Cache-Control)."""
    body, hdrs = h.encode_infer_request(inputs, **kwargs)
    hdrs.update(headers or {})
    r = client.request("POST", h.infer_path(model, version), body, hdrs)
    return r, (h.decode_infer_response(r) if r.status == 200 else None)


def cache_status(r):
    return r.header("X-Inferd-Cache")


def stats(server):
    with server.client() as c:
        r = c.get("/v2/cache/stats")
        if r.status != 200:
            raise AssertionError("/v2/cache/stats: " + r.describe())
        return r.json()


def executions(server, model):
    """Requests of `model` executed so far (all versions)."""
    samples = h.parse_metrics(h.scrape(server))
    return h.metric_sum(samples, "inferd_compute_duration_seconds_count", model=model) or 0


def batches(server, model):
    samples = h.parse_metrics(h.scrape(server))
    return h.metric_sum(samples, "inferd_batch_size_count", model=model) or 0


def mlp_input(seed, binary=False):
    x = np.random.default_rng(seed).uniform(-1, 1, (1, 16)).astype(np.float32)
    return h.Input("input", x, binary=binary)


def serve_help():
    out = subprocess.run([h.INFERD_BIN, "serve", "--help"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=60)
    return out.stdout.decode("utf-8", "replace")


def require_flag(flag):
    if not os.path.exists(h.INFERD_BIN):
        raise AssertionError("inferd binary not found at %s" % h.INFERD_BIN)
    if flag not in serve_help():
        raise unittest.SkipTest("%s has no %s flag yet (`inferd serve --help`)" % (h.INFERD_BIN, flag))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flip_bytes(path, start, count):
    """XORs `count` bytes from `start` (clamped to the file) with 0xFF."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        if not data:
            return False
        start = min(start, len(data) - 1)
        for i in range(start, min(len(data), start + count)):
            data[i] ^= 0xFF
        f.seek(0)
        f.write(data)
    return True


class RedisServer:
    """A real redis-server on a free loopback port, no persistence."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        self.port = None

    def start(self, attempts=3):
        for _ in range(attempts):
            self.port = free_port()
            log = open(os.path.join(self.workdir, "redis-%d.log" % self.port), "wb")
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.workdir],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            try:
                h.wait_until(lambda: self.proc.poll() is not None or self.ping(), 30,
                             "redis-server PING on port %d" % self.port)
            except AssertionError:
                self.kill()
                raise
            if self.proc.poll() is None:
                return self
        raise AssertionError("redis-server did not start (port taken %d times)" % attempts)

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)


class Pair(torch.nn.Module):
    """Two inputs, not symmetric: swapping their values changes the result."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a - 2.0 * b


PAIR_CONFIG = ('backend = "torchscript"\nmax_batch_size = 8\n'
               + h.tensor_toml("input", "a", "FP32", [3]) + h.tensor_toml("input", "b", "FP32", [3])
               + h.tensor_toml("output", "out", "FP32", [3]) + CACHE_TOML)

HELD_CONFIG = """backend = "torchscript"
max_batch_size = 2
instance_count = 1
[[input]]
name = "input"
datatype = "FP32"
dims = [16]
[[output]]
name = "output"
datatype = "FP32"
dims = [4]
[dynamic_batching]
max_queue_delay_us = 3600000000   # an hour: a request waits for its batch partner
preferred_batch_sizes = []
max_queue_size = 64
[parameters]
intra_op_threads = 1
""" + CACHE_TOML


# --------------------------------------------------------------------------
# Memory tier, keys, Cache-Control, invalidation, stats, coalescing


class MemoryCacheTest(h.ServerTestCase):
    """One server with: mlp (cached), mlp_plain (not cached), pair (two
    inputs, cached), mlpv (versions 1 and 2, cached), held (cached, batches
    of exactly 2)."""

    models = ("mlp",)
    server_args = ("--cache-coalesce-timeout-ms", "600000")

    @classmethod
    def prepare_repository(cls, repo):
        shutil.rmtree(os.path.join(repo, "mlp"))
        h.copy_model("mlp", repo, config_text=mlp_config())
        h.copy_model("mlp", repo, new_name="mlp_plain")
        h.copy_model("mlp", repo, new_name="mlpv",
                     config_text=mlp_config() + '\n[version_policy]\npolicy = "all"\n')
        os.makedirs(os.path.join(repo, "mlpv", "2"))
        os.symlink(os.path.abspath(h.model_file("mlp")), os.path.join(repo, "mlpv", "2", "model.pt"))
        h.copy_model("mlp", repo, new_name="held", config_text=HELD_CONFIG)
        os.makedirs(os.path.join(repo, "pair", "1"))
        torch.jit.script(Pair().eval()).save(os.path.join(repo, "pair", "1", "model.pt"))
        with open(os.path.join(repo, "pair", "config.toml"), "w") as f:
            f.write(PAIR_CONFIG)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        torch.set_num_threads(1)
        cls.torch_mlp = h.load_torch_model("mlp")

    def want(self, inp):
        return h.torch_forward(self.torch_mlp, inp.data)

    def assert_infer(self, c, model, inputs, expect, headers=None, version=None, **kw):
        """One request; checks 200 and the X-Inferd-Cache value; returns (r, d)."""
        r, d = infer(c, model, inputs, headers=headers, version=version, **kw)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(cache_status(r), expect, r.describe())
        if expect.startswith("hit"):
            self.assertRegex(r.header("Age") or "", r"^\d+$", "hit without Age: " + r.describe())
        elif expect == "miss":
            self.assertIsNone(r.header("Age"), "Age on a miss: " + r.describe())
        return r, d

    # 1
    def test_miss_then_hit_memory(self):
        c = self.client()
        inp = mlp_input(101)
        before = executions(self.server, "mlp")
        r1, d1 = self.assert_infer(c, "mlp", [inp], "miss", request_id="first")
        r2, d2 = self.assert_infer(c, "mlp", [inp], "hit-memory", request_id="second")
        r3, d3 = self.assert_infer(c, "mlp", [inp], "hit-memory")
        self.assertEqual(executions(self.server, "mlp") - before, 1, "a hit executed the model")
        self.assertEqual(d1.header.get("id"), "first")
        self.assertEqual(d2.header.get("id"), "second")
        self.assertNotIn("id", d3.header, "a hit echoed another request's id")
        self.assertEqual(d2.header["model_name"], "mlp")
        self.assertEqual(d2.header["model_version"], "1")
        self.assertEqual(d1.outputs["output"].tobytes(), d2.outputs["output"].tobytes())
        self.assertEqual(d1.outputs["output"].tobytes(), d3.outputs["output"].tobytes())
        # Equal to the same model without a cache, and to TorchScript.
        rp, dp = infer(c, "mlp_plain", [inp])
        self.assertEqual(rp.status, 200, rp.describe())
        self.assertIsNone(cache_status(rp), "uncached model has X-Inferd-Cache: " + rp.describe())
        self.assertLessEqual(h.max_abs_diff(d2.outputs["output"], dp.outputs["output"]), 1e-6)
        self.assertLessEqual(h.max_abs_diff(d2.outputs["output"], self.want(inp)), 1e-5)
        # A hit can still be asked for binary output.
        r4, d4 = self.assert_infer(c, "mlp", [inp], "hit-memory", binary_data_output=True)
        self.assertTrue(d4.binary["output"], r4.describe())
        self.assertEqual(d4.outputs["output"].tobytes(), d1.outputs["output"].tobytes())

    # 2
    def test_json_and_binary_encodings_share_an_entry(self):
        c = self.client()
        json_inp, bin_inp = mlp_input(202), mlp_input(202, binary=True)
        nested = h.Input("input", json_inp.data, nested=True)
        _, d1 = self.assert_infer(c, "mlp", [json_inp], "miss")
        _, d2 = self.assert_infer(c, "mlp", [bin_inp], "hit-memory")
        _, d3 = self.assert_infer(c, "mlp", [nested], "hit-memory")
        self.assertEqual(d1.outputs["output"].tobytes(), d2.outputs["output"].tobytes())
        self.assertEqual(d1.outputs["output"].tobytes(), d3.outputs["output"].tobytes())
        # A different value is a different entry.
        other = h.Input("input", json_inp.data + np.float32(0.5))
        self.assert_infer(c, "mlp", [other], "miss")

    def test_order_of_inputs_does_not_matter(self):
        c = self.client()
        rng = np.random.default_rng(203)
        a, b = (rng.uniform(-1, 1, (1, 3)).astype(np.float32) for _ in range(2))
        want = a - 2.0 * b
        _, d1 = self.assert_infer(c, "pair", [h.Input("a", a), h.Input("b", b)], "miss")
        self.assertLessEqual(h.max_abs_diff(d1.outputs["out"], want), 1e-6)
        _, d2 = self.assert_infer(c, "pair", [h.Input("b", b), h.Input("a", a)], "hit-memory")
        _, d3 = self.assert_infer(c, "pair", [h.Input("b", b, binary=True), h.Input("a", a)], "hit-memory")
        self.assertEqual(d1.outputs["out"].tobytes(), d2.outputs["out"].tobytes())
        self.assertEqual(d1.outputs["out"].tobytes(), d3.outputs["out"].tobytes())
        # Swapped values are another request.
        _, d4 = self.assert_infer(c, "pair", [h.Input("a", b), h.Input("b", a)], "miss")
        self.assertLessEqual(h.max_abs_diff(d4.outputs["out"], b - 2.0 * a), 1e-6)

    # 3
    def test_no_cache_refreshes_the_entry(self):
        c = self.client()
        inp = mlp_input(301)
        before = executions(self.server, "mlp")
        _, d1 = self.assert_infer(c, "mlp", [inp], "miss")
        _, d2 = self.assert_infer(c, "mlp", [inp], "miss", headers={"Cache-Control": "no-cache"})
        self.assertEqual(executions(self.server, "mlp") - before, 2, "no-cache did not execute")
        _, d3 = self.assert_infer(c, "mlp", [inp], "hit-memory")
        self.assertEqual(executions(self.server, "mlp") - before, 2)
        self.assertEqual(d1.outputs["output"].tobytes(), d2.outputs["output"].tobytes())
        self.assertEqual(d1.outputs["output"].tobytes(), d3.outputs["output"].tobytes())
        # no-cache on a fresh request stores it too.
        fresh = mlp_input(302)
        self.assert_infer(c, "mlp", [fresh], "miss", headers={"Cache-Control": "no-cache"})
        self.assert_infer(c, "mlp", [fresh], "hit-memory")

    def test_no_store_does_not_store(self):
        c = self.client()
        inp = mlp_input(303)
        self.assert_infer(c, "mlp", [inp], "miss", headers={"Cache-Control": "no-store"})
        self.assert_infer(c, "mlp", [inp], "miss", headers={"Cache-Control": "max-age=0, No-Store"})
        self.assert_infer(c, "mlp", [inp], "miss")
        self.assert_infer(c, "mlp", [inp], "hit-memory")
        # no-store on a cached request may still be served from the cache.
        self.assert_infer(c, "mlp", [inp], "hit-memory", headers={"Cache-Control": "no-store"})

    def test_exact_repeats_are_answered_from_the_encoded_memo(self):
        """A byte-identical request skips decoding and encoding: same bytes,
        same headers, counted as an L1 hit, dropped with the model's entries."""
        c = self.client()
        for binary in (False, True):
            with self.subTest(binary=binary):
                body, hdrs = h.encode_infer_request([mlp_input(451 + binary, binary=binary)],
                                                    binary_data_output=binary)
                before, s0 = executions(self.server, "mlp"), stats(self.server)["tiers"]["memory"]
                rs = [c.request("POST", h.infer_path("mlp"), body, hdrs) for _ in range(3)]
                self.assertEqual([cache_status(r) for r in rs], ["miss", "hit-memory", "hit-memory"],
                                 [r.describe() for r in rs])
                for r in rs[1:]:
                    self.assertEqual(r.status, 200, r.describe())
                    self.assertEqual(r.body, rs[0].body, r.describe())
                    self.assertRegex(r.header("Age") or "", r"^\d+$", r.describe())
                    for name in ("Content-Type", "Inference-Header-Content-Length"):
                        self.assertEqual(r.header(name), rs[0].header(name), r.describe())
                self.assertEqual(executions(self.server, "mlp") - before, 1)
                s1 = stats(self.server)["tiers"]["memory"]
                self.assertEqual(s1["hits"] - s0["hits"], 2, s1)
                self.assertEqual(s1["misses"] - s0["misses"], 1, s1)
                # Cache-Control: no-cache bypasses the memo too.
                r = c.request("POST", h.infer_path("mlp"), body, dict(hdrs, **{"Cache-Control": "no-cache"}))
                self.assertEqual(cache_status(r), "miss", r.describe())
                r = c.request("DELETE", "/v2/cache/models/mlp")
                self.assertEqual(r.status, 200, r.describe())
                r = c.request("POST", h.infer_path("mlp"), body, hdrs)
                self.assertEqual(cache_status(r), "miss", r.describe())
                self.assertEqual(r.body, rs[0].body, r.describe())

    # 4
    def test_invalidation(self):
        c = self.client()
        x, p = mlp_input(401), [h.Input("a", np.ones((1, 3), np.float32) * 4),
                                h.Input("b", np.ones((1, 3), np.float32))]
        self.assert_infer(c, "mlp", [x], "miss")
        self.assert_infer(c, "mlp", [x], "hit-memory")
        self.assert_infer(c, "pair", p, "miss")

        r = c.request("DELETE", "/v2/cache/models/mlp")
        self.assertEqual(r.status, 200, r.describe())
        self.assertIs(r.json().get("cleared"), True, r.describe())
        self.assert_infer(c, "mlp", [x], "miss")
        self.assert_infer(c, "pair", p, "hit-memory")  # other models keep their entries

        r = c.request("DELETE", "/v2/cache")
        self.assertEqual(r.status, 200, r.describe())
        self.assertIs(r.json().get("cleared"), True, r.describe())
        self.assertEqual(stats(self.server)["tiers"]["memory"]["entries"], 0)
        self.assert_infer(c, "mlp", [x], "miss")
        self.assert_infer(c, "pair", p, "miss")

    def test_stats_and_metrics(self):
        c = self.client()
        s0 = stats(self.server)["tiers"]["memory"]
        inp = mlp_input(402)
        self.assert_infer(c, "mlp", [inp], "miss")
        for _ in range(3):
            self.assert_infer(c, "mlp", [inp], "hit-memory")
        s = stats(self.server)
        mem = s["tiers"]["memory"]
        self.assertIs(mem["enabled"], True)
        self.assertEqual(mem["hits"] - s0["hits"], 3, s)
        self.assertEqual(mem["misses"] - s0["misses"], 1, s)
        self.assertGreaterEqual(mem["entries"], 1, s)
        self.assertGreater(mem["bytes"], 0, s)
        self.assertGreaterEqual(mem["writes"] - s0["writes"], 1, s)
        self.assertAlmostEqual(mem["hit_ratio"], mem["hits"] / (mem["hits"] + mem["misses"]), places=6)
        for q in ("p50", "p90", "p99"):
            self.assertGreaterEqual(mem["lookup_seconds"][q], 0, s)
        self.assertLessEqual(mem["lookup_seconds"]["p50"], mem["lookup_seconds"]["p99"], s)
        for key in ("evictions", "errors", "dropped_writes"):
            self.assertIn(key, mem, s)
        self.assertIs(s["tiers"]["disk"]["enabled"], False, s)
        self.assertIs(s["tiers"]["redis"]["enabled"], False, s)
        self.assertIn("coalesced", s)
        self.assertEqual(s["coalesce_waiting"], 0, s)

        r = c.get("/metrics")
        self.assertEqual(r.status, 200, r.describe())
        text = r.body.decode()
        check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(check.returncode, 0, "promtool check metrics:\n%s" % check.stdout.decode())
        m = h.parse_metrics(text)
        s = stats(self.server)  # quiescent: both read the same cumulative figures
        mem = s["tiers"]["memory"]
        self.assertEqual(h.metric_sum(m, "inferd_cache_hits_total", tier="memory"), mem["hits"])
        self.assertEqual(h.metric_sum(m, "inferd_cache_misses_total", tier="memory"), mem["misses"])
        self.assertEqual(h.metric_sum(m, "inferd_cache_entries", tier="memory"), mem["entries"])
        self.assertEqual(h.metric_sum(m, "inferd_cache_bytes", tier="memory"), mem["bytes"])
        self.assertEqual(h.metric_sum(m, "inferd_cache_evictions_total", tier="memory"), mem["evictions"])
        self.assertEqual(h.metric_sum(m, "inferd_cache_errors_total", tier="memory"), mem["errors"])
        self.assertEqual(h.metric_sum(m, "inferd_cache_coalesced_total"), s["coalesced"])
        # The memory tier's lookups are timed one in 16 per thread (the
        # first of each thread's included): a sample of them.
        timed = h.metric_sum(m, "inferd_cache_lookup_duration_seconds_count", tier="memory")
        self.assertGreaterEqual(timed, 1)
        self.assertLessEqual(timed, mem["hits"] + mem["misses"])
        self.assertIsNotNone(h.metric_sum(m, "inferd_cache_lookup_duration_seconds_bucket",
                                          tier="memory", le="+Inf"))

    # 5
    def test_new_version_does_not_hit_old_entries(self):
        c = self.client()
        inp = mlp_input(501)
        self.assert_infer(c, "mlpv", [inp], "miss", version="1")
        _, d1 = self.assert_infer(c, "mlpv", [inp], "hit-memory", version="1")
        self.assertEqual(d1.header["model_version"], "1")
        _, d2 = self.assert_infer(c, "mlpv", [inp], "miss", version="2")
        self.assertEqual(d2.header["model_version"], "2")
        # The default version is 2: it hits version 2's entry.
        _, d3 = self.assert_infer(c, "mlpv", [inp], "hit-memory")
        self.assertEqual(d3.header["model_version"], "2")

    # 6
    def test_identical_concurrent_requests_execute_once(self):
        server = self.server
        rng = np.random.default_rng(601)
        xa, xb = (rng.uniform(-1, 1, (1, 16)).astype(np.float32) for _ in range(2))
        want_a, want_b = self.want(h.Input("input", xa)), self.want(h.Input("input", xb))
        exec0, batch0 = executions(server, "held"), batches(server, "held")
        coalesced0 = stats(server)["coalesced"]
        results = {}

        def send(i):
            try:
                with server.client() as c:
                    results[i] = infer(c, "held", [h.Input("input", xa)])
            except Exception as e:  # reported below
                results[i] = e

        def queue_depth():
            return h.metric_sum(h.parse_metrics(h.scrape(server)), "inferd_queue_depth", model="held")

        first = threading.Thread(target=send, args=(0,), daemon=True)
        first.start()
        h.wait_until(lambda: queue_depth() == 1, 60, "request A queued on 'held'")

        # A copy with its own short parameters.timeout (µs) gives up alone.
        with server.client() as c:
            r, _ = infer(c, "held", [h.Input("input", xa)], raw_json={"parameters": {"timeout": 50000}})
        self.assertEqual(r.status, 504, r.describe())
        self.assertEqual(stats(server)["coalesce_waiting"], 0)

        copies = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(1, 9)]
        for t in copies:
            t.start()
        h.wait_until(lambda: stats(server)["coalesce_waiting"] == 8, 60, "8 coalesced waiters")
        self.assertEqual(queue_depth(), 1, "a coalesced copy was queued for execution")

        with server.client() as c:  # B completes the batch of 2
            rb, db = infer(c, "held", [h.Input("input", xb)])
        self.assertEqual(rb.status, 200, rb.describe())
        self.assertEqual(cache_status(rb), "miss")
        self.assertLessEqual(h.max_abs_diff(db.outputs["output"], want_b), 1e-5)

        for t in [first] + copies:
            t.join(h.HTTP_TIMEOUT_S)
        statuses = []
        for i in range(9):
            self.assertIsInstance(results.get(i), tuple, "request A #%d: %r" % (i, results.get(i)))
            r, d = results[i]
            self.assertEqual(r.status, 200, r.describe())
            self.assertLessEqual(h.max_abs_diff(d.outputs["output"], want_a), 1e-5)
            self.assertEqual(d.outputs["output"].tobytes(), results[0][1].outputs["output"].tobytes())
            statuses.append(cache_status(r))
        self.assertEqual(statuses[0], "miss")
        self.assertEqual(sorted(statuses), ["coalesced"] * 8 + ["miss"], statuses)
        self.assertEqual(executions(server, "held") - exec0, 2, "executed requests (A and B)")
        self.assertEqual(batches(server, "held") - batch0, 1, "executed batches")
        s = stats(server)
        self.assertEqual(s["coalesced"] - coalesced0, 8, s)
        self.assertEqual(s["coalesce_waiting"], 0, s)
        m = h.parse_metrics(h.scrape(server))
        self.assertEqual(h.metric_sum(m, "inferd_cache_coalesced_total"), s["coalesced"])
        # Now cached.
        with server.client() as c:
            self.assert_infer(c, "held", [h.Input("input", xa)], "hit-memory")


class CacheDisabledTest(h.ServerTestCase):
    models = ("mlp",)
    server_args = ("--cache-memory-max-bytes", "0")

    @classmethod
    def prepare_repository(cls, repo):
        shutil.rmtree(os.path.join(repo, "mlp"))
        h.copy_model("mlp", repo, config_text=mlp_config())

    def test_cache_off(self):
        c = self.client()
        for _ in range(2):
            r, _ = infer(c, "mlp", [mlp_input(701)])
            self.assertEqual(r.status, 200, r.describe())
            self.assertIsNone(cache_status(r), r.describe())
        for method, path in (("GET", "/v2/cache/stats"), ("DELETE", "/v2/cache"),
                             ("DELETE", "/v2/cache/models/mlp")):
            r = c.request(method, path)
            self.assertEqual(r.status, 404, r.describe())


# --------------------------------------------------------------------------
# Servers started by the tests themselves


class ServersTestCase(unittest.TestCase):
    """Starts servers per test on a temporary repository with a cached mlp;
    every server is checked to exit 0 on SIGTERM."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        h.require_models("mlp")
        torch.set_num_threads(1)
        cls.torch_mlp = h.load_torch_model("mlp")

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="inferd-cache-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.repo = make_cached_repo(self.tmp)

    def start(self, *args):
        server = h.ServerProcess(self.repo, args=args).start()
        self.addCleanup(server.kill)
        return server

    def stop(self, server):
        server.assert_stopped_cleanly(self)

    def request(self, server, inp, expect=None, **kw):
        with server.client() as c:
            r, d = infer(c, "mlp", [inp], **kw)
        self.assertEqual(r.status, 200, r.describe() + "\n" + server.output())
        if expect is not None:
            self.assertEqual(cache_status(r), expect, r.describe())
        self.assertLessEqual(h.max_abs_diff(d.outputs["output"], h.torch_forward(self.torch_mlp, inp.data)),
                             1e-5)
        return r, d


# 7
class DiskTierTest(ServersTestCase):
    @classmethod
    def setUpClass(cls):
        require_flag("--cache-disk-path")
        super().setUpClass()

    def test_survives_restart_then_promoted(self):
        path = os.path.join(self.tmp, "l2")
        inp = mlp_input(801)
        s1 = self.start("--cache-disk-path", path)
        _, d1 = self.request(s1, inp, "miss")
        self.stop(s1)  # shutdown flushes the write-behind queue

        s2 = self.start("--cache-disk-path", path)
        st = stats(s2)
        self.assertIs(st["tiers"]["disk"]["enabled"], True, st)
        r2, d2 = self.request(s2, inp, "hit-disk")
        self.assertRegex(r2.header("Age") or "", r"^\d+$")
        self.assertEqual(d1.outputs["output"].tobytes(), d2.outputs["output"].tobytes())
        _, d3 = self.request(s2, inp, "hit-memory")
        self.assertEqual(d1.outputs["output"].tobytes(), d3.outputs["output"].tobytes())
        st = stats(s2)["tiers"]["disk"]
        self.assertGreaterEqual(st["hits"], 1, st)
        self.assertEqual(executions(s2, "mlp"), 0, "the restarted server executed the model")
        self.stop(s2)

    def test_corrupted_entry_is_a_miss(self):
        path = os.path.join(self.tmp, "l2")
        inp = mlp_input(802)
        s1 = self.start("--cache-disk-path", path)
        self.request(s1, inp, "miss")
        self.stop(s1)

        corrupted = []
        for f in sorted(glob.glob(os.path.join(path, "*.sst")) + glob.glob(os.path.join(path, "*.log"))):
            if flip_bytes(f, 8, 64):  # inside the first data block / record
                corrupted.append(os.path.basename(f))
        self.assertTrue(corrupted, "no non-empty .sst/.log file in %s: %s" % (path, os.listdir(path)))

        s2 = self.start("--cache-disk-path", path)
        self.request(s2, inp, "miss")
        self.assertTrue(s2.alive())
        self.request(s2, inp, "hit-memory")
        st = stats(s2)["tiers"]["disk"]
        self.assertGreaterEqual(st["errors"], 1, st)  # the checksum failure is counted
        sys.stderr.write("\n[corrupted disk entry] files %s; disk stats after restart: %s; "
                         "server log lines about the disk: %s\n"
                         % (corrupted, json.dumps(st),
                            [l for l in s2.output().splitlines() if "disk" in l.lower() or "corrupt" in l.lower()]))
        self.stop(s2)

    def test_unwritable_path_disables_the_tier(self):
        blocker = os.path.join(self.tmp, "a-file")
        with open(blocker, "w") as f:
            f.write("not a directory\n")
        s = self.start("--cache-disk-path", os.path.join(blocker, "l2"))
        inp = mlp_input(803)
        self.request(s, inp, "miss")
        self.request(s, inp, "hit-memory")
        st = stats(s)
        self.assertIs(st["tiers"]["disk"]["enabled"], False, st)
        stderr = [l for l in s.output().splitlines() if l.startswith("[stderr]")]
        self.assertTrue(any("disk" in l.lower() for l in stderr),
                        "stderr does not mention the disk tier:\n" + "\n".join(stderr))
        self.stop(s)


# 8
class RedisTierTest(ServersTestCase):
    @classmethod
    def setUpClass(cls):
        require_flag("--cache-redis-url")
        if not os.access(REDIS_SERVER, os.X_OK):
            raise unittest.SkipTest("%s is not installed" % REDIS_SERVER)
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.redis = RedisServer(self.tmp).start()
        self.addCleanup(self.redis.kill)

    def test_two_processes_share_entries(self):
        # A generous timeout: a busy 2-core machine must not open the circuit.
        args = ("--cache-redis-url", self.redis.url, "--cache-redis-timeout-ms", "2000")
        s1, s2 = self.start(*args), self.start(*args)
        inp = mlp_input(901, binary=True)
        _, d1 = self.request(s1, inp, "miss")
        h.wait_until(lambda: stats(s1)["tiers"]["redis"]["writes"] >= 1, 60,
                     "process 1's write to Redis")
        r2, d2 = self.request(s2, inp, "hit-redis")
        self.assertRegex(r2.header("Age") or "", r"^\d+$")
        self.assertEqual(d1.outputs["output"].tobytes(), d2.outputs["output"].tobytes())
        self.request(s2, inp, "hit-memory")
        self.assertEqual(executions(s2, "mlp"), 0)
        st = stats(s2)["tiers"]["redis"]
        self.assertIs(st["enabled"], True, st)
        self.assertEqual(st["hits"], 1, st)
        self.stop(s1)
        self.stop(s2)

    def test_redis_killed_mid_run(self):
        s = self.start("--cache-redis-url", self.redis.url)
        total, threads_n, kill_after = 50, 5, 15
        xs = np.random.default_rng(902).uniform(-1, 1, (total, 16)).astype(np.float32)
        want = h.torch_forward(self.torch_mlp, xs)
        done, lock, killed = [0], threading.Lock(), threading.Event()
        reached = threading.Event()
        failures, latencies = [], []

        def client(k):
            with s.client(timeout=30) as c:
                for i in range(k, total, threads_n):
                    t0 = time.monotonic()
                    try:
                        r, d = infer(c, "mlp", [h.Input("input", xs[i:i + 1])])
                    except Exception as e:  # reported below
                        failures.append("request %d: %s: %s" % (i, type(e).__name__, e))
                        continue
                    elapsed = time.monotonic() - t0
                    if r.status != 200:
                        failures.append("request %d: %s" % (i, r.describe()))
                    elif h.max_abs_diff(d.outputs["output"], want[i:i + 1]) > 1e-5:
                        failures.append("request %d: wrong output" % i)
                    with lock:
                        if killed.is_set():
                            latencies.append(elapsed)
                        done[0] += 1
                        if done[0] == kill_after:
                            reached.set()

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(threads_n)]
        for t in threads:
            t.start()
        self.assertTrue(reached.wait(h.HTTP_TIMEOUT_S), "no progress before the kill")
        self.redis.kill()
        killed.set()
        for t in threads:
            t.join(h.HTTP_TIMEOUT_S)
        self.assertFalse(any(t.is_alive() for t in threads), "clients still running")
        self.assertEqual(failures, [], "%d of %d requests failed" % (len(failures), total))
        self.assertEqual(done[0], total)
        # Invalidation cannot reach Redis now: a clear 503, not a false success.
        with s.client() as c:
            r = c.request("DELETE", "/v2/cache/models/mlp")
        self.assertEqual(r.status, 503, r.describe())
        self.assertIn("Redis", r.json().get("error", ""), r.describe())
        # Still answering, from memory and by executing, with Redis gone.
        inp = mlp_input(903)
        self.request(s, inp, "miss")
        self.request(s, inp, "hit-memory")
        st = stats(s)["tiers"]["redis"]
        sys.stderr.write("\n[redis killed] redis stats: %s; slowest request after the kill: %.3f s\n"
                         % (json.dumps(st), max(latencies or [0])))
        self.stop(s)


# 9
class CacheWarmTest(ServersTestCase):
    def test_warm_file_makes_the_first_request_a_hit(self):
        rng = np.random.default_rng(1001)
        xs = [rng.uniform(-1, 1, (1, 16)).astype(np.float32) for _ in range(2)]
        warm = os.path.join(self.tmp, "warm.jsonl")
        with open(warm, "w") as f:
            for i, x in enumerate(xs):
                body = {"model": "mlp", "id": "warm-%d" % i,
                        "inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                                    "data": x.reshape(-1).tolist()}]}
                if i == 1:
                    body["model_version"] = "1"
                f.write(json.dumps(body) + "\n")
        s = self.start("--cache-warm", warm)
        executed_by_warmup = executions(s, "mlp")
        self.assertEqual(stats(s)["tiers"]["memory"]["entries"], 2)
        _, d0 = self.request(s, h.Input("input", xs[0]), "hit-memory", request_id="live")
        self.assertEqual(d0.header.get("id"), "live")
        self.request(s, h.Input("input", xs[1], binary=True), "hit-memory")
        self.assertEqual(executions(s, "mlp"), executed_by_warmup)
        self.stop(s)


if __name__ == "__main__":
    unittest.main()
