"""A plain install of gatewatch brings no urllib3-future: grafana-client (which pulls in
niquests and urllib3-future, and so replaces urllib3's pool classes for every package in
the environment) is the optional ``grafana`` extra.

Offline: the dependency closure is walked from pyproject.toml through the metadata of the
distributions installed here (requirements without extras, markers evaluated for this
interpreter). The extra's closure must contain urllib3-future, so the check can fail."""

from __future__ import annotations

import tomllib
from collections import deque
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
SELF = canonicalize_name(PROJECT["name"])
UNWANTED = {"urllib3-future", "niquests"}


def _own_requirements(extras: frozenset[str]) -> list[str]:
    reqs = list(PROJECT["dependencies"])
    for extra in sorted(extras):
        reqs += PROJECT["optional-dependencies"][extra]
    return reqs


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in ("", *extras))


def closure(extras: frozenset[str] = frozenset()) -> tuple[set[str], set[str]]:
    """(distributions gatewatch[extras] needs here, those not installed here: their own
    requirements could not be read). gatewatch's own come from pyproject.toml, not from
    its installed (possibly stale) metadata."""
    needed: set[str] = set()
    missing: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = deque([(SELF, extras)])
    while todo:
        name, want = todo.popleft()
        if (name, want) in seen:
            continue
        seen.add((name, want))
        if name == SELF:
            reqs = _own_requirements(want)
        else:
            needed.add(name)
            try:
                reqs = metadata.requires(name) or []
            except metadata.PackageNotFoundError:
                missing.add(name)
                continue
        for text in reqs:
            req = Requirement(text)
            if _applies(req, want):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return needed, missing


def test_a_plain_install_has_no_urllib3_future():
    needed, missing = closure()
    assert not missing, f"not installed here, cannot check their requirements: {missing}"
    assert {"faust-streaming", "prometheus-client", "grafana-foundation-sdk"} <= needed
    assert "grafana-client" not in needed
    assert not needed & UNWANTED, f"the core install pulls in {needed & UNWANTED}"


def test_the_grafana_extra_brings_them_and_dev_includes_it():
    needed, _ = closure(frozenset({"grafana"}))
    assert {"grafana-client", *UNWANTED} <= needed  # so the test above can fail
    dev, _ = closure(frozenset({"dev"}))
    assert "grafana-client" in dev  # `make test` runs the push test against a fake Grafana
