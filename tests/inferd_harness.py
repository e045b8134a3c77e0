"""Shared helpers for inferd's integration tests.

The tests run the real binary: `INFERD_BIN serve --model-repository DIR --host
127.0.0.1 --http-port 0 ...` as a subprocess, wait for its one line
`inferd: listening on http://127.0.0.1:PORT` on stdout, talk HTTP to it and
stop it with SIGTERM (expecting exit code 0).

Environment:
  INFERD_BIN     the inferd binary (default: <repo>/build/inferd)
  INFERD_MODELS  the example model repository (default: <repo>/examples/models)

Nothing here synchronizes with sleeps: the helpers wait on process output, on
socket events, or poll an endpoint against a deadline (`wait_until`).
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFERD_BIN = os.environ.get("INFERD_BIN") or os.path.join(REPO_ROOT, "build", "inferd")
INFERD_MODELS = os.environ.get("INFERD_MODELS") or os.path.join(REPO_ROOT, "examples", "models")

START_TIMEOUT_S = 120  # model loading (resnet18 with warm-up) is the slow part
STOP_TIMEOUT_S = 120  # drain of queued work on SIGTERM
HTTP_TIMEOUT_S = 120  # one request, including resnet18 batches on 2 busy cores

LISTENING_RE = re.compile(r"^inferd: listening on http://(\[[^\]]+\]|[^\s:/]+):(\d+)$")


def model_file(name):
    return os.path.join(INFERD_MODELS, name, "1", "model.pt")


def require_models(*names):
    """Fails loudly when an example model file is missing."""
    missing = [model_file(n) for n in names if not os.path.exists(model_file(n))]
    if missing:
        raise AssertionError(
            "example model(s) missing: %s; generate them with "
            "`/usr/bin/python3 examples/generate_models.py --out examples/models`"
            % ", ".join(missing))


# --------------------------------------------------------------------------
# The server process


class ServerProcess:
    """One `inferd serve` subprocess.

    `args` are appended to the base command; with `base_args=False` the
    command is only `INFERD_BIN serve *args` (for configuration tests). With
    `preload` (the default) every model loads before the server listens
    (`--load-model '*'`), as tests that measure serving expect; lifecycle
    tests pass `preload=False` to get lazy loading. The child's environment
    is ours minus every INFERD_* variable, plus `env`.
    """

    def __init__(self, repository=None, args=(), env=None, base_args=True, preload=True):
        self.repository = repository or INFERD_MODELS
        cmd = [INFERD_BIN, "serve"]
        if base_args:
            cmd += ["--model-repository", self.repository, "--host", "127.0.0.1", "--http-port", "0"]
            if preload:
                cmd += ["--load-model", "*"]
        self.cmd = cmd + [str(a) for a in args]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("INFERD_")}
        child_env.update(env or {})
        self.env = child_env
        self.proc = None
        self.host = None
        self.port = None
        self._lines = []  # (stream, line)
        self._cond = threading.Condition()
        self._stdout_eof = False
        self._readers = []

    # -- lifecycle ---------------------------------------------------------

    def launch(self):
        if not os.path.exists(INFERD_BIN):
            raise AssertionError("inferd binary not found at %s (set INFERD_BIN)" % INFERD_BIN)
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=self.env)
        for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            t = threading.Thread(target=self._read, args=(name, stream), daemon=True)
            t.start()
            self._readers.append(t)
        return self

    def _read(self, name, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._cond:
                self._lines.append((name, line))
                if name == "stdout" and self.port is None:
                    m = LISTENING_RE.match(line)
                    if m:
                        self.host, self.port = m.group(1), int(m.group(2))
                self._cond.notify_all()
        with self._cond:
            if name == "stdout":
                self._stdout_eof = True
            self._cond.notify_all()

    def start(self, timeout=START_TIMEOUT_S):
        """Launches and waits for the listening line; fails with the output if
        the process exits (or closes stdout) first, or on timeout."""
        self.launch()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.port is None and not self._stdout_eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            ready = self.port is not None
        if not ready:
            self.kill()
            raise AssertionError("inferd did not report `inferd: listening on ...` within %ss "
                                 "(exit code %s)\ncommand: %s\n%s"
                                 % (timeout, self.proc.returncode, " ".join(self.cmd), self.output()))
        return self

    def wait_exit(self, timeout=START_TIMEOUT_S):
        """Waits for the process to exit by itself; returns the exit code, or
        None if it reported that it is listening (then it is killed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.port is None and not self._stdout_eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        if self.port is not None:
            self.kill()
            return None
        try:
            return self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("inferd neither exited nor listened within %ss\n%s"
                                 % (timeout, self.output()))
        finally:
            self._join_readers()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, then wait; returns the exit code (kills on timeout)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("inferd did not exit within %ss of SIGTERM\n%s" % (timeout, self.output()))
        self._join_readers()
        return rc

    def wait(self, timeout=STOP_TIMEOUT_S):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("inferd did not exit within %ss\n%s" % (timeout, self.output()))
        self._join_readers()
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._join_readers()

    def _join_readers(self):
        """After exit: collects the last output and closes the pipes."""
        for t in self._readers:
            t.join(timeout=10)
        if self.proc is not None and not any(t.is_alive() for t in self._readers):
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream and not stream.closed:
                    stream.close()

    def output(self):
        with self._cond:
            return "\n".join("[%s] %s" % nl for nl in self._lines)

    def assert_stopped_cleanly(self, testcase):
        rc = self.stop()
        testcase.assertEqual(rc, 0, "inferd exited with %s after SIGTERM\n%s" % (rc, self.output()))

    # -- connections -------------------------------------------------------

    def client(self, timeout=HTTP_TIMEOUT_S):
        return Client(self.host, self.port, timeout)

    def raw(self, timeout=HTTP_TIMEOUT_S):
        return RawConnection(self.host, self.port, timeout)


class ServerTestCase(unittest.TestCase):
    """A test case with one server per class, stopped (and checked to exit 0)
    in tearDownClass. Subclasses set `models` (example models put into a
    temporary repository, where `prepare_repository` may add more; None: serve
    INFERD_MODELS as it is), `server_args` and `server_env`."""

    models = None
    server_args = ()
    server_env = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_models(*(cls.models or ("resnet18", "mlp", "dither")))
        cls.tmpdir = tempfile.mkdtemp(prefix="inferd-test-")
        if cls.models is None:
            repo = INFERD_MODELS
        else:
            repo = os.path.join(cls.tmpdir, "models")
            os.makedirs(repo)
            for name in cls.models:
                copy_model(name, repo)
            cls.prepare_repository(repo)
        cls.server = ServerProcess(repo, args=cls.server_args, env=cls.server_env)
        try:
            cls.server.start()
        except BaseException:
            shutil.rmtree(cls.tmpdir, ignore_errors=True)
            raise

    @classmethod
    def prepare_repository(cls, repo):
        """Hook: add test-specific models to a temporary repository."""

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.server.stop()
            if rc != 0:
                raise AssertionError("inferd exited with %s after SIGTERM\n%s" % (rc, cls.server.output()))
        finally:
            shutil.rmtree(cls.tmpdir, ignore_errors=True)
            super().tearDownClass()

    def client(self):
        c = self.server.client()
        self.addCleanup(c.close)
        return c

    def assert_server_healthy(self):
        """The server still answers a good request on a fresh connection."""
        self.assertTrue(self.server.alive(), "inferd exited:\n" + self.server.output())
        with self.server.client() as c:
            r = c.request("GET", "/v2/health/live")
            self.assertEqual(r.status, 200, r.describe())


# --------------------------------------------------------------------------
# Model repositories


def copy_model(name, repo, new_name=None, config_text=None):
    """Puts model `name` of INFERD_MODELS into `repo` (as `new_name`), with its
    config.toml or `config_text`. model.pt is symlinked (resnet18 is 46 MB)."""
    src = os.path.join(INFERD_MODELS, name)
    dst = os.path.join(repo, new_name or name)
    os.makedirs(os.path.join(dst, "1"), exist_ok=True)
    os.symlink(os.path.abspath(model_file(name)), os.path.join(dst, "1", "model.pt"))
    with open(os.path.join(dst, "config.toml"), "w") as f:
        if config_text is None:
            with open(os.path.join(src, "config.toml")) as g:
                f.write(g.read())
        else:
            f.write(config_text)
    return dst


def tensor_toml(kind, name, datatype, dims):
    return '[[%s]]\nname = "%s"\ndatatype = "%s"\ndims = %s\n' % (kind, name, datatype, json.dumps(list(dims)))


# --------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def describe(self):
        body = self.body[:600]
        return "HTTP %s %s %s body=%r%s" % (self.status, self.reason, self.headers, body,
                                            "..." if len(self.body) > 600 else "")


class Client:
    """A keep-alive http.client connection."""

    def __init__(self, host, port, timeout=HTTP_TIMEOUT_S):
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.conn.close()

    def request(self, method, path, body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = dict(headers or {}, **{"Content-Type": "application/json"})
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        return Response(r.status, r.reason, r.getheaders(), r.read())

    def get(self, path):
        return self.request("GET", path)

    def infer(self, model, inputs, outputs=None, version=None, **kwargs):
        """Sends an inference request (see `encode_infer_request`) and returns
        (Response, decoded) where decoded is `decode_infer_response` or None."""
        body, headers = encode_infer_request(inputs, outputs, **kwargs)
        r = self.request("POST", infer_path(model, version), body, headers)
        return r, (decode_infer_response(r) if r.status == 200 else None)


def infer_path(model, version=None):
    if version is None:
        return "/v2/models/%s/infer" % model
    return "/v2/models/%s/versions/%s/infer" % (model, version)


def request_bytes(method, path, body=b"", headers=None, content_length=None):
    """One HTTP/1.1 request as bytes; Content-Length is len(body) unless
    `content_length` says otherwise (for truncated bodies)."""
    hdrs = {"Host": "127.0.0.1"}
    hdrs.update(headers or {})
    if body or method in ("POST", "PUT") or content_length is not None:
        hdrs["Content-Length"] = str(len(body) if content_length is None else content_length)
    head = "%s %s HTTP/1.1\r\n" % (method, path)
    head += "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
    return head.encode() + body


def raw_request_bytes(method, path, headers=(), body=b""):
    """One request exactly as given: `path` (str or bytes) is sent as is and
    `headers` is a list of (name, value) pairs, repeats allowed, nothing
    added (no Host, no Content-Length)."""
    target = path if isinstance(path, bytes) else path.encode("latin-1")
    head = method.encode() + b" " + target + b" HTTP/1.1\r\n"
    head += b"".join(("%s: %s\r\n" % kv).encode("latin-1") for kv in headers) + b"\r\n"
    return head + body


def assert_json_error(test, r, status, mentions=(), what=""):
    """An error answer: `status` (an int or a collection of ints) and a body
    {"error": "<non-empty string>"} that mentions every item of `mentions`
    (case-insensitive; an item may be a tuple of alternatives). Returns the
    message."""
    statuses = (status,) if isinstance(status, int) else tuple(status)
    test.assertIn(r.status, statuses, "%s: %s" % (what, r.describe()))
    try:
        error = r.json()["error"]
    except (ValueError, KeyError, TypeError):
        test.fail("%s: body is not {\"error\": ...}: %s" % (what, r.describe()))
    test.assertIsInstance(error, str, "%s: %s" % (what, r.describe()))
    test.assertTrue(error, "%s: empty error message" % what)
    for m in ((mentions,) if isinstance(mentions, str) else mentions):
        alternatives = (m,) if isinstance(m, str) else m
        test.assertTrue(any(a.lower() in error.lower() for a in alternatives),
                        "%s: error %r should mention %s" % (what, error, " or ".join(map(repr, alternatives))))
    return error


class ConnectionClosed(Exception):
    pass


class RawConnection:
    """A plain TCP connection for malformed, stalled or pipelined requests.
    `read_response` parses exactly one HTTP/1.1 response (Content-Length or
    chunked) and keeps whatever follows it for the next call."""

    def __init__(self, host, port, timeout=HTTP_TIMEOUT_S):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        """Sends everything; returns False if the server reset or closed the
        connection first (its answer may still be readable)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self):
        """Reads more bytes; returns False at end of stream (FIN or reset)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                if not self.buf:
                    raise ConnectionClosed("the server closed the connection without sending a response")
                raise ConnectionClosed("connection closed inside a response; got %r" % self.buf[:200])
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionClosed("connection closed after %d of %d body bytes" % (len(self.buf), n))
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, no_body=False):
        """`no_body`: the answer to a HEAD request, whose Content-Length or
        Transfer-Encoding describes a body that is not sent."""
        status_line = self._read_line()
        while status_line == b"":  # tolerate stray CRLF
            status_line = self._read_line()
        parts = status_line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise AssertionError("bad status line %r" % status_line)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            line = self._read_line()
            if not line:
                break
            k, v = line.decode("latin-1").split(":", 1)
            headers.append((k.strip(), v.strip()))
        hmap = {k.lower(): v for k, v in headers}
        if status in (100, 101):
            return self.read_response() if status == 100 else Response(status, reason, headers, b"")
        if no_body:
            body = b""
        elif hmap.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    while self._read_line():
                        pass
                    break
                body += self._read_exact(size)
                self._read_exact(2)
        elif "content-length" in hmap:
            body = self._read_exact(int(hmap["content-length"]))
        else:  # until close
            while self._fill():
                pass
            body, self.buf = self.buf, b""
        return Response(status, reason, headers, body)

    def wait_closed(self):
        """Waits (bounded by the socket timeout) until the server closes the
        connection; returns any bytes received meanwhile."""
        extra = self.buf
        self.buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            except socket.timeout:
                raise AssertionError("server did not close the connection within %ss (got %r)"
                                     % (self.sock.gettimeout(), extra[:200]))
            if not data:
                return extra
            extra += data


# --------------------------------------------------------------------------
# Tensors and the KServe v2 (Triton) inference protocol

NP_DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}


def as_numpy(x):
    """torch.Tensor or array-like -> numpy array."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class Input:
    """One request input: `data` (numpy/torch), `datatype`, sent as binary
    data or as JSON (flat or nested row-major)."""

    def __init__(self, name, data, datatype="FP32", binary=False, nested=False, shape=None):
        self.name = name
        self.data = as_numpy(data)
        self.datatype = datatype
        self.binary = binary
        self.nested = nested
        self.shape = list(self.data.shape) if shape is None else list(shape)

    def raw_bytes(self):
        return np.ascontiguousarray(self.data.astype(NP_DTYPES[self.datatype])).tobytes()

    def json_data(self):
        arr = self.data.astype(NP_DTYPES[self.datatype])
        return arr.tolist() if self.nested else arr.reshape(-1).tolist()


def encode_infer_request(inputs, outputs=None, request_id=None, binary_data_output=None,
                         raw_json=None):
    """Returns (body, headers) for POST .../infer.

    inputs: list of Input. outputs: list of output names, or of (name, binary)
    pairs (binary True/False sets parameters.binary_data). binary_data_output
    sets the request-level parameter. raw_json: extra top-level keys."""
    header = {}
    if request_id is not None:
        header["id"] = request_id
    blobs = []
    header["inputs"] = []
    for inp in inputs:
        entry = {"name": inp.name, "shape": inp.shape, "datatype": inp.datatype}
        if inp.binary:
            blob = inp.raw_bytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = inp.json_data()
        header["inputs"].append(entry)
    if outputs is not None:
        header["outputs"] = []
        for o in outputs:
            name, binary = (o, None) if isinstance(o, str) else o
            entry = {"name": name}
            if binary is not None:
                entry["parameters"] = {"binary_data": binary}
            header["outputs"].append(entry)
    if binary_data_output is not None:
        header["parameters"] = {"binary_data_output": binary_data_output}
    if raw_json:
        header.update(raw_json)
    head = json.dumps(header).encode()
    headers = {"Content-Type": "application/json"}
    if blobs:
        headers = {"Content-Type": "application/octet-stream",
                   "Inference-Header-Content-Length": str(len(head))}
    return head + b"".join(blobs), headers


class Decoded:
    def __init__(self, header, outputs, binary):
        self.header = header  # the JSON part
        self.outputs = outputs  # name -> numpy array (shaped)
        self.binary = binary  # name -> True if it came as binary data


def decode_infer_response(resp):
    body = resp.body
    hlen = resp.header("Inference-Header-Content-Length")
    if hlen is not None:
        hlen = int(hlen)
        header, rest = json.loads(body[:hlen].decode()), body[hlen:]
    else:
        header, rest = json.loads(body.decode()), b""
    outputs, binary = {}, {}
    offset = 0
    for out in header.get("outputs", []):
        dt = out["datatype"]
        shape = out["shape"]
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            chunk = rest[offset:offset + size]
            if len(chunk) != size:
                raise AssertionError("output %s: binary_data_size %d but only %d bytes left"
                                     % (out["name"], size, len(chunk)))
            offset += size
            arr = np.frombuffer(chunk, dtype=NP_DTYPES[dt]).reshape(shape)
            binary[out["name"]] = True
        else:
            arr = np.array(out["data"], dtype=NP_DTYPES[dt]).reshape(shape)
            binary[out["name"]] = False
        outputs[out["name"]] = arr
    if offset != len(rest):
        raise AssertionError("%d unclaimed bytes after the binary outputs" % (len(rest) - offset))
    return Decoded(header, outputs, binary)


def max_abs_diff(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError("shape %s != %s" % (a.shape, b.shape))
    return float(np.max(np.abs(a - b))) if a.size else 0.0


# --------------------------------------------------------------------------
# Prometheus metrics

_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_metrics(text):
    """Prometheus text format -> list of (name, {label: value}, float)."""
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise AssertionError("unparsable metrics line %r" % line)
        labels = {}
        if m.group(3):
            pos = 0
            body = m.group(3)
            while pos < len(body):
                lm = _LABEL_RE.match(body, pos)
                if not lm:
                    raise AssertionError("unparsable labels in %r" % line)
                labels[lm.group(1)] = lm.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                pos = lm.end()
        samples.append((m.group(1), labels, float(m.group(4))))
    return samples


def metric_sum(samples, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`; None if no
    sample matches."""
    vals = [v for n, l, v in samples if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
    return sum(vals) if vals else None


def scrape(server):
    with server.client() as c:
        r = c.get("/metrics")
        if r.status != 200:
            raise AssertionError("/metrics: " + r.describe())
        return r.body.decode()


def metric_values(server, *names):
    """One scrape: the sum of each metric's samples (None if it is absent)."""
    samples = parse_metrics(scrape(server))
    return tuple(metric_sum(samples, n) for n in names)


def proc_status_bytes(pid, field):
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM, ...) in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def binary_info():
    """Which inferd binary a benchmark measured: path, SHA-256 and mtime."""
    import datetime
    import hashlib
    with open(INFERD_BIN, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    mtime = datetime.datetime.fromtimestamp(os.stat(INFERD_BIN).st_mtime)
    return {"path": INFERD_BIN, "sha256": digest, "mtime": mtime.isoformat(timespec="seconds")}


def wait_until(predicate, timeout, what, interval=0.01):
    """Polls `predicate` (which returns a truthy value when done) until it
    holds or `timeout` seconds pass; the interval only paces the polling."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def run_threads(fn, args_list, timeout=600):
    """Runs fn(*args) in one thread per args tuple, all released together by
    a barrier; returns results in order and re-raises the first exception."""
    barrier = threading.Barrier(len(args_list))
    results = [None] * len(args_list)
    errors = []

    def body(i, args):
        try:
            barrier.wait(timeout=60)
            results[i] = fn(*args)
        except BaseException as e:  # noqa: B902 - reported below
            errors.append((i, e))

    threads = [threading.Thread(target=body, args=(i, a), daemon=True) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise AssertionError("client threads still running after %ss" % timeout)
    if errors:
        i, e = sorted(errors, key=lambda x: x[0])[0]
        raise AssertionError("client %d of %d failed (%d failed in all): %s: %s"
                             % (i, len(args_list), len(errors), type(e).__name__, e)) from e
    return results


def load_torch_model(name_or_path):
    """torch.jit.load for references, with one intra-op thread."""
    import torch
    torch.set_num_threads(1)
    path = name_or_path if os.path.sep in name_or_path else model_file(name_or_path)
    m = torch.jit.load(path)
    m.eval()
    return m


def torch_forward(module, *inputs):
    import torch
    with torch.inference_mode():
        out = module(*[torch.from_numpy(np.ascontiguousarray(as_numpy(x))) for x in inputs])
    if isinstance(out, (tuple, list)):
        return [o.numpy() for o in out]
    return out.numpy()
