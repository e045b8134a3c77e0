"""Request context on the wire: every inference answer (success, error or
memo hit) carries the request's id (X-Request-Id, the client's if sane) and a
W3C traceparent that continues the client's trace with the server's span."""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import inferd_harness as h  # noqa: E402

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
CLIENT_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class RequestContextTest(h.ServerTestCase):
    models = ("mlp",)

    def post(self, headers, body=None):
        x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 16)
        data, hdrs = h.encode_infer_request([h.Input("input", x)])
        hdrs.update(headers)
        return self.client().request("POST", h.infer_path("mlp"),
                                     body if body is not None else data, hdrs)

    def test_client_trace_and_id_are_continued(self):
        r = self.post({"traceparent": CLIENT_TRACE, "X-Request-Id": "req-42"})
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.header("X-Request-Id"), "req-42")
        m = TRACEPARENT.match(r.header("traceparent") or "")
        self.assertIsNotNone(m, r.describe())
        self.assertEqual(m.group(1), "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertNotEqual(m.group(2), "00f067aa0ba902b7")  # the server's own span
        self.assertEqual(m.group(3), "01")

    def test_without_headers_a_trace_and_id_are_generated(self):
        ids = set()
        for _ in range(3):
            r = self.post({})
            self.assertEqual(r.status, 200, r.describe())
            m = TRACEPARENT.match(r.header("traceparent") or "")
            self.assertIsNotNone(m, r.describe())
            self.assertEqual(r.header("X-Request-Id"), m.group(1))
            ids.add(m.group(1))
        self.assertEqual(len(ids), 3)

    def test_malformed_headers_are_replaced_not_echoed(self):
        r = self.post({"traceparent": "00-XYZ-bad", "X-Request-Id": "a" * 200})
        self.assertEqual(r.status, 200, r.describe())
        m = TRACEPARENT.match(r.header("traceparent") or "")
        self.assertIsNotNone(m, r.describe())
        self.assertEqual(r.header("X-Request-Id"), m.group(1))

    def test_errors_carry_the_context_too(self):
        r = self.post({"X-Request-Id": "bad-body", "traceparent": CLIENT_TRACE},
                      body=b"{not json")
        self.assertEqual(r.status, 400, r.describe())
        self.assertEqual(r.header("X-Request-Id"), "bad-body")
        self.assertTrue((r.header("traceparent") or "").startswith(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-"), r.describe())


if __name__ == "__main__":
    unittest.main()
