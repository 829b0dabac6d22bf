"""Testing an app against a throw-away keyward (README: "Testing your app
against keyward"). Standard library only; run with

    KEYWARD_BIN=target/debug/keyward python3 -m unittest examples/testing/test_orders.py

The "app" here is the smallest one that trusts keyward: it asks keyward's
/api/me about the Bearer token it was given. (An app that verifies tokens
itself, with the JWKS, checks `exp` against its own clock: move that one too.)
"""
import json
import os
import subprocess
import unittest
import urllib.error
import urllib.request


def call(method, url, body=None, token=None):
    """(status, JSON body) of one request."""
    req = urllib.request.Request(url, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def list_orders(keyward_url, token):
    """The app under test: its orders for a signed-in user, else 401."""
    status, me = call("GET", f"{keyward_url}/api/me", token=token)
    if status != 200:
        return 401, {"error": "sign in again"}
    return 200, {"orders": [], "for": me["username"]}


class OrdersTest(unittest.TestCase):
    def setUp(self):
        # stdin is a pipe: if this process dies, keyward sees it close and
        # drops its database on its own.
        self.keyward = subprocess.Popen(
            [os.environ.get("KEYWARD_BIN", "keyward"), "serve", "--ephemeral"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.info = json.loads(self.keyward.stdout.readline())
        self.url = self.info["url"]

    def tearDown(self):
        self.keyward.stdin.close()          # or: self.keyward.terminate()
        self.assertEqual(self.keyward.wait(timeout=10), 0)

    def test_an_expired_token_is_refused(self):
        call("POST", f"{self.url}/ephemeral/users",
             {"username": "ada", "password": "correct-horse-battery"})
        status, pair = call("POST", f"{self.url}/auth/login",
                            {"username": "ada", "password": "correct-horse-battery"})
        self.assertEqual(status, 200)
        token = pair["access_token"]
        self.assertEqual(list_orders(self.url, token)[0], 200)

        # past the access token's lifetime (900 s), without waiting
        call("POST", f"{self.url}/ephemeral/clock", {"advance_seconds": pair["expires_in"] + 60})

        self.assertEqual(list_orders(self.url, token)[0], 401)


if __name__ == "__main__":
    unittest.main()
