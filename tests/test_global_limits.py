"""Global rate limits (issue 10, item 2): with `[rate_limits] redis_url`, every
rate limit is shared through Redis by all the inferd processes that use it
(one atomic Lua script per decision); while Redis is unreachable each process
decides locally with its share of the limit (rate and burst divided by
`rate_limits.instances`), and no request waits for Redis beyond the timeout.

Two inferd processes and a real redis-server (started here, killed with
`kill -9` mid-test). One tenant at 20 requests/s, burst 20, `instances = 2`;
each process is offered about 30 requests/s, paced by the client's clock:

  - with Redis: both together admit burst + 20 x elapsed (+-5 %);
  - after Redis is killed: each admits its share, 10 + 10 x elapsed, and
    its fallback counter rises; no request outlives a 2 s client timeout.

Counts come from the answers (200 or 429), elapsed time from the client's
clock; nothing synchronizes with sleeps (only the sends are paced).
"""

import os
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import inferd_harness as h  # noqa: E402
from test_cache import REDIS_SERVER, RedisServer  # noqa: E402
from test_tenants import keygen  # noqa: E402

RATE = 20  # the tenant's requests/s, shared by both processes
BURST = 20
INSTANCES = 2
OFFERED = 30  # requests/s offered to each process
GLOBAL_S = 6  # seconds of the phase with Redis
FALLBACK_S = 5  # seconds of the phase without
CLIENT_TIMEOUT_S = 2.0
# Generous for a loaded 2-core machine (a decision waits at most about twice
# this), and still well inside the client's timeout.
REDIS_TIMEOUT_MS = 400


def paced_sends(server, key, rate, seconds, t0, out):
    """Sends `rate` x `seconds` identical requests on one keep-alive
    connection, the i-th not before t0 + i / rate; appends (sent, status,
    latency, error message) to `out`, or an exception."""
    x = np.full((1, 16), 0.25, dtype=np.float32)
    body, headers = h.encode_infer_request([h.Input("input", x)])
    headers["Authorization"] = "Bearer " + key
    client = h.Client(server.host, server.port, timeout=CLIENT_TIMEOUT_S)
    try:
        for i in range(int(rate * seconds)):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing by the clock, not synchronization
            sent = time.monotonic()
            r = client.request("POST", h.infer_path("mlp"), body, headers)
            error = r.json().get("error", "") if r.status != 200 else ""
            out.append((sent, r.status, time.monotonic() - sent, error))
    except Exception as e:  # a timeout or a dropped connection: reported by the test
        out.append(e)
    finally:
        client.close()


def fallback_decisions(server):
    samples = h.parse_metrics(h.scrape(server))
    return sum(v for n, l, v in samples if n == "inferd_global_rate_limit_decisions_total"
               and l.get("result", "").startswith("fallback_"))


def redis_decisions(server):
    samples = h.parse_metrics(h.scrape(server))
    return sum(v for n, l, v in samples if n == "inferd_global_rate_limit_decisions_total"
               and l.get("result") in ("allowed", "limited"))


@unittest.skipUnless(os.path.exists(REDIS_SERVER), "needs " + REDIS_SERVER)
class GlobalLimitTest(unittest.TestCase):

    def setUp(self):
        h.require_models("mlp")
        self.tmp = tempfile.mkdtemp(prefix="inferd-global-")
        self.addCleanup(h.shutil.rmtree, self.tmp, True)
        self.redis = RedisServer(self.tmp).start()
        self.addCleanup(self.redis.kill)
        self.key, digest = keygen()
        config = os.path.join(self.tmp, "inferd.toml")
        with open(config, "w") as f:
            f.write('[rate_limits]\nredis_url = "%s"\ninstances = %d\ntimeout_ms = %d\n'
                    % (self.redis.url, INSTANCES, REDIS_TIMEOUT_MS))
            f.write('[[tenants]]\nname = "acme"\napi_key_sha256 = ["%s"]\n'
                    'requests_per_s = %d\nburst = %d\n' % (digest, RATE, BURST))
        repo = os.path.join(self.tmp, "models")
        os.makedirs(repo)
        h.copy_model("mlp", repo)
        self.servers = []
        for _ in range(2):
            s = h.ServerProcess(repo, args=("--config", config)).start()
            self.addCleanup(s.assert_stopped_cleanly, self)
            self.servers.append(s)

    def offer(self, seconds):
        """Offers OFFERED requests/s to each server at once for `seconds`;
        returns one list of answers per server."""
        t0 = time.monotonic() + 0.05
        answers = [[] for _ in self.servers]
        threads = [threading.Thread(target=paced_sends,
                                    args=(s, self.key, OFFERED, seconds, t0, out), daemon=True)
                   for s, out in zip(self.servers, answers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 120)
            self.assertFalse(t.is_alive(), "a sender hung")
        for out in answers:
            failures = [a for a in out if isinstance(a, Exception)]
            self.assertFalse(failures, "a request failed or outlived the client's %.0f s timeout: %r"
                             % (CLIENT_TIMEOUT_S, failures))
            self.assertEqual(len(out), int(OFFERED * seconds))
            statuses = {a[1] for a in out}
            self.assertLessEqual(statuses, {200, 429}, statuses)
            self.assertLess(max(a[2] for a in out), CLIENT_TIMEOUT_S)
        return answers

    @staticmethod
    def admitted(out):
        return sum(1 for a in out if a[1] == 200)

    @staticmethod
    def elapsed(*outs):
        sent = [a[0] for out in outs for a in out]
        return max(sent) - min(sent)

    def test_two_processes_share_one_limit_and_fall_back_to_their_share(self):
        # With Redis: one limit for both.
        answers = self.offer(GLOBAL_S)
        total = sum(self.admitted(out) for out in answers)
        elapsed = self.elapsed(*answers)
        expected = BURST + RATE * elapsed
        sys.stderr.write("\n[global] admitted %d of %d over %.2f s (expected %.1f); per process %s\n"
                         % (total, sum(map(len, answers)), elapsed, expected,
                            [self.admitted(out) for out in answers]))
        for s in self.servers:
            self.assertEqual(fallback_decisions(s), 0, "a decision fell back while Redis was up")
            self.assertGreater(redis_decisions(s), 0)
        self.assertLessEqual(abs(total - expected), 0.05 * expected,
                             "admitted %d, expected %.1f (+-5 %%)" % (total, expected))
        # Each process got some of the shared limit, and some of its refusals
        # came from Redis (the other process took the tokens).
        for out in answers:
            self.assertGreater(self.admitted(out), 0)
        errors = {a[3] for out in answers for a in out if a[1] == 429}
        self.assertTrue(any("shared by every server" in e for e in errors), errors)

        # Without Redis: each process admits its share (rate and burst / 2).
        before = [fallback_decisions(s) for s in self.servers]
        self.redis.kill()
        answers = self.offer(FALLBACK_S)
        share_rate, share_burst = RATE / INSTANCES, BURST // INSTANCES
        for s, out, fallbacks in zip(self.servers, answers, before):
            got = self.admitted(out)
            elapsed = self.elapsed(out)
            expected = share_burst + share_rate * elapsed
            sys.stderr.write("[fallback] port %d admitted %d of %d over %.2f s (expected %.1f), "
                             "slowest %.3f s\n" % (s.port, got, len(out), elapsed, expected,
                                                    max(a[2] for a in out)))
            self.assertLessEqual(abs(got - expected), 0.1 * expected + 2,
                                 "admitted %d, expected %.1f" % (got, expected))
            # Every request the full-rate local limit let through was decided
            # by the fallback.
            self.assertGreaterEqual(fallback_decisions(s) - fallbacks, got)
            errors = {a[3] for a in out if a[1] == 429}
            self.assertTrue(any("Redis unreachable" in e for e in errors), errors)


if __name__ == "__main__":
    unittest.main()
