#!/usr/bin/env python3
"""A git remote over HTTP that wants a password, for the worker's tests.

    git_http.py PORT_FILE PROJECT_ROOT USER PASSWORD

Serves the repositories under PROJECT_ROOT with git's own smart HTTP
server (`git http-backend`, run as a CGI per request) on a free port of
127.0.0.1, written to PORT_FILE once it listens. Every request must carry
HTTP Basic credentials USER:PASSWORD; without them, or with others, it
answers 401 with a WWW-Authenticate challenge (what makes git ask its
credential helper). Each request is a line on stdout: the method, the path
and whether it was let in ("ok" or "401"), never the credentials. SIGTERM
ends it.
"""

import base64
import http.server
import os
import subprocess
import sys


def main() -> None:
    port_file, root, user, password = sys.argv[1:5]
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # the line below instead
            pass

        def serve(self) -> None:
            path, _, query = self.path.partition("?")
            if self.headers.get("Authorization") != expected:
                print(f"{self.command} {path} 401", flush=True)
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="ralph-test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            print(f"{self.command} {path} ok", flush=True)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": root,
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(length),
                "REMOTE_USER": user,
                "REMOTE_ADDR": "127.0.0.1",
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            }
            out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = serve
        do_POST = serve

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
