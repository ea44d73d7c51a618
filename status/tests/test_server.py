"""ralph-status against real processes: the server started with
`python -m ralph_status`, and PostgreSQL when RALPH_TEST_DB_URL names one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

from ralph_status.server import parse_addr, split_password

SRC = Path(__file__).resolve().parent.parent / "src"
TASK = Path(__file__).resolve().parents[2] / "task"
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

    def __init__(self, db_url: str, **extra_env: str):
        self.port = free_port()
        env = dict(os.environ, RALPH_DB_URL=db_url, PYTHONPATH=str(SRC), PYTHONDONTWRITEBYTECODE="1", **extra_env)
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


class SplitPassword(unittest.TestCase):
    """The URL psql gets has no password; the password, percent-decoded,
    goes to PGPASSWORD (as db_url_parts in lib/common.sh)."""

    def test_password_out_of_the_url_and_decoded(self):
        self.assertEqual(
            split_password("postgresql://ralph:p%40ss%3A%2F%25w@db:5432/ralph"),
            ("postgresql://ralph@db:5432/ralph", "p@ss:/%w"),
        )
        self.assertEqual(split_password("postgres://:pw@h/d"), ("postgres://h/d", "pw"))
        self.assertEqual(split_password("postgresql://u:%C3%A9@h"), ("postgresql://u@h", "\u00e9"))

    def test_encoded_user_stays_as_it_is(self):
        # psql decodes the user itself; only the password leaves the URL.
        self.assertEqual(
            split_password("postgresql://us%40er:pw@h1:5432,h2:5433/d"),
            ("postgresql://us%40er@h1:5432,h2:5433/d", "pw"),
        )

    def test_password_parameter(self):
        self.assertEqual(
            split_password("postgresql://u@h/d?sslmode=require&password=a%26b&application_name=x"),
            ("postgresql://u@h/d?sslmode=require&application_name=x", "a&b"),
        )
        self.assertEqual(split_password("postgresql://u@h/d?password=x"), ("postgresql://u@h/d", "x"))

    def test_no_password_leaves_the_environment_to_psql(self):
        for url in ["postgresql://u@h/d", "postgresql://u:@h/d", "postgresql://h", "host=h dbname=d"]:
            self.assertIsNone(split_password(url)[1], url)
        self.assertEqual(split_password("postgresql://u:@h/d")[0], "postgresql://u@h/d")

    def test_broken_percent_encoding(self):
        for url in ["postgresql://u:a%4@h", "postgresql://u:a%zz@h", "postgresql://u:a%00@h", "postgresql://u:50%@h"]:
            with self.assertRaises(ValueError, msg=url) as raised:
                split_password(url)
            self.assertIn("%40", str(raised.exception))

    def test_key_value_string_with_a_password_is_refused(self):
        with self.assertRaises(ValueError) as raised:
            split_password("host=h dbname=d password=secret")
        self.assertIn("PGPASSWORD", str(raised.exception))
        self.assertEqual(split_password("host=h dbname=password_db"), ("host=h dbname=password_db", None))


class PasswordNotOnTheCommandLine(unittest.TestCase):
    """The server runs a stand-in psql that records its command line and
    PGPASSWORD: the password is in the environment, never in argv."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        bin_dir = Path(self.dir.name) / "bin"
        bin_dir.mkdir()
        psql = bin_dir / "psql"
        psql.write_text(
            "#!/bin/sh\n"
            'printf \'%s\\n\' "$0" "$@" > "$RECORD.argv"\n'
            'printf \'%s\' "${PGPASSWORD-(unset)}" > "$RECORD.password"\n'
            "echo 1\n"
        )
        psql.chmod(0o755)
        self.record = Path(self.dir.name) / "psql"
        self.env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "RECORD": str(self.record)}

    def tearDown(self):
        self.dir.cleanup()

    def healthz(self, db_url: str, **env: str) -> tuple[list[str], str]:
        server = Server(db_url, **self.env, **env)
        try:
            code, body = get(server.url("/healthz"))
            self.assertEqual(code, 200, body)
        finally:
            server.stop()
        argv = Path(f"{self.record}.argv").read_text().splitlines()
        return argv, Path(f"{self.record}.password").read_text()

    def test_password_through_pgpassword_only(self):
        argv, password = self.healthz("postgresql://ralph:s3cr%40t%3A%2F%25x@db:5432/ralph", PGPASSWORD="other")
        self.assertEqual(password, "s3cr@t:/%x")
        self.assertEqual(argv[1], "postgresql://ralph@db:5432/ralph")
        for arg in argv:
            self.assertNotIn("s3cr", arg)

    def test_no_password_in_the_url_keeps_pgpassword(self):
        argv, password = self.healthz("postgresql://ralph@db:5432/ralph", PGPASSWORD="from-compose")
        self.assertEqual(password, "from-compose")
        self.assertEqual(argv[1], "postgresql://ralph@db:5432/ralph")

    def test_broken_encoding_is_a_503_that_names_it(self):
        server = Server("postgresql://ralph:50%@db/ralph", **self.env)
        try:
            code, body = get(server.url("/healthz"))
        finally:
            server.stop()
        self.assertEqual(code, 503)
        self.assertIn("percent-encoding", body["database"])
        self.assertFalse(Path(f"{self.record}.argv").exists(), "psql must not run")


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


@unittest.skipUnless(os.environ.get("RALPH_TEST_DB_URL"), "needs RALPH_TEST_DB_URL (scripts/test.sh provides one)")
class RealDatabase(unittest.TestCase):
    """Against the empty database RALPH_TEST_DB_URL names: one open task is
    added first with the repository's `task` (which applies the schema)."""

    @classmethod
    def setUpClass(cls):
        cls.db_url = os.environ["RALPH_TEST_DB_URL"]
        subprocess.run(
            [str(TASK), "add", "status/1", "counted by /status"],
            env=dict(os.environ, RALPH_DB_URL=cls.db_url),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def test_healthz_200_and_status_counts(self):
        server = Server(self.db_url)
        try:
            code, body = get(server.url("/healthz"))
            self.assertEqual((code, body["database"]), (200, "ok"))
            code, body = get(server.url("/status"))
            self.assertEqual(code, 200, body)
            self.assertEqual(set(body["queue"]), {"open", "active", "done"})
            self.assertTrue(all(isinstance(n, int) for n in body["queue"].values()), body)
            self.assertEqual(body["queue"]["open"], 1, body)
        finally:
            server.stop()
