"""The example alert rules in deploy/prometheus: well formed, and about series we expose."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from observability.metrics import render

from ..conftest import ROOT

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
REQUIRED_ALERTS = {
    "ControlPlaneTenantsStalled",
    "ControlPlaneWatchdogSilent",
    "ControlPlaneStepFailureRatioHigh",
}


def load_rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"}
    rules = []
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"]
        rules.extend(group["rules"])
    return rules


def test_every_rule_has_the_fields_prometheus_requires():
    rules = load_rules()
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert isinstance(rule["alert"], str) and re.fullmatch(r"[A-Za-z_]\w*", rule["alert"])
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert DURATION.match(rule.get("for", "0s")), rule["for"]
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["summary"]
    assert {r["alert"] for r in rules} >= REQUIRED_ALERTS
    stalled = next(r for r in rules if r["alert"] == "ControlPlaneTenantsStalled")
    assert 'condition="stalled"' in stalled["expr"] and stalled["for"] == "5m"


@pytest.mark.django_db
def test_the_rules_name_only_series_the_metrics_endpoint_exposes():
    exposed = set()
    for family in text_string_to_metric_families(render().decode()):
        exposed.update(sample.name for sample in family.samples)
    for rule in load_rules():
        for name in re.findall(r"\bcontrolplane_\w+", rule["expr"]):
            assert name in exposed, f"{rule['alert']} uses {name}, which /metrics does not expose"


@pytest.mark.skipif(
    shutil.which("promtool") is None and os.environ.get("CONTROLPLANE_REQUIRE_SERVICES") != "1",
    reason="promtool not installed (Debian: prometheus); .ci/run installs it",
)
def test_promtool_accepts_and_unit_tests_the_rules():
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(RULE_TESTS)]):
        out = subprocess.run(["promtool", *args], capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
