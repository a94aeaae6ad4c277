"""pytest plugin (``-p controlplane.pytest_plain_http`` in pyproject's addopts): the test
suite talks plain HTTP (Django's test client, live servers on 127.0.0.1, child processes), so
it runs with ``CONTROLPLANE_INSECURE_HTTP=1``: no HTTPS redirect, no HSTS, no Secure cookies,
nothing else changed. Loaded with the command line, before pytest-django reads the settings.

The production defaults are tested on their own (tests/security/test_secure_defaults.py), in
child processes without the variable.
"""

from __future__ import annotations

import os

os.environ.setdefault("CONTROLPLANE_INSECURE_HTTP", "1")
