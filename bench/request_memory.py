#!/usr/bin/env python3
"""Peak memory of one large request, as a multiple of its body size (issue 7,
item 2).

For every case and size, a fresh server:

    build/inferd serve --model-repository examples/models --host 127.0.0.1
                       --http-port 0 --max-body-bytes 200000000

gets one small warm-up request for the case's model; then the script reads
VmRSS from /proc/PID/status (the baseline), resets the peak (VmHWM) to it by
writing 5 to /proc/PID/clear_refs (Linux, needs the same user or root), sends
the one large request on a fresh connection, waits for the whole answer, and
reads VmHWM and VmRSS again, then VmRSS once more after a bounded settle. The
multiple is (VmHWM after - baseline VmRSS) / body bytes, the body as the
server sees it (decompressed for the gzip case). Each figure is the median of
--repeats servers. The server is restarted per case, so no case inherits
another's buffers or peak.

Cases (JSON bodies use the smallest elements, "1," for two bytes per value):

  json-unknown-input           one input of N FP32 values "1," to mlp, named
                               'nope': parsed, refused by name before decoding.
  json-unknown-input-chunked   the same body sent with Transfer-Encoding: chunked
                               (no Content-Length: the body string grows).
  json-unknown-input-gzip      the same body gzip-compressed (Content-Encoding).
  json-many-inputs             many small inputs {"name":"x<i>","shape":[1],
                               "datatype":"FP32","data":[1]} to mlp (500,000 at
                               about 32 MiB); the first is refused by name.
  json-dither-decoded-400      dither's 'image' [1,3,H,W] (variable H and W)
                               with one value fewer than its shape: fully
                               decoded (4 bytes per value), then 400.
  json-dither-valid            dither's 'image' with exactly 3*H*W values, asking
                               for the output as binary: decoded, executed,
                               answered 200 (includes the model's own memory).
  binary-resnet18-valid        resnet18 [n,3,224,224] FP32 through the binary
                               extension (n = 13 and 32, its max_batch_size).
  binary-dither-valid          dither [1,3,H,W] FP32 through the binary
                               extension, output as binary, executed.

Usage, from the repository root (nothing is built; uses build/inferd):

    /usr/bin/python3 bench/request_memory.py [--repeats 3] [--sizes-mib 8,32,64]
        [--cases json-unknown-input,...] [--out bench/results/request_memory-DATE.json]
"""

import argparse
import datetime
import gzip
import http.client
import json
import math
import os
import platform
import socket
import statistics
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import inferd_harness as h  # noqa: E402  (ServerProcess: start, port, stop)

MAX_BODY = 200_000_000
HTTP_TIMEOUT_S = 300
SETTLE_S = 1.0  # after the answer, before the last VmRSS


# --------------------------------------------------------------------------
# /proc


def proc_status(pid):
    """VmRSS and VmHWM in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def reset_peak(pid):
    """Sets VmHWM to the current VmRSS; False when the kernel refuses."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# Bodies: (body bytes, headers, path, expected status, description)


def ones(n):
    """n JSON numbers "1" separated by commas: 2n - 1 bytes."""
    return b"1," * (n - 1) + b"1"


def body_unknown_input(size):
    head = b'{"inputs":[{"name":"nope","shape":[1,%d],"datatype":"FP32","data":['
    tail = b"]}]}"
    n = (size - len(head) - len(tail) - 10) // 2
    body = (head % n) + ones(n) + tail
    return body, {}, "/v2/models/mlp/infer", 400, "1 input 'nope' with %d FP32 values" % n


def body_many_inputs(size):
    parts = []
    total = len(b'{"inputs":[]}')
    i = 0
    while True:
        item = b'{"name":"x%d","shape":[1],"datatype":"FP32","data":[1]}' % i
        if total + len(item) + 1 > size:
            break
        parts.append(item)
        total += len(item) + 1
        i += 1
    body = b'{"inputs":[' + b",".join(parts) + b"]}"
    return body, {}, "/v2/models/mlp/infer", 400, "%d small inputs named x<i>" % len(parts)


def dither_hw(values):
    """H, W with 3*H*W close to `values`, H about W."""
    hw = values // 3
    h_ = int(math.isqrt(hw))
    return h_, hw // h_


def body_dither_json(size, valid):
    head = b'{"inputs":[{"name":"image","shape":[1,3,%d,%d],"datatype":"FP32","data":['
    tail = b']}],"outputs":[{"name":"output","parameters":{"binary_data":true}}]}'
    H, W = dither_hw((size - len(head) - len(tail) - 20) // 2)
    count = 3 * H * W
    n = count if valid else count - 1
    body = (head % (H, W)) + ones(n) + tail
    what = "dither image [1,3,%d,%d] as JSON, %d of %d values" % (H, W, n, count)
    return body, {}, "/v2/models/dither/infer", 200 if valid else 400, what


def binary_body(header_obj, payload):
    hdr = json.dumps(header_obj, separators=(",", ":")).encode()
    return hdr + payload, {"Inference-Header-Content-Length": str(len(hdr)),
                           "Content-Type": "application/octet-stream"}


def body_resnet18_binary(batch):
    n = batch * 3 * 224 * 224
    payload = struct.pack("<f", 0.5) * n
    body, headers = binary_body(
        {"inputs": [{"name": "input", "shape": [batch, 3, 224, 224], "datatype": "FP32",
                     "parameters": {"binary_data_size": len(payload)}}],
         "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}, payload)
    return body, headers, "/v2/models/resnet18/infer", 200, "resnet18 batch %d, binary" % batch


def body_dither_binary(size):
    H, W = dither_hw(size // 4)
    payload = struct.pack("<f", 0.5) * (3 * H * W)
    body, headers = binary_body(
        {"inputs": [{"name": "image", "shape": [1, 3, H, W], "datatype": "FP32",
                     "parameters": {"binary_data_size": len(payload)}}],
         "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}, payload)
    return body, headers, "/v2/models/dither/infer", 200, "dither image [1,3,%d,%d], binary" % (H, W)


WARMUP = {
    "mlp": (b'{"inputs":[{"name":"input","shape":[1,16],"datatype":"FP32",'
            b'"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}]}', {}),
    "dither": (b'{"inputs":[{"name":"image","shape":[1,3,2,2],"datatype":"FP32",'
               b'"data":[0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,0]}]}', {}),
    "resnet18": binary_body(
        {"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                     "parameters": {"binary_data_size": 602112}}]},
        struct.pack("<f", 0.5) * (3 * 224 * 224)),
}


# --------------------------------------------------------------------------
# HTTP


def chunks(data, size=1 << 20):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def send(port, path, body, headers, mode="plain"):
    """One POST on a new connection; returns (status, first 300 bytes of the
    answer, answer length, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S)
    t0 = time.monotonic()
    try:
        if mode == "chunked":
            conn.putrequest("POST", path)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for piece in chunks(body):
                conn.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        else:
            conn.request("POST", path, body, headers)
        r = conn.getresponse()
        data = r.read()
        return r.status, data[:300].decode("utf-8", "replace"), len(data), time.monotonic() - t0
    finally:
        conn.close()


# --------------------------------------------------------------------------
# Cases


def build_case(case, size):
    """(model for the warm-up, body, headers, path, expected status, what,
    transfer mode, bytes on the wire)."""
    if case == "json-unknown-input":
        body, hd, path, want, what = body_unknown_input(size)
        return "mlp", body, hd, path, want, what, "plain", len(body)
    if case == "json-unknown-input-chunked":
        body, hd, path, want, what = body_unknown_input(size)
        return "mlp", body, hd, path, want, what + ", chunked", "chunked", len(body)
    if case == "json-unknown-input-gzip":
        body, hd, path, want, what = body_unknown_input(size)
        wire = gzip.compress(body, compresslevel=6)
        hd = dict(hd, **{"Content-Encoding": "gzip"})
        return "mlp", body, hd, path, want, what + ", gzip", ("gzip", wire), len(wire)
    if case == "json-many-inputs":
        body, hd, path, want, what = body_many_inputs(size)
        return "mlp", body, hd, path, want, what, "plain", len(body)
    if case == "json-dither-decoded-400":
        body, hd, path, want, what = body_dither_json(size, valid=False)
        return "dither", body, hd, path, want, what, "plain", len(body)
    if case == "json-dither-valid":
        body, hd, path, want, what = body_dither_json(size, valid=True)
        return "dither", body, hd, path, want, what, "plain", len(body)
    if case == "binary-resnet18-valid":
        batch = min(32, max(1, size // (3 * 224 * 224 * 4)))
        body, hd, path, want, what = body_resnet18_binary(batch)
        return "resnet18", body, hd, path, want, what, "plain", len(body)
    if case == "binary-dither-valid":
        body, hd, path, want, what = body_dither_binary(size)
        return "dither", body, hd, path, want, what, "plain", len(body)
    raise ValueError("unknown case %s" % case)


CASES = ["json-unknown-input", "json-unknown-input-chunked", "json-unknown-input-gzip",
         "json-many-inputs", "json-dither-decoded-400", "json-dither-valid",
         "binary-resnet18-valid", "binary-dither-valid"]


def run_once(case, size):
    model, body, headers, path, want, what, mode, wire_len = build_case(case, size)
    server = h.ServerProcess(args=["--max-body-bytes", MAX_BODY]).start()
    pid = server.proc.pid
    try:
        wbody, wheaders = WARMUP[model]
        st, msg, _, _ = send(server.port, "/v2/models/%s/infer" % model, wbody, wheaders)
        if st != 200:
            raise AssertionError("warm-up for %s got %s: %s" % (model, st, msg))
        time.sleep(0.3)
        before = proc_status(pid)
        reset = reset_peak(pid)
        after_reset = proc_status(pid)
        if isinstance(mode, tuple):  # gzip: send the compressed bytes
            st, msg, resp_len, secs = send(server.port, path, mode[1], headers)
        else:
            st, msg, resp_len, secs = send(server.port, path, body, headers, mode)
        after = proc_status(pid)
        time.sleep(SETTLE_S)
        settled = proc_status(pid)
    finally:
        rc = server.stop()
    if st != want:
        raise AssertionError("%s at %d bytes: expected %s, got %s: %s" % (case, size, want, st, msg))
    base = before["VmRSS"]
    peak_base = after_reset["VmHWM"] if reset else before["VmHWM"]
    return {
        "what": what,
        "body_bytes": len(body),
        "wire_bytes": wire_len,
        "status": st,
        "answer": msg if st != 200 else "(%d bytes)" % resp_len,
        "seconds": round(secs, 3),
        "rss_before": base,
        "hwm_before": before["VmHWM"],
        "hwm_reset": reset,
        "hwm_after_reset": after_reset["VmHWM"],
        "hwm_after": after["VmHWM"],
        "rss_after": after["VmRSS"],
        "rss_settled": settled["VmRSS"],
        # The peak is only this request's if the reset worked or the
        # request's peak rose above the startup peak.
        "peak_is_request": reset or after["VmHWM"] > peak_base,
        "peak_minus_baseline": after["VmHWM"] - base,
        "multiple": (after["VmHWM"] - base) / len(body),
        "retained_multiple": (settled["VmRSS"] - base) / len(body),
        "exit_code": rc,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes-mib", default="8,32,64")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    h.require_models("mlp", "dither", "resnet18")
    sizes = [int(s) << 20 for s in args.sizes_mib.split(",")]
    results = []
    for case in args.cases.split(","):
        case_sizes = sizes
        if case == "binary-resnet18-valid":  # batch 13 (7.8 MB) and 32 (19.3 MB), its maximum
            case_sizes = sorted({min(s, 32 * 602112 + 1000) for s in sizes})
        for size in case_sizes:
            runs = [run_once(case, size) for _ in range(args.repeats)]
            mult = statistics.median(r["multiple"] for r in runs)
            ret = statistics.median(r["retained_multiple"] for r in runs)
            entry = {"case": case, "target_bytes": size, "body_bytes": runs[0]["body_bytes"],
                     "what": runs[0]["what"], "status": runs[0]["status"],
                     "median_multiple": round(mult, 3),
                     "median_peak_minus_baseline_mib": round(
                         statistics.median(r["peak_minus_baseline"] for r in runs) / 2**20, 1),
                     "median_retained_multiple": round(ret, 3),
                     "runs": runs}
            results.append(entry)
            print("%-28s %6.1f MiB body  status %d  peak-baseline %7.1f MiB  = %5.2f x body"
                  "  (retained after %.0f s: %5.2f x)  [%s]"
                  % (case, entry["body_bytes"] / 2**20, entry["status"],
                     entry["median_peak_minus_baseline_mib"], mult, SETTLE_S, ret, entry["what"]),
                  flush=True)
    date = datetime.date.today().isoformat()
    out = args.out or os.path.join(ROOT, "bench", "results", "request_memory-%s.json" % date)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    doc = {
        "benchmark": "request_memory",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "build/inferd serve --model-repository examples/models --host 127.0.0.1 "
                   "--http-port 0 --max-body-bytes %d" % MAX_BODY,
        "binary": h.binary_info(),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "note": "the load generator (this script) shares the cores with the server"},
        "method": "fresh server per run; warm-up request; baseline VmRSS; VmHWM reset via "
                  "/proc/PID/clear_refs; one request; multiple = (VmHWM - baseline VmRSS) / "
                  "body bytes (decompressed); median of repeats",
        "repeats": args.repeats,
        "results": results,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
