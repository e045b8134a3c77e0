"""Bad requests get the right status and a JSON error, and nothing else.

For each application-level error (400/404/405) a bad request and then a good
one go over the same keep-alive connection, and exactly two responses come
back in order: the error, then the good answer carrying the good request's
id. Transport-level errors (413, 408, malformed HTTP) close the connection
after one response. After every case the server still answers on a fresh
connection.
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import inferd_harness as h  # noqa: E402

MAX_BODY = 100000
MLP = "/v2/models/mlp/infer"
ROW = [0.25] * 16


def mlp_input(shape, data, datatype="FP32", name="input"):
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def body(*inputs, **extra):
    return json.dumps(dict({"inputs": list(inputs)}, **extra)).encode()


class BadInputTest(h.ServerTestCase):
    models = ("mlp", "dither")
    server_args = ("--max-body-bytes", MAX_BODY)

    def good_request(self, request_id):
        return h.request_bytes("POST", MLP, body(mlp_input([1, 16], ROW), id=request_id),
                                 {"Content-Type": "application/json"})

    def assert_json_error(self, r, status, what=""):
        self.assertEqual(r.status, status, "%s: %s" % (what, r.describe()))
        try:
            error = r.json()["error"]
        except (ValueError, KeyError, TypeError):
            self.fail("%s: body is not {\"error\": ...}: %s" % (what, r.describe()))
        self.assertIsInstance(error, str)
        self.assertTrue(error, what)
        return error

    def assert_error_then_good(self, method, path, payload, status, headers=None, mentions=None):
        """Bad request then good request on one connection: two responses, in order."""
        with self.server.raw() as raw:
            hdrs = {"Content-Type": "application/json"}
            hdrs.update(headers or {})
            self.assertTrue(raw.send(h.request_bytes(method, path, payload, hdrs)))
            bad = raw.read_response()
            error = self.assert_json_error(bad, status, "%s %s %r" % (method, path, payload[:200]))
            if mentions:
                self.assertIn(mentions.lower(), error.lower(), "error should mention %r" % mentions)
            self.assertTrue(raw.send(self.good_request("after-bad")),
                            "server closed the connection after a %d" % status)
            good = raw.read_response()
            self.assertEqual(good.status, 200, "good request after %d: %s" % (status, good.describe()))
            self.assertEqual(good.json().get("id"), "after-bad", good.describe())
        self.assert_server_healthy()

    def infer_error(self, payload, status=400, model_path=MLP, mentions=None, headers=None):
        self.assert_error_then_good("POST", model_path, payload, status, headers, mentions)

    # -- 400 -----------------------------------------------------------------

    def test_malformed_json(self):
        for payload in (b'{"inputs": [', b"hello", b'{"inputs": [{"name": "input",}]}', b""):
            with self.subTest(payload=payload):
                self.infer_error(payload)

    def test_not_an_inference_request(self):
        for payload in (b"[]", b"{}", b'{"inputs": 3}', b'{"inputs": [3]}'):
            with self.subTest(payload=payload):
                self.infer_error(payload)

    def test_wrong_datatype(self):
        self.infer_error(body(mlp_input([1, 16], ROW, "INT32")), mentions="datatype")
        self.infer_error(body(mlp_input([1, 16], ROW, "FP99")))
        self.infer_error(body(mlp_input([1, 16], ["x"] * 16)))

    def test_wrong_shape(self):
        self.infer_error(body(mlp_input([1, 15], ROW[:15])), mentions="shape")
        self.infer_error(body(mlp_input([16], ROW)))
        self.infer_error(body(mlp_input([1, 4, 4], ROW)))
        self.infer_error(body(mlp_input([1, -1], ROW)))
        self.infer_error(body({"name": "image", "shape": [1, 4, 8, 8], "datatype": "FP32",
                               "data": [0.5] * 256}), model_path="/v2/models/dither/infer")

    def test_wrong_element_count(self):
        self.infer_error(body(mlp_input([1, 16], ROW[:15])))
        self.infer_error(body(mlp_input([2, 16], ROW)))
        self.infer_error(body(mlp_input([1, 16], ROW + [1.0])))
        self.infer_error(body(mlp_input([2, 16], [ROW, ROW[:15]])))  # ragged nested data

    def test_missing_input(self):
        self.infer_error(body(), mentions="input")
        self.infer_error(body(mlp_input([1, 16], ROW, name="not_input")))
        self.infer_error(json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32"}]}).encode())

    def test_unknown_output(self):
        self.infer_error(body(mlp_input([1, 16], ROW), outputs=[{"name": "nope"}]))

    def test_batch_larger_than_max_batch_size(self):
        self.infer_error(body(mlp_input([65, 16], ROW * 65)), mentions="batch")
        self.infer_error(body({"name": "image", "shape": [9, 3, 2, 2], "datatype": "FP32",
                               "data": [0.5] * 108}), model_path="/v2/models/dither/infer")

    def test_bad_binary_requests(self):
        blob = np.zeros(16, dtype=np.float32).tobytes()
        head = json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                                       "parameters": {"binary_data_size": 64}}]}).encode()
        binary = {"Content-Type": "application/octet-stream"}
        cases = {
            "header length beyond body": (head + blob, len(head) + len(blob) + 10),
            "header length cuts the JSON": (head + blob, len(head) - 5),
            "binary_data_size beyond body": (head + blob[:32], len(head)),
            "extra bytes after tensors": (head + blob + b"\0" * 8, len(head)),
            "not a number": (head + blob, "abc"),
        }
        for what, (payload, hlen) in cases.items():
            with self.subTest(case=what):
                self.infer_error(payload, headers=dict(binary, **{"Inference-Header-Content-Length": str(hlen)}))
        wrong_size = json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                                             "parameters": {"binary_data_size": 60}}]}).encode()
        self.infer_error(wrong_size + blob[:60],
                         headers=dict(binary, **{"Inference-Header-Content-Length": str(len(wrong_size))}))

    # -- 404 / 405 -------------------------------------------------------------

    def test_unknown_model_and_version(self):
        good = body(mlp_input([1, 16], ROW))
        self.infer_error(good, 404, model_path="/v2/models/nosuchmodel/infer", mentions="nosuchmodel")
        self.infer_error(good, 404, model_path="/v2/models/mlp/versions/2/infer")

    def test_unknown_path(self):
        self.assert_error_then_good("GET", "/v2/nope", b"", 404)
        self.assert_error_then_good("POST", "/v1/models/mlp:predict", body(mlp_input([1, 16], ROW)), 404)

    def test_wrong_method(self):
        self.assert_error_then_good("GET", MLP, b"", 405)
        self.assert_error_then_good("DELETE", "/v2", b"", 405)
        self.assert_error_then_good("PUT", "/v2/health/live", b"", 405)

    # -- transport errors: one response, then the connection closes ------------

    def assert_error_and_close(self, data, status):
        with self.server.raw(timeout=60) as raw:
            raw.send(data)  # the server may stop reading early; its answer stays readable
            r = raw.read_response()
            self.assert_json_error(r, status)
            self.assertEqual(raw.wait_closed(), b"", "bytes after the %d response" % status)
        self.assert_server_healthy()

    def test_body_over_max_body_bytes_is_413(self):
        pad = b" " * (MAX_BODY + 1 - len(body(mlp_input([1, 16], ROW))))
        big = body(mlp_input([1, 16], ROW)) + pad  # valid JSON, one byte too long
        self.assertEqual(len(big), MAX_BODY + 1)
        self.assert_error_and_close(h.request_bytes("POST", MLP, big, {"Content-Type": "application/json"}), 413)
        self.assert_error_and_close(h.request_bytes("POST", MLP, b"x" * (4 * MAX_BODY)), 413)
        # At the limit is fine.
        with self.server.client() as c:
            ok = body(mlp_input([1, 16], ROW))
            r = c.request("POST", MLP, ok + b" " * (MAX_BODY - len(ok)), {"Content-Type": "application/json"})
            self.assertEqual(r.status, 200, r.describe())

    def test_malformed_http_is_400(self):
        self.assert_error_and_close(b"THIS IS NOT HTTP\r\n\r\n", 400)
        self.assert_error_and_close(b"POST /v2/models/mlp/infer HTTP/1.1\r\nContent-Length: zz\r\n\r\n", 400)

    def test_client_disconnects_mid_request(self):
        head = h.request_bytes("POST", MLP, b"", content_length=1000)
        cases = [head[:20], head, head + b'{"inputs": [{"name": "input", ' + b" " * 400]
        for data in cases:
            with self.subTest(sent=len(data)):
                with self.server.raw() as raw:
                    raw.send(data)
                self.assert_server_healthy()
                with self.server.client() as c:
                    r, _ = c.infer("mlp", [h.Input("input", np.ones((1, 16), np.float32))])
                    self.assertEqual(r.status, 200, r.describe())

    def test_client_disconnects_before_the_response(self):
        image = np.random.default_rng(3).uniform(0, 1, (2, 3, 48, 48)).astype(np.float32)  # < MAX_BODY
        payload, headers = h.encode_infer_request([h.Input("image", image, binary=True)],
                                                  binary_data_output=True)
        for _ in range(4):
            with self.server.raw() as raw:
                raw.send(h.request_bytes("POST", "/v2/models/dither/infer", payload, headers))
        self.assert_server_healthy()
        with self.server.client() as c:
            r, _ = c.infer("dither", [h.Input("image", image, binary=True)])
            self.assertEqual(r.status, 200, r.describe())


def assert_still_serving(test):
    """The server is up and answers a valid mlp request."""
    test.assertTrue(test.server.alive())
    with test.server.client() as c:
        r, _ = c.infer("mlp", [h.Input("input", np.ones((1, 16), np.float32))])
        test.assertEqual(r.status, 200, r.describe())


class StalledRequestTest(h.ServerTestCase):
    """--http-read-timeout-ms 500: a request not complete 500 ms after its
    first byte gets 408 and the connection is closed."""

    models = ("mlp",)
    server_args = ("--http-read-timeout-ms", 500)

    def assert_408_and_closed(self, data):
        with self.server.raw(timeout=60) as raw:
            self.assertTrue(raw.send(data))
            r = raw.read_response()  # waits for the server's timeout, bounded by the socket's
            self.assertEqual(r.status, 408, r.describe())
            self.assertTrue(r.json().get("error"), r.describe())
            self.assertEqual(raw.wait_closed(), b"", "bytes after the 408 response")
        assert_still_serving(self)

    def test_stalled_body_is_408(self):
        head = h.request_bytes("POST", MLP, b"", {"Content-Type": "application/json"}, content_length=1000)
        self.assert_408_and_closed(head + b'{"inputs":')

    def test_stalled_header_is_408(self):
        self.assert_408_and_closed(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n")


class IdleConnectionTest(h.ServerTestCase):
    """--http-idle-timeout-ms 300: a keep-alive connection that waits that
    long for its next request is closed; one that is served is not."""

    models = ("mlp",)
    server_args = ("--http-idle-timeout-ms", 300)

    def test_idle_keep_alive_connection_is_closed(self):
        body, hdrs = h.encode_infer_request([h.Input("input", np.ones((1, 16), np.float32))])
        with self.server.raw(timeout=60) as raw:
            for _ in range(3):  # served requests keep the connection open
                self.assertTrue(raw.send(h.request_bytes("POST", MLP, body, hdrs)))
                r = raw.read_response()
                self.assertEqual(r.status, 200, r.describe())
            # Then nothing: the server closes it (bounded by the socket timeout).
            self.assertEqual(raw.wait_closed(), b"", "bytes sent on an idle connection")
        assert_still_serving(self)

    def test_never_used_connection_is_closed(self):
        with self.server.raw(timeout=60) as raw:
            self.assertEqual(raw.wait_closed(), b"")


if __name__ == "__main__":
    unittest.main()
