"""The console's wording and forms where a new operator stumbled (issue 22)."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages

from provisioning.models import StepExecution, StepStatus
from provisioning.saga import execute_step
from tenants.models import SLUG_HELP

from .. import factories as f
from .conftest import login

pytestmark = pytest.mark.django_db


def test_the_retry_preview_says_it_goes_through_provisioning(client, operator, make_state):
    tenant = make_state("failed")
    login(client, operator)
    body = client.get(f"/tenants/{tenant.pk}/retry/").content.decode()
    shown = re.search(r'data-to-state="active">([^<]*)<', body)
    assert shown is not None
    assert shown.group(1) == "provisioning (a new run), then active once it completes"


def test_the_slug_help_says_every_rule(client, operator):
    login(client, operator)
    body = client.get("/tenants/new/").content.decode()
    assert SLUG_HELP in body
    assert "ends with a letter or digit" in SLUG_HELP


def test_a_cancel_that_releases_more_than_its_preview_says_so(client, operator, fast_saga):
    tenant = f.provisioning_tenant(slug="moving")  # storage held; allocate_identity queued
    login(client, operator)
    confirm = client.get(f"/tenants/{tenant.pk}/cancel/").content.decode()
    previewed = re.search(r'name="previewed" value="([^"]*)"', confirm)
    assert previewed is not None and previewed.group(1)  # the storage allocation
    assert 'data-kind="identity"' not in confirm
    # The saga moves on while the operator reads: allocate_identity runs.
    step = StepExecution.objects.get(run_id=tenant.workflow_id, name="allocate_identity")
    assert step.status == StepStatus.DISPATCHED
    execute_step(step.pk, step.token)
    response = client.post(
        f"/tenants/{tenant.pk}/cancel/",
        {"seen_state": "provisioning", "previewed": previewed.group(1)},
    )
    said = [str(m) for m in get_messages(response.wsgi_request)][-1]
    assert said.startswith("Cancellation of moving requested")
    assert "The saga moved on since the preview: 1 more allocation than it listed" in said
    assert "identity tenant-" in said


def test_a_cancel_that_releases_what_it_previewed_says_nothing_more(client, operator, fast_saga):
    tenant = f.provisioning_tenant(slug="still")
    login(client, operator)
    confirm = client.get(f"/tenants/{tenant.pk}/cancel/").content.decode()
    previewed = re.search(r'name="previewed" value="([^"]*)"', confirm).group(1)
    response = client.post(
        f"/tenants/{tenant.pk}/cancel/", {"seen_state": "provisioning", "previewed": previewed}
    )
    said = [str(m) for m in get_messages(response.wsgi_request)][-1]
    assert "moved on" not in said
