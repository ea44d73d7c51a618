#!/bin/sh
# The fixture's service: busybox httpd serving /www (GET /healthz -> 200).
# With FLAW=writes-root it first writes where the root filesystem is
# read-only under the read-only check, as a careless service would.
if [ -e /app/writes-root ]; then
  echo "started" > /app/state.log
fi
if [ "${1:-}" = --version ]; then
  echo "fixture 1.0"
  exit 0
fi
# With FLAW=root-drops it starts as root and drops to app once it listens.
if [ -e /app/drops ]; then
  exec httpd -f -p 8080 -h /www -u app:app
fi
exec httpd -f -p 8080 -h /www
