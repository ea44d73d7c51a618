"""`python -m ralph_status.check`: the image's HEALTHCHECK. Asks the status
server's /healthz when one runs (RALPH_STATUS_ADDR), else the database
directly; exit 0 when healthy, 1 with the reason otherwise."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

from ralph_status.server import health, parse_addr


def main() -> int:
    addr = os.environ.get("RALPH_STATUS_ADDR")
    if not addr:
        code, body = health(os.environ.get("RALPH_DB_URL", ""))
    else:
        host, port = parse_addr(addr)
        host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=8) as response:
                code, body = response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            code, body = exc.code, json.load(exc)
        except OSError as exc:
            code, body = 0, {"status": f"status server not answering: {exc}"}
    print(json.dumps(body))
    return 0 if code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
