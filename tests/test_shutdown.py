"""SIGTERM drains: the listener closes, requests already accepted (executing
or queued) are all answered with 200 and correct outputs, then the process
exits 0.

Two ways to know the requests were accepted before SIGTERM:
- resnet18_held: a copy of resnet18 whose batcher waits an hour for a full
  batch of 8. Of 12 requests, 8 form a full batch and execute at once, 4 stay
  queued, so inferd_queue_depth == 4 is a state the server holds until
  SIGTERM (deterministic trigger); the drain must run those 4 at once, without
  waiting for the batch delay or for the drain timeout to expire.
- plain resnet18: 16 requests fully sent, then SIGTERM as soon as
  inferd_inflight_requests shows the server working on them.
"""

import os
import shutil
import socket
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import inferd_harness as h  # noqa: E402

HELD_CONFIG = """backend = "torchscript"
max_batch_size = 8
instance_count = 1
[[input]]
name = "input"
datatype = "FP32"
dims = [3, 224, 224]
[[output]]
name = "output"
datatype = "FP32"
dims = [1000]
[dynamic_batching]
max_queue_delay_us = 3600000000   # an hour: only a full batch (or shutdown) dispatches
preferred_batch_sizes = []
max_queue_size = 64
[parameters]
intra_op_threads = 1
"""


class InFlightClient(threading.Thread):
    """Sends one binary resnet18 request on its own connection, sets `sent`
    once the whole request is written, then waits for the response."""

    def __init__(self, server, model, image, timeout):
        super().__init__(daemon=True)
        self.server, self.model, self.image, self.timeout = server, model, image, timeout
        self.sent = threading.Event()
        self.result = None  # (Response, Decoded) or the exception

    def run(self):
        try:
            body, headers = h.encode_infer_request([h.Input("input", self.image, binary=True)],
                                                   binary_data_output=True)
            with self.server.client(timeout=self.timeout) as c:
                c.conn.request("POST", h.infer_path(self.model), body=body, headers=headers)
                self.sent.set()
                raw = c.conn.getresponse()
                r = h.Response(raw.status, raw.reason, raw.getheaders(), raw.read())
                self.result = (r, h.decode_infer_response(r) if r.status == 200 else None)
        except Exception as e:  # reported by the test
            self.result = e
        finally:
            self.sent.set()


class ShutdownTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_models("resnet18")
        torch.set_num_threads(1)
        cls.resnet = h.load_torch_model("resnet18")

    def start_server(self, held=False, drain_timeout_s=120):
        tmp = tempfile.mkdtemp(prefix="inferd-test-")
        self.addCleanup(shutil.rmtree, tmp, True)
        repo = os.path.join(tmp, "models")
        os.makedirs(repo)
        if held:
            h.copy_model("resnet18", repo, new_name="resnet18_held", config_text=HELD_CONFIG)
        else:
            h.copy_model("resnet18", repo)
        server = h.ServerProcess(repo, args=["--drain-timeout-s", drain_timeout_s]).start()
        self.addCleanup(server.kill)
        return server

    def images(self, n, seed):
        return torch.rand(n, 3, 224, 224, generator=torch.Generator().manual_seed(seed)).numpy()

    def start_clients(self, server, model, images, timeout=h.HTTP_TIMEOUT_S):
        clients = [InFlightClient(server, model, images[i:i + 1], timeout) for i in range(len(images))]
        for c in clients:
            c.start()
        for c in clients:
            self.assertTrue(c.sent.wait(h.HTTP_TIMEOUT_S), "a client could not send its request")
        return clients

    def assert_refuses_new_connections(self, server):
        """After SIGTERM, a connection attempt is refused while the process is
        still running (draining). Polls against a deadline until it happens."""

        def refused_while_alive():
            try:
                socket.create_connection((server.host, server.port), timeout=10).close()
            except ConnectionRefusedError:
                if server.alive():
                    return True
                raise AssertionError("inferd exited before a connection was seen refused")
            if not server.alive():
                raise AssertionError("inferd accepted connections until it exited")
            return False

        h.wait_until(refused_while_alive, 60, "new connections to be refused after SIGTERM",
                     interval=0.002)

    def assert_all_answered(self, server, clients, images):
        want = h.torch_forward(self.resnet, images)
        for c in clients:
            c.join(h.STOP_TIMEOUT_S)
        failed = ["client %d: %r" % (i, c.result) for i, c in enumerate(clients)
                  if not isinstance(c.result, tuple)]
        self.assertEqual(failed, [], "%d of %d requests got no response\n%s"
                         % (len(failed), len(clients), server.output()))
        for i, c in enumerate(clients):
            r, d = c.result
            self.assertEqual(r.status, 200, "client %d: %s" % (i, r.describe()))
            np.testing.assert_allclose(d.outputs["output"], want[i:i + 1], atol=1e-4, rtol=1e-5,
                                       err_msg="client %d" % i)

    def test_sigterm_drains_executing_and_queued_requests(self):
        # The drain must run queued work at once, not wait out the batch delay
        # (an hour) or the drain timeout (300 s): the clients give up after 60 s.
        server = self.start_server(held=True, drain_timeout_s=300)
        images = self.images(12, seed=21)
        clients = self.start_clients(server, "resnet18_held", images, timeout=60)
        # 8 requests form a full batch and run; the other 4 wait for a batch
        # that cannot fill, so the queue depth stays at 4 until SIGTERM.
        h.wait_until(lambda: h.metric_sum(h.parse_metrics(h.scrape(server)), "inferd_queue_depth",
                                          model="resnet18_held") == 4,
                     h.HTTP_TIMEOUT_S, "4 requests queued for resnet18_held")
        server.signal()
        self.assert_refuses_new_connections(server)
        self.assert_all_answered(server, clients, images)
        rc = server.wait()
        self.assertEqual(rc, 0, "exit code after SIGTERM\n" + server.output())

    def test_sigterm_with_requests_in_flight(self):
        server = self.start_server()
        images = self.images(16, seed=22)
        clients = self.start_clients(server, "resnet18", images)
        h.wait_until(lambda: (h.metric_sum(h.parse_metrics(h.scrape(server)), "inferd_inflight_requests")
                              or 0) >= 1,
                     h.HTTP_TIMEOUT_S, "inferd_inflight_requests >= 1")
        server.signal()
        self.assert_refuses_new_connections(server)
        self.assert_all_answered(server, clients, images)
        rc = server.wait()
        self.assertEqual(rc, 0, "exit code after SIGTERM\n" + server.output())

    def test_sigterm_when_idle_exits_0(self):
        server = self.start_server()
        with server.client() as c:  # an idle keep-alive connection must not hold up the exit
            self.assertEqual(c.get("/v2/health/ready").status, 200)
            rc = server.stop()
        self.assertEqual(rc, 0, server.output())


if __name__ == "__main__":
    unittest.main()
