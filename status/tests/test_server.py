"""ralph-status against real processes: the server started with
`python -m ralph_status`, and PostgreSQL when RALPH_TEST_DB_URL names one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

from ralph_status.server import parse_addr

SRC = Path(__file__).resolve().parent.parent / "src"
UNREACHABLE_DB = "postgresql://ralph@127.0.0.1:9/ralph"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


class Server:
    """`python -m ralph_status` on a free loopback port."""

    def __init__(self, db_url: str):
        self.port = free_port()
        env = dict(os.environ, RALPH_DB_URL=db_url, PYTHONPATH=str(SRC), PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ralph_status", f"127.0.0.1:{self.port}"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("ralph-status did not start listening")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(timeout=10)
        self.proc.stderr.close()
        return code


class ParseAddr(unittest.TestCase):
    def test_host_and_port(self):
        self.assertEqual(parse_addr("0.0.0.0:8080"), ("0.0.0.0", 8080))
        self.assertEqual(parse_addr(":9000"), ("0.0.0.0", 9000))

    def test_rejects_what_is_not_host_port(self):
        for bad in ["8080", "host:", "host:http", "host:70000"]:
            with self.assertRaises(ValueError, msg=bad):
                parse_addr(bad)


class UnreachableDatabase(unittest.TestCase):
    def test_healthz_is_503_with_the_reason_and_the_server_stays_up(self):
        server = Server(UNREACHABLE_DB)
        try:
            for _ in range(2):
                code, body = get(server.url("/healthz"))
                self.assertEqual(code, 503)
                self.assertEqual(body["status"], "unhealthy")
                self.assertTrue(body["database"].startswith("unreachable:"), body)
            code, body = get(server.url("/status"))
            self.assertEqual(code, 503)
            code, body = get(server.url("/nope"))
            self.assertEqual(code, 404)
            self.assertIsNone(server.proc.poll(), "the server must not exit")
        finally:
            self.assertEqual(server.stop(), 0, "SIGTERM stops it cleanly")

    def test_bad_address_is_one_line_and_exit_2(self):
        done = subprocess.run(
            [sys.executable, "-m", "ralph_status", "nonsense"],
            env=dict(os.environ, PYTHONPATH=str(SRC)),
            capture_output=True,
            text=True,
            timeout=10,
        )
        self.assertEqual(done.returncode, 2)
        self.assertIn("is not HOST:PORT", done.stderr)


@unittest.skipUnless(os.environ.get("RALPH_TEST_DB_URL"), "needs RALPH_TEST_DB_URL (test/worker/run.sh provides one)")
class RealDatabase(unittest.TestCase):
    def test_healthz_200_and_status_counts(self):
        db_url = os.environ["RALPH_TEST_DB_URL"]
        server = Server(db_url)
        try:
            code, body = get(server.url("/healthz"))
            self.assertEqual((code, body["database"]), (200, "ok"))
            code, body = get(server.url("/status"))
            self.assertEqual(code, 200, body)
            self.assertEqual(set(body["queue"]), {"open", "active", "done"})
            self.assertTrue(all(isinstance(n, int) for n in body["queue"].values()), body)
        finally:
            server.stop()
