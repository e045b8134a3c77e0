#!/usr/bin/env python3
"""Where a memo hit's CPU goes, kernel included, inferd against nginx.

bench/hit_instructions.py counts user-space instructions only, and this
VM has no hardware counters; this samples both servers with the kernel's
cpu-clock software event (`perf record -e cpu-clock`, kernel and user
space) while wrk posts the memo-hit workload of bench/wrk_hits_bench.py,
and reports the sampled CPU time per request by function (kernel symbols
marked [k]) for each server, and the functions whose time differs most.
Rounds alternate between the servers, as in bench/hit_ab_bench.py; the
samples of all rounds are pooled. Needs root (perf on other processes and
kernel symbols; without it `perf report` fails). wrk and the servers share the machine's 2 cores.

    /usr/bin/python3 bench/hit_profile_diff.py [--build build] [--http-threads 2] \\
        [--rounds 2] [--duration-s 5] [--frequency 5000] [--top 30] [--out FILE]
"""

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_e2e_bench as e2e  # noqa: E402
import wrk_hits_bench as wrk_hits  # noqa: E402

PATH = "/v2/models/mlp_cached/infer"


def record(url, script, pid, args, data_file):
    """Runs wrk against url with perf sampling the server; returns requests."""
    pids = e2e.process_tree(pid)
    perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(args.frequency),
                             "-o", data_file, "-p", ",".join(str(p) for p in pids)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # perf attaches; not a synchronization of the measured work
        out = subprocess.run(["wrk", "-t1", "-c32", "-d%ds" % args.duration_s, "-s", script, url],
                             capture_output=True, text=True, check=True).stdout
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    return int(re.search(r"(\d+) requests in", out).group(1))


def samples_by_symbol(data_file):
    """{(space, symbol): samples} from one perf.data ('k' kernel, 'u' user)."""
    out = subprocess.run(["perf", "report", "-i", data_file, "--sort", "sym", "--stdio", "-n"],
                         capture_output=True, text=True, check=True).stdout
    counts = {}
    for line in out.splitlines():
        m = re.match(r"\s+[\d.]+%\s+(\d+)\s+\[(.)\]\s+(.*)", line)
        if m:
            space = "k" if m.group(2) == "k" else "u"
            counts[(space, m.group(3).strip())] = int(m.group(1))
    return counts


# Coarse groups of symbols, for a summary that both servers share.
KERNEL_FD = ("fdget", "fput", "fdget_pos", "__fget_light", "__fget_files", "__fput")
KERNEL_SCHED = ("finish_task_switch", "__schedule", "schedule", "__rseq_handle_notify_resume",
                "exit_to_user_mode_loop", "try_to_wake_up", "ttwu_", "enqueue_", "dequeue_",
                "pick_next_", "update_curr", "update_load_avg", "select_task_rq", "psi_",
                "__switch_to", "switch_mm", "prepare_task_switch", "set_next_entity",
                "put_prev_", "check_preempt", "resched_curr", "newidle_balance", "schedule_hrtimeout")
USER_CLOCK = ("__vdso_clock_gettime", "clock_gettime", "__vdso_gettimeofday", "gettimeofday")
USER_SYSCALL = ("__libc_recv", "__libc_sendmsg", "__GI___writev", "writev", "epoll_wait", "recv",
                "__GI___pthread_disable_asynccancel", "__GI___pthread_enable_asynccancel")
USER_MEMORY = ("malloc", "cfree", "free", "_int_malloc", "_int_free", "operator new",
               "operator delete", "__memmove", "__memcpy", "__memset", "__memcmp", "__strlen",
               "malloc_consolidate", "tcache_")
USER_LOOP = ("boost::asio::", "pthread_mutex", "__GI___pthread_mutex", "inferd::http::drained_read",
             "ngx_epoll_", "ngx_process_events", "ngx_event_")


def group(space, sym):
    """The summary group of a symbol."""
    starts = lambda names: any(sym.startswith(n) for n in names)  # noqa: E731
    if space == "k":
        if starts(KERNEL_FD):
            return "kernel: file lookup (fdget/fput)"
        if starts(KERNEL_SCHED):
            return "kernel: scheduling (switches, wake-ups, rseq)"
        return "kernel: the rest (TCP, syscall entry, epoll, copies)"
    if starts(USER_CLOCK):
        return "user: clock reads"
    if starts(USER_SYSCALL):
        return "user: system call wrappers"
    if starts(USER_MEMORY):
        return "user: malloc, free, mem*/str*"
    if starts(USER_LOOP):
        return "user: event loop (Asio or nginx's), locks"
    return "user: the server's own code"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build", help="directory with an inferd binary and backends/")
    ap.add_argument("--http-threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration-s", type=int, default=5)
    ap.add_argument("--frequency", type=int, default=5000, help="samples per second per CPU")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", help="write the per-symbol figures as JSON")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="inferd-hit-profile-")
    repo, req, script = wrk_hits.hit_workload(tmp)
    e2e.INFERD = os.path.join(os.path.abspath(args.build), "inferd")
    proc, url = e2e.start_inferd(repo, ["--http-threads", str(args.http_threads)])
    servers = [("inferd", proc, url + PATH)]
    try:
        metadata = e2e.http_get(url + "/v2/models/mlp_cached")
        for _ in range(3):  # a miss, a canonical hit (memoized), then a memo hit
            response = e2e.http_get(url + PATH, req.encode())
        port = e2e.free_port()
        nginx = e2e.start_nginx(tmp, port, metadata, response, workers=args.http_threads)
        servers.append(("nginx", nginx, "http://127.0.0.1:%d%s" % (port, PATH)))
        samples = {name: collections.Counter() for name, _, _ in servers}
        requests = {name: 0 for name, _, _ in servers}
        for r in range(args.rounds):
            for name, p, u in servers:
                data_file = os.path.join(tmp, "perf-%s-%d.data" % (name, r))
                requests[name] += record(u, script, p.pid, args, data_file)
                samples[name].update(samples_by_symbol(data_file))
                os.unlink(data_file)
    finally:
        for name, p, _ in servers:
            p.send_signal(signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
            p.wait(timeout=60)
    us_per_sample = 1e6 / args.frequency
    per_req = {name: {k: v * us_per_sample / requests[name] for k, v in samples[name].items()}
               for name in samples}
    result = {"command": " ".join([os.path.relpath(sys.argv[0], e2e.ROOT)] + sys.argv[1:]),
              "machine": "2 cores shared by the servers and wrk",
              "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "http_threads": args.http_threads, "requests": requests, "servers": {}}
    for name, figures in per_req.items():
        kernel = sum(v for (space, _), v in figures.items() if space == "k")
        user = sum(v for (space, _), v in figures.items() if space == "u")
        top = sorted(figures.items(), key=lambda kv: -kv[1])[:args.top]
        groups = collections.Counter()
        for (space, sym), v in figures.items():
            groups[group(space, sym)] += v
        result["servers"][name] = {
            "kernel_us_per_req": kernel, "user_us_per_req": user,
            "groups": {g: round(v, 4) for g, v in sorted(groups.items())},
            "top": [[round(v, 4), "[%s] %s" % (space, sym)] for (space, sym), v in top]}
        print("%-7s kernel %.2f + user %.2f us per request (sampled; %d requests)"
              % (name, kernel, user, requests[name]))
    print("us per request by group: inferd, nginx")
    gi, gn = result["servers"]["inferd"]["groups"], result["servers"]["nginx"]["groups"]
    for g in sorted(set(gi) | set(gn)):
        print("  %-52s %6.3f %6.3f" % (g, gi.get(g, 0), gn.get(g, 0)))
    a, b = per_req["inferd"], per_req["nginx"]
    diff = sorted(set(a) | set(b), key=lambda k: -(a.get(k, 0) - b.get(k, 0)))
    result["inferd_more"] = [[round(a.get(k, 0) - b.get(k, 0), 4), round(a.get(k, 0), 4),
                              round(b.get(k, 0), 4), "[%s] %s" % k] for k in diff[:args.top]]
    print("us per request, inferd - nginx (inferd, nginx):")
    for d, x, y, sym in result["inferd_more"]:
        print("  %+.3f  (%.3f, %.3f)  %s" % (d, x, y, sym[:90]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
