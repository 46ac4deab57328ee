"""A fresh machine installs what the suite ran with (SPEC section 13, "Installs as tested").

pyproject.toml bounds every dependency to a series; constraints.txt pins the exact versions,
and both README commands install through it. These tests fail when a pin leaves its bound,
when a dependency has no pin, or when the environment running the suite is not the pinned
one (a green run on other versions proves nothing about a fresh machine).
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements() -> list[Requirement]:
    listed = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["test"]]
    return [Requirement(text) for text in listed]


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            found[canonicalize_name(name)] = version
    return found


def test_the_distribution_name_is_not_the_unrelated_bff() -> None:
    assert PROJECT["name"] == "bff-gateway"
    assert metadata.version("bff-gateway") == PROJECT["version"]
    assert PROJECT["scripts"] == {"bff": "bff.cli:main"}


@pytest.mark.parametrize("requirement", requirements(), ids=str)
def test_every_dependency_is_bounded_above(requirement: Requirement) -> None:
    operators = {spec.operator for spec in requirement.specifier}
    assert operators & {"<", "==", "~="}, f"{requirement} has no upper bound"


@pytest.mark.parametrize("requirement", requirements(), ids=str)
def test_every_dependency_is_pinned_within_its_bound(requirement: Requirement) -> None:
    pinned = pins().get(canonicalize_name(requirement.name))
    assert pinned is not None, f"{requirement.name} is not pinned in constraints.txt"
    assert requirement.specifier.contains(pinned, prereleases=True), (
        f"constraints.txt pins {requirement.name}=={pinned}, outside {requirement.specifier}"
    )


def test_the_running_environment_is_the_pinned_one() -> None:
    wrong = []
    for name, pinned in pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a platform-only dependency (uvloop, watchfiles) may be absent
        if installed != pinned:
            wrong.append(f"{name} {installed} (pinned {pinned})")
    assert not wrong, "installed versions differ from constraints.txt: " + ", ".join(wrong)


def test_both_readme_commands_install_through_the_constraints() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install -c constraints.txt -e . && .venv/bin/bff demo" in readme
    script = (ROOT / "scripts" / "test").read_text()
    assert re.search(r"pip install .*-c constraints\.txt -e '\.\[test\]'", script)
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("scripts/test")
