"""Shared helpers of the chart tests: load, render and parse the chart with the real Helm
library (helm-python-sdk), and find the workspace's binaries."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "agent-bridge"
SCENARIOS = sorted((CHART / "ci").glob("*.yaml"))
RELEASE = "ab"
NAMESPACE = "agents-test"


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Renders the chart (as `helm template` would) into a list of objects."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    return objects


def render_notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def component(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    """The object of `kind` whose app.kubernetes.io/component label is `name`."""
    found = [
        o
        for o in of_kind(objects, kind)
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == name
    ]
    assert len(found) <= 1, f"more than one {kind} for component {name}"
    return found[0] if found else None


def bridge_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = component(objects, "Deployment", "bridge")
    assert deployment is not None, "no bridge Deployment rendered"
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "bridge"]
    return container


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def pod_specs(objects: list[dict[str, Any]]):
    """(object, pod spec) for every workload and bare Pod rendered."""
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield o, o["spec"]["template"]["spec"]
        elif o["kind"] == "Pod":
            yield o, o["spec"]


def seconds(duration: str) -> float:
    """A bridge duration (`250ms`, `15s`, `5m`, `1h`) in seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", duration)
    assert m, f"not a duration: {duration!r}"
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def binary(name: str) -> Path:
    """A workspace binary built by `cargo build --workspace --bins` (scripts/test.sh)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    path = target / "debug" / name
    if not path.exists():
        message = f"{path} is missing: run `cargo build --workspace --bins --locked` first"
        pytest.fail(message)
    return path


@pytest.fixture(params=SCENARIOS, ids=lambda p: p.stem)
def scenario(request) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(name, rendered objects, values) of each ci/*.yaml scenario."""
    values = load_values(request.param)
    return request.param.stem, render(values), values
