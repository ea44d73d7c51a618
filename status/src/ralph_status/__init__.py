"""ralph-status: /healthz and /status for a ralph worker container."""

__version__ = "0.1.0"
