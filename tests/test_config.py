"""Server configuration: precedence flag > INFERD_* env > config file >
default (observed through max_body_bytes: a body is accepted or gets 413),
every setting from each source, bad settings failing at start with a message
naming the key, and a repository with broken models serving the good ones.
"""

import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import inferd_harness as h  # noqa: E402

MLP = "/v2/models/mlp/infer"


def body_of_size(n):
    """A valid mlp request of exactly n bytes (JSON padded with spaces)."""
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                                   "data": [0.5] * 16}]}).encode()
    assert len(body) <= n
    return body + b" " * (n - len(body))


class ConfigTestCase(unittest.TestCase):
    def setUp(self):
        h.require_models("mlp")
        self.tmp = tempfile.mkdtemp(prefix="inferd-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.repo = os.path.join(self.tmp, "models")
        os.makedirs(self.repo)
        h.copy_model("mlp", self.repo)

    def write_config(self, text, name="inferd.toml"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def serve(self, args=(), env=None, base_args=True):
        server = h.ServerProcess(self.repo, args=args, env=env, base_args=base_args).start()
        self.addCleanup(server.kill)
        return server

    def stop(self, server):
        server.assert_stopped_cleanly(self)

    def fails_to_start(self, args=(), env=None, mentions=()):
        server = h.ServerProcess(self.repo, args=args, env=env)
        self.addCleanup(server.kill)
        rc = server.launch().wait_exit()
        self.assertIsNotNone(rc, "inferd started although it should not have:\n" + server.output())
        self.assertNotEqual(rc, 0, server.output())
        for word in mentions:
            self.assertIn(word.lower(), server.output().lower(),
                          "the error output should name %r" % word)


class PrecedenceTest(ConfigTestCase):
    def accepts(self, server, size):
        """True if a `size`-byte body is served, False if it gets 413."""
        with server.raw() as raw:
            raw.send(h.request_bytes("POST", MLP, body_of_size(size), {"Content-Type": "application/json"}))
            r = raw.read_response()
        self.assertIn(r.status, (200, 413), r.describe())
        if r.status == 413:
            self.assertTrue(r.json().get("error"), r.describe())
        return r.status == 200

    def check_limit(self, server, accepted, rejected):
        self.assertTrue(self.accepts(server, accepted), "a %d-byte body got 413" % accepted)
        self.assertFalse(self.accepts(server, rejected), "a %d-byte body was accepted" % rejected)

    def test_default(self):
        server = self.serve()
        self.assertTrue(self.accepts(server, 1 << 20), "the default max_body_bytes is below 1 MiB")
        self.stop(server)

    def test_file_over_default(self):
        config = self.write_config("max_body_bytes = 1000\n")
        server = self.serve(["--config", config])
        self.check_limit(server, 900, 1500)
        self.stop(server)

    def test_env_over_file(self):
        config = self.write_config("max_body_bytes = 1000\n")
        server = self.serve(["--config", config], env={"INFERD_MAX_BODY_BYTES": "2000"})
        self.check_limit(server, 1500, 2500)
        self.stop(server)

    def test_flag_over_env_over_file(self):
        config = self.write_config("max_body_bytes = 1000\n")
        server = self.serve(["--config", config, "--max-body-bytes", "3000"],
                            env={"INFERD_MAX_BODY_BYTES": "2000"})
        self.check_limit(server, 2500, 3500)
        self.stop(server)

    def test_flag_over_env(self):
        server = self.serve(["--max-body-bytes", "3000"], env={"INFERD_MAX_BODY_BYTES": "2000"})
        self.check_limit(server, 2500, 3500)
        self.stop(server)

    def test_everything_from_the_config_file(self):
        config = self.write_config('model_repository = %s\nhost = "127.0.0.1"\nhttp_port = 0\n'
                                   'max_body_bytes = 1000\nlog_level = "info"\n' % json.dumps(self.repo))
        server = self.serve(["--config", config], base_args=False)
        self.check_limit(server, 900, 1500)
        self.stop(server)

    def test_everything_from_the_environment(self):
        server = self.serve([], base_args=False, env={
            "INFERD_MODEL_REPOSITORY": self.repo, "INFERD_HOST": "127.0.0.1", "INFERD_HTTP_PORT": "0",
            "INFERD_MAX_BODY_BYTES": "1000", "INFERD_LOG_LEVEL": "info"})
        self.check_limit(server, 900, 1500)
        self.stop(server)

    def test_config_file_via_environment(self):
        config = self.write_config("max_body_bytes = 1000\n")
        server = self.serve([], env={"INFERD_CONFIG": config})
        self.check_limit(server, 900, 1500)
        self.stop(server)


class BadSettingsTest(ConfigTestCase):
    def test_unknown_key_in_config_file(self):
        config = self.write_config("max_body_bytes = 1000\nno_such_setting = 1\n")
        self.fails_to_start(["--config", config], mentions=["no_such_setting"])

    def test_unknown_key_in_a_table(self):
        config = self.write_config("[http]\nbogus_key = 2\n")
        self.fails_to_start(["--config", config], mentions=["bogus_key"])

    def test_wrong_type_in_config_file(self):
        config = self.write_config('max_body_bytes = "lots"\n')
        self.fails_to_start(["--config", config], mentions=["max_body_bytes"])

    def test_invalid_toml(self):
        config = self.write_config("max_body_bytes = = 3\n")
        self.fails_to_start(["--config", config], mentions=[os.path.basename(config)])

    def test_missing_config_file(self):
        self.fails_to_start(["--config", os.path.join(self.tmp, "absent.toml")], mentions=["absent.toml"])

    def test_wrong_type_in_environment(self):
        self.fails_to_start(env={"INFERD_MAX_BODY_BYTES": "lots"}, mentions=["max_body_bytes"])

    def test_unknown_flag(self):
        self.fails_to_start(["--no-such-flag", "1"], mentions=["no-such-flag"])

    def test_exact_repeat_share_out_of_range(self):
        self.fails_to_start(["--cache-exact-repeat-share", "1.5"], mentions=["cache.exact_repeat_share"])

    def test_missing_model_repository(self):
        server = h.ServerProcess(os.path.join(self.tmp, "no-such-dir"))
        self.addCleanup(server.kill)
        rc = server.launch().wait_exit()
        self.assertIsNotNone(rc, "inferd started on a missing repository:\n" + server.output())
        self.assertNotEqual(rc, 0)
        self.assertIn("no-such-dir", server.output())


BROKEN_MODELS = {
    # name: (config.toml text or None for mlp's, model.pt bytes or None for mlp's, words in the reason)
    "bad_batch": ('backend = "torchscript"\nmax_batch_size = "x"\n'
                  + h.tensor_toml("input", "input", "FP32", [16])
                  + h.tensor_toml("output", "output", "FP32", [4]),
                  None, ["config.toml", "max_batch_size"]),
    "bad_dtype": ('backend = "torchscript"\nmax_batch_size = 4\n'
                  + h.tensor_toml("input", "input", "FP99", [16])
                  + h.tensor_toml("output", "output", "FP32", [4]),
                  None, ["config.toml", "datatype", "FP99"]),
    "bad_key": ('backend = "torchscript"\nmax_batch_size = 4\nmax_batch_sise = 4\n'
                + h.tensor_toml("input", "input", "FP32", [16])
                + h.tensor_toml("output", "output", "FP32", [4]),
                None, ["config.toml", "max_batch_sise"]),
    "bad_weights": (None, b"this is not a TorchScript archive", ["model.pt"]),
}


class BrokenModelTest(h.ServerTestCase):
    """A repository with mlp and broken models: the server starts, mlp
    serves, each broken model is FAILED with a reason naming the file and
    the field (the harness preloads every model, so bad weights fail at
    start)."""

    models = ("mlp",)

    @classmethod
    def prepare_repository(cls, repo):
        for name, (config, weights, _) in BROKEN_MODELS.items():
            h.copy_model("mlp", repo, new_name=name, config_text=config)
            if weights is not None:
                path = os.path.join(repo, name, "1", "model.pt")
                os.remove(path)
                with open(path, "wb") as f:
                    f.write(weights)

    def test_good_model_serves(self):
        with self.server.client() as c:
            self.assertEqual(c.get("/v2/health/ready").status, 200)
            self.assertEqual(c.get("/v2/models/mlp/ready").status, 200)
            r, d = c.infer("mlp", [h.Input("input", np.zeros((1, 16), np.float32))])
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(d.outputs["output"].shape, (1, 4))

    def test_broken_models_are_unavailable_with_a_reason(self):
        with self.server.client() as c:
            r = c.request("POST", "/v2/repository/index", body=b"{}", headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 200, r.describe())
            index = {e["name"]: e for e in r.json()}
        self.assertEqual(index["mlp"]["state"], "READY")
        for name, (_, _, words) in BROKEN_MODELS.items():
            with self.subTest(model=name):
                self.assertIn(name, index)
                self.assertEqual(index[name]["state"], "FAILED", index[name])
                reason = index[name].get("reason", "")
                for word in words:
                    self.assertIn(word, reason, "reason for %s: %r" % (name, reason))

    def test_broken_model_ready_is_503_with_reason(self):
        with self.server.client() as c:
            for name, (_, _, words) in BROKEN_MODELS.items():
                with self.subTest(model=name):
                    r = c.get("/v2/models/%s/ready" % name)
                    self.assertEqual(r.status, 503, r.describe())
                    self.assertIn(words[-1], r.json()["error"], r.describe())

    def test_broken_model_refuses_inference(self):
        with self.server.client() as c:
            for name in BROKEN_MODELS:
                with self.subTest(model=name):
                    r, _ = c.infer(name, [h.Input("input", np.zeros((1, 16), np.float32))])
                    self.assertIn(r.status, (400, 404, 503), r.describe())
                    self.assertTrue(r.json().get("error"), r.describe())
            r, _ = c.infer("mlp", [h.Input("input", np.zeros((1, 16), np.float32))])
            self.assertEqual(r.status, 200, r.describe())


if __name__ == "__main__":
    unittest.main()
