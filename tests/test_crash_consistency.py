"""Crash consistency of the disk tier (issue 7, items 11 and 12).

- kill -9 in the middle of a burst of distinct requests, restart on the same
  directory and re-send: every entry the disk writer had written before the
  kill is served from disk (goal: at least 90%; the writer goes through the
  write-ahead log, so all of them), and every answer, from the cache or not,
  equals the model's.
- An acknowledged invalidation survives a crash that also loses everything
  written after it (as a power loss loses the write-ahead log's unsynced
  tail): model A's answers are cached, model.pt is replaced by model B under
  the same version, `DELETE /v2/cache/models/mlp` is answered, more writes
  follow, the process is killed with SIGKILL and the log is cut back to its
  size at the acknowledgment. After a restart no answer is model A's.

Nothing waits on time: the tests poll the cache stats (entries written by
the disk writer) with a deadline.
"""

import glob
import os
import shutil
import signal
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import inferd_harness as h  # noqa: E402
import test_cache as tc  # noqa: E402

BURST = 200


class CrashConsistencyTest(tc.ServersTestCase):
    @classmethod
    def setUpClass(cls):
        tc.require_flag("--cache-disk-path")
        super().setUpClass()

    def disk_writes(self, server):
        return tc.stats(server)["tiers"]["disk"]["writes"]

    def wait_disk_writes(self, server, at_least):
        h.wait_until(lambda: self.disk_writes(server) >= at_least, timeout=60,
                     what="the disk writer to write %d entries" % at_least)

    def send_all(self, server, inputs, model=None, threads=4):
        """Sends every input once, from `threads` clients; returns
        {index: (cache status, output)} for the ones answered 200."""
        results = {}
        lock = threading.Lock()

        def client(k):
            try:
                with server.client() as c:
                    for i in range(k, len(inputs), threads):
                        r, d = tc.infer(c, "mlp", [inputs[i]])
                        if r.status != 200:
                            continue
                        with lock:
                            results[i] = (tc.cache_status(r), d.outputs["output"])
            except (OSError, ConnectionError, h.http.client.HTTPException):
                pass  # the server was killed under this client

        ts = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=h.HTTP_TIMEOUT_S)
        return results

    def expected(self, module, inp):
        return h.torch_forward(module, inp.data)

    def test_kill_mid_burst_keeps_what_was_written(self):
        path = os.path.join(self.tmp, "l2")
        first = [tc.mlp_input(10_000 + i) for i in range(BURST)]
        second = [tc.mlp_input(20_000 + i) for i in range(BURST)]
        s1 = self.start("--cache-disk-path", path)
        answered = self.send_all(s1, first)
        self.assertEqual(len(answered), BURST)
        self.wait_disk_writes(s1, BURST)

        # A second burst, killed in its middle: once about half is answered.
        killer_done = threading.Event()

        def half_written():
            try:
                return self.disk_writes(s1) >= BURST + BURST // 4
            except (OSError, AssertionError, h.http.client.HTTPException):
                return not s1.alive()

        def kill_when_half_done():
            h.wait_until(half_written, timeout=120, what="half of the second burst")
            s1.proc.send_signal(signal.SIGKILL)
            killer_done.set()

        killer = threading.Thread(target=kill_when_half_done)
        killer.start()
        self.send_all(s1, second, threads=2)
        killer.join(timeout=130)
        self.assertTrue(killer_done.is_set())
        s1.proc.wait(timeout=60)

        s2 = self.start("--cache-disk-path", path)
        again = self.send_all(s2, first)
        self.assertEqual(len(again), BURST)
        from_disk = sum(1 for status, _ in again.values() if status == "hit-disk")
        self.assertGreaterEqual(from_disk, 0.9 * BURST,
                                "only %d of %d entries written before the kill were served from "
                                "disk after it" % (from_disk, BURST))
        for i, (status, out) in again.items():
            self.assertLessEqual(h.max_abs_diff(out, self.expected(self.torch_mlp, first[i])), 1e-5,
                                 "answer %d (%s) differs from the model's" % (i, status))
        for i, (status, out) in self.send_all(s2, second).items():
            self.assertLessEqual(h.max_abs_diff(out, self.expected(self.torch_mlp, second[i])), 1e-5,
                                 "answer %d (%s) differs from the model's" % (i, status))
        sys.stderr.write("\n[crash] %d of %d entries written before kill -9 served from disk\n"
                         % (from_disk, BURST))
        self.stop(s2)

    def test_invalidation_survives_losing_the_log_tail(self):
        path = os.path.join(self.tmp, "l2")
        inputs = [tc.mlp_input(30_000 + i) for i in range(BURST)]
        s1 = self.start("--cache-disk-path", path)
        self.assertEqual(len(self.send_all(s1, inputs)), BURST)
        self.wait_disk_writes(s1, BURST)
        self.stop(s1)  # model A's answers are in SST files

        # Model B under the same name and version: A's weights, changed.
        model_b = torch.jit.load(h.model_file("mlp"))
        with torch.no_grad():
            for p in model_b.parameters():
                p.mul_(-0.5).add_(0.25)
        target = os.path.join(self.repo, "mlp", "1", "model.pt")
        os.remove(target)  # a symlink to the example model: never write through it
        torch.jit.save(model_b, target)
        model_b = torch.jit.load(target)

        s2 = self.start("--cache-disk-path", path)
        with s2.client() as c:
            r = c.request("DELETE", "/v2/cache/models/mlp")
        self.assertEqual(r.status, 200, r.describe())
        acknowledged = {f: os.path.getsize(f) for f in glob.glob(os.path.join(path, "*.log"))}
        self.assertTrue(acknowledged, "no write-ahead log in %s" % os.listdir(path))
        # Writes after the acknowledgment: the unsynced tail a power loss may lose.
        extra = [tc.mlp_input(40_000 + i) for i in range(50)]
        self.send_all(s2, extra)
        self.wait_disk_writes(s2, len(extra))
        s2.proc.send_signal(signal.SIGKILL)
        s2.proc.wait(timeout=60)
        for f in glob.glob(os.path.join(path, "*.log")):
            size = acknowledged.get(f, 0)
            with open(f, "r+b") as fh:
                fh.truncate(size)

        s3 = self.start("--cache-disk-path", path)
        answers = self.send_all(s3, inputs)
        self.assertEqual(len(answers), BURST)
        stale = [i for i, (_, out) in answers.items()
                 if h.max_abs_diff(out, self.expected(model_b, inputs[i])) > 1e-5]
        self.assertEqual(stale, [], "%d answers came from model A after the invalidation"
                         % len(stale))
        self.stop(s3)


if __name__ == "__main__":
    unittest.main()
