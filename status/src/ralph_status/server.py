"""A small HTTP server: `GET /healthz` (200 when the task store answers, 503
with the reason when it does not) and `GET /status` (JSON: this host's agent,
its active task, queue counts).

It writes nothing to disk, so it runs on a read-only root filesystem: no
bytecode (compiled at build time), no cache, logs to stderr only.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_ADDR = "0.0.0.0:8080"
QUERY_TIMEOUT_SECONDS = 5

STATUS_SQL = """
SELECT json_build_object(
  'agent', (SELECT row_to_json(a) FROM (
      SELECT id, hostname, status, started_at FROM agents
      WHERE hostname = :'host' ORDER BY started_at DESC LIMIT 1) a),
  'active_task', (SELECT row_to_json(t) FROM (
      SELECT t.id, t.description, t.lease_expires_at FROM tasks t
      JOIN agents a ON a.id = t.assignee
      WHERE a.hostname = :'host' AND t.status = 'active' AND t.deleted_at IS NULL
      ORDER BY t.updated_at DESC LIMIT 1) t),
  'queue', (SELECT json_object_agg(status, n) FROM (
      SELECT status, count(*) AS n FROM tasks WHERE deleted_at IS NULL GROUP BY status) q)
)
"""


class DatabaseError(Exception):
    """The task store could not be asked."""


def parse_addr(addr: str) -> tuple[str, int]:
    """`HOST:PORT` (or `:PORT`) -> (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"RALPH_STATUS_ADDR={addr!r} is not HOST:PORT (for example 0.0.0.0:8080)")
    return (host or "0.0.0.0", int(port))


def split_password(db_url: str) -> tuple[str, str | None]:
    """A PostgreSQL URL -> (the URL without its password, the password
    percent-decoded, or None when it has none), as lib/common.sh's
    db_url_parts: the password goes to psql in PGPASSWORD, never on its
    command line, where `ps` shows it to every user. The user info ends at
    the first `@` before any `/` (as libpq reads it); a `password=`
    parameter counts too. A key=value connection string is returned as it
    is, unless it holds a password (ValueError, as for a broken
    percent-encoding)."""
    scheme, sep, rest = db_url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        if re.search(r"(^|\s)password\s*=", db_url):
            raise ValueError(
                "a key=value connection string with password= would put it on psql's command line: "
                "use postgresql://USER@HOST:5432/DATABASE and the password in PGPASSWORD"
            )
        return db_url, None
    password = None
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        userinfo, _, rest = rest.partition("@")
        user, colon, raw = userinfo.partition(":")
        if colon:
            password = raw
        rest = f"{user}@{rest}" if user else rest
    if "?" in rest:
        rest, _, query = rest.partition("?")
        kept = []
        for param in query.split("&"):
            if param.startswith("password="):
                password = param[len("password=") :]
            elif param:
                kept.append(param)
        if kept:
            rest += "?" + "&".join(kept)
    if password is not None:
        if re.search(r"%(?![0-9A-Fa-f]{2})|%00", password):
            raise ValueError("the password's percent-encoding is broken: write @ as %40, : as %3A, / as %2F, % as %25")
        # Any bytes, as the environment carries them.
        password = os.fsdecode(urllib.parse.unquote_to_bytes(password)) or None
    return f"{scheme}://{rest}", password


def query(db_url: str, sql: str, variables: dict[str, str] | None = None) -> str:
    """Runs one statement through psql; its single value as text."""
    if not db_url:
        raise DatabaseError("RALPH_DB_URL is not set")
    try:
        url, password = split_password(db_url)
    except ValueError as exc:
        raise DatabaseError(f"RALPH_DB_URL: {exc}") from exc
    # -w: never a password prompt (without a terminal psql would take the SQL
    # on stdin for the password).
    cmd = ["psql", url, "-w", "-XAtq", "-v", "ON_ERROR_STOP=1"]
    for name, value in (variables or {}).items():
        cmd += ["-v", f"{name}={value}"]
    env = dict(os.environ, PGCONNECT_TIMEOUT=str(QUERY_TIMEOUT_SECONDS))
    if password:
        env["PGPASSWORD"] = password
    try:
        done = subprocess.run(
            cmd, input=sql, capture_output=True, text=True, env=env, timeout=QUERY_TIMEOUT_SECONDS + 2
        )
    except FileNotFoundError as exc:
        raise DatabaseError("psql is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise DatabaseError("the database did not answer in time") from exc
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()
        raise DatabaseError(reason[-1] if reason else f"psql exited {done.returncode}")
    return done.stdout.strip()


def health(db_url: str) -> tuple[int, dict]:
    try:
        query(db_url, "SELECT 1")
    except DatabaseError as exc:
        return 503, {"status": "unhealthy", "database": f"unreachable: {exc}"}
    return 200, {"status": "ok", "database": "ok"}


def status(db_url: str, host: str) -> tuple[int, dict]:
    try:
        body = json.loads(query(db_url, STATUS_SQL, {"host": host}))
    except DatabaseError as exc:
        return 503, {"host": host, "database": f"unreachable: {exc}"}
    queue = body.get("queue") or {}
    agent = body.get("agent") or {}
    return 200, {
        "host": host,
        "agent_id": agent.get("id"),
        "agent_status": agent.get("status"),
        "active_task": body.get("active_task"),
        "queue": {s: queue.get(s, 0) for s in ("open", "active", "done")},
        "database": "ok",
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "ralph-status"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        db_url = os.environ.get("RALPH_DB_URL", "")
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            code, body = health(db_url)
        elif path == "/status":
            code, body = status(db_url, socket.gethostname())
        else:
            code, body = 404, {"error": f"no such endpoint {path}: use /healthz or /status"}
        data = (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write("ralph-status: %s - %s\n" % (self.address_string(), fmt % args))


def main(argv: list[str] | None = None) -> int:
    addr = (argv or sys.argv[1:] or [os.environ.get("RALPH_STATUS_ADDR") or DEFAULT_ADDR])[0]
    try:
        host, port = parse_addr(addr)
    except ValueError as exc:
        print(f"ralph-status: {exc}", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True

    def stop(signum, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ralph-status: serving /healthz and /status on {host}:{port}", file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()
    return 0
