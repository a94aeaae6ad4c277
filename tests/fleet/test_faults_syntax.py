"""Faults in one syntax at every door (issue 22): ``step=fault`` pairs or a JSON object, read
by one parser (``provisioning.faults.parse_faults``), worded the same when wrong."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from provisioning.faults import parse_faults
from provisioning.models import Run
from tenants.models import Tenant

from ..api.conftest import client_for

pytestmark = pytest.mark.django_db

PAIRS = "create_database=fail, configure_dns = fail_once"
OBJECT = '{"create_database": "fail", "configure_dns": "fail_once"}'
WANTED = {"create_database": "fail", "configure_dns": "fail_once"}


@pytest.mark.parametrize(
    "text", [PAIRS, OBJECT, f"  {OBJECT}\n", "create_database=fail\nconfigure_dns=fail_once"]
)
def test_the_parser_reads_both_shapes(text):
    assert parse_faults(text) == WANTED


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{create", "Not valid JSON (Expecting property name"),
        ("create_database", "'create_database' is not step=fault"),
        ("=fail", "'=fail' is not step=fault"),
    ],
)
def test_the_parser_says_which_shape_it_read_and_what_is_wrong(text, says):
    with pytest.raises(ValueError, match=r"write step=fault pairs") as caught:
        parse_faults(text)
    assert says in str(caught.value)


def faults_of(slug: str) -> dict[str, str]:
    run = Run.objects.get(tenant=Tenant.objects.get(slug=slug))
    return dict(run.faults)


@pytest.mark.parametrize("text", [PAIRS, OBJECT])
def test_the_console_takes_both(client, operator, fast_saga, text):
    client.force_login(operator)
    response = client.post(
        "/tenants/new/",
        {
            "slug": "console-faults",
            "name": "C",
            "plan": "starter",
            "admin_email": "o@c.test",
            "faults": text,
            "start": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert faults_of("console-faults") == WANTED


@pytest.mark.parametrize("faults", [PAIRS, json.loads(OBJECT)])
def test_the_api_takes_both(operator, fast_saga, faults):
    response = client_for(operator).post(
        "/tenants",
        {
            "slug": "api-faults",
            "name": "A",
            "plan": "starter",
            "admin_email": "o@a.test",
            "faults": faults,
        },
    )
    assert response.status_code == 201, response.content
    assert faults_of("api-faults") == WANTED


@pytest.mark.parametrize("text", [PAIRS, OBJECT])
def test_the_command_takes_both(fast_saga, text):
    call_command(
        "tenant",
        "create",
        "--slug",
        "cli-faults",
        "--name",
        "C",
        "--plan",
        "starter",
        "--admin-email",
        "o@c.test",
        "--faults",
        text,
        stdout=StringIO(),
        stderr=StringIO(),
    )
    assert faults_of("cli-faults") == WANTED


def test_a_json_mistake_is_worded_the_same_in_the_console_and_the_api(client, operator, fast_saga):
    client.force_login(operator)
    body = client.post(
        "/tenants/new/",
        {"slug": "bad", "name": "B", "plan": "starter", "admin_email": "o@b.test", "faults": "{x"},
    ).content.decode()
    response = client_for(operator).post(
        "/tenants",
        {"slug": "bad", "name": "B", "plan": "starter", "admin_email": "o@b.test", "faults": "{x"},
    )
    said = response.json()["error"]["details"]["faults"][0]
    assert said.startswith("Not valid JSON (Expecting property name")
    from django.utils.html import escape

    assert escape(said) in body
    assert not Tenant.objects.filter(slug="bad").exists()
