"""The project's promises about itself: README commands, CI script, layout."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = _readme_commands()[1]
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_readme_first_command_runs_the_feeder_on_the_embedded_simulator():
    first = _readme_commands()[0]
    assert "--sim" in first and "pip install" in first


def test_layout_shows_the_layers_of_the_design():
    for path in ("feeder", "schemas", "consumers", "scripts", "tests", "feeder/__init__.py"):
        assert (ROOT / path).exists(), path
