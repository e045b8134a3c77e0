#!/usr/bin/python3
"""Writes the seed corpora of fuzz/corpus/<target>/ (small, hand-made
inputs that reach each parser's main paths). Re-run to refresh them;
inputs that fuzzing found worth keeping are added beside them."""
import gzip
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def http_seeds():
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32",
                                   "data": [1, 2]}]}).encode()
    post = b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    cases = {
        "get": b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n",
        "head": b"HEAD /v2/models/%6dlp HTTP/1.1\r\nHost: x\r\n\r\n",
        "post": post + body,
        "pipelined": post + body + b"GET /v2/health/ready HTTP/1.1\r\n\r\n",
        "chunked": b"POST /v2/models/m/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"4\r\n{\"in\r\n3;ext=1\r\nputs\r\n0\r\nTrailer: x\r\n\r\n",
        "gzip": b"POST /v2/models/m/infer HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: %d"
                b"\r\n\r\n" % len(gzip.compress(body, mtime=0)) + gzip.compress(body, mtime=0),
        "deflate": b"POST /x HTTP/1.1\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n"
                   % len(zlib.compress(body)) + zlib.compress(body),
        "smuggle": b"POST /x HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n"
                   b"1c\r\nGET /smuggled HTTP/1.1\r\n\r\n\r\n0\r\n\r\n",
        "te_cl": b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
        "expect": b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
        "http10": b"GET /v2/models/a%2Fb HTTP/1.0\r\n\r\n",
        "utf8": b"GET /v2/models/\xe2\x98\x83\xff HTTP/1.1\r\n\r\n",
        "badpct": b"DELETE /v2/cache/models/ml%zz HTTP/1.1\r\n\r\n",
    }
    for i, (name, data) in enumerate(cases.items()):
        write("http_request_fuzz", name, bytes([i * 13 % 97]) + data)


def kserve_seeds():
    def js(obj):
        return json.dumps(obj).encode()
    reqs = {
        "fp32": {"inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1.5, -2]}]},
        "nested": {"id": "x", "inputs": [{"name": "a", "shape": [2, 2], "datatype": "FP32",
                                          "data": [[1, 2], [3, 4]]}],
                   "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
                   "parameters": {"binary_data_output": False, "timeout": 1000}},
        "ints": {"inputs": [{"name": "b", "shape": [1, 3], "datatype": "INT64",
                             "data": [-9223372036854775808, 0, 9223372036854775807]},
                            {"name": "u", "shape": [2], "datatype": "UINT64",
                             "data": [18446744073709551615, 1]},
                            {"name": "i8", "shape": [2], "datatype": "INT8", "data": [-128, 127]}]},
        "bytes": {"inputs": [{"name": "c", "shape": [1, 2], "datatype": "BYTES",
                              "data": ["hi", "\u2603"]}]},
        "fp16_bool": {"inputs": [{"name": "d", "shape": [1, 1, 2], "datatype": "FP16",
                                  "data": [0.5, 65504]},
                                 {"name": "e", "shape": [2], "datatype": "BOOL",
                                  "data": [True, False]}]},
        "huge_shape": {"inputs": [{"name": "a", "shape": [1, 99999999999], "datatype": "FP32",
                                   "data": [1]}]},
    }
    for name, obj in reqs.items():
        for flags in (0, 1):
            write("kserve_request_fuzz", "%s-%d" % (name, flags), bytes([flags, 0, 0]) + js(obj))
    header = js({"inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP32",
                             "parameters": {"binary_data_size": 8}},
                            {"name": "b", "shape": [1, 1], "datatype": "INT64",
                             "parameters": {"binary_data_size": 8}}]})
    binary = struct.pack("<ff", 1.0, 2.0) + struct.pack("<q", 7)
    for flags in (2, 3):
        write("kserve_request_fuzz", "binary-%d" % flags,
              bytes([flags, len(header) & 0xff, len(header) >> 8]) + header + binary)


def binary_seeds():
    """kserve_binary_fuzz reads: inputs-1, then per input a datatype index,
    a rank, per dimension a selector byte (high bit: 8-byte dim) and the dim,
    a selector and the declared binary_data_size; the rest is binary data."""
    write("kserve_binary_fuzz", "fp32", bytes([0, 6, 1, 0, 2, 0, 8, 0]) + struct.pack("<ff", 1.5, -2.0))
    write("kserve_binary_fuzz", "bytes_int64",
          bytes([1, 8, 1, 0, 1, 0, 9, 0, 4, 0, 0, 8, 0]) + struct.pack("<I", 5) + b"hello"
          + struct.pack("<q", 7))
    write("kserve_binary_fuzz", "wrap",
          bytes([0, 6, 2, 0x80]) + struct.pack("<Q", 1537228672809129302) + bytes([0, 3, 0, 8, 0])
          + bytes(8))


def config_seeds():
    models = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "examples", "models")
    if os.path.isdir(models):
        for m in sorted(os.listdir(models)):
            p = os.path.join(models, m, "config.toml")
            if os.path.exists(p):
                with open(p, "rb") as f:
                    write("model_config_fuzz", m, f.read())
    write("model_config_fuzz", "full", """
backend = "torchscript"
max_batch_size = 8
instance_count = 2
max_queue_size = 64
[[input]]
name = "x"
datatype = "FP32"
dims = [-1, 3]
[[output]]
name = "y"
datatype = "INT64"
dims = [1]
[dynamic_batching]
max_queue_delay_us = 100
preferred_batch_sizes = [4, 8]
[response_cache]
ttl_s = 60
max_stale_s = 10
[parameters]
intra_op_threads = 1
optimize = false
""")


def entry_payload(tensors):
    out = struct.pack("<I", len(tensors))
    for name, dtype, shape, data in tensors:
        out += struct.pack("<I", len(name)) + name.encode() + struct.pack("<BB", dtype, len(shape))
        out += b"".join(struct.pack("<q", d) for d in shape)
        out += struct.pack("<Q", len(data)) + data
    return out


def cache_seeds():
    write("cache_entry_fuzz", "payload-empty", entry_payload([]))
    write("cache_entry_fuzz", "payload-one",
          entry_payload([("output", 10, [1, 2], struct.pack("<ff", 1.0, 2.0))]))
    write("cache_entry_fuzz", "payload-two",
          entry_payload([("a", 8, [2], struct.pack("<qq", 1, 2)), ("b", 1, [], b"\x01")]))
    write("cache_entry_fuzz", "truncated", b"INC1" + b"\0" * 8)


def redis_seeds():
    cases = {
        "nil": b"$-1\r\n",
        "string": b"$5\r\nhello\r\n",
        "scan": b"*2\r\n$1\r\n0\r\n*2\r\n$6\r\ninferd\r\n$3\r\nabc\r\n",
        "scan_bad": b"*2\r\n$1\r\n0\r\n*1\r\n:5\r\n",
        "int_err_status": b":42\r\n-WRONGTYPE bad\r\n+OK\r\n",
        "nested": b"*3\r\n*1\r\n$-1\r\n*0\r\n$0\r\n\r\n",
    }
    for name, data in cases.items():
        write("redis_reply_fuzz", name, data)


if __name__ == "__main__":
    http_seeds()
    kserve_seeds()
    binary_seeds()
    config_seeds()
    cache_seeds()
    redis_seeds()
