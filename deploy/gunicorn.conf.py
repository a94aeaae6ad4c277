"""gunicorn settings: ``gunicorn -c deploy/gunicorn.conf.py controlplane.wsgi``.

With ``CONTROLPLANE_LOG_FORMAT=json`` gunicorn's own loggers (``gunicorn.error``: start-up,
worker boots and deaths; ``gunicorn.access``: one line per request) use the same JSON
formatter as the application, so every line the web process writes is one JSON object.
"""

from __future__ import annotations

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
accesslog = "-"

if os.environ.get("CONTROLPLANE_LOG_FORMAT", "").strip().lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "observability.logs.JsonFormatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["console"], "level": "INFO"},
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }
