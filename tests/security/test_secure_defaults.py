"""Secure defaults with DEBUG off: ``check --deploy`` clean, HTTPS redirect, HSTS, Secure and
HttpOnly cookies, a CSP on every page; ``CONTROLPLANE_INSECURE_HTTP=1`` turns off the redirect,
HSTS and Secure cookies and nothing else; yes/no variables refuse what they don't understand."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.test import Client, override_settings

from ..conftest import ROOT

PROBE = (
    "import json; from django.conf import settings as s; print(json.dumps({k: getattr(s, k, None)"
    " for k in %r}, default=str))"
)
SECURITY_SETTINGS = [
    "DEBUG",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "CSRF_COOKIE_HTTPONLY",
    "SESSION_COOKIE_AGE",
    "SECURE_PROXY_SSL_HEADER",
    "CONTENT_SECURITY_POLICY",
    "X_FRAME_OPTIONS",
    "MIDDLEWARE",
]


def production_env(**extra: str) -> dict[str, str]:
    """What a production process sees: PostgreSQL, a real key, DEBUG off, no test switches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTROLPLANE_", "DEBUG"))}
    env.update(
        {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused",
            "SECRET_KEY": "a-production-like-secret-key-" + "k" * 50 + "-with-variety-1234567890",
            "ALLOWED_HOSTS": "cp.example.com",
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        }
    )
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_in(env: dict[str, str]) -> dict:
    result = manage("shell", "-c", PROBE % SECURITY_SETTINGS, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "DEBUG", env=production_env())
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_defaults():
    prod = settings_in(production_env())
    assert prod["DEBUG"] is False
    assert prod["SECURE_SSL_REDIRECT"] is True
    assert prod["SECURE_HSTS_SECONDS"] >= 31_536_000 and prod["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert prod["SESSION_COOKIE_SECURE"] and prod["CSRF_COOKIE_SECURE"]
    assert prod["SESSION_COOKIE_HTTPONLY"] and prod["CSRF_COOKIE_HTTPONLY"]
    assert prod["SESSION_COOKIE_AGE"] <= 8 * 3600
    assert prod["SECURE_PROXY_SSL_HEADER"] is None
    assert "'unsafe-inline'" not in prod["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]["script-src"]


def test_insecure_http_turns_off_the_redirect_hsts_and_secure_cookies_and_nothing_else():
    prod = settings_in(production_env())
    plain = settings_in(production_env(CONTROLPLANE_INSECURE_HTTP="1"))
    changed = {k for k in SECURITY_SETTINGS if prod[k] != plain[k]}
    assert changed == {
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
    }
    assert plain["SECURE_SSL_REDIRECT"] is False and plain["SECURE_HSTS_SECONDS"] == 0


def test_a_proxy_header_is_configurable():
    env = production_env(SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https")
    assert settings_in(env)["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    bad = manage("check", env=production_env(SECURE_PROXY_SSL_HEADER="nonsense"))
    assert bad.returncode != 0 and "Header-Name: value" in bad.stderr


@pytest.mark.parametrize("value", ["ture", "2", "enabled", "yes please"])
def test_yes_no_variables_refuse_unknown_values(value):
    result = manage("check", env=production_env(CONTROLPLANE_INSECURE_HTTP=value))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "not a yes/no value" in result.stderr


@pytest.mark.django_db
@override_settings(
    SECURE_SSL_REDIRECT=True,
    SECURE_HSTS_SECONDS=31_536_000,
    SESSION_COOKIE_SECURE=True,
    CSRF_COOKIE_SECURE=True,
)
def test_over_https_the_answers_carry_the_headers_and_secure_cookies(operator):
    client = Client()
    plain = client.get("/accounts/login/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    page = client.get("/accounts/login/", secure=True)
    assert page.status_code == 200
    assert page["Strict-Transport-Security"].startswith("max-age=31536000")
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["X-Frame-Options"] == "DENY"
    csrf = page.cookies["csrftoken"]
    assert csrf["secure"] and csrf["httponly"] and csrf["samesite"] == "Lax"
    login = client.post(
        "/accounts/login/", {"username": "otto", "password": "pw-otto"}, secure=True
    )
    assert login.status_code == 302
    session = login.cookies["sessionid"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/tenants/", "/admin/login/", "/api/v1/docs", "/api/v1/tenants"]
)
def test_every_page_has_a_csp_without_inline_scripts(client, path):
    response = client.get(path)
    csp = response["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


@pytest.mark.django_db
def test_the_policy_built_once_is_the_librarys_and_follows_its_settings(client, settings):
    """controlplane.middleware.CSPMiddleware keeps the plain policy: the same header django-csp
    builds, rebuilt when the policy's settings change, and a view's own policy still wins."""
    from csp.constants import HEADER
    from csp.utils import build_policy
    from django.http import HttpResponse
    from django.test import RequestFactory

    from controlplane.middleware import CSPMiddleware

    assert client.get("/accounts/login/")[HEADER] == build_policy()
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    assert client.get("/accounts/login/")[HEADER] == "default-src 'none'"

    def view_with_its_own(request):
        response = HttpResponse("x")
        response._csp_update = {"img-src": ["https://images.example"]}
        return response

    middleware = CSPMiddleware(view_with_its_own)
    request = RequestFactory().get("/x")
    answered = middleware(request)
    assert answered[HEADER] == "default-src 'none'; img-src https://images.example"
    exempt = HttpResponse("x")
    exempt._csp_exempt = True
    assert HEADER not in CSPMiddleware(lambda r: exempt)(RequestFactory().get("/x"))
