"""One settings module, one engine: PostgreSQL and Redis (or Valkey).

Production names its servers through DATABASE_URL and CELERY_BROKER_URL. With nothing set you
get the embedded default: the same engines, a PostgreSQL and a Valkey that `make run` and
`make test` start from Python packages under var/ (controlplane/embedded.py). Every knob is an
environment variable read through the small typed helpers below; secrets may also come from a
``<NAME>_FILE`` variable.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange as KombuExchange
from kombu import Queue as KombuQueue

from controlplane import embedded
from controlplane.task_names import TaskName

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_bool(name: str, default: bool = False) -> bool:
    """A yes/no variable. Anything but the usual spellings is refused rather than read as
    "no": a typo in ``CONTROLPLANE_INSECURE_HTTP=ture`` must not quietly pick a side."""
    raw = env_str(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a yes/no value; use one of 1/true/yes/on or 0/false/no/off."
    )


def env_int(name: str, default: int) -> int:
    raw = env_str(name, "")
    return int(raw) if raw.strip() else default


def env_float(name: str, default: float) -> float:
    raw = env_str(name, "")
    return float(raw) if raw.strip() else default


DATA_DIR = Path(env_str("CONTROLPLANE_VAR_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", default=False)
_INSECURE_KEY = "django-insecure-embedded-default-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", "")
# Production is the server-backed path (DATABASE_URL set): there a missing or development key
# is refused unless DEBUG is on. The embedded default is a laptop's development run.
_PRODUCTION = bool(env_str("DATABASE_URL", ""))
if not SECRET_KEY or SECRET_KEY == _INSECURE_KEY:
    if _PRODUCTION and not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Production (DATABASE_URL set, DEBUG off) needs a real "
            "SECRET_KEY or SECRET_KEY_FILE."
        )
    SECRET_KEY = _INSECURE_KEY

ALLOWED_HOSTS = [h.strip() for h in env_str("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "audit",
    "tenants",
    "provisioning",
    "api",
    "console",
    "observability",
    "webhooks",
    "controlplane.apps.ControlplaneConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # A NUL in a query parameter or form field: 400 (422 in the API) before any view reads it.
    "controlplane.middleware.RefuseNulMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------------------------
# PostgreSQL everywhere: DATABASE_URL in production, otherwise the embedded server that
# `make run` and `make test` start under var/ (controlplane/embedded.py), on a Unix socket whose
# path the folder decides, so every process finds it.
DATABASE_URL = env_str("DATABASE_URL", "")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL or embedded.database_url(var=DATA_DIR),
        conn_max_age=env_int("CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The hot paths' hand-written statements are prepared once a connection (controlplane/prepared.py);
# 0 for a connection pooler in transaction mode that does not keep prepared statements.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", default=True)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve straight from static/ as well, so a run without collectstatic (embedded, tests) has its
# stylesheet and htmx; production runs collectstatic for compressed, cached copies.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedStaticFilesStorage"
        )
    },
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/tenants/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("CONTROLPLANE_MAX_BODY_BYTES", 64 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # billiard (Celery's process pool) logs here, with propagation off: without a handler
        # of ours its errors ("Process 'ForkPoolWorker-1' ... exited with 'signal 15'") went
        # to Python's last-resort handler as bare text, not through the formatter.
        "multiprocessing": {"handlers": ["console"], "propagate": False},
    },
}

# --- Control plane knobs --------------------------------------------------------------------
CONTROLPLANE_DATA_ROOT = Path(env_str("CONTROLPLANE_DATA_ROOT", str(DATA_DIR / "tenant-data")))
CONTROLPLANE_HEARTBEAT_TIMEOUT = env_float("CONTROLPLANE_HEARTBEAT_TIMEOUT", 30)
CONTROLPLANE_STEP_TIMEOUT = env_float("CONTROLPLANE_STEP_TIMEOUT", 600)
CONTROLPLANE_WATCHDOG_INTERVAL = env_float("CONTROLPLANE_WATCHDOG_INTERVAL", 10)
# Seconds a queued step's message may wait before the watchdog suspects it lost (a broker
# restart) and publishes it again for the same try, doubling after each such re-publish.
# Unset: the heartbeat timeout (read through provisioning.watchdog.redeliver_after, so a test
# that shortens the heartbeat timeout shortens this too).
_redeliver_after = env_str("CONTROLPLANE_REDELIVER_AFTER", "").strip()
CONTROLPLANE_REDELIVER_AFTER = float(_redeliver_after) if _redeliver_after else None
if CONTROLPLANE_REDELIVER_AFTER is not None and CONTROLPLANE_REDELIVER_AFTER <= 0:
    raise ImproperlyConfigured("CONTROLPLANE_REDELIVER_AFTER must be a number of seconds above 0")
CONTROLPLANE_STEP_MAX_TRIES = env_int("CONTROLPLANE_STEP_MAX_TRIES", 3)
CONTROLPLANE_RETRY_BACKOFF = env_float("CONTROLPLANE_RETRY_BACKOFF", 1)
CONTROLPLANE_STEP_DELAY = env_float("CONTROLPLANE_STEP_DELAY", 0)
# How long a step task goes on executing its tenant's next steps itself, each claimed and
# recorded as usual, before it hands the next one to the broker (provisioning.saga,
# execute_chain); 0 sends every step through the broker. Bulk runs never chain.
CONTROLPLANE_CHAIN_SECONDS = env_float("CONTROLPLANE_CHAIN_SECONDS", 5)
if CONTROLPLANE_CHAIN_SECONDS < 0:
    raise ImproperlyConfigured("CONTROLPLANE_CHAIN_SECONDS must be 0 or more seconds")
CONTROLPLANE_FAULT_INJECTION = env_bool("CONTROLPLANE_FAULT_INJECTION", default=False)
CONTROLPLANE_RELEASE_MAX_TRIES = env_int("CONTROLPLANE_RELEASE_MAX_TRIES", 3)
# Per provider kind, at most `concurrency` steps at once and `per_minute` starts a minute, over
# every worker on every machine (JSON; provisioning/admission.py checks it at start).
CONTROLPLANE_PROVIDER_LIMITS = env_str("CONTROLPLANE_PROVIDER_LIMITS", "")
# How often a working step writes its heartbeat: often enough that a few missed beats are
# still well inside the timeout.
CONTROLPLANE_HEARTBEAT_INTERVAL = env_float(
    "CONTROLPLANE_HEARTBEAT_INTERVAL", max(0.2, min(5.0, CONTROLPLANE_HEARTBEAT_TIMEOUT / 5))
)
# How often a console page refreshes itself while a saga moves (htmx polling).
CONSOLE_POLL_SECONDS = env_float("CONSOLE_POLL_SECONDS", 2)
CONTROLPLANE_PROVIDERS = {
    "storage": "provisioning.providers.storage.LocalDirectoryStorage",
    "identity": "provisioning.providers.identity.DjangoGroupIdentity",
    "database": "provisioning.providers.database.SchemaDatabase",
    "dns": "provisioning.providers.records.DnsRecords",
    "billing": "provisioning.providers.records.BillingRecords",
    "invite": "provisioning.providers.records.InviteRecords",
}

# --- Celery ---------------------------------------------------------------------------------
# Redis (or Valkey) everywhere: CELERY_BROKER_URL in production, otherwise the embedded Valkey.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "") or embedded.broker_url(var=DATA_DIR)
# An unacknowledged message comes back after the visibility timeout: keep it well above the
# longest a step (or a chain of steps) may run, or it would be delivered twice while it works.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(
        max(3600, CONTROLPLANE_STEP_TIMEOUT * 3 + CONTROLPLANE_CHAIN_SECONDS)
    ),
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE = {
    "watchdog": {
        "task": TaskName.WATCHDOG,
        "schedule": CONTROLPLANE_WATCHDOG_INTERVAL,
        "options": {"expires": max(1.0, CONTROLPLANE_WATCHDOG_INTERVAL)},
    }
}
# Scheduled operations (tenants.schedules): how often beat looks for due ones, in seconds. An
# operation runs at most this long after its time.
CONTROLPLANE_SCHEDULE_INTERVAL = env_float("CONTROLPLANE_SCHEDULE_INTERVAL", 5)
CELERY_BEAT_SCHEDULE["schedules"] = {
    "task": TaskName.RUN_SCHEDULES,
    "schedule": CONTROLPLANE_SCHEDULE_INTERVAL,
    "options": {"expires": max(1.0, CONTROLPLANE_SCHEDULE_INTERVAL)},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# --- Security (issue 11): secure defaults, CSP, login throttling, token expiry ----------------
# Production is HTTPS. CONTROLPLANE_INSECURE_HTTP=1 is for local runs and tests over plain HTTP
# only (`make run`, the test suite's live servers): it turns off the HTTPS redirect, HSTS and
# the Secure flag on cookies, and nothing else.
CONTROLPLANE_INSECURE_HTTP = env_bool("CONTROLPLANE_INSECURE_HTTP", default=False)
_HTTPS = not CONTROLPLANE_INSECURE_HTTP
SECURE_SSL_REDIRECT = _HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000) if _HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = _HTTPS
SECURE_HSTS_PRELOAD = _HTTPS
SESSION_COOKIE_SECURE = _HTTPS
CSRF_COOKIE_SECURE = _HTTPS
# Behind a TLS-terminating proxy, name the header it sets, e.g.
# SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https" (only if the proxy always sets it).
_proxy_header = env_str("SECURE_PROXY_SSL_HEADER", "").strip()
if _proxy_header:
    _name, _sep, _value = _proxy_header.partition(":")
    if not _sep or not _name.strip() or not _value.strip():
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER is 'Header-Name: value', like 'X-Forwarded-Proto: https'."
        )
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _name.strip().upper().replace("-", "_"),
        _value.strip(),
    )
SESSION_COOKIE_HTTPONLY = True
# No script reads the CSRF cookie: htmx sends the token from hx-headers on <body> and the API
# docs page from a data attribute, so the cookie can be HttpOnly too.
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# A console session lasts a working day at most, and ends with the browser.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)
# Django's database sessions, read with one plain statement (controlplane/sessions.py).
SESSION_ENGINE = "controlplane.sessions"
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Content-Security-Policy on every response (django-csp 4). Scripts come from our origin only:
# no inline script or handler anywhere (templates, admin overrides, the API docs page). Styles
# may be inline: the admin, htmx's indicator style and Swagger UI set style attributes.
INSTALLED_APPS += ["csp", "axes"]  # noqa: F405 - appended, not reordered
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "controlplane.middleware.CSPMiddleware",
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Login throttling (django-axes): 5 failures for one username from one address, or 20 from one
# address, within 15 minutes lock further attempts from there out for 15 minutes
# (controlplane/throttle.py keeps the two limits; the owner's other addresses stay open).
# `manage.py axes_reset_username NAME` / `axes_reset_ip ADDR` unlock early, as does
# deleting the attempt in the admin's "Access attempts".
AUTHENTICATION_BACKENDS = [
    "controlplane.throttle.ThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
CONTROLPLANE_LOGIN_LIMIT_PER_USERNAME = env_int("CONTROLPLANE_LOGIN_LIMIT_PER_USERNAME", 5)
CONTROLPLANE_LOGIN_LIMIT_PER_ADDRESS = env_int("CONTROLPLANE_LOGIN_LIMIT_PER_ADDRESS", 20)
AXES_HANDLER = "controlplane.throttle.TwoLimitHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_FAILURE_LIMIT = CONTROLPLANE_LOGIN_LIMIT_PER_ADDRESS
AXES_COOLOFF_TIME = timedelta(minutes=env_int("CONTROLPLANE_LOGIN_LOCKOUT_MINUTES", 15))
# Attempts refused during a lockout do not extend it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "controlplane.throttle.lockout_response"
AXES_USERNAME_CALLABLE = "controlplane.throttle.client_username"
AXES_ENABLE_ACCESS_FAILURE_LOG = False
AXES_VERBOSE = False
# The address is REMOTE_ADDR unless a proxy in front is trusted to set X-Forwarded-For.
AXES_IPWARE_PROXY_COUNT = env_int("AXES_PROXY_COUNT", 0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

# Live Idempotency-Keys one caller (a token, a session user) may hold; a new one past it is 422.
CONTROLPLANE_IDEMPOTENCY_KEYS_PER_CALLER = env_int("CONTROLPLANE_IDEMPOTENCY_KEYS_PER_CALLER", 1000)
# API tokens expire after this many days unless issued with another expiry.
CONTROLPLANE_API_TOKEN_DAYS = env_int("CONTROLPLANE_API_TOKEN_DAYS", 90)
# How long a process keeps a bearer token it found, or a session's user, with the user's
# permission set, before it reads them again (controlplane.recent; 0: every request reads them).
CONTROLPLANE_AUTH_CACHE_SECONDS = env_float("CONTROLPLANE_AUTH_CACHE_SECONDS", 1.0)
# --- Observability: health, metrics, JSON logs (docs/operations.md, "Monitoring") ------------
CONTROLPLANE_METRICS_PUBLIC = env_bool("CONTROLPLANE_METRICS_PUBLIC", default=False)
CONTROLPLANE_LOG_FORMAT = env_str("CONTROLPLANE_LOG_FORMAT", "plain").strip().lower() or "plain"
if CONTROLPLANE_LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(
        f"CONTROLPLANE_LOG_FORMAT is {CONTROLPLANE_LOG_FORMAT!r}; use 'plain' or 'json'."
    )
if CONTROLPLANE_LOG_FORMAT == "json":
    LOGGING["formatters"]["json"] = {"()": "observability.logs.JsonFormatter"}
    LOGGING["handlers"]["console"]["formatter"] = "json"
MIDDLEWARE += ["observability.middleware.LogContextMiddleware"]  # tenant_id on log lines
# Probes and scrapers may speak plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# --- Webhooks (docs/operations.md, "Webhooks") ------------------------------------------------
CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = env_bool("CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE", default=False)
# Seconds a receiver has to answer one delivery.
CONTROLPLANE_WEBHOOK_TIMEOUT = env_float("CONTROLPLANE_WEBHOOK_TIMEOUT", 10)
# Tries of one delivery, and the wait before the second, doubling (plus up to 25% jitter):
# 10 tries with 30 s wait about 4 hours in all.
CONTROLPLANE_WEBHOOK_MAX_TRIES = env_int("CONTROLPLANE_WEBHOOK_MAX_TRIES", 10)
CONTROLPLANE_WEBHOOK_RETRY_BASE = env_float("CONTROLPLANE_WEBHOOK_RETRY_BASE", 30)
CONTROLPLANE_WEBHOOK_SWEEP_INTERVAL = env_float("CONTROLPLANE_WEBHOOK_SWEEP_INTERVAL", 30)
# How long a process trusts its cached list of active subscriptions.
CONTROLPLANE_WEBHOOK_CACHE_SECONDS = env_float("CONTROLPLANE_WEBHOOK_CACHE_SECONDS", 5)
CELERY_BEAT_SCHEDULE["webhook-sweep"] = {
    "task": TaskName.WEBHOOK_SWEEP,
    "schedule": CONTROLPLANE_WEBHOOK_SWEEP_INTERVAL,
    "options": {"expires": max(1.0, CONTROLPLANE_WEBHOOK_SWEEP_INTERVAL)},
}
# --- The audit chain's key (audit/keys.py, docs/security.md "The audit chain") --------------
# HMAC key of the audit chain and of its checkpoints; never stored in the database. Unset, it is
# derived from SECRET_KEY (and SECRET_KEY_FALLBACKS verify older events). Retired keys (one per
# line or comma separated) are only used to verify events chained before a rotation.
CONTROLPLANE_AUDIT_KEY = env_str("CONTROLPLANE_AUDIT_KEY", "").strip()
CONTROLPLANE_AUDIT_RETIRED_KEYS = [
    k for k in env_str("CONTROLPLANE_AUDIT_RETIRED_KEYS", "").replace(",", "\n").split() if k
]
for _audit_key in [CONTROLPLANE_AUDIT_KEY, *CONTROLPLANE_AUDIT_RETIRED_KEYS]:
    if _audit_key and len(_audit_key) < 32:
        raise ImproperlyConfigured(
            "An audit key (CONTROLPLANE_AUDIT_KEY, CONTROLPLANE_AUDIT_RETIRED_KEYS) has at least "
            "32 characters; make one with "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`."
        )
# --- The approval policy (tenants.operations.approval_policy) --------------------------------
# Operations (comma list of the table's names, and `bulk` for any bulk operation) that wait for
# a different person with the same permission to approve them; a request expires after the TTL.
# Names are checked against the table when first used (an unknown one is ImproperlyConfigured).
CONTROLPLANE_APPROVAL_REQUIRED = tuple(
    name.strip()
    for name in env_str("CONTROLPLANE_APPROVAL_REQUIRED", "").split(",")
    if name.strip()
)
CONTROLPLANE_APPROVAL_TTL = env_float("CONTROLPLANE_APPROVAL_TTL", 86400)
if CONTROLPLANE_APPROVAL_TTL <= 0:
    raise ImproperlyConfigured("CONTROLPLANE_APPROVAL_TTL is a number of seconds above 0.")
# The older four-eyes switch: on, it means CONTROLPLANE_APPROVAL_REQUIRED=decommission.
CONTROLPLANE_DECOMMISSION_APPROVAL = env_bool("CONTROLPLANE_DECOMMISSION_APPROVAL", default=False)
CELERY_BEAT_SCHEDULE["approvals"] = {
    "task": TaskName.EXPIRE_APPROVALS,
    "schedule": CONTROLPLANE_WATCHDOG_INTERVAL,
    "options": {"expires": max(1.0, CONTROLPLANE_WATCHDOG_INTERVAL)},
}
# A refused request (403) logs one line, not a traceback (issue 8).
LOGGING.setdefault("filters", {})["refusal_on_one_line"] = {
    "()": "controlplane.logfilters.RefusalOnOneLine"
}
LOGGING["loggers"].setdefault("django.request", {}).setdefault("filters", []).append(
    "refusal_on_one_line"
)
# Reconciliation: the ledger against what the providers hold (manage.py reconcile).
CONTROLPLANE_RECONCILE_INTERVAL = env_float("CONTROLPLANE_RECONCILE_INTERVAL", 300)
CELERY_BEAT_SCHEDULE["reconcile"] = {
    "task": TaskName.RECONCILE,
    "schedule": CONTROLPLANE_RECONCILE_INTERVAL,
    "options": {"expires": max(1.0, CONTROLPLANE_RECONCILE_INTERVAL)},
}
# Control work (rollback, decommission, the watchdog) has a queue of its own, so a dedicated
# worker (``-Q control``) can keep a cancel from waiting behind provisioning steps that fill
# every slot of the step workers. Both queues are declared here (``task_queues``): that list
# is what a worker consumes when its command line names no ``-Q``, so a plain
# ``celery -A controlplane worker`` does every kind of work; ``-Q`` only narrows it (Celery's
# ``app.amqp.queues.select``). See the README, "Production".
CONTROLPLANE_STEP_QUEUE = "celery"
CONTROLPLANE_CONTROL_QUEUE = "control"
CONTROLPLANE_QUEUES = (CONTROLPLANE_STEP_QUEUE, CONTROLPLANE_CONTROL_QUEUE)
CELERY_TASK_DEFAULT_QUEUE = CONTROLPLANE_STEP_QUEUE
# Each queue bound to a direct exchange of its own name with its name as routing key: what
# Celery makes for its default queue and for a queue it creates when a route names it.
CELERY_TASK_QUEUES = tuple(
    KombuQueue(name, KombuExchange(name, type="direct"), routing_key=name)
    for name in CONTROLPLANE_QUEUES
)
CELERY_TASK_ROUTES = {
    TaskName.COMPENSATE: {"queue": CONTROLPLANE_CONTROL_QUEUE},
    TaskName.DECOMMISSION: {"queue": CONTROLPLANE_CONTROL_QUEUE},
    TaskName.WATCHDOG: {"queue": CONTROLPLANE_CONTROL_QUEUE},
    TaskName.EXPIRE_APPROVALS: {"queue": CONTROLPLANE_CONTROL_QUEUE},
    TaskName.RUN_SCHEDULES: {"queue": CONTROLPLANE_CONTROL_QUEUE},
}

# Django's own PostgreSQL connection pool (psycopg_pool), off unless DATABASE_POOL=1: a sync
# gunicorn worker or a prefork Celery child is one thread, and its persistent connection
# (CONN_MAX_AGE) is already a pool of one; the pool pays off for thread-pool workers (see
# docs/performance.md). Django refuses persistent connections with a pool: CONN_MAX_AGE is 0.
if env_bool("DATABASE_POOL", False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 16),
        "timeout": 30,
    }

# Permissions in one query per request (tenants/permissions.py): Django's ModelBackend, wherever
# it stands in the list of backends, is swapped for the one-query subclass.
AUTHENTICATION_BACKENDS = [
    "tenants.permissions.OneQueryModelBackend"
    if backend == "django.contrib.auth.backends.ModelBackend"
    else backend
    for backend in globals().get(
        "AUTHENTICATION_BACKENDS", ["django.contrib.auth.backends.ModelBackend"]
    )
]
