"""Streaming through the one request path: a decoupled model on the
stream_test backend plugin answers with Server-Sent Events (one KServe v2
infer response per event, chunked), fails with an `error` event, needs a
client that asks for a stream, and stops when the client leaves (counted as
outcome="cancelled"). A server whose repository holds no TorchScript model
never maps libtorch."""

import json
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import inferd_harness as h  # noqa: E402

STREAM_CONFIG = """backend = "stream_test"
decoupled = true
""" + h.tensor_toml("input", "control", "INT32", [3]) + h.tensor_toml("output", "index", "INT32", [1])


def body(chunks, interval_ms, fail_after):
    return json.dumps({"inputs": [{"name": "control", "datatype": "INT32", "shape": [3],
                                   "data": [chunks, interval_ms, fail_after]}]}).encode()


def add_stream_model(repo):
    os.makedirs(os.path.join(repo, "s", "1"))
    with open(os.path.join(repo, "s", "config.toml"), "w") as f:
        f.write(STREAM_CONFIG)


def read_events(resp, limit=None):
    """Reads SSE events (as (event, data) pairs) from an http.client response
    incrementally, up to `limit` events or the end of the stream."""
    events, event, data = [], "message", []
    while limit is None or len(events) < limit:
        line = resp.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line == "":
            if data:
                events.append((event, "\n".join(data)))
            event, data = "message", []
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line.startswith("event: "):
            event = line[7:]
    return events


class StreamingTest(h.ServerTestCase):
    models = ()

    @classmethod
    def prepare_repository(cls, repo):
        add_stream_model(repo)

    def open_stream(self, payload, accept="text/event-stream"):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=h.HTTP_TIMEOUT_S)
        self.addCleanup(conn.close)
        headers = {"Content-Type": "application/json", "X-Request-Id": "stream-1"}
        if accept:
            headers["Accept"] = accept
        conn.request("POST", h.infer_path("s"), payload, headers)
        return conn, conn.getresponse()

    def test_every_chunk_is_an_event_in_order(self):
        _, resp = self.open_stream(body(5, 0, -1))
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("Content-Type"), "text/event-stream")
        self.assertEqual(resp.getheader("Transfer-Encoding"), "chunked")
        self.assertEqual(resp.getheader("X-Request-Id"), "stream-1")
        events = read_events(resp)
        self.assertEqual([e for e, _ in events], ["message"] * 5)
        indices = [json.loads(d)["outputs"][0]["data"][0] for _, d in events]
        self.assertEqual(indices, [0, 1, 2, 3, 4])
        self.assertEqual(json.loads(events[0][1])["model_name"], "s")

    def test_a_failing_stream_ends_with_an_error_event(self):
        _, resp = self.open_stream(body(5, 0, 2))
        self.assertEqual(resp.status, 200)
        events = read_events(resp)
        self.assertEqual([e for e, _ in events], ["message", "message", "error"])
        self.assertIn("failing as asked", json.loads(events[2][1])["error"])

    def test_a_client_that_does_not_ask_for_a_stream_gets_400(self):
        _, resp = self.open_stream(body(5, 0, -1), accept=None)
        self.assertEqual(resp.status, 400)
        self.assertIn("text/event-stream", json.loads(resp.read())["error"])

    def test_a_client_that_leaves_stops_the_stream(self):
        def cancelled():
            samples = h.parse_metrics(h.scrape(self.server))
            return h.metric_sum(samples, "inferd_requests_total", model="s", outcome="cancelled") or 0

        before = cancelled()
        conn, resp = self.open_stream(body(100000, 5, -1))
        self.assertEqual(len(read_events(resp, limit=2)), 2)
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        # The backend sees the cancellation at its next tick and ends the
        # stream; the request is counted once, as cancelled.
        h.wait_until(lambda: cancelled() >= before + 1, 30, "the stream to be cancelled")
        self.assert_server_healthy()

    def test_config_says_the_model_is_decoupled(self):
        r = self.client().get("/v2/models/s/config")
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.json()["model_transaction_policy"], {"decoupled": True})

    def test_no_torchscript_model_no_libtorch(self):
        with open("/proc/%d/maps" % self.server.proc.pid) as f:
            maps = f.read()
        self.assertNotIn("libtorch", maps)
        self.assertIn("libinferd_backend_stream_test.so", maps)


if __name__ == "__main__":
    unittest.main()
