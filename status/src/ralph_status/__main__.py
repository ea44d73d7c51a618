"""`python -m ralph_status`: serve /healthz and /status on RALPH_STATUS_ADDR."""

import sys

from ralph_status.server import main

sys.exit(main())
