"""Slug, name, plan and e-mail rules: refused with a message per field, nothing saved."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from hypothesis import given
from hypothesis import strategies as st

from audit.models import Event
from tenants.errors import OperationError
from tenants.models import Tenant, validate_slug
from tenants.services import validate_tenant_fields

from .. import factories as f

GOOD = {"slug": "acme-co", "name": "Acme", "plan": "growth", "admin_email": "ops@acme.test"}


@pytest.mark.parametrize(
    "slug",
    ["abc", "a1b", "a-b-c", "tenant-42", "a" * 63, "x9"[:1] + "y" * 62],
)
def test_good_slugs(slug):
    validate_slug(slug)


@pytest.mark.parametrize(
    ("slug", "why"),
    [
        ("ab", "3 to 63"),
        ("a" * 64, "3 to 63"),
        ("1abc", "start with a letter"),
        ("-abc", "start with a letter"),
        ("abc-", "end"),
        ("ab--cd", "single hyphens"),
        ("Abc", "lowercase"),
        ("ab_c", "lowercase"),
        ("ab c", "lowercase"),
        ("émile", "lowercase"),
        ("admin", "reserved"),
        ("console", "reserved"),
        ("status", "reserved"),
    ],
)
def test_bad_slugs_are_refused_with_a_reason(slug, why):
    with pytest.raises(OperationError) as refused:
        validate_tenant_fields(**{**GOOD, "slug": slug})
    assert refused.value.code == "validation_error"
    message = " ".join(refused.value.details["slug"])
    assert why in message


LOWER = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"


def contract_slug(slug: str) -> bool:
    """The contract's slug rule, read off its sentence character by character: an oracle that
    shares nothing with the code's regular expression."""
    return (
        3 <= len(slug) <= 63
        and all(ch in LOWER or ch in DIGITS or ch == "-" for ch in slug)
        and slug[0] in LOWER
        and (slug[-1] in LOWER or slug[-1] in DIGITS)
        and "--" not in slug
        and slug not in {"admin", "api", "www", "static", "media", "app", "console", "status"}
    )


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_A.", min_size=0, max_size=70))
def test_slug_validation_agrees_with_the_rule(slug):
    expected = contract_slug(slug)
    try:
        validate_slug(slug)
        accepted = True
    except Exception:  # noqa: BLE001
        accepted = False
    assert accepted == expected


def test_name_is_trimmed_and_bounded():
    assert validate_tenant_fields(**{**GOOD, "name": "  Acme  "})["name"] == "Acme"
    for bad in ["", "   ", "x" * 201]:
        with pytest.raises(OperationError) as refused:
            validate_tenant_fields(**{**GOOD, "name": bad})
        assert "name" in refused.value.details


def test_email_is_lowercased_and_checked():
    assert (
        validate_tenant_fields(**{**GOOD, "admin_email": "Ops@ACME.test"})["admin_email"]
        == "ops@acme.test"
    )
    for bad in ["", "not-an-email", "a@", "@b.c", "a b@c.d", "x" * 250 + "@a.io"]:
        with pytest.raises(OperationError) as refused:
            validate_tenant_fields(**{**GOOD, "admin_email": bad})
        assert refused.value.details == {"admin_email": ["Enter a valid e-mail address."]}


def test_plan_must_be_known_and_fields_must_be_text():
    with pytest.raises(OperationError) as refused:
        validate_tenant_fields(slug=None, name=7, plan="gold", admin_email=["x"])
    assert set(refused.value.details) == {"slug", "name", "plan", "admin_email"}


@pytest.mark.django_db
def test_bad_input_saves_nothing(fast_saga):
    with pytest.raises(OperationError):
        f.new_tenant(slug="Bad Slug")
    assert not Tenant.objects.exists()
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_faults_are_refused_when_fault_injection_is_off(fast_saga):
    fast_saga.CONTROLPLANE_FAULT_INJECTION = False
    with pytest.raises(OperationError) as refused:
        f.new_tenant(faults={"allocate_storage": "fail"})
    assert refused.value.code == "validation_error"
    assert "faults" in refused.value.details
    assert not Tenant.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "faults",
    [
        {"nope": "fail"},
        {"allocate_storage": "explode"},
        {"allocate_storage": "slow:x"},
        {"allocate_storage": 3},
        ["allocate_storage"],
    ],
)
def test_malformed_faults_are_refused(fast_saga, faults):
    with pytest.raises(OperationError) as refused:
        f.new_tenant(faults=faults)
    assert refused.value.code == "validation_error"
    assert not Tenant.objects.exists()


@pytest.mark.django_db
def test_a_live_slug_is_taken_until_decommissioned(fast_saga):
    first = f.active_tenant(slug="taken")
    with pytest.raises(OperationError) as refused:
        f.new_tenant(slug="taken")
    assert refused.value.code == "slug_taken"
    assert refused.value.status == 409
    assert Tenant.objects.filter(slug="taken").count() == 1
    f.decommissioned_tenant(slug="other")
    assert first.slug == "taken"


@pytest.mark.django_db
def test_the_database_enforces_slug_rules_and_uniqueness(fast_saga):
    f.new_tenant(slug="unique-one", start=False)
    table = Tenant._meta.db_table
    cols = "(id, slug, name, plan, admin_email, state, last_error, failed_activity, created_at, "
    cols += "updated_at)"
    for slug in ["unique-one", "Bad", "admin", "ab"]:
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as c:
            c.execute(
                f"INSERT INTO {table} {cols} VALUES "  # noqa: S608 - fixed table name
                "(%s, %s, 'n', 'starter', 'a@b.c', 'pending', '', '', now(), now())",
                [str(uuid.uuid4()), slug],
            )


@pytest.mark.parametrize("field", ["slug", "name", "plan", "admin_email"])
def test_control_characters_are_refused(field):
    with pytest.raises(OperationError) as refused:
        validate_tenant_fields(**{**GOOD, field: GOOD[field] + "\x00"})
    assert "Control characters" in " ".join(refused.value.details[field])


@pytest.mark.parametrize(
    "mark", ["\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u2060", "\u061c"]
)
@pytest.mark.parametrize("field", ["name", "slug"])
def test_bidi_and_zero_width_characters_are_refused(field, mark):
    # Issue 23: "Acme\u202eevil" shows as another name in every list.
    with pytest.raises(OperationError) as refused:
        validate_tenant_fields(**{**GOOD, field: GOOD[field][:2] + mark + GOOD[field][2:]})
    assert "Invisible formatting characters" in " ".join(refused.value.details[field])
