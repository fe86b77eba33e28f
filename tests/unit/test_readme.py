"""The README's two commands are the ones CI and users actually run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _code_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_test_command() -> None:
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    test_cmds = [line for line in _code_lines() if "pytest" in line]
    assert len(test_cmds) == 1, test_cmds
    assert test_cmds[0] in ci


def test_readme_start_command_names_a_shipped_recipe() -> None:
    starts = [line for line in _code_lines() if line.startswith(("uv run inspector-hmi", "uv run inspector run"))]
    assert len(starts) == 1, "README gives exactly one command that starts the station"
    flag = "--recipe" if "--recipe" in starts[0] else "--product"
    recipe = starts[0].split(flag, 1)[1].split()[0]
    assert (ROOT / "recipes" / f"{recipe}.yaml").is_file(), f"README starts recipe {recipe!r}, not shipped"
