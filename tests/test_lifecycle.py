"""Model lifecycle (issue 11, docs/design-lifecycle.md sections 2, 3, 10):
lazy loading on the first inference request (one load shared by concurrent
first requests), explicit model control with `POST
/v2/repository/models/{m}/load` and `.../unload`, `--load-model`, the
repository index and its states, the admin guard on load and unload,
unloading a model with requests queued on it, a model whose weights do
not load (FAILED, sticky), and the model memory budget (section 6):
`GET /v2/memory/stats`, `--model-memory-budget` evicting the least recently
used idle copies under lazy control (never a pinned one), a model that can
never fit (503), explicit control refusing a load past the budget (503),
and the lifecycle families of `/metrics`. Budgets are multiples of what one
loaded copy of mlp is charged, measured once per run (`mlp_bytes`).

Versions and reload (sections 5.3-5.5): `[version_policy]` (only served
versions load; others are listed UNAVAILABLE "not served" and requests for
them get 404), `POST .../load` rescanning the model directory (a new
version loads beside the serving one and takes over atomically under
continuous load; broken weights or an invalid config.toml are 400 and the
serving version serves on; a changed model.pt reloads the same version and
the response cache does not answer from the old files; a removed version
rolls back; a model directory created after the start registers), and
`--model-control poll` (a new version takes over, a new model registers, a
removed one unloads and gets 404). Files are prepared beside the
repository and renamed into place, so no scan sees half a change.

Each test starts its own server (`preload=False`: nothing loads before the
server listens unless the test says `--load-model`) on a temporary
repository of mlp copies (and resnet18 for one test), so every test sees
cold models. Log lines are counted after the server has exited, when every
line is in; queued requests are observed through `inferd_queue_depth`.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import inferd_harness as h  # noqa: E402
from test_tenants import keygen  # noqa: E402

WAIT_S = 60  # bound of every poll; a load of mlp takes well under a second

JSON = {"Content-Type": "application/json"}

# mlp whose batcher waits an hour for a full batch of 4 items: requests stay
# queued until the test completes the batch or the model is unloaded.
HELD = """backend = "torchscript"
max_batch_size = 4
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
max_queue_delay_us = 3600000000   # an hour: only a full batch dispatches
max_queue_size = 64
[parameters]
intra_op_threads = 1
"""


def mlp_input(items=1, value=0.5):
    return [h.Input("input", np.full((items, 16), value, dtype=np.float32))]


def load_hint(model):
    return "POST /v2/repository/models/%s/load" % model


def pin_model(repo, name):
    """`pin = true` at the top of a copied model's config.toml (top-level keys
    come before any table)."""
    cfg = os.path.join(repo, name, "config.toml")
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write("pin = true\n" + text)


# The keys GET /v2/memory/stats has at least (docs/design-lifecycle.md).
STATS_KEYS = ["budget", "models", "process"]
PROCESS_KEYS = ["resident_bytes", "unattributed_bytes"]
BUDGET_KEYS = ["bytes", "deferred_loads", "used_bytes"]  # + headroom_bytes with a budget
ROW_KEYS = sorted(["name", "version", "state", "reason", "bytes", "estimated", "weights_bytes",
                   "packed_bytes", "reported", "approximate", "rss_delta_bytes",
                   "rss_delta_exclusive", "in_use", "idle_s", "pinned", "keep_alive_s",
                   "concurrency", "shares_weights", "load_s", "batch_buffers"])
BATCH_BUFFER_KEYS = ["idle", "idle_bytes", "in_use", "in_use_bytes"]

# The lifecycle families of /metrics and their types.
LIFECYCLE_FAMILIES = {
    "inferd_model_state": "gauge",
    "inferd_model_memory_bytes": "gauge",
    "inferd_model_memory_budget_bytes": "gauge",
    "inferd_model_memory_used_bytes": "gauge",
    "inferd_model_deferred_loads": "gauge",
    "inferd_model_in_use": "gauge",
    "inferd_batch_buffer_bytes": "gauge",
    "inferd_model_loads_total": "counter",
    "inferd_model_unloads_total": "counter",
    "inferd_model_load_duration_seconds": "histogram",
    "inferd_model_load_waits_total": "counter",
    "inferd_model_load_wait_seconds": "histogram",
}

_mlp_bytes = []


def mlp_bytes():
    """What one loaded copy of mlp is charged (`bytes` of its row in
    /v2/memory/stats), measured once per run on a server of its own."""
    if not _mlp_bytes:
        tmp = tempfile.mkdtemp(prefix="inferd-lifecycle-measure-")
        try:
            repo = os.path.join(tmp, "models")
            h.copy_model("mlp", repo)
            server = h.ServerProcess(repo, args=("--load-model", "mlp"), preload=False)
            try:
                server.start()
                with server.client() as c:
                    r = c.get("/v2/memory/stats")
                if r.status != 200:
                    raise AssertionError("/v2/memory/stats: " + r.describe())
                rows = [row for row in r.json()["models"] if row["name"] == "mlp"]
                if len(rows) != 1 or rows[0]["state"] != "READY" or not rows[0]["bytes"] > 0:
                    raise AssertionError("one READY mlp row with bytes > 0 expected: %r" % rows)
                _mlp_bytes.append(rows[0]["bytes"])
                server.stop()
            finally:
                server.kill()
        finally:
            shutil.rmtree(tmp, True)
    return _mlp_bytes[0]


def mlp_estimate():
    """What the first load of a copy of mlp reserves: twice the bytes of its
    version directory."""
    return 2 * os.path.getsize(h.model_file("mlp"))


class Pending(threading.Thread):
    """One inference request on its own connection, answered later."""

    def __init__(self, server, model, inputs, headers=None):
        super().__init__(daemon=True)
        self.server, self.model, self.inputs, self.headers = server, model, inputs, headers or {}
        self.response = None
        self.start()

    def run(self):
        body, hdrs = h.encode_infer_request(self.inputs)
        hdrs.update(self.headers)
        try:
            with self.server.client(timeout=WAIT_S) as c:
                self.response = c.request("POST", h.infer_path(self.model), body, hdrs)
        except Exception as e:  # reported by the test
            self.response = e

    def result(self, test):
        self.join(WAIT_S + 10)
        test.assertFalse(self.is_alive(), "no answer to a request for " + self.model)
        test.assertIsInstance(self.response, h.Response, repr(self.response))
        return self.response


class LifecycleTestCase(unittest.TestCase):
    """A temporary repository per test (mlp and two copies unless
    `prepare_repository` says otherwise) and helpers to serve it."""

    def setUp(self):
        h.require_models("mlp")
        self.tmp = tempfile.mkdtemp(prefix="inferd-lifecycle-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.repo = os.path.join(self.tmp, "models")
        os.makedirs(self.repo)
        self.prepare_repository(self.repo)

    def prepare_repository(self, repo):
        for name in ("mlp", "mlp_b", "mlp_c"):
            h.copy_model("mlp", repo, new_name=name)

    def serve(self, *args, env=None):
        """A server on the test's repository, nothing preloaded except what
        `args` asks for (`--load-model ...`)."""
        server = h.ServerProcess(self.repo, args=args, env=env, preload=False)
        self.addCleanup(server.kill)
        return server.start()

    def stop(self, server):
        server.assert_stopped_cleanly(self)

    # -- the repository API ------------------------------------------------

    def post(self, server, path, body=b"", headers=None):
        with server.client() as c:
            return c.request("POST", path, body, dict(JSON, **(headers or {})))

    def index(self, server, body=b"", headers=None):
        r = self.post(server, "/v2/repository/index", body, headers)
        self.assertEqual(r.status, 200, r.describe())
        rows = r.json()
        self.assertIsInstance(rows, list, r.describe())
        for row in rows:
            self.assertEqual(sorted(row), ["name", "reason", "state", "version"], row)
        return rows

    def states(self, server, headers=None):
        """{name: state} from the index (every model here has version 1 only)."""
        rows = self.index(server, headers=headers)
        for row in rows:
            self.assertEqual(row["version"], "1", row)
        return {row["name"]: row["state"] for row in rows}

    def state(self, server, model):
        return self.states(server)[model]

    def wait_state(self, server, model, *wanted):
        return h.wait_until(lambda: self.state(server, model) in wanted and self.state(server, model),
                            WAIT_S, "model %s in state %s" % (model, " or ".join(wanted)))

    def load(self, server, model, body=b"", headers=None):
        return self.post(server, "/v2/repository/models/%s/load" % model, body, headers)

    def unload(self, server, model, body=b"", headers=None):
        return self.post(server, "/v2/repository/models/%s/unload" % model, body, headers)

    def assert_rows(self, r, model, states):
        """A 200 load/unload answer: the model's index rows, each in one of `states`."""
        self.assertEqual(r.status, 200, r.describe())
        rows = r.json()
        self.assertEqual([(row["name"], row["version"]) for row in rows], [(model, "1")], rows)
        for row in rows:
            self.assertIn(row["state"], states, rows)
        return rows

    # -- inference -----------------------------------------------------------

    def infer(self, server, model="mlp", items=1, headers=None):
        body, hdrs = h.encode_infer_request(mlp_input(items))
        hdrs.update(headers or {})
        with server.client() as c:
            return c.request("POST", h.infer_path(model), body, hdrs)

    def assert_infers(self, server, model="mlp", items=1):
        r = self.infer(server, model, items)
        self.assertEqual(r.status, 200, r.describe())
        d = h.decode_infer_response(r)
        self.assertEqual(d.outputs["output"].shape, (items, 4))
        return d

    # -- queue depth -----------------------------------------------------------

    def queue_depth(self, server, model):
        return h.metric_sum(h.parse_metrics(h.scrape(server)), "inferd_queue_depth", model=model) or 0

    def wait_queued(self, server, model, n):
        h.wait_until(lambda: self.queue_depth(server, model) == n, WAIT_S,
                     "%d requests queued for %s" % (n, model))

    # -- the log (read after the server exited) --------------------------------

    def log_lines(self, server, pattern):
        rx = re.compile(pattern)
        with server._cond:
            lines = list(server._lines)
        return [line for stream, line in lines if stream == "stderr" and rx.search(line)]

    def ready_lines(self, server, model):
        return self.log_lines(server, r"model '%s' version 1 ready in \d" % re.escape(model))


class LazyLoadingTest(LifecycleTestCase):
    def test_cold_first_request_loads_the_model(self):
        server = self.serve()
        self.assertEqual(self.states(server),
                         {"mlp": "UNAVAILABLE", "mlp_b": "UNAVAILABLE", "mlp_c": "UNAVAILABLE"})
        with server.client() as c:
            r = c.get("/v2")
            self.assertEqual(r.status, 200, r.describe())
            self.assertIn("model_repository", r.json()["extensions"])
            # The server is ready with nothing loaded.
            self.assertEqual(c.get("/v2/health/ready").status, 200)
            # Metadata and config come from the registered config: no load.
            r = c.get("/v2/models/mlp")
            self.assertEqual(r.status, 200, r.describe())
            meta = r.json()
            self.assertEqual(meta["name"], "mlp")
            self.assertEqual([i["name"] for i in meta["inputs"]], ["input"])
            self.assertEqual([o["name"] for o in meta["outputs"]], ["output"])
            r = c.get("/v2/models/mlp/config")
            self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(self.state(server, "mlp"), "UNAVAILABLE")
        with server.client() as c:
            r = c.get("/v2/models/mlp/ready")
        h.assert_json_error(self, r, 503, ["UNAVAILABLE", "loads on its first inference request"])
        self.assertEqual(self.state(server, "mlp"), "UNAVAILABLE", "GET .../ready loaded the model")

        self.assert_infers(server, "mlp")
        self.assertEqual(self.states(server),
                         {"mlp": "READY", "mlp_b": "UNAVAILABLE", "mlp_c": "UNAVAILABLE"})
        # The request waited for the load once, and was served.
        m = h.parse_metrics(h.scrape(server))
        self.assertEqual(h.metric_sum(m, "inferd_model_load_waits_total", model="mlp"), 1)
        self.assertEqual(
            h.metric_sum(m, "inferd_model_load_waits_total", model="mlp", outcome="served"), 1)
        self.assertEqual(h.metric_sum(m, "inferd_model_load_wait_seconds_count", model="mlp"), 1)
        with server.client() as c:
            r = c.get("/v2/models/mlp/ready")
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(c.get("/v2/models/mlp_b/ready").status, 503)
        self.assert_infers(server, "mlp", items=3)
        self.stop(server)
        self.assertEqual(len(self.ready_lines(server, "mlp")), 1, server.output())
        self.assertEqual(self.ready_lines(server, "mlp_b"), [])

    def test_concurrent_first_requests_share_one_load(self):
        server = self.serve()
        self.assertEqual(self.state(server, "mlp"), "UNAVAILABLE")

        def one(i):
            x = np.full((1, 16), 0.25 * (i % 4), dtype=np.float32)
            with server.client() as c:
                r, d = c.infer("mlp", [h.Input("input", x)])
            return r, d, i % 4

        results = h.run_threads(one, [(i,) for i in range(32)], timeout=WAIT_S * 2)
        by_value = {}
        for r, d, k in results:
            self.assertEqual(r.status, 200, r.describe())
            by_value.setdefault(k, []).append(d.outputs["output"])
        for k, outs in by_value.items():
            for out in outs:  # same input, same answer
                np.testing.assert_array_equal(out, outs[0])
        self.assertEqual(self.state(server, "mlp"), "READY")
        # Those that arrived while it loaded waited (at least the first);
        # every wait was served.
        m = h.parse_metrics(h.scrape(server))
        waits = h.metric_sum(m, "inferd_model_load_waits_total", model="mlp")
        self.assertGreaterEqual(waits, 1)
        self.assertLessEqual(waits, 32)
        self.assertEqual(
            h.metric_sum(m, "inferd_model_load_waits_total", model="mlp", outcome="served"), waits)
        self.assertEqual(h.metric_sum(m, "inferd_model_load_wait_seconds_count", model="mlp"), waits)
        self.stop(server)
        self.assertEqual(len(self.ready_lines(server, "mlp")), 1,
                         "32 first requests should share one load\n" + server.output())

    def test_a_wait_past_its_bound_is_504_and_the_load_goes_on(self):
        """--model-load-wait-ms bounds a request's wait for a load: 1 ms here,
        against a first TorchScript load that also starts libtorch (hundreds
        of milliseconds). The request gets 504 and counts as a timeout; the
        load completes and the next request is served without a wait."""
        server = self.serve("--model-load-wait-ms", "1")
        h.assert_json_error(self, self.infer(server, "mlp"), 504, ["mlp", "deadline", "loading"])
        self.wait_state(server, "mlp", "READY")
        self.assert_infers(server, "mlp")
        m = h.parse_metrics(h.scrape(server))
        self.assertEqual(h.metric_sum(m, "inferd_model_load_waits_total", model="mlp"), 1)
        self.assertEqual(
            h.metric_sum(m, "inferd_model_load_waits_total", model="mlp", outcome="timeout"), 1)
        self.assertEqual(h.metric_sum(m, "inferd_model_load_wait_seconds_count", model="mlp"), 1)
        self.stop(server)

    def test_unload_then_a_request_loads_it_again(self):
        server = self.serve()
        first = self.assert_infers(server, "mlp")
        self.assertEqual(self.state(server, "mlp"), "READY")
        self.assert_rows(self.unload(server, "mlp"), "mlp", ("UNLOADING", "UNAVAILABLE"))
        self.wait_state(server, "mlp", "UNAVAILABLE")
        with server.client() as c:
            r = c.get("/v2/models/mlp/ready")
        h.assert_json_error(self, r, 503, "loads on its first inference request")
        second = self.assert_infers(server, "mlp")
        np.testing.assert_array_equal(first.outputs["output"], second.outputs["output"])
        self.assertEqual(self.state(server, "mlp"), "READY")
        self.stop(server)
        self.assertEqual(len(self.ready_lines(server, "mlp")), 2, server.output())


class KeepAliveTest(LifecycleTestCase):
    """keep_alive_s in config.toml (the clock-driven cases are unit tests in
    src/model/model_manager_lifecycle_test.cc)."""

    def prepare_repository(self, repo):
        h.copy_model("mlp", repo)
        cfg = os.path.join(repo, "mlp", "config.toml")
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write("keep_alive_s = 1\n" + text)  # top-level keys before any table
        h.copy_model("mlp", repo, new_name="mlp_pinned")
        cfg = os.path.join(repo, "mlp_pinned", "config.toml")
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write("keep_alive_s = 0\npin = true\n" + text)

    def test_an_idle_model_unloads_after_its_keep_alive_and_a_pinned_one_stays(self):
        server = self.serve()
        self.assert_infers(server, "mlp")
        self.assert_infers(server, "mlp_pinned")
        self.wait_state(server, "mlp", "UNAVAILABLE")
        self.assertEqual(self.state(server, "mlp_pinned"), "READY")
        self.assert_infers(server, "mlp")  # loads again
        self.stop(server)
        self.assertEqual(len(self.ready_lines(server, "mlp")), 2, server.output())
        self.assertEqual(len(self.ready_lines(server, "mlp_pinned")), 1, server.output())


class ExplicitControlTest(LifecycleTestCase):
    def test_load_infer_unload(self):
        server = self.serve("--model-control", "explicit")
        self.assertEqual(self.state(server, "mlp"), "UNAVAILABLE")
        r = self.infer(server, "mlp")
        h.assert_json_error(self, r, 503, ["not loaded", load_hint("mlp")])
        with server.client() as c:
            r = c.get("/v2/models/mlp/ready")
        h.assert_json_error(self, r, 503, load_hint("mlp"))
        self.assertEqual(self.state(server, "mlp"), "UNAVAILABLE", "a refused request loaded the model")

        self.assert_rows(self.load(server, "mlp"), "mlp", ("READY",))
        self.assertEqual(self.states(server),
                         {"mlp": "READY", "mlp_b": "UNAVAILABLE", "mlp_c": "UNAVAILABLE"})
        self.assert_infers(server, "mlp")
        with server.client() as c:
            self.assertEqual(c.get("/v2/models/mlp/ready").status, 200)
        # Loading a READY model again answers its rows (no second load).
        self.assert_rows(self.load(server, "mlp", b"{}"), "mlp", ("READY",))
        self.assert_infers(server, "mlp")

        self.assert_rows(self.unload(server, "mlp"), "mlp", ("UNLOADING", "UNAVAILABLE"))
        self.wait_state(server, "mlp", "UNAVAILABLE")
        r = self.infer(server, "mlp")
        h.assert_json_error(self, r, 503, load_hint("mlp"))
        self.assertEqual(self.state(server, "mlp"), "UNAVAILABLE")
        # Unloading an unloaded model is harmless.
        self.assert_rows(self.unload(server, "mlp"), "mlp", ("UNAVAILABLE",))

        # And it loads again on request.
        self.assert_rows(self.load(server, "mlp", {"parameters": {}}), "mlp", ("READY",))
        self.assert_infers(server, "mlp")
        self.stop(server)
        self.assertEqual(len(self.ready_lines(server, "mlp")), 2, server.output())


class LoadModelFlagTest(LifecycleTestCase):
    def test_named_models_are_ready_at_listen(self):
        server = self.serve("--model-control", "explicit", "--load-model", "mlp")
        self.assertEqual(self.states(server),
                         {"mlp": "READY", "mlp_b": "UNAVAILABLE", "mlp_c": "UNAVAILABLE"})
        self.assert_infers(server, "mlp")
        h.assert_json_error(self, self.infer(server, "mlp_b"), 503, load_hint("mlp_b"))
        self.stop(server)

    def test_a_comma_list_and_a_repeated_flag(self):
        server = self.serve("--model-control", "explicit", "--load-model", "mlp,mlp_b",
                            "--load-model", "mlp_c")
        self.assertEqual(self.states(server), {"mlp": "READY", "mlp_b": "READY", "mlp_c": "READY"})
        self.stop(server)

    def test_star_loads_every_model_in_lazy_mode(self):
        server = self.serve("--load-model", "*")
        self.assertEqual(self.states(server), {"mlp": "READY", "mlp_b": "READY", "mlp_c": "READY"})
        self.stop(server)

    def test_an_unknown_name_exits_2(self):
        server = h.ServerProcess(self.repo, args=("--load-model", "nope"), preload=False)
        self.addCleanup(server.kill)
        rc = server.launch().wait_exit()
        self.assertEqual(rc, 2, "exit code %s:\n%s" % (rc, server.output()))
        self.assertIn("'nope'", server.output())


class RepositoryRequestsTest(LifecycleTestCase):
    def test_bad_bodies_and_unknown_models(self):
        server = self.serve()
        for body in ({"parameters": {"config": "{}"}}, {"parameters": {"file:1/model.pt": "AAAA"}}):
            with self.subTest(body=body):
                r = self.load(server, "mlp", body)
                h.assert_json_error(self, r, 400, [list(body["parameters"])[0], "not supported"])
        r = self.unload(server, "mlp", {"parameters": {"unload_dependents": True}})
        h.assert_json_error(self, r, 400, ["unload_dependents", "not supported"])
        self.assertEqual(self.state(server, "mlp"), "UNAVAILABLE", "a refused load loaded the model")

        r = self.post(server, "/v2/repository/index", {"nope": 1})
        h.assert_json_error(self, r, 400, "nope")
        r = self.post(server, "/v2/repository/index", b"{not json")
        h.assert_json_error(self, r, 400)

        for call in (self.load, self.unload):
            with self.subTest(call=call.__name__):
                h.assert_json_error(self, call(server, "nope"), 404, "nope")

        # Accepted bodies: empty, {} and {"parameters": {}}; the filter.
        self.assert_infers(server, "mlp")
        for body in (b"", b"{}", {"ready": True}):
            with self.subTest(index_body=body):
                rows = self.index(server, body)
                names = [row["name"] for row in rows]
                if body == {"ready": True}:
                    self.assertEqual([(row["name"], row["state"]) for row in rows], [("mlp", "READY")])
                else:
                    self.assertEqual(sorted(names), ["mlp", "mlp_b", "mlp_c"])
        self.assert_rows(self.load(server, "mlp_b", {"parameters": {}}), "mlp_b", ("READY",))
        self.assertEqual(sorted(row["name"] for row in self.index(server, {"ready": True})),
                         ["mlp", "mlp_b"])
        self.stop(server)


class AdminGuardTest(LifecycleTestCase):
    def test_load_and_unload_need_an_admin_key(self):
        admin_key, admin_hash = keygen()
        user_key, user_hash = keygen()
        config = os.path.join(self.tmp, "inferd.toml")
        with open(config, "w") as f:
            f.write('[auth]\nrequired = true\n')
            f.write('[[tenants]]\nname = "ops"\napi_key_sha256 = ["%s"]\nadmin = true\n' % admin_hash)
            f.write('[[tenants]]\nname = "user"\napi_key_sha256 = ["%s"]\n' % user_hash)
        server = self.serve("--config", config, "--model-control", "explicit")
        admin = {"Authorization": "Bearer " + admin_key}
        user = {"X-Api-Key": user_key}

        # Every tenant reads the index; nobody without a key.
        self.assertEqual(self.states(server, headers=user)["mlp"], "UNAVAILABLE")
        r = self.post(server, "/v2/repository/index", b"{}")
        self.assertEqual(r.status, 401, r.describe())

        for call in (self.load, self.unload):
            with self.subTest(call=call.__name__):
                h.assert_json_error(self, call(server, "mlp", headers=user), 403, "admin")
                self.assertEqual(call(server, "mlp").status, 401)
        self.assertEqual(self.states(server, headers=user)["mlp"], "UNAVAILABLE")

        self.assert_rows(self.load(server, "mlp", headers=admin), "mlp", ("READY",))
        r = self.infer(server, "mlp", headers=user)
        self.assertEqual(r.status, 200, r.describe())
        h.assert_json_error(self, self.unload(server, "mlp", headers=user), 403, "admin")
        self.assertEqual(self.states(server, headers=user)["mlp"], "READY")
        self.assert_rows(self.unload(server, "mlp", headers=admin), "mlp", ("UNLOADING", "UNAVAILABLE"))
        self.stop(server)


class UnloadWhileQueuedTest(LifecycleTestCase):
    def prepare_repository(self, repo):
        h.copy_model("mlp", repo, new_name="held", config_text=HELD)
        h.copy_model("mlp", repo)

    def unload_with_three_queued(self, server):
        """Three single-item requests wait in `held`'s queue for a fourth
        item; the unload leaves them to complete with 200."""
        self.assertEqual(self.state(server, "held"), "READY")
        queued = [Pending(server, "held", mlp_input()) for _ in range(3)]
        self.wait_queued(server, "held", 3)
        self.assert_rows(self.unload(server, "held"), "held", ("UNLOADING", "UNAVAILABLE"))
        for p in queued:
            r = p.result(self)
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(h.decode_infer_response(r).outputs["output"].shape, (1, 4))
        self.wait_state(server, "held", "UNAVAILABLE")

    def test_queued_requests_complete_then_lazy_reloads(self):
        server = self.serve("--load-model", "held")
        self.unload_with_three_queued(server)
        self.assert_infers(server, "held", items=4)  # a full batch: dispatched at once
        self.assertEqual(self.state(server, "held"), "READY")
        self.stop(server)
        self.assertEqual(len(self.ready_lines(server, "held")), 2, server.output())

    def test_queued_requests_complete_then_explicit_refuses(self):
        server = self.serve("--model-control", "explicit", "--load-model", "held")
        self.unload_with_three_queued(server)
        h.assert_json_error(self, self.infer(server, "held", items=4), 503, load_hint("held"))
        self.assertEqual(self.state(server, "held"), "UNAVAILABLE")
        self.stop(server)


class UnloadUnderLoadTest(LifecycleTestCase):
    """resnet18 (tens of ms per batch) with 16 requests sent at once and an
    unload right behind them: whether a request ran on the old version or
    on the one the lazy mode loads again, it gets 200."""

    def prepare_repository(self, repo):
        h.require_models("resnet18")
        h.copy_model("resnet18", repo)
        h.copy_model("mlp", repo)

    def test_unload_with_requests_in_flight(self):
        server = self.serve("--load-model", "resnet18")
        self.assertEqual(self.state(server, "resnet18"), "READY")
        rng = np.random.default_rng(11)
        image = rng.random((1, 3, 224, 224), dtype=np.float32)
        inputs = [h.Input("input", image, binary=True)]
        pending = [Pending(server, "resnet18", inputs) for _ in range(16)]
        self.assert_rows(self.unload(server, "resnet18"), "resnet18",
                         ("UNLOADING", "UNAVAILABLE", "READY", "LOADING"))
        outputs = []
        for p in pending:
            r = p.result(self)
            self.assertEqual(r.status, 200, r.describe())
            outputs.append(h.decode_infer_response(r).outputs["output"])
        for out in outputs:
            self.assertEqual(out.shape, (1, 1000))
            np.testing.assert_allclose(out, outputs[0], rtol=1e-4, atol=1e-4)
        self.wait_state(server, "resnet18", "UNAVAILABLE", "READY")
        # Still serving: another request (which loads it again if needed).
        r = Pending(server, "resnet18", inputs).result(self)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(self.state(server, "resnet18"), "READY")
        self.assert_infers(server, "mlp")
        self.stop(server)

    def test_unload_with_requests_in_flight_explicit(self):
        """Explicit mode: a request that arrived after the unload gets 503
        with the load hint instead; none fails otherwise."""
        server = self.serve("--model-control", "explicit", "--load-model", "resnet18")
        self.assertEqual(self.state(server, "resnet18"), "READY")
        image = np.random.default_rng(12).random((1, 3, 224, 224), dtype=np.float32)
        inputs = [h.Input("input", image, binary=True)]
        pending = [Pending(server, "resnet18", inputs) for _ in range(16)]
        self.assert_rows(self.unload(server, "resnet18"), "resnet18", ("UNLOADING", "UNAVAILABLE"))
        for p in pending:
            r = p.result(self)
            if r.status != 200:
                h.assert_json_error(self, r, 503, load_hint("resnet18"))
        self.wait_state(server, "resnet18", "UNAVAILABLE")
        h.assert_json_error(self, Pending(server, "resnet18", inputs).result(self), 503,
                            load_hint("resnet18"))
        self.assert_rows(self.load(server, "resnet18"), "resnet18", ("READY",))
        r = Pending(server, "resnet18", inputs).result(self)
        self.assertEqual(r.status, 200, r.describe())
        self.stop(server)


class BrokenWeightsTest(LifecycleTestCase):
    def prepare_repository(self, repo):
        h.copy_model("mlp", repo)
        h.copy_model("mlp", repo, new_name="broken")
        path = os.path.join(repo, "broken", "1", "model.pt")
        os.remove(path)
        with open(path, "wb") as f:
            f.write(b"this is not a TorchScript archive")

    def failed_rows(self, server):
        rows = [row for row in self.index(server) if row["name"] == "broken"]
        self.assertEqual(len(rows), 1, rows)
        return rows[0]

    def test_a_failed_load_is_sticky(self):
        server = self.serve()
        self.assertEqual(self.state(server, "broken"), "UNAVAILABLE")
        h.assert_json_error(self, self.infer(server, "broken"), 503, ["broken", "model.pt"],
                            what="first request")
        row = self.failed_rows(server)
        self.assertEqual(row["state"], "FAILED", row)
        self.assertIn("model.pt", row["reason"])
        with server.client() as c:
            r = c.get("/v2/models/broken/ready")
        h.assert_json_error(self, r, 503, "model.pt", what="ready")
        # Sticky: the next request gets the same answer without a new attempt.
        h.assert_json_error(self, self.infer(server, "broken"), 503, ["broken", "model.pt"],
                            what="second request")
        self.assertEqual(self.failed_rows(server)["state"], "FAILED")
        # The first request waited for the load that failed; the second was
        # answered from the sticky failure without a wait.
        m = h.parse_metrics(h.scrape(server))
        self.assertEqual(h.metric_sum(m, "inferd_model_load_waits_total", model="broken"), 1)
        self.assertEqual(
            h.metric_sum(m, "inferd_model_load_waits_total", model="broken", outcome="failed"), 1)
        self.assertEqual(h.metric_sum(m, "inferd_model_load_wait_seconds_count", model="broken"), 1)
        # The good model is not affected.
        self.assert_infers(server, "mlp")
        self.stop(server)
        failures = self.log_lines(server, r"model 'broken' version 1 is unavailable")
        self.assertEqual(len(failures), 1, "one load attempt expected:\n" + server.output())
        self.assertIn("model.pt", failures[0])
        self.assertEqual(self.ready_lines(server, "broken"), [])

    def test_an_explicit_load_of_a_broken_model_is_400(self):
        for mode in ("lazy", "explicit"):
            with self.subTest(mode=mode):
                server = self.serve("--model-control", mode)
                r = self.load(server, "broken")
                h.assert_json_error(self, r, 400, "model.pt")
                row = self.failed_rows(server)
                self.assertEqual(row["state"], "FAILED", row)
                self.assertIn("model.pt", row["reason"])
                h.assert_json_error(self, self.infer(server, "broken"), 503, "model.pt")
                self.stop(server)


class MemoryBudgetTestCase(LifecycleTestCase):
    """Helpers for GET /v2/memory/stats and the memory budget."""

    maxDiff = None  # failures list every refused request

    def memory_stats(self, server, client=None):
        """GET /v2/memory/stats, its keys checked; on `client` if given."""
        if client is None:
            with server.client() as c:
                return self.memory_stats(server, c)
        r = client.get("/v2/memory/stats")
        self.assertEqual(r.status, 200, r.describe())
        self.assertTrue(r.header("Content-Type", "").startswith("application/json"), r.describe())
        s = r.json()
        self.assert_has_keys(s, STATS_KEYS)
        self.assert_has_keys(s["process"], PROCESS_KEYS)
        budget = s["budget"]
        self.assert_has_keys(budget, BUDGET_KEYS)
        if budget["bytes"] > 0:
            self.assert_has_keys(budget, ["headroom_bytes"])
        else:
            self.assertNotIn("headroom_bytes", budget, s)
        self.assertIsInstance(s["models"], list, s)
        for row in s["models"]:
            self.assert_has_keys(row, ROW_KEYS)
            self.assert_has_keys(row["batch_buffers"], BATCH_BUFFER_KEYS)
        return s

    def assert_has_keys(self, obj, keys):
        """The documented keys are there (more may be added)."""
        self.assertIsInstance(obj, dict, obj)
        self.assertEqual(sorted(set(keys) - set(obj)), [], obj)

    def rows(self, stats, model):
        return [row for row in stats["models"] if row["name"] == model]

    def row(self, stats, model):
        rows = self.rows(stats, model)
        self.assertEqual(len(rows), 1, stats)
        return rows[0]

    def idle_stats(self, server):
        """The memory stats once no request holds any version: a request's
        hold ends with its call, which may be just after its answer."""
        def idle():
            s = self.memory_stats(server)
            return s if all(row["in_use"] == 0 for row in s["models"]) else None

        return h.wait_until(idle, WAIT_S, "every version idle (in_use 0)")

    def assert_budget_consistent(self, stats, budget):
        b = stats["budget"]
        self.assertEqual(b["bytes"], budget, stats)
        self.assertLessEqual(b["used_bytes"], budget, stats)
        self.assertEqual(b["headroom_bytes"], budget - b["used_bytes"], stats)


class MemoryStatsTest(MemoryBudgetTestCase):
    def test_shape_without_and_with_a_budget(self):
        server = self.serve()
        s = self.memory_stats(server)
        self.assertEqual(s["models"], [], s)
        self.assertEqual(s["budget"]["bytes"], 0, s)
        self.assertNotIn("headroom_bytes", s["budget"], s)
        self.assertEqual(s["budget"]["used_bytes"], 0, s)
        self.assertEqual(s["budget"]["deferred_loads"], 0, s)
        self.assertGreater(s["process"]["resident_bytes"], 0, s)

        self.assert_infers(server, "mlp")
        s = self.idle_stats(server)
        self.assertEqual([(row["name"], row["version"]) for row in s["models"]], [("mlp", "1")], s)
        row = s["models"][0]
        self.assertEqual(row["state"], "READY", row)
        self.assertGreater(row["bytes"], 0, row)
        self.assertIs(row["reported"], True, row)
        self.assertIs(row["estimated"], False, row)
        self.assertIs(row["pinned"], False, row)
        self.assertEqual(row["concurrency"], 1, row)
        self.assertEqual(row["in_use"], 0, row)
        self.assertEqual(row["keep_alive_s"], 300, row)
        self.assertEqual(row["weights_bytes"] + row["packed_bytes"], row["bytes"], row)
        self.assertEqual(s["budget"]["used_bytes"], row["bytes"], s)
        self.assertNotIn("headroom_bytes", s["budget"], s)
        self.assertLessEqual(s["process"]["unattributed_bytes"], s["process"]["resident_bytes"], s)
        self.stop(server)

        budget = 100 * row["bytes"]
        for how in ("flag", "env"):
            with self.subTest(budget_from=how):
                if how == "flag":
                    server = self.serve("--model-memory-budget", str(budget))
                else:
                    server = self.serve(env={"INFERD_MODEL_MEMORY_BUDGET": str(budget)})
                s = self.memory_stats(server)
                self.assertEqual(s["models"], [], s)
                self.assert_budget_consistent(s, budget)
                self.assertEqual(s["budget"]["headroom_bytes"], budget, s)
                self.assert_infers(server, "mlp")
                self.assert_infers(server, "mlp_b")
                s = self.memory_stats(server)
                self.assertEqual(sorted(row["name"] for row in s["models"]), ["mlp", "mlp_b"], s)
                self.assert_budget_consistent(s, budget)
                self.assertEqual(s["budget"]["used_bytes"], sum(row["bytes"] for row in s["models"]), s)
                self.assertEqual(s["budget"]["deferred_loads"], 0, s)
                samples = h.parse_metrics(h.scrape(server))
                self.assertEqual(h.metric_sum(samples, "inferd_model_memory_budget_bytes"), budget)
                self.assertEqual(h.metric_sum(samples, "inferd_model_memory_used_bytes"),
                                 s["budget"]["used_bytes"])
                self.stop(server)

    def test_any_tenant_reads_the_memory_stats(self):
        user_key, user_hash = keygen()
        config = os.path.join(self.tmp, "inferd.toml")
        with open(config, "w") as f:
            f.write('[auth]\nrequired = true\n')
            f.write('[[tenants]]\nname = "user"\napi_key_sha256 = ["%s"]\n' % user_hash)
        server = self.serve("--config", config)
        with server.client() as c:
            r = c.get("/v2/memory/stats")
            self.assertEqual(r.status, 401, r.describe())
            r = c.request("GET", "/v2/memory/stats", headers={"X-Api-Key": user_key})
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.json()["models"], [], r.describe())
        self.stop(server)


class MemoryBudgetEvictionTest(MemoryBudgetTestCase):
    """Five copies of mlp and a pinned sixth under a budget of 3.5 copies:
    the pinned one and two others fit. Four clients cycle through the five;
    every request succeeds, the budget is never exceeded, the least
    recently used copies are evicted, and the pinned one stays READY."""

    UNPINNED = ["mlp_%d" % i for i in range(5)]
    PINNED = "mlp_pinned"

    def prepare_repository(self, repo):
        for name in self.UNPINNED + [self.PINNED]:
            h.copy_model("mlp", repo, new_name=name)
        pin_model(repo, self.PINNED)

    def test_four_clients_five_models_two_fit(self):
        one = mlp_bytes()
        budget = int(3.5 * one)
        # A first load reserves its estimate: with the pinned copy and one
        # other resident it must fit, or nothing could ever load.
        self.assertLessEqual(2 * one + mlp_estimate(), budget, "estimate %d, bytes %d" % (mlp_estimate(), one))
        server = self.serve("--model-memory-budget", str(budget), "--load-model", self.PINNED)
        s = self.memory_stats(server)
        self.assertEqual([(row["name"], row["state"], row["pinned"]) for row in s["models"]],
                         [(self.PINNED, "READY", True)], s)
        self.assert_budget_consistent(s, budget)

        done = threading.Event()
        samples = []  # (used_bytes, headroom_bytes, pinned state)
        poll_errors = []

        def poll():
            try:
                with server.client() as c:
                    while not done.is_set():
                        s = self.memory_stats(server, c)
                        rows = self.rows(s, self.PINNED)
                        samples.append((s["budget"]["used_bytes"], s["budget"]["headroom_bytes"],
                                        s["budget"]["bytes"], [row["state"] for row in rows]))
            except BaseException as e:  # noqa: B902 - reported below
                poll_errors.append(e)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()

        def client(k):
            statuses = []
            with server.client() as c:
                for i in range(10 * len(self.UNPINNED)):
                    model = self.UNPINNED[(k + i) % len(self.UNPINNED)]
                    r, d = c.infer(model, mlp_input())
                    statuses.append((model, r.status, r.body.decode("utf-8", "replace") if r.status != 200 else ""))
                    if r.status == 200:
                        self.assertEqual(d.outputs["output"].shape, (1, 4))
            return statuses

        try:
            results = h.run_threads(client, [(k,) for k in range(4)], timeout=WAIT_S * 2)
        finally:
            done.set()
            poller.join(WAIT_S)
        self.assertFalse(poller.is_alive(), "the memory stats poller did not finish")
        self.assertEqual(poll_errors, [])

        failed = [st for statuses in results for st in statuses if st[1] != 200]
        self.assertEqual(failed, [], "every request should succeed\n" + server.output())
        self.assertEqual(sum(len(st) for st in results), 4 * 10 * len(self.UNPINNED))

        self.assertGreater(len(samples), 0)
        over = [sm for sm in samples if sm[0] > budget or sm[1] != budget - sm[0] or sm[2] != budget]
        self.assertEqual(over, [], "budget %d exceeded (or headroom inconsistent)" % budget)
        not_ready = [sm for sm in samples if sm[3] != ["READY"]]
        self.assertEqual(not_ready, [], "the pinned model left READY")

        # At rest: the pinned copy and at most two others are ready.
        s = self.idle_stats(server)
        self.assert_budget_consistent(s, budget)
        self.assertEqual(s["budget"]["deferred_loads"], 0, s)
        ready = [row["name"] for row in s["models"] if row["state"] == "READY"]
        self.assertIn(self.PINNED, ready, s)
        self.assertLessEqual(len(ready), 3, s)
        self.assertEqual(self.states(server)[self.PINNED], "READY")

        # /metrics: a valid page with the lifecycle families.
        with server.client() as c:
            r = c.get("/metrics")
        self.assertEqual(r.status, 200, r.describe())
        text = r.body.decode()
        check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(check.returncode, 0, "promtool check metrics:\n%s" % check.stdout.decode())
        for family, kind in LIFECYCLE_FAMILIES.items():
            with self.subTest(family=family):
                self.assertIn("# TYPE %s %s\n" % (family, kind), text)
        m = h.parse_metrics(text)
        evicted = h.metric_sum(m, "inferd_model_unloads_total", reason="evicted") or 0
        self.assertGreater(evicted, 0, text)
        self.assertEqual(h.metric_sum(m, "inferd_model_unloads_total", model=self.PINNED) or 0, 0, text)
        self.assertEqual(h.metric_sum(m, "inferd_model_state", model=self.PINNED, version="1", state="READY"), 1)
        self.assertEqual(h.metric_sum(m, "inferd_model_state", model=self.PINNED, version="1"), 1)
        self.assertEqual(h.metric_sum(m, "inferd_model_memory_budget_bytes"), budget)
        self.assertEqual(h.metric_sum(m, "inferd_model_memory_used_bytes"), s["budget"]["used_bytes"])
        self.assertEqual(h.metric_sum(m, "inferd_model_deferred_loads"), 0)
        self.assertGreater(h.metric_sum(m, "inferd_model_load_waits_total", outcome="served"), 0)
        for outcome in ("timeout", "cancelled", "failed", "refused"):
            self.assertIsNone(h.metric_sum(m, "inferd_model_load_waits_total", outcome=outcome),
                              outcome)
        self.assertEqual(h.metric_sum(m, "inferd_model_loads_total", model=self.PINNED, outcome="success"), 1)
        for model in self.UNPINNED:
            with self.subTest(model=model):
                self.assertGreaterEqual(h.metric_sum(m, "inferd_model_loads_total", model=model,
                                                     outcome="success") or 0, 1, text)
                self.assertEqual(h.metric_sum(m, "inferd_model_loads_total", model=model,
                                              outcome="failure") or 0, 0, text)
                self.assertEqual(h.metric_sum(m, "inferd_model_in_use", model=model, version="1"), 0)
                # Each version is in exactly one state.
                self.assertEqual(h.metric_sum(m, "inferd_model_state", model=model, version="1"), 1)
        self.stop(server)

        lines = self.log_lines(server, r"model '[^']+' version 1 evicted for model '[^']+' version 1 \(memory budget\)")
        self.assertGreater(len(lines), 0, server.output())
        self.assertEqual(len(lines), evicted, server.output())
        self.assertEqual(self.log_lines(server, r"model '%s' version 1 evicted" % self.PINNED), [],
                         server.output())


    def test_concurrent_first_loads_wait_for_each_other(self):
        """Four first requests at once, for four copies: a load that finds
        the others' reservations in the way waits for them to become
        evictable instead of being refused as one that can never fit."""
        one = mlp_bytes()
        budget = int(3.5 * one)
        server = self.serve("--model-memory-budget", str(budget), "--load-model", self.PINNED)

        def first(model):
            with server.client() as c:
                r, _ = c.infer(model, mlp_input())
            return model, r.status, r.body.decode("utf-8", "replace") if r.status != 200 else ""

        results = h.run_threads(first, [(m,) for m in self.UNPINNED[:4]], timeout=WAIT_S * 2)
        self.assertEqual([st for st in results if st[1] != 200], [], server.output())
        s = self.memory_stats(server)
        self.assert_budget_consistent(s, budget)
        self.assertEqual(self.row(s, self.PINNED)["state"], "READY", s)
        self.stop(server)


class MemoryBudgetTooSmallTest(MemoryBudgetTestCase):
    def prepare_repository(self, repo):
        h.copy_model("mlp", repo, new_name="mlp_pinned")
        pin_model(repo, "mlp_pinned")
        h.copy_model("mlp", repo, new_name="mlp_b")

    def test_a_model_that_cannot_fit_is_503(self):
        one = mlp_bytes()
        budget = int(1.5 * one)
        self.assertLessEqual(mlp_estimate(), budget, "the pinned copy must fit alone")
        server = self.serve("--model-memory-budget", str(budget), "--load-model", "mlp_pinned")
        for attempt in ("first", "second"):
            with self.subTest(attempt=attempt):
                h.assert_json_error(self, self.infer(server, "mlp_b"), 503,
                                    ["mlp_b", "memory budget", "mlp_pinned", "pinned"], what=attempt)
                self.assertEqual(self.state(server, "mlp_b"), "UNAVAILABLE")
        s = self.memory_stats(server)
        self.assert_budget_consistent(s, budget)
        self.assertEqual(self.row(s, "mlp_pinned")["state"], "READY", s)
        self.assertEqual([row for row in s["models"] if row["state"] != "UNAVAILABLE"
                          and row["name"] != "mlp_pinned"], [], s)
        self.assertEqual(s["budget"]["deferred_loads"], 0, s)
        # Both requests were refused a wait (nothing to wait for).
        m = h.parse_metrics(h.scrape(server))
        self.assertEqual(h.metric_sum(m, "inferd_model_load_waits_total", model="mlp_b"), 2)
        self.assertEqual(
            h.metric_sum(m, "inferd_model_load_waits_total", model="mlp_b", outcome="refused"), 2)
        self.assertIsNone(h.metric_sum(m, "inferd_model_load_wait_seconds_count", model="mlp_b"))
        self.assert_infers(server, "mlp_pinned")
        self.stop(server)
        self.assertEqual(self.ready_lines(server, "mlp_b"), [], server.output())


class MemoryBudgetExplicitTest(MemoryBudgetTestCase):
    def test_a_load_past_the_budget_is_refused_and_nothing_is_evicted(self):
        one = mlp_bytes()
        budget = int(1.5 * one)
        self.assertLessEqual(mlp_estimate(), budget, "one copy must fit")
        self.assertGreater(one + min(one, mlp_estimate()), budget, "two copies must not fit")
        server = self.serve("--model-control", "explicit", "--model-memory-budget", str(budget),
                            "--load-model", "mlp")
        self.assertEqual(self.states(server), {"mlp": "READY", "mlp_b": "UNAVAILABLE", "mlp_c": "UNAVAILABLE"})
        h.assert_json_error(self, self.load(server, "mlp_b"), 503, ["explicit", "memory budget"])
        self.assertEqual(self.states(server), {"mlp": "READY", "mlp_b": "UNAVAILABLE", "mlp_c": "UNAVAILABLE"})
        self.assert_infers(server, "mlp")
        s = self.memory_stats(server)
        self.assert_budget_consistent(s, budget)
        self.assertEqual(s["budget"]["used_bytes"], self.row(s, "mlp")["bytes"], s)

        self.assert_rows(self.unload(server, "mlp"), "mlp", ("UNLOADING", "UNAVAILABLE"))
        self.wait_state(server, "mlp", "UNAVAILABLE")
        self.assert_rows(self.load(server, "mlp_b"), "mlp_b", ("READY",))
        self.assertEqual(self.states(server), {"mlp": "UNAVAILABLE", "mlp_b": "READY", "mlp_c": "UNAVAILABLE"})
        self.assert_infers(server, "mlp_b")
        s = self.memory_stats(server)
        self.assert_budget_consistent(s, budget)
        self.assertEqual(s["budget"]["used_bytes"], self.row(s, "mlp_b")["bytes"], s)
        m = h.parse_metrics(h.scrape(server))
        self.assertEqual(h.metric_sum(m, "inferd_model_unloads_total", reason="evicted") or 0, 0)
        self.assertEqual(h.metric_sum(m, "inferd_model_unloads_total", model="mlp", reason="explicit"), 1)
        self.stop(server)
        self.assertEqual(self.log_lines(server, r"evicted for model"), [], server.output())


# -- versions, hot reload, poll (docs/design-lifecycle.md sections 5.3-5.5) --

BROKEN_PT = b"this is not a TorchScript archive"


def version_policy_toml(**keys):
    """A [version_policy] table, to append at the end of a config.toml."""
    body = "".join("%s = %s\n" % (k, json.dumps(v)) for k, v in keys.items())
    return "\n[version_policy]\n" + body


class Clients:
    """`n` threads sending single-item mlp requests to `model` back to back,
    each on its own keep-alive connection, until `stop`. Each records
    (status, model_version or the error body, whether the request was sent
    after `mark` was set)."""

    def __init__(self, test, server, model, n=4):
        self.server, self.model = server, model
        self.halt = threading.Event()
        self.mark = threading.Event()
        self.records = [[] for _ in range(n)]
        self.errors = []
        test.addCleanup(self.halt.set)
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, i):
        try:
            with self.server.client(timeout=WAIT_S) as c:
                while not self.halt.is_set():
                    after = self.mark.is_set()
                    r, d = c.infer(self.model, mlp_input())
                    what = d.header["model_version"] if d else r.body.decode("utf-8", "replace")
                    self.records[i].append((r.status, what, after))
        except BaseException as e:  # noqa: B902 - reported by stop() and wait_each()
            self.errors.append(e)

    def wait_each(self, version, n, after):
        """Until every thread got `n` answers of `version` (sent after the
        mark, if `after`)."""
        def done():
            if self.errors:
                raise AssertionError("a client failed: %r" % self.errors)
            return all(sum(1 for st, v, a in list(rec) if st == 200 and v == version and (a or not after)) >= n
                       for rec in self.records)

        h.wait_until(done, WAIT_S, "%d answers of version %s on each of %d clients"
                     % (n, version, len(self.records)))

    def stop(self, test):
        self.halt.set()
        for t in self.threads:
            t.join(WAIT_S)
        test.assertFalse(any(t.is_alive() for t in self.threads), "a client thread did not stop")
        test.assertEqual(self.errors, [])

    def check_switch(self, test, old, new):
        """No request failed; on each thread the answers go from `old` to
        `new` once and stay; every request sent after the mark got `new`."""
        for i, rec in enumerate(self.records):
            failed = [r for r in rec if r[0] != 200]
            test.assertEqual(failed, [], "client %d: every request should succeed" % i)
            seq = [v for _, v, _ in rec]
            test.assertEqual(set(seq) - {old, new}, set(), "client %d" % i)
            if new in seq:
                first = seq.index(new)
                test.assertNotIn(old, seq[first:], "client %d got version %s after %s" % (i, old, new))
            late = [v for _, v, a in rec if a and v != new]
            test.assertEqual(late, [], "client %d: answers after the switch from another version" % i)


class VersionsTestCase(LifecycleTestCase):
    """Model `m`, a copy of mlp with version 1, and helpers to change its
    files: every change is prepared in the test's temporary directory (the
    repository's file system) and renamed into place, so a scan never sees
    half a file, and nothing is ever written through the symlinks
    `copy_model` makes into the example repository."""

    def prepare_repository(self, repo):
        h.copy_model("mlp", repo, new_name="m")

    def add_version(self, model, version, source="mlp", content=None):
        stage = tempfile.mkdtemp(prefix="stage-", dir=self.tmp)
        self.put_bytes(os.path.join(stage, "model.pt"), source, content)
        os.rename(stage, os.path.join(self.repo, model, str(version)))

    def add_model(self, name, source="mlp"):
        stage = tempfile.mkdtemp(prefix="stage-", dir=self.tmp)
        h.copy_model(source, stage, new_name=name)
        os.rename(os.path.join(stage, name), os.path.join(self.repo, name))

    def remove_model(self, name):
        gone = tempfile.mkdtemp(prefix="removed-", dir=self.tmp)
        os.rename(os.path.join(self.repo, name), os.path.join(gone, name))

    def remove_version(self, model, version):
        gone = tempfile.mkdtemp(prefix="removed-", dir=self.tmp)
        os.rename(os.path.join(self.repo, model, str(version)), os.path.join(gone, str(version)))

    def replace_file(self, path, source=None, content=None):
        fd, stage = tempfile.mkstemp(prefix="stage-", dir=self.tmp)
        os.close(fd)
        self.put_bytes(stage, source, content)
        os.replace(stage, path)  # replaces a symlink, not its target

    @staticmethod
    def put_bytes(path, source, content):
        if content is None:
            shutil.copyfile(h.model_file(source), path)
        else:
            with open(path, "wb") as f:
                f.write(content)

    def versions(self, server, model="m"):
        """{version: (state, reason)} of `model`'s index rows."""
        return {row["version"]: (row["state"], row["reason"])
                for row in self.index(server) if row["name"] == model}

    def wait_versions(self, server, wanted, model="m"):
        """Until `model`'s rows match `wanted`: {version: accepted states},
        None among them meaning no row; versions not named must have no row."""
        def match():
            rows = self.versions(server, model)
            for v in set(rows) | set(wanted):
                state = rows[v][0] if v in rows else None
                if state not in wanted.get(v, (None,)):
                    return None
            return rows

        return h.wait_until(match, WAIT_S, "rows of %s: %r" % (model, wanted))

    def answer(self, server, model="m", version=None, x=None):
        """(Response, Decoded or None) for one request of one item."""
        if x is None:
            x = np.full((1, 16), 0.5, dtype=np.float32)
        with server.client() as c:
            return c.infer(model, [h.Input("input", x)], version=version)

    def served_version(self, server, model="m", version=None):
        r, d = self.answer(server, model, version)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(d.header["model_name"], model)
        return d.header["model_version"]

    def load_rows(self, server, model="m"):
        r = self.load(server, model)
        self.assertEqual(r.status, 200, r.describe())
        rows = r.json()
        self.assertEqual({row["name"] for row in rows}, {model}, rows)
        return {row["version"]: row["state"] for row in rows}

    def metric(self, server, name, **labels):
        return h.metric_sum(h.parse_metrics(h.scrape(server)), name, **labels) or 0

    def version_ready_lines(self, server, model, version):
        return self.log_lines(server, r"model '%s' version %d ready in \d" % (re.escape(model), version))


class HotReloadTest(VersionsTestCase):
    def test_a_new_version_takes_over_under_load(self):
        """Four clients send requests without pause while version 2 is added
        and loaded: none fails, each thread's answers switch from version 1
        to 2 once, and everything sent after the load call returned ran on
        version 2."""
        server = self.serve()
        self.assertEqual(self.served_version(server), "1")  # warm
        self.assertEqual(self.versions(server), {"1": ("READY", "")})
        clients = Clients(self, server, "m")
        try:
            clients.wait_each("1", 5, after=False)
            self.add_version("m", 2)
            rows = self.load_rows(server)
            clients.mark.set()
            self.assertEqual(rows.get("2"), "READY", rows)
            self.assertIn(rows.get("1"), ("UNLOADING", "UNAVAILABLE"), rows)
            clients.wait_each("2", 20, after=True)
        finally:
            clients.stop(self)
        clients.check_switch(self, "1", "2")

        rows = self.wait_versions(server, {"2": ("READY",), "1": ("UNAVAILABLE", None)})
        if "1" in rows:
            self.assertIn("not served: version_policy latest(1)", rows["1"][1], rows)
        self.assertEqual(self.served_version(server), "2")
        r, _ = self.answer(server, version="1")
        h.assert_json_error(self, r, 404, ["version 1", "not served", "version_policy latest(1)"])
        self.assertEqual(self.served_version(server, version="2"), "2")
        self.assertEqual(self.metric(server, "inferd_model_unloads_total", model="m", reason="reload"), 1)
        self.assertEqual(self.metric(server, "inferd_model_loads_total", model="m", outcome="success"), 2)

        # Nothing changed since: the load call loads nothing.
        self.assertEqual(self.load_rows(server).get("2"), "READY")
        self.assertEqual(self.served_version(server), "2")
        self.stop(server)
        self.assertEqual(len(self.version_ready_lines(server, "m", 1)), 1, server.output())
        self.assertEqual(len(self.version_ready_lines(server, "m", 2)), 1, server.output())
        self.assertEqual(len(self.log_lines(server, r"model 'm' version 1 is no longer served")), 1,
                         server.output())

    def test_concurrent_load_calls_then_a_rollback(self):
        """Three load calls at once share the one load of version 2; with
        version 2's directory removed, a load call brings version 1 back
        and version 2 leaves."""
        server = self.serve("--model-control", "explicit", "--load-model", "m")
        self.assertEqual(self.served_version(server), "1")
        self.add_version("m", 2)
        results = h.run_threads(lambda: self.load(server, "m"), [()] * 3, timeout=WAIT_S)
        for r in results:
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual({row["version"]: row["state"] for row in r.json()}.get("2"), "READY", r.describe())
        self.assertEqual(self.served_version(server), "2")
        self.wait_versions(server, {"2": ("READY",), "1": ("UNAVAILABLE", None)})

        self.remove_version("m", 2)
        rows = self.load_rows(server)
        self.assertEqual(rows.get("1"), "READY", rows)
        self.assertIn(rows.get("2"), ("UNLOADING", None), rows)
        self.assertEqual(self.served_version(server), "1")
        self.wait_versions(server, {"1": ("READY",)})
        r, _ = self.answer(server, version="2")
        h.assert_json_error(self, r, 404, "unknown version")
        self.stop(server)
        self.assertEqual(len(self.version_ready_lines(server, "m", 2)), 1, server.output())
        self.assertEqual(len(self.version_ready_lines(server, "m", 1)), 2, server.output())

    def test_a_failed_reload_keeps_the_serving_version(self):
        """Explicit control: version 2 with broken weights is 400 and FAILED
        while version 1 serves on; fixed, it loads and takes over; then an
        invalid config.toml is 400 and version 2 serves on."""
        server = self.serve("--model-control", "explicit", "--load-model", "m")
        self.assertEqual(self.served_version(server), "1")
        self.add_version("m", 2, content=BROKEN_PT)
        h.assert_json_error(self, self.load(server, "m"), 400, ["version 2", "model.pt"])
        rows = self.versions(server)
        self.assertEqual(sorted(rows), ["1", "2"], rows)
        self.assertEqual(rows["2"][0], "FAILED", rows)
        self.assertIn("model.pt", rows["2"][1], rows)
        self.assertEqual(rows["1"][0], "READY", rows)
        for _ in range(3):
            self.assertEqual(self.served_version(server), "1")
        self.assertEqual(self.served_version(server, version="1"), "1")
        r, _ = self.answer(server, version="2")
        h.assert_json_error(self, r, 503, "model.pt")
        self.assertEqual(self.metric(server, "inferd_model_loads_total", model="m", outcome="failure"), 1)

        self.replace_file(os.path.join(self.repo, "m", "2", "model.pt"), source="mlp")
        rows = self.load_rows(server)
        self.assertEqual(rows.get("2"), "READY", rows)
        self.assertEqual(self.served_version(server), "2")
        self.wait_versions(server, {"2": ("READY",), "1": ("UNAVAILABLE", None)})

        self.replace_file(os.path.join(self.repo, "m", "config.toml"), content=b"backend = [\n")
        h.assert_json_error(self, self.load(server, "m"), 400, ["m", "config.toml"])
        self.assertEqual(self.versions(server)["2"][0], "READY")
        for _ in range(3):
            self.assertEqual(self.served_version(server), "2")
        self.stop(server)
        self.assertEqual(len(self.log_lines(server, r"model 'm' version 2 is unavailable: .*model\.pt")), 1,
                         server.output())
        self.assertEqual(len(self.version_ready_lines(server, "m", 2)), 1, server.output())


class InPlaceReloadTest(VersionsTestCase):
    """Version 1's model.pt replaced by mlp_int8's (same inputs and outputs,
    other numbers); `ref`, a copy of mlp_int8, gives the expected answer."""

    def prepare_repository(self, repo):
        super().prepare_repository(repo)
        if os.path.exists(h.model_file("mlp_int8")):
            h.copy_model("mlp_int8", repo, new_name="ref")

    def test_changed_files_reload_the_same_version(self):
        if not os.path.exists(h.model_file("mlp_int8")):
            self.skipTest("examples/models/mlp_int8 is missing (examples/generate_models.py makes it)")
        server = self.serve("--load-model", "m")
        x = np.random.default_rng(5).standard_normal((1, 16)).astype(np.float32)
        r, before = self.answer(server, x=x)
        self.assertEqual(r.status, 200, r.describe())
        r, ref = self.answer(server, "ref", x=x)
        self.assertEqual(r.status, 200, r.describe())
        before, ref = before.outputs["output"], ref.outputs["output"]
        self.assertGreater(h.max_abs_diff(before, ref), 1e-4, "mlp and mlp_int8 should answer differently")

        self.replace_file(os.path.join(self.repo, "m", "1", "model.pt"), source="mlp_int8")
        self.assertEqual(self.load_rows(server), {"1": "READY"})
        r, after = self.answer(server, x=x)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(after.header["model_version"], "1")
        np.testing.assert_allclose(after.outputs["output"], ref, rtol=1e-5, atol=1e-6)
        self.assertEqual(self.metric(server, "inferd_model_unloads_total", model="m", reason="reload"), 1)
        # Unchanged since: nothing loads.
        self.assertEqual(self.load_rows(server), {"1": "READY"})
        self.stop(server)
        self.assertEqual(len(self.version_ready_lines(server, "m", 1)), 2, server.output())

    def test_the_response_cache_never_answers_from_the_old_files(self):
        """Cache keys carry the revision: after an in-place reload (same
        version number) the same request misses and gets the new answer."""
        if not os.path.exists(h.model_file("mlp_int8")):
            self.skipTest("examples/models/mlp_int8 is missing (examples/generate_models.py makes it)")
        with open(os.path.join(self.repo, "m", "config.toml"), "a") as f:
            f.write("\n[response_cache]\nenable = true\nttl_s = 3600\n")
        server = self.serve("--load-model", "m")
        x = np.random.default_rng(6).standard_normal((1, 16)).astype(np.float32)
        r, ref = self.answer(server, "ref", x=x)
        self.assertEqual(r.status, 200, r.describe())
        ref = ref.outputs["output"]
        answers = []
        for expected in ("miss", "hit-memory"):
            r, d = self.answer(server, x=x)
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.header("X-Inferd-Cache"), expected, r.describe())
            answers.append(d.outputs["output"])
        np.testing.assert_array_equal(answers[0], answers[1])
        self.assertGreater(h.max_abs_diff(answers[0], ref), 1e-4, "mlp and mlp_int8 should answer differently")

        self.replace_file(os.path.join(self.repo, "m", "1", "model.pt"), source="mlp_int8")
        self.assertEqual(self.load_rows(server), {"1": "READY"})
        for expected in ("miss", "hit-memory"):
            r, d = self.answer(server, x=x)
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.header("X-Inferd-Cache"), expected, r.describe())
            self.assertEqual(d.header["model_version"], "1")
            np.testing.assert_allclose(d.outputs["output"], ref, rtol=1e-5, atol=1e-6)
        self.stop(server)


class VersionPolicyTest(VersionsTestCase):
    def prepare_repository(self, repo):
        h.copy_model("mlp", repo, new_name="m")
        for v in (2, 3):
            os.makedirs(os.path.join(repo, "m", str(v)))
            os.symlink(h.model_file("mlp"), os.path.join(repo, "m", str(v), "model.pt"))
        with open(os.path.join(repo, "m", "config.toml"), "a") as f:
            f.write(version_policy_toml(policy="specific", versions=[1, 3]))
        h.copy_model("mlp", repo, new_name="latest")
        os.makedirs(os.path.join(repo, "latest", "2"))
        os.symlink(h.model_file("mlp"), os.path.join(repo, "latest", "2", "model.pt"))

    def test_specific_versions(self):
        server = self.serve("--load-model", "m")
        rows = self.versions(server)
        self.assertEqual({v: s for v, (s, _) in rows.items()},
                         {"1": "READY", "2": "UNAVAILABLE", "3": "READY"}, rows)
        self.assertIn("not served: version_policy specific(1, 3)", rows["2"][1], rows)
        self.assertEqual(self.served_version(server), "3")
        self.assertEqual(self.served_version(server, version="1"), "1")
        self.assertEqual(self.served_version(server, version="3"), "3")
        r, _ = self.answer(server, version="2")
        h.assert_json_error(self, r, 404, ["version 2", "not served", "specific(1, 3)"])
        r, _ = self.answer(server, version="4")
        h.assert_json_error(self, r, 404, "unknown version")
        self.assertEqual(self.versions(server)["2"][0], "UNAVAILABLE", "a refused request loaded version 2")

        # The default policy, latest(1): version 2 only, loaded on request.
        rows = self.versions(server, "latest")
        self.assertEqual({v: s for v, (s, _) in rows.items()}, {"1": "UNAVAILABLE", "2": "UNAVAILABLE"}, rows)
        self.assertIn("not served: version_policy latest(1)", rows["1"][1], rows)
        self.assertEqual(self.served_version(server, "latest"), "2")
        r, _ = self.answer(server, "latest", version="1")
        h.assert_json_error(self, r, 404, ["not served", "latest(1)"])
        self.assertEqual({v: s for v, (s, _) in self.versions(server, "latest").items()},
                         {"1": "UNAVAILABLE", "2": "READY"})
        self.stop(server)


class PollTest(VersionsTestCase):
    def prepare_repository(self, repo):
        h.copy_model("mlp", repo, new_name="m")
        h.copy_model("mlp", repo, new_name="gone")

    def test_new_versions_new_and_removed_models(self):
        server = self.serve("--model-control", "poll", "--repository-poll-s", "1", "--load-model", "m,gone")
        self.assertEqual(self.served_version(server), "1")
        self.assertEqual(self.served_version(server, "gone"), "1")
        clients = Clients(self, server, "m", n=1)
        try:
            clients.wait_each("1", 5, after=False)
            self.add_version("m", 2)
            h.wait_until(lambda: self.served_version(server) == "2", 30, "answers of version 2")
            clients.mark.set()
            clients.wait_each("2", 20, after=True)
        finally:
            clients.stop(self)
        clients.check_switch(self, "1", "2")
        rows = self.wait_versions(server, {"2": ("READY",), "1": ("UNAVAILABLE", None)})
        if "1" in rows:
            self.assertIn("not served", rows["1"][1], rows)

        # A new model directory registers (and loads on its first request).
        self.assertNotIn("late", {row["name"] for row in self.index(server)})
        self.assertEqual(self.answer(server, "late")[0].status, 404)
        self.add_model("late")
        h.wait_until(lambda: "late" in {row["name"] for row in self.index(server)}, 30, "late in the index")
        self.assertEqual(self.versions(server, "late"), {"1": ("UNAVAILABLE", "")})
        self.assertEqual(self.served_version(server, "late"), "1")
        self.assertEqual(self.versions(server, "late")["1"][0], "READY")

        # A removed model directory: the model unloads, requests get 404.
        self.remove_model("gone")
        r = h.wait_until(lambda: (lambda r: r.status != 200 and r)(self.answer(server, "gone")[0]),
                         30, "requests for a removed model refused")
        h.assert_json_error(self, r, 404, "gone")
        h.wait_until(lambda: "gone" not in {row["name"] for row in self.index(server)}, WAIT_S,
                     "gone out of the index")
        self.assertEqual(self.served_version(server), "2")
        self.stop(server)
        self.assertEqual(len(self.log_lines(server, r"model 'gone' was removed from the repository")), 1,
                         server.output())
        self.assertEqual(len(self.log_lines(server, r"model 'm' version 1 is no longer served")), 1,
                         server.output())
        self.assertEqual(len(self.version_ready_lines(server, "m", 2)), 1, server.output())


class LateModelTest(VersionsTestCase):
    def test_explicit_load_of_a_model_created_after_start(self):
        server = self.serve("--model-control", "explicit")
        self.assertEqual({row["name"] for row in self.index(server)}, {"m"})
        h.assert_json_error(self, self.answer(server, "late")[0], 404, "late")
        h.assert_json_error(self, self.load(server, "late"), 404, "late")
        self.add_model("late")
        self.assertEqual(self.load_rows(server, "late"), {"1": "READY"})
        self.assertEqual(self.versions(server, "late"), {"1": ("READY", "")})
        self.assertEqual(self.served_version(server, "late"), "1")
        self.assertEqual(self.versions(server, "m"), {"1": ("UNAVAILABLE", "")})
        self.stop(server)
        self.assertEqual(len(self.ready_lines(server, "late")), 1, server.output())


if __name__ == "__main__":
    unittest.main()
