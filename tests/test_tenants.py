"""Tenants, API keys and rate limits (issue 10, items 1 and 2): `Authorization: Bearer KEY` or
`X-Api-Key: KEY` name a [[tenants]] entry of the server's config file (which
holds only the keys' SHA-256); a missing key is 401 when auth is required,
an unknown key is always 401, a non-admin key on DELETE /v2/cache* is 403,
and the tenant scopes the response cache: no request of one tenant is ever
answered from another tenant's entry unless the model's cache scope is
"shared". The keys come from `inferd keygen`, run here."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import inferd_harness as h  # noqa: E402


def keygen():
    """(key, hash) from `inferd keygen`."""
    out = subprocess.run([h.INFERD_BIN, "keygen"], capture_output=True, text=True, check=True).stdout
    key = out.split('key = "', 1)[1].split('"', 1)[0]
    digest = out.split('api_key_sha256 = ["', 1)[1].split('"', 1)[0]
    return key, digest


def mlp_config(scope):
    with open(os.path.join(h.INFERD_MODELS, "mlp", "config.toml")) as f:
        return f.read() + '\n[response_cache]\nttl_s = 3600\nscope = "%s"\n' % scope


class TenantServer(h.ServerTestCase):
    """Two tenants: acme (admin) and beta; mlp caches per tenant, mlp_shared
    in one scope for all."""

    models = ()
    auth_required = True
    acme_extra = ""  # more lines of acme's [[tenants]] table
    extra_config = ""  # appended to the config file

    @classmethod
    def setUpClass(cls):
        cls.acme_key, acme_hash = keygen()
        cls.beta_key, beta_hash = keygen()
        cls.config_dir = h.tempfile.mkdtemp(prefix="inferd-tenants-")
        config = os.path.join(cls.config_dir, "inferd.toml")
        with open(config, "w") as f:
            f.write('[auth]\nrequired = %s\n' % ("true" if cls.auth_required else "false"))
            f.write('[[tenants]]\nname = "acme"\napi_key_sha256 = ["%s"]\nadmin = true\n%s' %
                    (acme_hash, cls.acme_extra))
            f.write('[[tenants]]\nname = "beta"\napi_key_sha256 = ["%s"]\n' % beta_hash)
            f.write(cls.extra_config)
        cls.server_args = ("--config", config) + cls.warm_args(cls.config_dir)
        super().setUpClass()

    @classmethod
    def warm_args(cls, directory):
        return ()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        h.shutil.rmtree(cls.config_dir, ignore_errors=True)

    @classmethod
    def prepare_repository(cls, repo):
        h.copy_model("mlp", repo, config_text=mlp_config("tenant"))
        h.copy_model("mlp", repo, new_name="mlp_shared", config_text=mlp_config("shared"))

    def infer(self, headers, model="mlp", seed=0):
        x = np.full((1, 16), 0.125 * (seed + 1), dtype=np.float32)
        body, hdrs = h.encode_infer_request([h.Input("input", x)])
        hdrs.update(headers)
        return self.client().request("POST", h.infer_path(model), body, hdrs)

    def bearer(self, key):
        return {"Authorization": "Bearer " + key}

    def metric(self, text, prefix):
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(prefix))


class AuthRequiredTest(TenantServer):
    def test_missing_and_unknown_keys_are_401_with_www_authenticate(self):
        for headers, fragment in (({}, "missing API key"),
                                  (self.bearer("ik_not-a-key"), "unknown API key"),
                                  ({"X-Api-Key": "nope"}, "unknown API key"),
                                  ({"Authorization": "Basic " + self.acme_key}, "missing API key")):
            r = self.infer(headers)
            self.assertEqual(r.status, 401, r.describe())
            self.assertIn(fragment, r.json()["error"])
            self.assertEqual(r.header("WWW-Authenticate"), 'Bearer realm="inferd"')
            self.assertIsNotNone(r.header("X-Request-Id"), r.describe())
        metrics = self.client().get("/metrics").body.decode()
        self.assertGreaterEqual(
            self.metric(metrics, 'inferd_requests_total{model="",version="",outcome="unauthenticated"}'), 4)

    def test_a_large_body_without_a_valid_key_is_refused_before_it_is_read(self):
        # 50 MB announced, none of it sent: the 401 comes from the header
        # alone, and the connection closes.
        for extra in ((), (("X-Api-Key", "ik_unknown"),)):
            with self.server.raw() as c:
                head = ("POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n"
                        "Content-Type: application/json\r\nContent-Length: 50000000\r\n")
                head += "".join("%s: %s\r\n" % kv for kv in extra) + "\r\n"
                self.assertTrue(c.send(head.encode()))
                r = c.read_response()
                self.assertEqual(r.status, 401, r.describe())
                self.assertEqual(r.header("WWW-Authenticate"), 'Bearer realm="inferd"')
                self.assertEqual((r.header("Connection") or "").lower(), "close")
        # With a valid key the same header waits for its body, which a small
        # request then completes normally on another connection.
        self.assertEqual(self.infer(self.bearer(self.acme_key)).status, 200)
        self.assert_server_healthy()

    def test_either_header_authenticates_and_they_must_agree(self):
        self.assertEqual(self.infer(self.bearer(self.acme_key)).status, 200)
        self.assertEqual(self.infer({"authorization": "bearer  " + self.beta_key}).status, 200)
        self.assertEqual(self.infer({"X-Api-Key": self.beta_key}).status, 200)
        r = self.infer({"X-Api-Key": self.beta_key, **self.bearer(self.acme_key)})
        self.assertEqual(r.status, 400, r.describe())
        self.assertIn("different keys", r.json()["error"])

    def test_open_and_guarded_routes(self):
        c = self.client()
        for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/metrics"):
            self.assertEqual(c.get(path).status, 200, path)
        for path in ("/v2/models/mlp", "/v2/models/mlp/ready", "/v2/models/mlp/config",
                     "/v2/cache/stats"):
            self.assertEqual(c.get(path).status, 401, path)
            r = c.request("GET", path, headers=self.bearer(self.beta_key))
            self.assertEqual(r.status, 200, path + " " + r.describe())
        self.assertEqual(c.request("POST", "/v2/repository/index", b"{}").status, 401)
        r = c.request("POST", "/v2/repository/index", b"{}", {"X-Api-Key": self.beta_key})
        self.assertEqual(r.status, 200, r.describe())

    def test_admin_endpoints_need_an_admin_key(self):
        c = self.client()
        for path in ("/v2/cache", "/v2/cache/models/mlp"):
            self.assertEqual(c.request("DELETE", path).status, 401, path)
            r = c.request("DELETE", path, headers=self.bearer(self.beta_key))
            self.assertEqual(r.status, 403, r.describe())
            self.assertIn("tenant 'beta' may not call admin endpoints", r.json()["error"])
            r = c.request("DELETE", path, headers=self.bearer(self.acme_key))
            self.assertEqual(r.status, 200, r.describe())

    def test_no_tenant_is_answered_from_another_tenants_entry(self):
        acme, beta = self.bearer(self.acme_key), self.bearer(self.beta_key)
        # Three rounds: a miss, a canonical hit, then the exact-repeat memo.
        seen = []
        for _ in range(3):
            r = self.infer(acme, seed=7)
            self.assertEqual(r.status, 200, r.describe())
            seen.append(r.header("X-Inferd-Cache"))
        self.assertEqual(seen, ["miss", "hit-memory", "hit-memory"])
        # The same bytes from beta: its own miss, never acme's entry or memo.
        r = self.infer(beta, seed=7)
        self.assertEqual(r.header("X-Inferd-Cache"), "miss", r.describe())
        self.assertEqual(self.infer(beta, seed=7).header("X-Inferd-Cache"), "hit-memory")
        # Shared scope: beta is answered from acme's entry.
        self.assertEqual(self.infer(acme, model="mlp_shared", seed=8).header("X-Inferd-Cache"), "miss")
        self.assertEqual(self.infer(beta, model="mlp_shared", seed=8).header("X-Inferd-Cache"),
                         "hit-memory")


class AuthOptionalTest(TenantServer):
    auth_required = False

    def test_no_key_is_the_default_tenant_but_an_unknown_key_is_refused(self):
        self.assertEqual(self.infer({}).status, 200)
        self.assertEqual(self.infer(self.bearer(self.beta_key)).status, 200)
        r = self.infer(self.bearer("ik_typo"))
        self.assertEqual(r.status, 401, r.describe())
        self.assertEqual(self.client().get("/v2/models/mlp").status, 200)

    def test_admin_endpoints_need_an_admin_key_once_tenants_exist(self):
        c = self.client()
        r = c.request("DELETE", "/v2/cache")
        self.assertEqual(r.status, 403, r.describe())
        self.assertIn("tenant 'default' may not call admin endpoints", r.json()["error"])
        r = c.request("DELETE", "/v2/cache", headers=self.bearer(self.beta_key))
        self.assertEqual(r.status, 403, r.describe())
        r = c.request("DELETE", "/v2/cache", headers=self.bearer(self.acme_key))
        self.assertEqual(r.status, 200, r.describe())

    def test_the_default_tenant_has_its_own_cache_scope(self):
        self.assertEqual(self.infer({}, seed=3).header("X-Inferd-Cache"), "miss")
        self.assertEqual(self.infer(self.bearer(self.acme_key), seed=3).header("X-Inferd-Cache"),
                         "miss")
        self.assertEqual(self.infer({}, seed=3).header("X-Inferd-Cache"), "hit-memory")


class RateLimitTest(TenantServer):
    """beta: 2 requests at once, then one per 1000 s; acme: no limit but on
    mlp_shared, 1 request at once. One per 1000 s: whatever the machine's
    speed, no refill happens during the test."""

    extra_config = "requests_per_s = 0.001\nburst = 2\n"  # beta's table
    acme_extra = '[[tenants.models]]\nname = "mlp_shared"\nrequests_per_s = 0.001\nburst = 1\n'

    def test_over_the_tenant_limit_is_429_with_ratelimit_fields(self):
        beta = self.bearer(self.beta_key)
        remaining = []
        for _ in range(2):  # the second is a cache hit: hits count too
            r = self.infer(beta, seed=11)
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.header("RateLimit-Policy"), '"tenant";q=1;w=1000;burst=2')
            remaining.append(r.header("RateLimit"))
        self.assertTrue(remaining[0].startswith('"tenant";r=1;t='), remaining)
        self.assertTrue(remaining[1].startswith('"tenant";r=0;t='), remaining)
        for _ in range(2):
            r = self.infer(beta, seed=11)
            self.assertEqual(r.status, 429, r.describe())
            self.assertIn("rate limit of tenant 'beta' exceeded", r.json()["error"])
            self.assertGreaterEqual(int(r.header("Retry-After")), 900)
            self.assertTrue(r.header("RateLimit").startswith('"tenant";r=0;t='), r.describe())
        # Another tenant is not limited by beta's use, and has no fields.
        r = self.infer(self.bearer(self.acme_key), seed=11)
        self.assertEqual(r.status, 200, r.describe())
        self.assertIsNone(r.header("RateLimit-Policy"))
        metrics = self.client().get("/metrics").body.decode()
        self.assertGreaterEqual(
            self.metric(metrics, 'inferd_requests_total{model="mlp",version="1",outcome="rate_limited"}'),
            2)

    def test_a_model_limit_applies_to_that_model_only(self):
        acme = self.bearer(self.acme_key)
        r = self.infer(acme, model="mlp_shared", seed=12)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.header("RateLimit-Policy"), '"model";q=1;w=1000;burst=1')
        r = self.infer(acme, model="mlp_shared", seed=12)
        self.assertEqual(r.status, 429, r.describe())
        self.assertIn("tenant 'acme' on model 'mlp_shared'", r.json()["error"])
        self.assertEqual(self.infer(acme, model="mlp", seed=12).status, 200)


class WarmUpTest(TenantServer):
    """A cache warm-up line that names a tenant fills that tenant's scope."""

    WARM_X = [0.375] * 16

    @classmethod
    def warm_args(cls, directory):
        path = os.path.join(directory, "warm.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps({"model": "mlp", "tenant": "acme", "inputs": [
                {"name": "input", "shape": [1, 16], "datatype": "FP32", "data": cls.WARM_X}]}) + "\n")
            f.write(json.dumps({"model": "mlp", "tenant": "nobody", "inputs": [
                {"name": "input", "shape": [1, 16], "datatype": "FP32", "data": cls.WARM_X}]}) + "\n")
        return ("--cache-warm", path)

    def test_the_named_tenant_hits_and_no_other(self):
        x = np.array([self.WARM_X], dtype=np.float32)
        body, hdrs = h.encode_infer_request([h.Input("input", x)])
        r = self.client().request("POST", h.infer_path("mlp"), body,
                                  dict(hdrs, **self.bearer(self.acme_key)))
        self.assertEqual(r.header("X-Inferd-Cache"), "hit-memory", r.describe())
        r = self.client().request("POST", h.infer_path("mlp"), body,
                                  dict(hdrs, **self.bearer(self.beta_key)))
        self.assertEqual(r.header("X-Inferd-Cache"), "miss", r.describe())
        self.assertIn("unknown tenant 'nobody'", self.server.output())


class NoTenantsTest(h.ServerTestCase):
    """A server without [[tenants]] ignores credentials (a gateway's token,
    an SDK's habit) as it did before tenants existed, and keeps its admin
    endpoints open."""

    models = ("mlp",)

    def test_credentials_are_ignored(self):
        x = np.full((1, 16), 0.5, dtype=np.float32)
        body, hdrs = h.encode_infer_request([h.Input("input", x)])
        for extra in ({"Authorization": "Bearer some.jwt.token"}, {"X-Api-Key": "abc"},
                      {"Authorization": "Bearer a", "X-Api-Key": "b"}):
            r = self.client().request("POST", h.infer_path("mlp"), body, dict(hdrs, **extra))
            self.assertEqual(r.status, 200, r.describe())
        r = self.client().request("GET", "/v2/models/mlp", headers={"X-Api-Key": "abc"})
        self.assertEqual(r.status, 200, r.describe())
        r = self.client().request("DELETE", "/v2/cache", headers={"Authorization": "Bearer x"})
        self.assertIn(r.status, (200, 404), r.describe())  # 404: no cache configured


class ConfigErrorTest(unittest.TestCase):
    def test_bad_tenant_config_stops_the_server_with_a_clear_message(self):
        tmp = h.tempfile.mkdtemp(prefix="inferd-tenants-")
        self.addCleanup(h.shutil.rmtree, tmp, True)
        repo = os.path.join(tmp, "models")
        os.makedirs(repo)
        cases = (
            ('[auth]\nrequired = true\n', "no [[tenants]] entry has an api_key_sha256"),
            ('[[tenants]]\nname = "acme"\napi_key_sha256 = ["xyz"]\n', "64 hex digits"),
            ('[[tenants]]\nname = "acme"\napi_key_sha256 = ["%s"]\nrequests_per_sec = 3\n' % ("a" * 64),
             "unknown field 'requests_per_sec'"),
            ('[[tenants]]\nname = "acme"\napi_key_sha256 = ["%s"]\nrequests_per_s = -1\n' % ("a" * 64),
             "tenants[0].requests_per_s must be a number in [0.001, 1000000]"),
        )
        for text, fragment in cases:
            config = os.path.join(tmp, "inferd.toml")
            with open(config, "w") as f:
                f.write(text)
            server = h.ServerProcess(repo, args=("--config", config))
            server.launch()
            rc = server.wait_exit()
            self.assertEqual(rc, 2, server.output())
            self.assertIn(fragment, server.output())


if __name__ == "__main__":
    unittest.main()
