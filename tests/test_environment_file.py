"""environment.yml cannot be exercised with conda here: keep it in step with pyproject.toml instead."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pip_lines() -> list[str]:
    text = (ROOT / "environment.yml").read_text()
    return [m.group(1).strip() for m in re.finditer(r"^\s+- (-e \..*|labcam.*)$", text, re.M)]


def test_environment_installs_this_package_with_every_extra_it_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = _pip_lines()
    assert len(lines) == 1, f"environment.yml should install labcam exactly once via pip, found {lines}"
    m = re.fullmatch(r"-e \.\[([a-z0-9,-]+)\]", lines[0])  # PEP 685 names: letters, digits, -
    assert m, f"expected '-e .[extras]', got {lines[0]!r}"
    extras = set(m.group(1).split(","))
    declared = set(project["optional-dependencies"])
    assert extras <= declared, f"environment.yml names extras pyproject.toml lacks: {extras - declared}"
    # Everything but the vendor SDK extra (which needs the native SDK installed first).
    assert extras == declared - {"pixelink"}, f"environment.yml extras {extras} != pyproject extras {declared}"


def test_environment_python_matches_requires_python() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = (ROOT / "environment.yml").read_text()
    want = project["requires-python"].removeprefix(">=")
    assert f"python>={want}" in text
