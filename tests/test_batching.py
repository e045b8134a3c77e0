"""Dynamic batching under concurrent clients, and the full-queue answer.

Each client is a thread with its own keep-alive connection; every answer is
compared with TorchScript run in this process. Afterwards the
inferd_batch_size histogram must show at least one executed batch larger than
one item (all requests here carry a single item, so only batching can make
one). dither requests of different image sizes run concurrently and must
never be mixed into one batch (they would fail or come back wrong).
"""

import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import inferd_harness as h  # noqa: E402

CLIENTS = 64


def batch_histogram(server, model):
    """(batches of size <= 1, all batches) executed so far for `model`."""
    samples = h.parse_metrics(h.scrape(server))
    labels = {"model": model, "version": "1"}
    le1 = h.metric_sum(samples, "inferd_batch_size_bucket", le="1", **labels) or 0
    total = h.metric_sum(samples, "inferd_batch_size_count", **labels) or 0
    return le1, total


class ConcurrentBatchingTest(h.ServerTestCase):
    models = ("resnet18", "mlp", "dither")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        torch.set_num_threads(1)
        cls.torch_models = {n: h.load_torch_model(n) for n in cls.models}

    def run_clients(self, model, requests_per_client, binary=False):
        """requests_per_client[i] is a list of (Input, expected output) for
        client i; returns the list of mismatches (empty when all correct)."""

        def client(requests):
            errors = []
            with self.server.client() as c:
                for inp, want in requests:
                    r, d = c.infer(model, [inp], binary_data_output=binary or None)
                    if r.status != 200:
                        errors.append(r.describe())
                        continue
                    got = d.outputs["output"]
                    if got.shape != want.shape:
                        errors.append("shape %s, expected %s" % (got.shape, want.shape))
                    elif model == "resnet18":
                        if not np.allclose(got, want, atol=1e-4, rtol=1e-5):
                            errors.append("resnet18 max abs diff %g" % h.max_abs_diff(got, want))
                    elif h.max_abs_diff(got, want) > 1e-5:
                        errors.append("%s max abs diff %g" % (model, h.max_abs_diff(got, want)))
            return errors

        results = h.run_threads(client, [(reqs,) for reqs in requests_per_client])
        return [e for errs in results for e in errs]

    def assert_batched(self, model, before):
        le1, total = batch_histogram(self.server, model)
        le1, total = le1 - before[0], total - before[1]
        self.assertGreater(total, 0, "no %s batch recorded in inferd_batch_size" % model)
        self.assertLess(le1, total, "%s: all %d executed batches had size 1" % (model, total))

    def test_mlp_64_concurrent_clients(self):
        gen = torch.Generator().manual_seed(11)
        rounds = 8
        x = torch.rand(CLIENTS * rounds, 16, generator=gen).numpy() * 2 - 1
        want = h.torch_forward(self.torch_models["mlp"], x)
        per_client = [[(h.Input("input", x[i:i + 1]), want[i:i + 1])
                       for i in range(k * rounds, (k + 1) * rounds)] for k in range(CLIENTS)]
        before = batch_histogram(self.server, "mlp")
        errors = self.run_clients("mlp", per_client)
        self.assertEqual(errors, [], "%d of %d mlp requests were wrong" % (len(errors), CLIENTS * rounds))
        self.assert_batched("mlp", before)

    def test_resnet18_64_concurrent_clients(self):
        gen = torch.Generator().manual_seed(12)
        x = torch.rand(CLIENTS, 3, 224, 224, generator=gen).numpy()
        want = h.torch_forward(self.torch_models["resnet18"], x)
        per_client = [[(h.Input("input", x[i:i + 1], binary=True), want[i:i + 1])] for i in range(CLIENTS)]
        before = batch_histogram(self.server, "resnet18")
        errors = self.run_clients("resnet18", per_client, binary=True)
        self.assertEqual(errors, [], "%d of %d resnet18 requests were wrong" % (len(errors), CLIENTS))
        self.assert_batched("resnet18", before)

    def test_dither_mixed_image_sizes_concurrently(self):
        gen = torch.Generator().manual_seed(13)
        shapes = [(1, 3, 8, 8), (1, 3, 16, 12), (2, 3, 5, 7), (1, 3, 5, 7), (1, 3, 12, 16)]
        per_client = []
        for k in range(24):
            reqs = []
            for j in range(3):
                x = torch.rand(*shapes[(k + j) % len(shapes)], generator=gen).numpy()
                reqs.append((h.Input("image", x, binary=(k % 2 == 0)),
                             h.torch_forward(self.torch_models["dither"], x)))
            per_client.append(reqs)
        errors = self.run_clients("dither", per_client)
        self.assertEqual(errors, [], "%d dither requests were wrong" % len(errors))


HELD_CONFIG = """backend = "torchscript"
max_batch_size = 8
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
max_queue_delay_us = 3600000000   # an hour: queued requests wait for a full batch
preferred_batch_sizes = []
max_queue_size = 2
"""


class QueueFullTest(h.ServerTestCase):
    """A model whose batcher waits an hour for a full batch of 8 but queues
    at most 2 requests: two requests stay queued (until shutdown drains
    them), so a third one deterministically finds the queue full."""

    models = ("mlp",)

    @classmethod
    def prepare_repository(cls, repo):
        h.copy_model("mlp", repo, new_name="held", config_text=HELD_CONFIG)

    def test_full_queue_gives_503_with_retry_after(self):
        torch_mlp = h.load_torch_model("mlp")
        x = np.random.default_rng(5).uniform(-1, 1, (3, 16)).astype(np.float32)
        want = h.torch_forward(torch_mlp, x)
        results = [None, None]

        def queued(i):
            try:
                with self.server.client() as c:
                    results[i] = c.infer("held", [h.Input("input", x[i:i + 1])])
            except Exception as e:  # reported below
                results[i] = e

        threads = [threading.Thread(target=queued, args=(i,), daemon=True) for i in range(2)]
        for t in threads:
            t.start()
        h.wait_until(lambda: h.metric_sum(h.parse_metrics(h.scrape(self.server)),
                                          "inferd_queue_depth", model="held") == 2,
                     60, "two requests queued for model 'held'")

        with self.server.client() as c:
            r, _ = c.infer("held", [h.Input("input", x[2:3])])
            self.assertEqual(r.status, 503, r.describe())
            self.assertTrue(r.json().get("error"), r.describe())
            retry_after = r.header("Retry-After")
            self.assertIsNotNone(retry_after, r.describe())
            self.assertTrue(retry_after.strip(), r.describe())
            # Other models are unaffected.
            r, d = c.infer("mlp", [h.Input("input", x[2:3])])
            self.assertEqual(r.status, 200, r.describe())
            self.assertLessEqual(h.max_abs_diff(d.outputs["output"], want[2:3]), 1e-5)

        # Shutdown drains the queue without waiting for the hour.
        self.server.assert_stopped_cleanly(self)
        for t in threads:
            t.join(h.STOP_TIMEOUT_S)
        for i, result in enumerate(results):
            self.assertIsInstance(result, tuple, "queued request %d: %r" % (i, result))
            r, d = result
            self.assertEqual(r.status, 200, r.describe())
            self.assertLessEqual(h.max_abs_diff(d.outputs["output"], want[i:i + 1]), 1e-5)


if __name__ == "__main__":
    unittest.main()
