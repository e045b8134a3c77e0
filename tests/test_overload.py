"""Admission under real contention (issue 10, item 10), driven by `inferd
bench` against resnet18 copies that are far slower than the load:

- priority ordering: a low class at many times the model's capacity and a
  high class at a trickle; the high class's p99 stays below the low
  class's (its requests go to the front of the queue);
- a flooding tenant: tenant A floods a model with overload control, tenant
  B sends a trickle; every one of B's requests gets 200 (B's requests push
  out A's newest queued ones when the model is full);
- rate-limit accuracy: a tenant limited to 50/s offered 150/s for 10 s is
  admitted 50/s within 5 %.

The assertions compare classes with each other or with counts; none
depends on this machine's speed beyond "resnet18 is slower than 200/s".
"""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import inferd_harness as h  # noqa: E402
from test_tenants import keygen  # noqa: E402

RESNET = """backend = "torchscript"
max_batch_size = 4
instance_count = 2
[[input]]
name = "input"
datatype = "FP32"
dims = [3, 224, 224]
[[output]]
name = "output"
datatype = "FP32"
dims = [1000]
[dynamic_batching]
max_queue_delay_us = 2000
max_queue_size = 256
[parameters]
intra_op_threads = 1
"""

PRIO = RESNET + """[scheduling]
priority_levels = 2
[scheduling.priority_queue_policy.2]
max_queue_size = 200   # the low class never fills the queue for the high one
"""

FAIR = RESNET + "[overload]\n"


class OverloadTest(h.ServerTestCase):
    models = ()

    @classmethod
    def setUpClass(cls):
        h.require_models("resnet18", "mlp")
        cls.keys = {}
        cls.config_dir = h.tempfile.mkdtemp(prefix="inferd-overload-")
        config = os.path.join(cls.config_dir, "inferd.toml")
        with open(config, "w") as f:
            for name, extra in (("flood", ""), ("polite", ""),
                                ("limited", "requests_per_s = 50\nburst = 5\n")):
                key, digest = keygen()
                cls.keys[name] = key
                f.write('[[tenants]]\nname = "%s"\napi_key_sha256 = ["%s"]\n%s' % (name, digest, extra))
        cls.server_args = ("--config", config)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        h.shutil.rmtree(cls.config_dir, ignore_errors=True)

    @classmethod
    def prepare_repository(cls, repo):
        h.copy_model("resnet18", repo, new_name="resnet_prio", config_text=PRIO)
        h.copy_model("resnet18", repo, new_name="resnet_fair", config_text=FAIR)
        h.copy_model("mlp", repo)

    def bench(self, model, mix, duration_s=6, payload="binary"):
        out = os.path.join(self.tmpdir, "bench-%s.json" % model)
        cmd = [h.INFERD_BIN, "bench", "--url", "http://%s:%d" % (self.server.host, self.server.port),
               "--model", model, "--payload", payload, "--arrival", "constant",
               "--duration-s", str(duration_s), "--warmup-s", "2", "--timeout-ms", "60000",
               "--max-connections", "1024", "--mix", mix, "--json", out]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        with open(out) as f:
            report = json.load(f)
        self.assertTrue(self.server.alive(), "inferd exited:\n" + self.server.output())
        return {c["name"]: c for c in report["levels"][0]["classes"]}

    def test_the_high_class_waits_less_under_contention(self):
        classes = self.bench("resnet_prio", "high:priority=1,rate=4;low:priority=2,rate=200")
        high, low = classes["high"], classes["low"]
        self.assertGreater(high["completed"], 0, high)
        self.assertGreater(low["completed"], 0, low)
        self.assertGreater(low["errors"], 0, "the low class should overload the model: %s" % low)
        self.assertEqual(high["errors"], 0, high)
        self.assertLess(high["latency_ms"]["p99"], low["latency_ms"]["p99"], classes)
        # The low class's refusals came from its level's queue bound.
        full = h.metric_sum(h.parse_metrics(h.scrape(self.server)),
                            "inferd_admission_decisions_total", model="resnet_prio",
                            priority="2", decision="queue_full")
        self.assertGreater(full or 0, 0)

    def test_a_flooding_tenant_does_not_starve_another(self):
        mix = "flood:rate=200,api_key=%s;polite:rate=4,api_key=%s" % (self.keys["flood"],
                                                                     self.keys["polite"])
        classes = self.bench("resnet_fair", mix)
        flood, polite = classes["flood"], classes["polite"]
        self.assertGreater(flood["errors_by_kind"].get("503", 0), 0,
                           "the flood should overload the model: %s" % flood)
        self.assertGreater(polite["completed"], 0, polite)
        self.assertEqual(polite["errors"], 0, polite)
        self.assertEqual(polite["served_fraction"], 1.0, polite)

    def test_rate_limit_accuracy_over_10_s(self):
        classes = self.bench("mlp", "limited:rate=150,api_key=%s" % self.keys["limited"],
                             duration_s=10, payload="json")
        limited = classes["limited"]
        self.assertGreater(limited["errors_by_kind"].get("429", 0), 0, limited)
        # Admitted at 50/s over the 10 s window (the burst went in the warm-up).
        self.assertGreaterEqual(limited["completed"], 475, limited)
        self.assertLessEqual(limited["completed"], 525, limited)


if __name__ == "__main__":
    unittest.main()
