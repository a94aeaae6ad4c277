"""The create form: inline errors, nothing saved on bad input, straight to the running saga."""

from __future__ import annotations

import pytest

from audit.models import Event
from provisioning.models import Run
from tenants.models import Tenant

from .conftest import login, new_tenant

pytestmark = pytest.mark.django_db

GOOD = {"slug": "acme", "name": "Acme", "plan": "growth", "admin_email": "Ops@Acme.TEST"}


def test_the_form_renders_every_field(client, operator) -> None:
    login(client, operator)
    body = client.get("/tenants/new/").content.decode()
    for field in ("slug", "name", "plan", "admin_email", "start"):
        assert f'name="{field}"' in body
    assert "csrfmiddlewaretoken" in body


def test_a_good_submission_goes_to_the_running_saga(client, operator) -> None:
    login(client, operator)
    response = client.post("/tenants/new/", {**GOOD, "start": "on"})
    tenant = Tenant.objects.get(slug="acme")
    assert response.status_code == 302
    assert response["Location"] == f"/tenants/{tenant.pk}/"
    assert tenant.state == "provisioning"
    assert tenant.admin_email == "ops@acme.test"
    assert Run.objects.get(pk=tenant.workflow_id).attempt == 1
    assert Event.objects.filter(tenant_id=tenant.pk, type="tenant.created", actor="user:otto")
    page = client.get(response["Location"]).content.decode()
    assert "provisioning started" in page
    assert 'data-live="true"' in page


def test_without_start_the_tenant_waits_in_pending(client, operator) -> None:
    login(client, operator)
    client.post("/tenants/new/", GOOD)  # an unticked checkbox is simply absent
    assert Tenant.objects.get(slug="acme").state == "pending"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("slug", "A", "A slug has 3 to 63 characters."),
        ("slug", "Bad_Slug", "Use lowercase letters, digits and single hyphens"),
        ("slug", "admin", "is reserved"),
        ("name", "   ", "A name has 1 to 200 characters"),
        ("plan", "platinum", "Choose one of starter, growth, enterprise."),
        ("admin_email", "not-an-email", "Enter a valid e-mail address."),
    ],
)
def test_bad_input_is_shown_inline_and_nothing_is_saved(
    client, operator, field, value, message
) -> None:
    login(client, operator)
    response = client.post("/tenants/new/", {**GOOD, field: value, "start": "on"})
    assert response.status_code == 422
    body = response.content.decode()
    errors = body.split(f'data-field="{field}"', 1)[1].split("</ul>", 1)[0]
    assert message.replace("'", "&#x27;") in errors
    assert 'aria-invalid="true"' in body
    assert "Nothing was saved." in body
    assert not Tenant.objects.exists()
    assert not Event.objects.exists()
    # What was typed comes back, so the operator only fixes the bad field.
    assert 'value="Acme"' in body or field == "name"


def test_a_taken_slug_is_a_field_error(client, operator) -> None:
    new_tenant("acme", start=False)
    login(client, operator)
    response = client.post("/tenants/new/", GOOD)
    assert response.status_code == 422
    assert "This slug is already in use." in response.content.decode()
    assert Tenant.objects.count() == 1


def test_typed_markup_comes_back_escaped(client, operator) -> None:
    login(client, operator)
    response = client.post(
        "/tenants/new/", {**GOOD, "slug": '"><script>x()</script>', "name": "<b>n</b>"}
    )
    body = response.content.decode()
    assert "<script>x()</script>" not in body and "<b>n</b>" not in body
    assert "&lt;b&gt;n&lt;/b&gt;" in body


def test_faults_can_be_given_when_injection_is_on(client, operator, fast_saga) -> None:
    login(client, operator)
    assert 'name="faults"' in client.get("/tenants/new/").content.decode()
    client.post("/tenants/new/", {**GOOD, "start": "on", "faults": "allocate_storage=stall"})
    tenant = Tenant.objects.get(slug="acme")
    assert Run.objects.get(pk=tenant.workflow_id).faults == {"allocate_storage": "stall"}


def test_bad_faults_are_a_field_error(client, operator, fast_saga) -> None:
    login(client, operator)
    response = client.post("/tenants/new/", {**GOOD, "start": "on", "faults": "nope=explode"})
    assert response.status_code == 422
    assert 'data-field="faults"' in response.content.decode()
    assert not Tenant.objects.exists()


def test_faults_are_hidden_and_refused_when_injection_is_off(client, operator, settings) -> None:
    settings.CONTROLPLANE_FAULT_INJECTION = False
    login(client, operator)
    assert 'name="faults"' not in client.get("/tenants/new/").content.decode()
    response = client.post("/tenants/new/", {**GOOD, "faults": "allocate_storage=stall"})
    assert response.status_code == 422
    assert not Tenant.objects.exists()


def test_the_create_form_enforces_csrf(operator) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post("/tenants/new/", GOOD).status_code == 403
    assert not Tenant.objects.exists()
