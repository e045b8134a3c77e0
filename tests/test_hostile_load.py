"""Hostile requests mixed with good ones, concurrently, on one server.

Eight threads send a rotating mix of bad requests (overflowing shapes, many
unknown inputs, Transfer-Encoding smuggling, a gzip bomb, an unsupported
Content-Encoding, bad percent-encoding, invalid UTF-8 in the path,
conflicting binary header lengths, truncated bodies, garbage bytes) while
four threads send well-formed mlp requests (JSON and binary) with random
inputs, checked against TorchScript run in this process.

Every good request must get 200 with the right outputs. Every bad request
must get exactly one response, a 4xx/5xx JSON error (transport-level cases
may instead close the connection without a response). Afterwards the server
is alive, `inferd_http_requests_in_progress` and `inferd_inflight_requests`
return to their idle values (0; the first may count the scrape itself), and RSS is within 64 MiB of the RSS after a warm-up round of the
same mix.
"""

import gzip
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import inferd_harness as h  # noqa: E402

MAX_BODY = 2000000
MLP = "/v2/models/mlp/infer"
HOST = ("Host", "127.0.0.1")
JSON_CT = {"Content-Type": "application/json"}
ATOL = 1e-5  # as test_inference_correctness
BAD_THREADS, BAD_ITERATIONS = 8, 40
GOOD_THREADS, GOOD_ITERATIONS = 4, 40
RSS_SLACK = 64 << 20
IN_PROGRESS = ("inferd_http_requests_in_progress", "inferd_inflight_requests")


def mlp_body(inputs):
    return json.dumps({"inputs": inputs}).encode()


def mlp_input(shape, data, name="input"):
    return {"name": name, "shape": shape, "datatype": "FP32", "data": data}


def bad_cases():
    """(name, bytes to send, kind). kind: "app" (a JSON error response, the
    connection may stay open), "transport" (an error response or a closed
    connection, and the connection closes), "abort" (we close mid-request)."""
    row = [0.5] * 16
    good = mlp_body([mlp_input([1, 16], row)])
    inner = h.request_bytes("GET", "/v2/health/live")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(inner), inner)
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                                   "parameters": {"binary_data_size": 64}}]}).encode()
    blob = np.full(16, 0.5, np.float32).tobytes()
    ihcl = [("Inference-Header-Content-Length", v) for v in (str(len(head)), str(len(head) + 8))]
    bomb = gzip.compress(b" " * 50000000 + good)
    assert len(bomb) < MAX_BODY
    post = lambda body, hdrs=None: h.request_bytes("POST", MLP, body, dict(JSON_CT, **(hdrs or {})))  # noqa: E731
    return [
        ("huge shape", post(mlp_body([mlp_input([1, 99999999999], [1])])), "app"),
        ("32-bit overflowing shape", post(mlp_body([mlp_input([1, 4294967312], [1])])), "app"),
        ("unknown inputs", post(mlp_body([mlp_input([1, 16], row, "nope_%d" % i) for i in range(2000)])), "app"),
        ("xchunked smuggling", h.raw_request_bytes(
            "POST", MLP, [HOST, ("Transfer-Encoding", "xchunked")], chunked), "transport"),
        ("gzip, chunked smuggling", h.raw_request_bytes(
            "POST", MLP, [HOST, ("Transfer-Encoding", "gzip, chunked")], chunked), "transport"),
        ("gzip bomb", post(bomb, {"Content-Encoding": "gzip"}), "app"),
        ("br body", post(good, {"Content-Encoding": "br"}), "app"),
        ("bad percent-encoding", h.request_bytes("GET", "/v2/models/ml%zzp"), "app"),
        ("invalid UTF-8 path", h.raw_request_bytes("GET", b"/v2/models/\xe2\x98\x83\xff", [HOST]), "app"),
        ("conflicting header lengths", h.raw_request_bytes(
            "POST", MLP, [HOST, ("Content-Type", "application/octet-stream"),
                          ("Content-Length", str(len(head) + len(blob)))] + ihcl, head + blob), "app"),
        ("truncated body", h.request_bytes("POST", MLP, good[:40], JSON_CT, content_length=len(good)), "abort"),
        ("garbage bytes", b"\x16\x03\x01\x00\xa5\x01\x00" + bytes(range(14, 256)) + b"\r\n\r\n", "transport"),
    ]


class HostileLoadTest(h.ServerTestCase):
    models = ("mlp",)
    server_args = ("--max-body-bytes", MAX_BODY)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cases = bad_cases()
        # The gauges on the idle server: a scrape may count itself in progress.
        cls.idle = list(h.metric_values(cls.server, *IN_PROGRESS))
        cls.torch_mlp = h.load_torch_model("mlp")

    # -- one bad request ---------------------------------------------------------

    def check_error(self, r, what):
        self.assertTrue(400 <= r.status < 600, "%s: %s" % (what, r.describe()))
        h.assert_json_error(self, r, r.status, (), what)

    def send_bad(self, case, seen):
        name, data, kind = case
        with self.server.raw(timeout=60) as raw:
            raw.send(data)  # the server may stop reading early; its answer stays readable
            if kind == "abort":
                seen.append((name, None))
                return
            try:
                r = raw.read_response()
            except h.ConnectionClosed:
                self.assertEqual(kind, "transport", "%s: closed without a response" % name)
                self.assertEqual(raw.buf, b"", name)
                seen.append((name, "closed"))
                return
            self.check_error(r, name)
            seen.append((name, r.status))
            if kind == "transport":
                raw.sock.settimeout(10)  # the close follows the answer at once
                self.assertEqual(raw.wait_closed(), b"", "%s: bytes after the %d" % (name, r.status))
                return
            # A follow-up on the same connection: its answer must come next
            # (nothing extra was sent for the bad request), or the server
            # closed the connection cleanly after the error.
            raw.send(h.request_bytes("GET", "/v2/health/live"))
            try:
                live = raw.read_response()
            except h.ConnectionClosed:
                self.assertEqual(raw.buf, b"", "%s: partial bytes after the %d" % (name, r.status))
                return
            self.assertEqual((live.status, live.body), (200, b'{"live":true}'),
                             "%s: second response after the %d: %s" % (name, r.status, live.describe()))

    def bad_client(self, index, iterations, seen):
        for i in range(iterations):
            self.send_bad(self.cases[(index + i) % len(self.cases)], seen)

    # -- good requests -----------------------------------------------------------

    def good_work(self, seed, iterations):
        rng = np.random.default_rng(seed)
        work = []
        for i in range(iterations):
            x = rng.uniform(-1, 1, (int(rng.integers(1, 5)), 16)).astype(np.float32)
            work.append((x, i % 2 == 1, h.torch_forward(self.torch_mlp, x)))
        return work

    def good_client(self, work):
        with self.server.client() as c:
            for n, (x, binary, want) in enumerate(work):
                r, d = c.infer("mlp", [h.Input("input", x, binary=binary)])
                what = "good request %d (binary=%s)" % (n, binary)
                self.assertEqual(r.status, 200, "%s: %s" % (what, r.describe()))
                got = d.outputs["output"]
                self.assertEqual(got.shape, want.shape, what)
                self.assertTrue(np.allclose(got, want, rtol=0, atol=ATOL),
                                "%s: max abs diff %g" % (what, h.max_abs_diff(got, want)))

    # -- the run -------------------------------------------------------------------

    def run_mix(self, bad_iterations, good_iterations, seed):
        seen = []
        jobs = [("bad", (i, bad_iterations, seen)) for i in range(BAD_THREADS)]
        jobs += [("good", (self.good_work(seed + i, good_iterations),)) for i in range(GOOD_THREADS)]
        h.run_threads(lambda kind, args: (self.bad_client if kind == "bad" else self.good_client)(*args),
                      jobs, timeout=600)
        return seen

    def wait_settled(self):
        last = []

        def settled():
            last[:] = h.metric_values(self.server, *IN_PROGRESS)
            return last == self.idle
        try:
            h.wait_until(settled, 30, "idle gauges", interval=0.05)
        except AssertionError:
            self.fail("%s did not return to %s within 30 s (last: %s; None = not exported)"
                      % (", ".join(IN_PROGRESS), self.idle, last))

    def rss(self):
        return h.proc_status_bytes(self.server.proc.pid, "VmRSS")

    def test_hostile_mix_with_good_traffic(self):
        self.assertIn(self.idle[0], (0, 1), "%s on an idle server: %s" % (IN_PROGRESS, self.idle))
        self.assertEqual(self.idle[1], 0, "%s on an idle server: %s" % (IN_PROGRESS, self.idle))
        self.run_mix(len(self.cases), 5, seed=1000)  # warm-up: every case once per thread
        self.wait_settled()
        baseline = self.rss()

        seen = self.run_mix(BAD_ITERATIONS, GOOD_ITERATIONS, seed=2000)
        self.assertEqual(len(seen), BAD_THREADS * BAD_ITERATIONS)
        self.assertEqual({name for name, _ in seen}, {name for name, _, _ in self.cases})
        self.assertTrue(self.server.alive(), "inferd exited:\n" + self.server.output())
        self.wait_settled()
        try:
            h.wait_until(lambda: self.rss() <= baseline + RSS_SLACK, 30, "RSS to settle", interval=0.1)
        except AssertionError:
            self.fail("RSS %d MiB after the run, baseline %d MiB (+%d MiB allowed)"
                      % (self.rss() >> 20, baseline >> 20, RSS_SLACK >> 20))
        with self.server.client() as c:
            x = np.ones((1, 16), np.float32)
            r, d = c.infer("mlp", [h.Input("input", x)])
            self.assertEqual(r.status, 200, r.describe())
            self.assertTrue(np.allclose(d.outputs["output"], h.torch_forward(self.torch_mlp, x), rtol=0, atol=ATOL))


if __name__ == "__main__":
    unittest.main()
