"""HTTP protocol conformance against hostile or unusual requests.

Every error is checked as a status, a JSON body {"error": "..."} naming the
problem, and a server that still answers a good request afterwards. Covered:
shapes whose element count overflows (answered, nothing left in progress, so
SIGTERM exits at once), memory bounded by the body for many unknown inputs,
Transfer-Encoding smuggling, compressed request bodies, percent-encoded paths,
the extensions listed by GET /v2, HEAD, invalid UTF-8 in error messages,
ambiguous binary extension requests, the command line and the connection
limit.
"""

import gzip
import json
import os
import re
import subprocess
import sys
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import inferd_harness as h  # noqa: E402

MLP = "/v2/models/mlp/infer"
ROW = [i / 16.0 for i in range(16)]  # exact in FP32
HOST = ("Host", "127.0.0.1")
JSON_CT = {"Content-Type": "application/json"}
IHCL = "Inference-Header-Content-Length"
ATOL = 1e-5


def mlp_input(shape, data, datatype="FP32", name="input"):
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def infer_body(*inputs, **extra):
    return json.dumps(dict({"inputs": list(inputs)}, **extra)).encode()


GOOD = infer_body(mlp_input([1, 16], ROW))
BINARY_HEAD = json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                                      "parameters": {"binary_data_size": 64}}]}).encode()
BLOB = np.asarray(ROW, np.float32).tobytes()


def assert_still_serving(test):
    """The server is up and answers a valid mlp request on a new connection."""
    test.assertTrue(test.server.alive(), "inferd exited:\n" + test.server.output())
    with test.server.client() as c:
        r, _ = c.infer("mlp", [h.Input("input", np.ones((1, 16), np.float32))])
        test.assertEqual(r.status, 200, r.describe())


def post(test, payload, headers=None, path=MLP):
    """One POST on a new keep-alive connection."""
    with test.server.client() as c:
        return c.request("POST", path, payload, dict(JSON_CT, **(headers or {})))


def exchange(test, data, timeout=30):
    """Sends raw bytes on a new connection and reads one response."""
    with test.server.raw(timeout=timeout) as raw:
        raw.send(data)
        return raw.read_response()


def wait_metrics_idle(server, names, idle, timeout=30):
    """Polls /metrics until the gauges `names` read `idle` again."""
    last = []

    def settled():
        last[:] = h.metric_values(server, *names)
        return list(last) == list(idle)
    try:
        h.wait_until(settled, timeout, "idle gauges", interval=0.05)
    except AssertionError:
        raise AssertionError("%s did not return to %s within %ss (last: %s; None = not exported)"
                             % (", ".join(names), idle, timeout, last)) from None


class OversizedShapeTest(h.ServerTestCase):
    """Shapes whose element count overflows get 400, and no request is left
    in progress: SIGTERM exits well within --drain-timeout-s 30."""

    models = ("mlp",)
    server_args = ("--drain-timeout-s", 30)

    def test_oversized_shapes_are_answered_and_sigterm_exits_at_once(self):
        gauge = ["inferd_http_requests_in_progress"]
        idle = h.metric_values(self.server, *gauge)  # 0, or 1 if a scrape counts itself
        self.assertIn(idle[0], (0, 1), "%s on an idle server" % gauge)
        for dims in ([1, 99999999999], [1, 4294967312]):
            with self.subTest(shape=dims):
                r = exchange(self, h.request_bytes("POST", MLP, infer_body(mlp_input(dims, [1])), JSON_CT))
                h.assert_json_error(self, r, 400, "shape", "shape %s" % dims)
                assert_still_serving(self)
        wait_metrics_idle(self.server, gauge, idle)
        start = time.monotonic()
        rc = self.server.stop(timeout=60)
        elapsed = time.monotonic() - start
        self.assertEqual(rc, 0, self.server.output())
        self.assertLess(elapsed, 10, "SIGTERM took %.1f s: a request was left in progress" % elapsed)


class LargeBodyTest(h.ServerTestCase):
    """With --max-body-bytes 64000000, 200,000 unknown inputs (~25 MB) are
    rejected while peak memory grows by less than 6 times the body (5x is the
    bound for a body refused before decoding, docs/operations.md)."""

    models = ("mlp",)
    server_args = ("--max-body-bytes", 64000000)

    def test_many_unknown_inputs_keep_memory_bounded(self):
        entry = '{"name":"nope_%d","shape":[1,16],"datatype":"FP32","data":[' + ",".join(["0.5"] * 16) + "]}"
        payload = ('{"inputs":[' + ",".join(entry % i for i in range(200000)) + "]}").encode()
        pid = self.server.proc.pid
        before = h.proc_status_bytes(pid, "VmHWM")
        r = exchange(self, h.request_bytes("POST", MLP, payload, JSON_CT), timeout=h.HTTP_TIMEOUT_S)
        h.assert_json_error(self, r, 400, "unknown input", "200,000 unknown inputs")
        growth = h.proc_status_bytes(pid, "VmHWM") - before
        self.assertLess(growth, 6 * len(payload), "peak RSS grew by %d bytes for a %d-byte body"
                        % (growth, len(payload)))
        assert_still_serving(self)

    def test_wrong_datatype_of_a_known_input(self):
        r = post(self, infer_body(mlp_input([1, 16], list(range(16)), "INT64")))
        h.assert_json_error(self, r, 400, "datatype")
        assert_still_serving(self)


class ProtocolTest(h.ServerTestCase):
    models = ("mlp",)
    server_args = ("--max-body-bytes", 100000)

    def reference(self):
        r = post(self, GOOD)
        self.assertEqual(r.status, 200, r.describe())
        return h.decode_infer_response(r).outputs["output"]

    def assert_output(self, r, want, what=""):
        self.assertEqual(r.status, 200, "%s: %s" % (what, r.describe()))
        got = h.decode_infer_response(r).outputs["output"]
        self.assertEqual(got.shape, want.shape, what)
        self.assertTrue(np.allclose(got, want, rtol=0, atol=ATOL), "%s: %s != %s" % (what, got, want))

    # -- Transfer-Encoding ---------------------------------------------------

    def test_transfer_encoding_smuggling_is_refused(self):
        inner = h.request_bytes("GET", "/v2/health/live")
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(inner), inner)
        cases = {
            "xchunked": [("Transfer-Encoding", "xchunked")],
            "gzip with Content-Length": [("Transfer-Encoding", "gzip"), ("Content-Length", str(len(chunked)))],
            "gzip, chunked": [("Transfer-Encoding", "gzip, chunked")],
        }
        for what, te in cases.items():
            with self.subTest(case=what):
                data = h.raw_request_bytes("POST", MLP, [HOST, ("Content-Type", "application/json")] + te, chunked)
                with self.server.raw(timeout=10) as raw:
                    raw.send(data)
                    r = raw.read_response()
                    h.assert_json_error(self, r, (400, 501), "Transfer-Encoding", what)
                    self.assertEqual(raw.wait_closed(), b"", "bytes after the %d (a smuggled response?)" % r.status)
                assert_still_serving(self)

    def test_chunked_request_body(self):
        want = self.reference()
        half = len(GOOD) // 2
        chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, GOOD[:half], len(GOOD) - half, GOOD[half:])
        for te in ("chunked", "Chunked"):
            with self.subTest(te=te):
                r = exchange(self, h.raw_request_bytes(
                    "POST", MLP, [HOST, ("Content-Type", "application/json"), ("Transfer-Encoding", te)], chunks))
                self.assert_output(r, want, te)

    # -- Content-Encoding ------------------------------------------------------

    def test_gzip_and_deflate_bodies(self):
        want = self.reference()
        for enc, compress in (("gzip", gzip.compress), ("deflate", zlib.compress)):
            with self.subTest(encoding=enc):
                self.assert_output(post(self, compress(GOOD), {"Content-Encoding": enc}), want, enc)

    def test_gzip_binary_body_with_uncompressed_header_length(self):
        want = self.reference()
        r = post(self, gzip.compress(BINARY_HEAD + BLOB), {
            "Content-Type": "application/octet-stream", "Content-Encoding": "gzip", IHCL: str(len(BINARY_HEAD))})
        self.assert_output(r, want, "gzip binary")

    def test_unsupported_content_encoding_is_415(self):
        h.assert_json_error(self, post(self, GOOD, {"Content-Encoding": "br"}), 415, "Content-Encoding")
        assert_still_serving(self)

    def test_gzip_bomb_is_413(self):
        bomb = gzip.compress(b" " * 50000000 + GOOD)  # valid JSON once inflated, 500 times the limit
        self.assertLess(len(bomb), 100000)
        r = exchange(self, h.request_bytes("POST", MLP, bomb, dict(JSON_CT, **{"Content-Encoding": "gzip"})))
        h.assert_json_error(self, r, 413, [("limit", "max_body_bytes", "100000")], "gzip bomb")
        assert_still_serving(self)

    def test_corrupt_gzip_is_400(self):
        gz = gzip.compress(GOOD)
        flipped = gz[:12] + bytes(b ^ 0xFF for b in gz[12:20]) + gz[20:]
        for what, payload in (("not gzip", b"not gzip at all"), ("flipped bytes", flipped),
                              ("truncated", gz[:len(gz) // 2])):
            with self.subTest(case=what):
                r = post(self, payload, {"Content-Encoding": "gzip"})
                h.assert_json_error(self, r, 400, [("gzip", "Content-Encoding")], what)
                assert_still_serving(self)

    # -- paths -----------------------------------------------------------------

    def test_percent_encoded_paths(self):
        with self.server.client() as c:
            r = c.get("/v2/models/%6dlp")
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.json()["name"], "mlp")
        self.assert_output(post(self, GOOD, path="/v2/models/%6Dlp/infer"), self.reference(), "%6Dlp")
        for path, status, mentions in (("/v2/models/ml%2Fp", 404, [("ml/p", "ml%2fp")]),
                                       ("/v2/models/%2e%2e", 404, [("..", "%2e%2e")]),
                                       ("/v2/models/ml%zzp", 400, ["percent"])):
            with self.subTest(path=path):
                with self.server.client() as c:
                    h.assert_json_error(self, c.get(path), status, mentions, path)
                assert_still_serving(self)

    def test_invalid_utf8_in_the_path_gives_a_valid_utf8_error(self):
        r = exchange(self, h.raw_request_bytes("GET", b"/v2/models/\xe2\x98\x83\xff", [HOST]))
        self.assertEqual(r.status, 404, r.describe())
        try:
            text = r.body.decode("utf-8")
        except UnicodeDecodeError as e:
            self.fail("error body is not valid UTF-8 (%s): %r" % (e, r.body))
        self.assertIsInstance(json.loads(text), dict, text)
        h.assert_json_error(self, r, 404, "model")
        assert_still_serving(self)

    def test_server_metadata_lists_only_existing_extensions(self):
        with self.server.client() as c:
            r = c.get("/v2")
        self.assertEqual(r.status, 200, r.describe())
        self.assertIn("binary_tensor_data", r.json()["extensions"])
        self.assertIn("model_repository", r.json()["extensions"])
        for ext in ("statistics", "trace", "logging", "sagemaker", "shared_memory"):
            self.assertNotIn(ext, r.json()["extensions"])

    def test_head_is_get_without_the_body(self):
        for path in ("/v2", "/v2/models/mlp", "/v2/health/ready"):
            with self.subTest(path=path), self.server.raw(timeout=30) as raw:
                self.assertTrue(raw.send(h.request_bytes("HEAD", path)))
                head = raw.read_response(no_body=True)
                self.assertTrue(raw.send(h.request_bytes("GET", path)), "closed after HEAD")
                get = raw.read_response()  # a body sent for the HEAD would break this parse
                self.assertEqual(get.status, 200, get.describe())
                self.assertIsInstance(get.json(), dict)
                self.assertEqual(raw.buf, b"", "bytes after the GET response")
                self.assertEqual(head.status, get.status, head.describe())
                self.assertEqual(get.header("Content-Length"), str(len(get.body)))
                for name in ("Content-Type", "Content-Length"):
                    self.assertEqual(head.header(name), get.header(name), "%s: %s" % (name, head.describe()))
        with self.server.raw(timeout=30) as raw:
            self.assertTrue(raw.send(h.request_bytes("HEAD", "/v2/nope")))
            head = raw.read_response(no_body=True)
            self.assertEqual(head.status, 404, head.describe())
            self.assertTrue(raw.send(h.request_bytes("GET", "/v2/health/live")), "closed after HEAD 404")
            live = raw.read_response()
            self.assertEqual((live.status, live.json()), (200, {"live": True}), live.describe())

    # -- the binary extension --------------------------------------------------

    def binary_request(self, head, blob, ihcl_values):
        hdrs = [HOST, ("Content-Type", "application/octet-stream"), ("Content-Length", str(len(head) + len(blob)))]
        return exchange(self, h.raw_request_bytes("POST", MLP, hdrs + [(IHCL, v) for v in ihcl_values], head + blob))

    def test_repeated_inference_header_content_length(self):
        n = len(BINARY_HEAD)
        for values in ([str(n), str(n + 8)], [str(n + 8), str(n)]):
            with self.subTest(values=values):
                h.assert_json_error(self, self.binary_request(BINARY_HEAD, BLOB, values), 400, IHCL)
                assert_still_serving(self)
        self.assert_output(self.binary_request(BINARY_HEAD, BLOB, [str(n), str(n)]), self.reference(),
                           "two identical headers")

    def test_data_and_binary_data_size_together(self):
        head = json.dumps({"inputs": [dict(mlp_input([1, 16], ROW), parameters={"binary_data_size": 64})]}).encode()
        error = h.assert_json_error(self, self.binary_request(head, BLOB, [str(len(head))]), 400, "binary_data_size")
        self.assertRegex(error.lower(), r"\bdata\b", "error should mention data")
        assert_still_serving(self)

    def test_binary_body_without_header_length(self):
        h.assert_json_error(self, self.binary_request(BINARY_HEAD, BLOB, []), 400, IHCL)
        assert_still_serving(self)


class SpaceInModelNameTest(h.ServerTestCase):
    """A model directory named `mlp v2` is served as /v2/models/mlp%20v2."""

    models = ("mlp",)

    @classmethod
    def prepare_repository(cls, repo):
        h.copy_model("mlp", repo, new_name="mlp v2")

    def test_percent_encoded_space(self):
        r = post(self, GOOD, path="/v2/models/mlp%20v2/infer")
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.json()["model_name"], "mlp v2")
        self.assertEqual(h.decode_infer_response(r).outputs["output"].shape, (1, 4))


class ResponseCompressionTest(h.ServerTestCase):
    """Accept-Encoding: gzip compresses JSON responses over
    --http-gzip-min-bytes; other responses and other clients are untouched."""
    models = ("mlp",)
    server_args = ("--http-gzip-min-bytes", 64)

    def test_gzip_when_asked_for(self):
        body = infer_body(mlp_input([1, 16], [0.5] * 16))
        with self.client() as c:
            plain = c.request("POST", MLP, body, {"Content-Type": "application/json"})
            self.assertEqual(plain.status, 200, plain.describe())
            self.assertIsNone(plain.header("Content-Encoding"))
            for accept in ("gzip", "deflate, gzip;q=0.8", "*"):
                r = c.request("POST", MLP, body, {"Content-Type": "application/json",
                                                  "Accept-Encoding": accept})
                self.assertEqual(r.status, 200, r.describe())
                self.assertEqual(r.header("Content-Encoding"), "gzip", accept)
                self.assertEqual(r.header("Vary"), "Accept-Encoding")
                self.assertEqual(json.loads(gzip.decompress(r.body)), json.loads(plain.body))
            for accept in ("gzip;q=0", "identity", "br"):
                r = c.request("POST", MLP, body, {"Content-Type": "application/json",
                                                  "Accept-Encoding": accept})
                self.assertIsNone(r.header("Content-Encoding"), accept)
                self.assertEqual(r.body, plain.body)
            # /metrics is text, not JSON: never compressed.
            r = c.request("GET", "/metrics", None, {"Accept-Encoding": "gzip"})
            self.assertEqual(r.status, 200)
            self.assertIsNone(r.header("Content-Encoding"))


class CommandLineTest(unittest.TestCase):
    def run_inferd(self, *args):
        if not os.path.exists(h.INFERD_BIN):
            self.fail("inferd binary not found at %s" % h.INFERD_BIN)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFERD_")}
        p = subprocess.run([h.INFERD_BIN] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=60)
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def option_line(self, text, flag):
        lines = [ln for ln in text.splitlines() if flag in [t.strip(",=") for t in ln.split()]]
        self.assertTrue(lines, "no line for %s in:\n%s" % (flag, text))
        return lines[0]

    def test_version(self):
        rc, out = self.run_inferd("--version")
        self.assertEqual(rc, 0, out)
        self.assertTrue(any("inferd" in ln and re.search(r"\b\d+\.\d+\.\d+\b", ln) for ln in out.splitlines()),
                        "no `inferd X.Y.Z` line in %r" % out)

    def test_serve_help_names_numeric_types(self):
        rc, out = self.run_inferd("serve", "--help")
        self.assertEqual(rc, 0, out)
        for flag in ("--http-port", "--max-body-bytes"):
            self.assertNotIn("TEXT", self.option_line(out, flag))

    def test_bench_help_shows_the_unique_fraction_default(self):
        rc, out = self.run_inferd("bench", "--help")
        self.assertEqual(rc, 0, out)
        line = self.option_line(out, "--unique-fraction")
        self.assertRegex(line.lower(), r"\[0(\.0*)?\]|=0(\.0*)?\b|default", line)


class ConnectionLimitTest(h.ServerTestCase):
    """--http-max-connections 8: a ninth connection gets 503 with Retry-After
    and is closed; once the eight close, new connections are served."""

    models = ("mlp",)
    server_args = ("--http-max-connections", 8)

    def live_ok(self, timeout=10):
        try:
            with self.server.raw(timeout=timeout) as raw:
                raw.send(h.request_bytes("GET", "/v2/health/live"))
                return raw.read_response().status == 200
        except (h.ConnectionClosed, OSError):
            return False

    def test_ninth_connection_gets_503(self):
        held = []
        try:
            for i in range(8):
                raw = self.server.raw(timeout=30)
                held.append(raw)
                self.assertTrue(raw.send(h.request_bytes("GET", "/v2/health/live")))
                r = raw.read_response()  # the server has accepted this connection
                self.assertEqual(r.status, 200, "connection %d: %s" % (i + 1, r.describe()))
                if i % 2:
                    self.assertTrue(raw.send(b"GET /v2 HTTP/1.1\r\nHost: 127.0.0.1\r\n"))  # partial header
            start = time.monotonic()
            with self.server.raw(timeout=10) as ninth:
                ninth.send(h.request_bytes("GET", "/v2/health/live"))
                r = ninth.read_response()
                h.assert_json_error(self, r, 503, "connection", "ninth connection")
                self.assertTrue(r.header("Retry-After"), r.describe())
                self.assertEqual(ninth.wait_closed(), b"", "bytes after the 503")
            self.assertLess(time.monotonic() - start, 5)
        finally:
            for raw in held:
                raw.close()
        h.wait_until(self.live_ok, 30, "a new connection served after the eight closed", interval=0.05)
        assert_still_serving(self)


class OutOfDescriptorsTest(h.ServerTestCase):
    """The process runs out of file descriptors below --http-max-connections
    (its limit lowered to leave 6 free): each connection the kernel
    completed then gets 503 and is closed (the spare descriptor is given up
    to take it), rather than waiting unanswered; once the limit is back and
    the held connections close, new ones are served."""

    models = ("mlp",)
    server_args = ("--http-max-connections", 10000)
    live_ok = ConnectionLimitTest.live_ok

    def test_connections_beyond_the_descriptors_get_503(self):
        import resource
        pid = self.server.proc.pid
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        # The limit bounds descriptor numbers: just above the 6th free one.
        used = set(int(fd) for fd in os.listdir("/proc/%d/fd" % pid))
        free = [n for n in range(len(used) + 6) if n not in used][:6]
        held = []
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (free[-1] + 1, hard))
            for i in range(6):
                raw = self.server.raw(timeout=30)
                held.append(raw)
                self.assertTrue(raw.send(h.request_bytes("GET", "/v2/health/live")))
                r = raw.read_response()
                self.assertEqual(r.status, 200, "connection %d: %s" % (i + 1, r.describe()))
            for i in range(3):  # each one refused the same way
                with self.server.raw(timeout=10) as extra:
                    # No request: the 503 comes at once, and a request that
                    # arrived after the server's close could reset it.
                    r = extra.read_response()
                    h.assert_json_error(self, r, 503, "connection", "connection %d past the descriptors" % (i + 1))
                    self.assertEqual(extra.wait_closed(), b"", "bytes after the 503")
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
            for raw in held:
                raw.close()
        h.wait_until(self.live_ok, 30, "a new connection served after the limit was restored", interval=0.05)
        assert_still_serving(self)


if __name__ == "__main__":
    unittest.main()
