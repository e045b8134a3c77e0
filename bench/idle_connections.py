#!/usr/bin/env python3
"""What an idle keep-alive connection costs the server, and how much of it
comes back when the connections close (issue 7, item 15).

For each mode and repeat, a fresh server:

    build/inferd serve --model-repository examples/models --host 127.0.0.1 --http-port 0

gets a few warm-up requests; then the script reads VmRSS from
/proc/PID/status (and the kernel's TCP memory from /proc/net/sockstat) and
opens N connections from this process:

  after-request   each connection sends one `GET /v2/health/live` and reads
                  the answer, then stays open (an idle keep-alive connection);
  no-request      each connection only connects and sends nothing.

It waits (bounded) until the server's `inferd_http_connections` gauge shows
all of them, reads VmRSS, closes them all, waits (bounded) until the gauge
is back to the one /metrics connection, and polls VmRSS for a bounded time.
It repeats this open-and-close round --rounds times on the same server, to
see whether the memory kept after the first round is reused or keeps
growing. Reported: KiB per connection
((open - before) / N) and the share that came back after closing
((open - closed) / (open - before)). Each figure is the median of --repeats
servers.

VmRSS counts the server process only: the kernel's socket buffers are not in
it (sockstat's TCP `mem`, in pages, is recorded for both ends of every
loopback connection, this client's included).

Usage, from the repository root (nothing is built; uses build/inferd):

    /usr/bin/python3 bench/idle_connections.py [--connections 5000] [--repeats 3] [--rounds 4]
        [--out bench/results/idle_connections-DATE.json]
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import resource
import socket
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import inferd_harness as h  # noqa: E402  (ServerProcess: start, port, stop)

WAIT_S = 30.0  # bound of every wait for the gauge
SETTLE_S = 7.0  # VmRSS is polled this long after closing (the server trims every 5 s)
REQUEST = b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
ANSWER_END = b'{"live":true}'


def rss(pid):
    return h.proc_status_bytes(pid, "VmRSS")


def tcp_mem_pages():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()[1:]
                return int(dict(zip(fields[::2], fields[1::2]))["mem"])
    return -1


def metric(port, name):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("metric %s missing" % name)


def wait_connections(port, want):
    """Polls until inferd_http_connections == want (the /metrics connection
    included); returns the last value."""
    deadline = time.monotonic() + WAIT_S
    while True:
        v = metric(port, "inferd_http_connections")
        if v == want or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def open_connections(port, n, send_request):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if send_request:
            s.sendall(REQUEST)
            got = b""
            while not got.endswith(ANSWER_END):
                piece = s.recv(4096)
                if not piece:
                    raise AssertionError("connection closed before the answer: %r" % got)
                got += piece
            if not got.startswith(b"HTTP/1.1 200"):
                raise AssertionError("unexpected answer %r" % got[:200])
        socks.append(s)
    return socks


def close_all(socks):
    for s in socks:
        s.close()


def settle(pid):
    """The lowest VmRSS seen over SETTLE_S seconds after closing: inferd
    gives freed connection memory back on a 5 s timer, so the poll covers
    one full period."""
    deadline = time.monotonic() + SETTLE_S
    low = rss(pid)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        low = min(low, rss(pid))
    return low


def run_once(n, send_request, rounds):
    server = h.ServerProcess().start()
    pid, port = server.proc.pid, server.port
    try:
        for _ in range(3):  # warm-up: every path this test touches
            close_all(open_connections(port, 1, True))
            metric(port, "inferd_http_connections")
        wait_connections(port, 1)
        time.sleep(0.3)
        before, tcp_before = rss(pid), tcp_mem_pages()
        opened, closed, tcp_open, left = [], [], [], []
        # Later rounds: is the memory kept after the first one reused?
        for _ in range(rounds):
            socks = open_connections(port, n, send_request)
            seen = wait_connections(port, n + 1)
            if seen != n + 1:
                raise AssertionError("server shows %s connections, expected %d" % (seen, n + 1))
            opened.append(rss(pid))
            tcp_open.append(tcp_mem_pages())
            close_all(socks)
            left.append(wait_connections(port, 1))
            closed.append(settle(pid))
        tcp_closed = tcp_mem_pages()
    finally:
        rc = server.stop()
    grown = opened[0] - before
    return {
        "rss_before": before, "rss_open": opened, "rss_closed": closed,
        "connections_after_close": left,
        "kib_per_connection": grown / n / 1024,
        "returned_fraction": (opened[0] - closed[0]) / grown if grown > 0 else None,
        "kept_mib_after_close": (closed[0] - before) / 2**20,
        "later_rounds_growth_mib": [(opened[i] - closed[i - 1]) / 2**20 for i in range(1, rounds)],
        "kept_mib_after_last_round": (closed[-1] - before) / 2**20,
        "tcp_mem_pages": {"before": tcp_before, "open": tcp_open, "closed": tcp_closed},
        "exit_code": rc,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connections", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=4,
                    help="open-and-close rounds per server (the first gives the cost)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    h.require_models("mlp", "dither", "resnet18")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))
    results = []
    for mode, send_request in (("after-request", True), ("no-request", False)):
        runs = [run_once(args.connections, send_request, args.rounds)
                for _ in range(args.repeats)]
        med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
        entry = {"mode": mode, "connections": args.connections,
                 "median_kib_per_connection": round(med("kib_per_connection"), 2),
                 "median_returned_fraction": round(med("returned_fraction"), 3),
                 "median_kept_mib_after_close": round(med("kept_mib_after_close"), 1),
                 "median_kept_mib_after_last_round": round(med("kept_mib_after_last_round"), 1),
                 "runs": runs}
        results.append(entry)
        print("%-14s %d connections: %.2f KiB each; after closing %.0f%% came back "
              "(%.1f MiB kept); after %d rounds %.1f MiB kept (growth per later round, MiB: %s)"
              % (mode, args.connections, entry["median_kib_per_connection"],
                 100 * entry["median_returned_fraction"], entry["median_kept_mib_after_close"],
                 args.rounds, entry["median_kept_mib_after_last_round"],
                 ", ".join("%.1f" % g for g in runs[len(runs) // 2]["later_rounds_growth_mib"])),
              flush=True)
    date = datetime.date.today().isoformat()
    out = args.out or os.path.join(ROOT, "bench", "results", "idle_connections-%s.json" % date)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    doc = {
        "benchmark": "idle_connections",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "build/inferd serve --model-repository examples/models --host 127.0.0.1 "
                   "--http-port 0",
        "binary": h.binary_info(),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "rlimit_nofile_client": resource.getrlimit(resource.RLIMIT_NOFILE),
                    "note": "the client (this script) shares the cores with the server"},
        "method": "fresh server per run; warm-up; VmRSS before, with N connections open "
                  "(gauge checked) and after closing them (bounded poll), for --rounds rounds; "
                  "median of repeats",
        "rounds": args.rounds,
        "repeats": args.repeats,
        "results": results,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
