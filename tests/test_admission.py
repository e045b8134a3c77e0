"""Priorities, fair shares, queue policies and overload control (issue 10,
items 3-6) against the real binary.

Every test uses its own copy of mlp whose batcher waits an hour for a full
batch of 4 items, so which requests a batch takes is a state the server
holds until the test completes the batch: the order is checked by which
requests are answered, never by timing.
"""

import json
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import inferd_harness as h  # noqa: E402
from test_tenants import keygen  # noqa: E402

HELD = """backend = "torchscript"
max_batch_size = %(cap)d
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

TWO_LEVELS = "[scheduling]\npriority_levels = 2\n"


class Pending(threading.Thread):
    """One inference request on its own connection, answered later."""

    def __init__(self, server, model, items, headers=None, raw_json=None):
        super().__init__(daemon=True)
        self.server, self.model, self.items = server, model, items
        self.headers, self.raw_json = headers or {}, raw_json
        self.response = None
        self.start()

    def run(self):
        x = np.full((self.items, 16), 0.5, dtype=np.float32)
        body, hdrs = h.encode_infer_request([h.Input("input", x)], raw_json=self.raw_json)
        hdrs.update(self.headers)
        try:
            with self.server.client(timeout=120) as c:
                self.response = c.request("POST", h.infer_path(self.model), body, hdrs)
        except Exception as e:  # reported by the test
            self.response = e

    def result(self, test):
        self.join(120)
        test.assertFalse(self.is_alive(), "no answer to a request for " + self.model)
        test.assertIsInstance(self.response, h.Response, repr(self.response))
        return self.response


class AdmissionTest(h.ServerTestCase):
    models = ()

    @classmethod
    def setUpClass(cls):
        cls.acme_key, acme_hash = keygen()
        cls.beta_key, beta_hash = keygen()
        cls.config_dir = h.tempfile.mkdtemp(prefix="inferd-admission-")
        config = os.path.join(cls.config_dir, "inferd.toml")
        with open(config, "w") as f:
            f.write('[[tenants]]\nname = "acme"\napi_key_sha256 = ["%s"]\nadmin = true\n'
                    'weight = 2\n' % acme_hash)
            f.write('[[tenants]]\nname = "beta"\napi_key_sha256 = ["%s"]\n' % beta_hash)
        cls.server_args = ("--config", config)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        h.shutil.rmtree(cls.config_dir, ignore_errors=True)

    @classmethod
    def prepare_repository(cls, repo):
        held4 = HELD % {"cap": 4}
        h.copy_model("mlp", repo, new_name="held_prio", config_text=held4 + TWO_LEVELS)
        h.copy_model("mlp", repo, new_name="held_fair", config_text=held4)
        h.copy_model("mlp", repo, new_name="held_shed", config_text=held4 + TWO_LEVELS +
                     "[overload]\nmin_limit = 2\nmax_limit = 2\n")
        h.copy_model("mlp", repo, new_name="held_expiry", config_text=held4)
        h.copy_model("mlp", repo, new_name="held_delay", config_text=HELD % {"cap": 3} +
                     '[scheduling.default_queue_policy]\ntimeout_action = "delay"\n'
                     "max_timeout_us = 3600000000\n")
        h.copy_model("mlp", repo, new_name="mlp_levels", config_text=held4 + TWO_LEVELS)
        adaptive = (HELD % {"cap": 16}).replace(
            "max_queue_delay_us = 3600000000", "adaptive = true\nlatency_target_us = 50000")
        h.copy_model("mlp", repo, new_name="mlp_adaptive", config_text=adaptive)

    def send(self, model, items=1, headers=None, raw_json=None):
        return Pending(self.server, model, items, headers, raw_json)

    def metrics(self):
        return h.parse_metrics(h.scrape(self.server))

    def metric(self, name, **labels):
        return h.metric_sum(self.metrics(), name, **labels) or 0

    def wait_queued(self, model, n):
        h.wait_until(lambda: self.metric("inferd_queue_depth", model=model) == n, 60,
                     "%d requests queued for %s" % (n, model))

    def assert_ok(self, pending):
        r = pending.result(self)
        self.assertEqual(r.status, 200, r.describe())

    def admin_tenants(self):
        with self.client() as c:
            r = c.request("GET", "/v2/admin/tenants", headers={"X-Api-Key": self.acme_key})
        self.assertEqual(r.status, 200, r.describe())
        self.admin_json = r.json()
        return {t["name"]: t for t in self.admin_json["tenants"]}

    def test_admin_tenants_lists_every_tenant_to_admins_only(self):
        tenants = self.admin_tenants()
        self.assertEqual(sorted(tenants), ["acme", "beta", "default"])
        self.assertEqual(self.admin_json["global_limits"], {"redis": "off", "fallbacks": 0})
        acme = tenants["acme"]
        self.assertEqual((acme["admin"], acme["weight"], acme["keys"], acme["limits"]),
                         (True, 2, 1, []))
        self.assertEqual(acme["recent_rejections"]["window_s"], 60)
        self.assertNotIn(self.acme_key, json.dumps(tenants))
        with self.client() as c:
            r = c.request("GET", "/v2/admin/tenants", headers={"X-Api-Key": self.beta_key})
            h.assert_json_error(self, r, 403, "admin")
            r = c.request("GET", "/v2/admin/tenants")
            h.assert_json_error(self, r, 403, "admin")

    def test_a_higher_priority_request_is_batched_first(self):
        for how in ({"headers": {"X-Inferd-Priority": "1"}},
                    {"raw_json": {"parameters": {"priority": 1}}}):
            with self.subTest(how=how):
                low = [self.send("held_prio", headers={"X-Inferd-Priority": "2"}) for _ in range(3)]
                self.wait_queued("held_prio", 3)
                # FIFO would keep waiting: 3 low items + 2 high exceed 4. By
                # priority the batch is high (2) + two low.
                high = self.send("held_prio", items=2, **how)
                self.assert_ok(high)
                self.wait_queued("held_prio", 1)
                self.assertEqual(self.metric("inferd_queue_depth_by_priority", model="held_prio",
                                             priority="2"), 1)
                # Two low requests were answered; their client threads end
                # a moment after the answer.
                h.wait_until(lambda: sum(p.is_alive() for p in low) == 1, 30,
                             "two low-priority requests answered")
                filler = self.send("held_prio", items=3)
                for p in low + [filler]:
                    self.assert_ok(p)

    def test_a_tenant_with_one_request_is_not_queued_behind_a_busy_one(self):
        acme = {"Authorization": "Bearer " + self.acme_key}
        flood = [self.send("held_fair", headers=acme) for _ in range(3)]
        self.wait_queued("held_fair", 3)
        # FIFO: acme's 3 items + beta's 2 exceed 4, and beta would wait. With
        # fair shares beta's request starts at acme's first.
        beta = self.send("held_fair", items=2, headers={"X-Api-Key": self.beta_key})
        self.assert_ok(beta)
        self.wait_queued("held_fair", 1)
        h.wait_until(lambda: sum(p.is_alive() for p in flood) == 1, 30,
                     "two of acme's requests answered")
        tenants = self.admin_tenants()
        self.assertEqual(tenants["acme"]["queued"], {"held_fair": 1})
        self.assertEqual(tenants["beta"]["queued"], {})
        filler = self.send("held_fair", items=3, headers=acme)
        for p in flood + [filler]:
            self.assert_ok(p)

    def test_overload_sheds_the_lowest_priority_first(self):
        low = []
        for n in (1, 2):  # default: the lowest level; one at a time, so low[1] is the newest
            low.append(self.send("held_shed"))
            self.wait_queued("held_shed", n)
        # The limit is 2: a third low request is shed before it is decoded.
        with self.client() as c:
            x = np.zeros((1, 16), dtype=np.float32)
            r, _ = c.infer("held_shed", [h.Input("input", x)])
        error = h.assert_json_error(self, r, 503, ["overloaded", "held_shed"])
        # Retry-After is the controller's figure, the one the message names.
        self.assertIn("retry after %s s" % r.header("Retry-After"), error)
        # A high one pushes out the newest low one instead.
        high = self.send("held_shed", headers={"X-Inferd-Priority": "1"})
        evicted = low[1].result(self)
        h.assert_json_error(self, evicted, 503, "higher-priority")
        self.assertIsNotNone(evicted.header("Retry-After"))
        self.wait_queued("held_shed", 2)
        # Three more high items push out the last low one and fill the batch.
        filler = self.send("held_shed", items=3, headers={"X-Inferd-Priority": "1"})
        h.assert_json_error(self, low[0].result(self), 503, "higher-priority")
        self.assert_ok(high)
        self.assert_ok(filler)
        self.assertEqual(self.metric("inferd_shed_total", model="held_shed"), 1)
        self.assertEqual(self.metric("inferd_queue_drops_total", model="held_shed",
                                     reason="evicted"), 2)
        self.assertEqual(self.metric("inferd_overload_limit", model="held_shed"), 2)
        decisions = {d: self.metric("inferd_admission_decisions_total", model="held_shed",
                                    tenant="default", decision=d)
                     for d in ("admitted", "shed", "evicted")}
        self.assertEqual(decisions, {"admitted": 4, "shed": 1, "evicted": 2})
        recent = self.admin_tenants()["default"]["recent_rejections"]
        self.assertGreaterEqual(recent["shed"], 1)
        self.assertGreaterEqual(recent["evicted"], 2)
        self.assertEqual(self.metric("inferd_batch_size_count", model="held_shed"), 1)

    def test_expired_and_abandoned_requests_never_run(self):
        r = self.send("held_expiry", raw_json={"parameters": {"timeout": 200000}}).result(self)
        h.assert_json_error(self, r, 504, "deadline")
        self.assertEqual(self.metric("inferd_queue_drops_total", model="held_expiry",
                                     reason="expired"), 1)
        # A client that leaves while its request is queued.
        x = np.zeros((1, 16), dtype=np.float32)
        body, hdrs = h.encode_infer_request([h.Input("input", x)])
        hdrs["Content-Length"] = str(len(body))
        with h.RawConnection(self.server.host, self.server.port) as raw:
            raw.sock.sendall(h.request_bytes("POST", h.infer_path("held_expiry"), body, hdrs))
            self.wait_queued("held_expiry", 1)
        h.wait_until(lambda: self.metric("inferd_queue_drops_total", model="held_expiry",
                                         reason="cancelled") == 1, 60, "the abandoned request dropped")
        self.wait_queued("held_expiry", 0)
        self.assertEqual(self.metric("inferd_batch_size_count", model="held_expiry"), 0)

    def test_delay_timeout_action_runs_late_work_after_the_rest(self):
        late = self.send("held_delay", raw_json={"parameters": {"timeout": 1000}})  # 1 ms
        self.wait_queued("held_delay", 1)
        patient = self.send("held_delay")
        self.wait_queued("held_delay", 2)
        # Past its 1 ms the first request yields its place (FIFO would batch
        # it with `patient` and wait for 3 items).
        more = self.send("held_delay", items=2)
        self.assert_ok(patient)
        self.assert_ok(more)
        self.assertTrue(late.is_alive())
        filler = self.send("held_delay", items=2)
        self.assert_ok(late)
        self.assert_ok(filler)

    def test_adaptive_batching_serves_and_reports_its_choice(self):
        pending = [self.send("mlp_adaptive", items=1 + i % 3) for i in range(24)]
        for p in pending:
            self.assert_ok(p)
        cap = self.metric("inferd_adaptive_batch_cap", model="mlp_adaptive")
        self.assertGreaterEqual(cap, 1)
        self.assertLessEqual(cap, 16)
        # Series exist once the model ran batches (values depend on timing).
        samples = self.metrics()
        self.assertIn(h.metric_sum(samples, "inferd_adaptive_batch_infeasible", model="mlp_adaptive"),
                      (0, 1))
        self.assertIsNotNone(h.metric_sum(samples, "inferd_batch_cost_seconds", model="mlp_adaptive",
                                          term="per_item"))

    def test_bad_priorities_are_400(self):
        x = np.zeros((1, 16), dtype=np.float32)
        with self.client() as c:
            for value in ("high", "-1", "256", "1.5", ""):
                body, hdrs = h.encode_infer_request([h.Input("input", x)])
                hdrs["X-Inferd-Priority"] = value
                r = c.request("POST", h.infer_path("mlp_levels"), body, hdrs)
                h.assert_json_error(self, r, 400, "X-Inferd-Priority", what=repr(value))
            for value in (-1, 256, "high", 1.5):
                r, _ = c.infer("mlp_levels", [h.Input("input", x)],
                               raw_json={"parameters": {"priority": value}})
                h.assert_json_error(self, r, 400, "parameters.priority", what=repr(value))


if __name__ == "__main__":
    unittest.main()
