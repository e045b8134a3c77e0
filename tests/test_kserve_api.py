"""KServe v2 endpoints: server metadata, health, model metadata, readiness,
config, repository index and the Prometheus page."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import inferd_harness as h  # noqa: E402

EXPECTED_METADATA = {
    "resnet18": ([{"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}],
                 [{"name": "output", "datatype": "FP32", "shape": [-1, 1000]}]),
    "mlp": ([{"name": "input", "datatype": "FP32", "shape": [-1, 16]}],
            [{"name": "output", "datatype": "FP32", "shape": [-1, 4]}]),
    "dither": ([{"name": "image", "datatype": "FP32", "shape": [-1, 3, -1, -1]}],
               [{"name": "output", "datatype": "FP32", "shape": [-1, 3, -1, -1]}]),
}


class KServeApiTest(h.ServerTestCase):
    models = ("resnet18", "mlp", "dither")

    def assert_json_error(self, r, status):
        self.assertEqual(r.status, status, r.describe())
        body = r.json()
        self.assertIsInstance(body.get("error"), str, r.describe())
        self.assertTrue(body["error"], r.describe())
        return body["error"]

    def test_server_metadata(self):
        r = self.client().get("/v2")
        self.assertEqual(r.status, 200, r.describe())
        meta = r.json()
        self.assertEqual(meta["name"], "inferd")
        self.assertIsInstance(meta["version"], str)
        self.assertTrue(meta["version"])
        self.assertIsInstance(meta["extensions"], list)
        self.assertIn("binary_tensor_data", meta["extensions"])

    def test_health(self):
        c = self.client()
        for path in ("/v2/health/live", "/v2/health/ready"):
            with self.subTest(path=path):
                r = c.get(path)
                self.assertEqual(r.status, 200, r.describe())

    def test_model_metadata(self):
        c = self.client()
        for model, (inputs, outputs) in EXPECTED_METADATA.items():
            for path in ("/v2/models/%s" % model, "/v2/models/%s/versions/1" % model):
                with self.subTest(path=path):
                    r = c.get(path)
                    self.assertEqual(r.status, 200, r.describe())
                    meta = r.json()
                    self.assertEqual(meta["name"], model)
                    self.assertIn("1", meta["versions"])
                    self.assertEqual(meta["platform"], "pytorch_libtorch")
                    self.assertEqual(meta["inputs"], inputs)
                    self.assertEqual(meta["outputs"], outputs)

    def test_metadata_unknown_model_or_version_is_404(self):
        c = self.client()
        for path in ("/v2/models/nosuchmodel", "/v2/models/nosuchmodel/versions/1",
                     "/v2/models/mlp/versions/2", "/v2/models/mlp/versions/0"):
            with self.subTest(path=path):
                self.assert_json_error(c.get(path), 404)

    def test_model_ready(self):
        c = self.client()
        for model in EXPECTED_METADATA:
            for path in ("/v2/models/%s/ready" % model, "/v2/models/%s/versions/1/ready" % model):
                with self.subTest(path=path):
                    r = c.get(path)
                    self.assertEqual(r.status, 200, r.describe())

    def test_model_ready_unknown_is_404(self):
        c = self.client()
        for path in ("/v2/models/nosuchmodel/ready", "/v2/models/mlp/versions/3/ready"):
            with self.subTest(path=path):
                self.assert_json_error(c.get(path), 404)

    def test_model_config(self):
        c = self.client()
        r = c.get("/v2/models/mlp/config")
        self.assertEqual(r.status, 200, r.describe())
        cfg = r.json()
        self.assertEqual(cfg["name"], "mlp")
        self.assertEqual(cfg["backend"], "torchscript")
        self.assertEqual(cfg["max_batch_size"], 64)
        self.assertEqual(cfg["instance_count"], 1)
        self.assertEqual([i["name"] for i in cfg["input"]], ["input"])
        self.assertEqual(cfg["input"][0]["dims"], [16])
        self.assertIn(cfg["input"][0]["datatype"], ("FP32", "TYPE_FP32"))
        self.assertEqual([o["name"] for o in cfg["output"]], ["output"])
        self.assertEqual(cfg["output"][0]["dims"], [4])
        self.assertIsInstance(cfg["dynamic_batching"], dict)
        self.assertIn("intra_op_threads", cfg["parameters"])

        r = c.get("/v2/models/resnet18/config")
        self.assertEqual(r.status, 200, r.describe())
        cfg = r.json()
        self.assertEqual((cfg["name"], cfg["max_batch_size"], cfg["instance_count"]), ("resnet18", 32, 2))
        self.assertEqual(cfg["input"][0]["dims"], [3, 224, 224])

        self.assert_json_error(c.get("/v2/models/nosuchmodel/config"), 404)

    def test_repository_index(self):
        r = self.client().request("POST", "/v2/repository/index", body=b"{}",
                                  headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.describe())
        index = r.json()
        self.assertIsInstance(index, list)
        by_name = {e["name"]: e for e in index}
        self.assertEqual(sorted(by_name), sorted(EXPECTED_METADATA))
        for model in EXPECTED_METADATA:
            with self.subTest(model=model):
                self.assertEqual(by_name[model]["version"], "1")
                self.assertEqual(by_name[model]["state"], "READY")

    def test_repository_index_with_empty_body(self):
        r = self.client().request("POST", "/v2/repository/index", body=b"")
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(len(r.json()), len(EXPECTED_METADATA))

    def test_unknown_path_is_404(self):
        c = self.client()
        for method, path in (("GET", "/v3"), ("GET", "/v2/nothing"), ("GET", "/"),
                             ("POST", "/v2/models/mlp/explain")):
            with self.subTest(method=method, path=path):
                self.assert_json_error(c.request(method, path), 404)

    def test_metrics_page(self):
        c = self.client()
        x = np.zeros((2, 16), dtype=np.float32)
        r, _ = c.infer("mlp", [h.Input("input", x)])
        self.assertEqual(r.status, 200, r.describe())

        r = c.get("/metrics")
        self.assertEqual(r.status, 200, r.describe())
        ctype = r.header("Content-Type", "")
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        self.assertIn("version=0.0.4", ctype)
        text = r.body.decode()

        check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(check.returncode, 0, "promtool check metrics:\n%s\n--- page ---\n%s"
                         % (check.stdout.decode(), text))

        samples = h.parse_metrics(text)
        mlp = {"model": "mlp", "version": "1"}
        self.assertGreaterEqual(h.metric_sum(samples, "inferd_requests_total", outcome="success", **mlp), 1)
        for hist in ("inferd_request_duration_seconds", "inferd_queue_duration_seconds",
                     "inferd_compute_duration_seconds", "inferd_batch_size"):
            with self.subTest(histogram=hist):
                self.assertGreaterEqual(h.metric_sum(samples, hist + "_count", **mlp) or 0, 1, hist)
                self.assertIsNotNone(h.metric_sum(samples, hist + "_sum", **mlp), hist)
                self.assertIsNotNone(h.metric_sum(samples, hist + "_bucket", le="+Inf", **mlp), hist)
        self.assertGreaterEqual(h.metric_sum(samples, "inferd_batch_size_sum", **mlp), 2.0)
        self.assertIsNotNone(h.metric_sum(samples, "inferd_queue_depth", **mlp))
        self.assertIsNotNone(h.metric_sum(samples, "inferd_inflight_requests"))
        self.assertGreater(h.metric_sum(samples, "inferd_process_resident_memory_bytes") or 0, 1 << 20)


if __name__ == "__main__":
    unittest.main()
