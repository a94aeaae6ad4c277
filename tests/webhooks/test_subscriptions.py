"""Subscribing through each door, and the address guard at subscribe time."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from webhooks import guard, services
from webhooks.models import Subscription

pytestmark = [pytest.mark.django_db]

PRIVATE_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://172.16.5.4/hook",
    "http://169.254.169.254/latest/meta-data",  # the cloud metadata service
    "http://100.64.0.1/hook",  # shared address space
    "http://[::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    # IPv6 forms that carry an IPv4 address inside (issue 23): each reaches loopback somewhere.
    "http://[::127.0.0.1]/hook",  # IPv4-compatible
    "http://[::ffff:0:7f00:1]/hook",  # IPv4-translated (SIIT)
    "http://[64:ff9b::7f00:1]/hook",  # NAT64, the well-known prefix
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 to the metadata service
    "http://[64:ff9b:1::a00:1]/hook",  # local-use NAT64
    "http://[2002:7f00:1::1]/hook",  # 6to4 around 127.0.0.1
    "http://[2002:a00:1::1]/hook",  # 6to4 around 10.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
    "http://[fec0::1]/hook",  # site-local
    "http://[::]/hook",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_addresses_are_refused_without_the_setting(url, settings):
    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(services.WebhookError) as refused:
        services.add_subscription(url=url, events="tenant")
    assert "CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE" in refused.value.message
    assert not Subscription.objects.exists()


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_addresses_are_refused_at_send_time_too(url):
    # The sender calls the same resolve() before every connection (tests/webhooks/
    # test_delivery.py shows a refusal at send end to end).
    with pytest.raises(guard.AddressRefused, match="private address"):
        guard.resolve(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://[64:ff9b::5db8:d70e]/hooks",  # NAT64 to a public address
        "https://[2002:5db8:d70e::1]/hooks",  # 6to4 around a public address
        "https://[2606:4700:4700::1111]/hooks",
    ],
)
def test_transition_forms_around_a_public_address_are_accepted(url, settings):
    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = False
    assert services.add_subscription(url=url, events="tenant").url == url


def test_private_addresses_are_accepted_with_the_setting(settings):
    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = True
    sub = services.add_subscription(url="http://127.0.0.1:9/hook", events="tenant.created")
    assert sub.events == ["tenant.created"] and sub.active
    assert sub.secret.startswith("whsec_") and len(sub.secret) > 30


def test_a_public_address_is_accepted(settings):
    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = False
    sub = services.add_subscription(
        url="https://93.184.215.14/hooks",
        events="tenant.provisioning, tenant.created",
        secret="s" * 20,
    )
    assert sub.events == ["tenant.provisioning", "tenant.created"]
    assert sub.secret == "s" * 20


@pytest.mark.parametrize(
    ("url", "events", "message"),
    [
        ("ftp://93.184.215.14/x", "tenant", "https://"),
        ("https:///nohost", "tenant", "names a host"),
        ("https://user:pw@93.184.215.14/x", "tenant", "credentials"),
        ("https://93.184.215.14:99999/x", "tenant", "not a valid URL"),
        ("https://no-such-host.invalid/x", "tenant", "does not resolve"),
        ("https://93.184.215.14/x", "tenant.nothing", "matches no audit event type"),
        ("https://93.184.215.14/x", "Tenant.Created", "not an event type"),
        ("https://93.184.215.14/x", " , ", "at least one"),
        ("https://93.184.215.14/x", "tenant.provisioning.", "not an event type"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(url, events, message):
    with pytest.raises(services.WebhookError) as refused:
        services.add_subscription(url=url, events=events)
    assert message in refused.value.message
    assert not Subscription.objects.exists()


def test_a_non_ascii_url_is_stored_as_it_will_be_sent(settings):
    # Issue 23: a path with "é" could never be sent (the request line is ASCII).
    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = True
    sub = services.add_subscription(url="http://127.0.0.1:9/café/hook?x=ü", events="tenant")
    assert sub.url == "http://127.0.0.1:9/caf%C3%A9/hook?x=%C3%BC"
    assert guard.normalise("https://bücher.example/a") == "https://xn--bcher-kva.example/a"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/a b", "http://127.0.0.1/a\x00", "http://127.0.0.1/a\nb"]
)
def test_spaces_and_control_characters_in_a_url_are_refused(url, settings):
    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = True
    with pytest.raises(services.WebhookError, match="no spaces or control characters"):
        services.add_subscription(url=url, events="tenant")
    assert not Subscription.objects.exists()


def test_a_short_secret_is_refused(settings):
    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = True
    with pytest.raises(services.WebhookError, match="16 to 200"):
        services.add_subscription(url="http://127.0.0.1/h", events="tenant", secret="short")


# --- the command ----------------------------------------------------------------------------


def test_command_add_list_remove(settings, capsys):
    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = True
    call_command("webhook", "add", "http://127.0.0.1:9/hook", "--events", "tenant.created")
    out = capsys.readouterr().out
    sub = Subscription.objects.get()
    assert f"Subscribed #{sub.pk}" in out and sub.secret in out  # shown once
    call_command("webhook", "list")
    listed = capsys.readouterr().out
    assert f"#{sub.pk}" in listed and "tenant.created" in listed and sub.secret not in listed
    call_command("webhook", "remove", str(sub.pk))
    assert "Removed" in capsys.readouterr().out
    assert not Subscription.objects.exists()


def test_command_refusals_are_one_line_errors(settings):
    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(CommandError, match="private address"):
        call_command("webhook", "add", "http://10.0.0.1/h", "--events", "tenant")
    with pytest.raises(CommandError, match="No webhook subscription #42"):
        call_command("webhook", "remove", "42")
    with pytest.raises(CommandError, match="No webhook subscription"):
        call_command("webhook", "remove", "abc")
    assert not Subscription.objects.exists()


# --- the admin ------------------------------------------------------------------------------


@pytest.fixture
def superuser(roles):
    from ..conftest import make_user

    return make_user("root", None, superuser=True)


def test_admin_adds_a_subscription_through_the_same_checks(client, superuser, settings):
    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = False
    client.force_login(superuser)
    form = {"url": "http://10.0.0.7/hook", "events_text": "tenant.created", "active": "on"}
    response = client.post("/admin/webhooks/subscription/add/", form)
    assert response.status_code == 200
    assert "private address" in response.content.decode()
    assert not Subscription.objects.exists()
    form["url"] = "https://93.184.215.14/hook"
    form["events_text"] = "tenant.nope"
    response = client.post("/admin/webhooks/subscription/add/", form)
    assert "matches no audit event type" in response.content.decode()
    form["events_text"] = "tenant.created,tenant.provisioning"
    response = client.post("/admin/webhooks/subscription/add/", form)
    # The generated secret is shown once on the answer itself, never in a message (messages
    # travel in a cookie that anyone holding it can read, issue 23).
    assert response.status_code == 200
    sub = Subscription.objects.get()
    assert sub.events == ["tenant.created", "tenant.provisioning"]
    assert sub.secret.startswith("whsec_")
    assert sub.secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert all(sub.secret not in c.value for c in response.cookies.values())
    assert all(sub.secret not in c.value for c in client.cookies.values())
    page = client.get(f"/admin/webhooks/subscription/{sub.pk}/change/").content.decode()
    assert sub.secret not in page
    listing = client.get("/admin/webhooks/subscription/").content.decode()
    assert sub.secret not in listing
    # Changing it with the secret left empty keeps the secret.
    form.update(events_text="tenant")
    response = client.post(f"/admin/webhooks/subscription/{sub.pk}/change/", form)
    assert response.status_code == 302
    changed = Subscription.objects.get()
    assert changed.events == ["tenant"] and changed.secret == sub.secret


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_command_as_an_operator_runs_it(settings):
    """A real process: a refusal is one line on stderr, exit status 1, nothing written."""
    import subprocess
    import sys

    from ..conftest import ROOT, subprocess_env

    out = subprocess.run(
        [sys.executable, "manage.py", "webhook", "add", "http://10.0.0.1/h", "--events", "tenant"],
        cwd=ROOT,
        env=subprocess_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "private address" in out.stderr
    assert "Traceback" not in out.stderr
    assert not Subscription.objects.exists()


@pytest.mark.parametrize("persona", ["viewer", "operator", "admin_user"])
def test_only_superusers_see_webhooks_in_the_admin(client, persona, request):
    user = request.getfixturevalue(persona)
    client.force_login(user)
    assert client.get("/admin/webhooks/subscription/").status_code in (302, 403)
    assert client.get("/admin/webhooks/delivery/").status_code in (302, 403)
