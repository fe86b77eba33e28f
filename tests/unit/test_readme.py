"""The README's commands are the ones CI and users actually run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _code_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_gives_the_station_test_command_and_ci_runs_the_full_one() -> None:
    """Two test commands: the station's (no training extra, no torch) and the full one, which CI runs."""
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    test_cmds = [line for line in _code_lines() if "pytest" in line]
    assert len(test_cmds) == 2, test_cmds
    full = [c for c in test_cmds if "--extra training" in c]
    station = [c for c in test_cmds if "--extra" not in c]
    assert len(full) == 1 and len(station) == 1, test_cmds
    assert full[0] in ci, "CI runs the README's full test command"
    assert station[0] == full[0].replace(" --extra training", ""), "the same command without the extra"


def test_readme_names_the_training_tool_one_way() -> None:
    text = (ROOT / "README.md").read_text()
    assert "python -m training" not in text, "the training CLI is inspector-train"
    train_lines = [line for line in _code_lines() if "inspector-train" in line]
    assert train_lines and all(line.startswith("uv run --extra training inspector-train ") for line in train_lines)


def test_readme_start_command_names_a_shipped_recipe() -> None:
    starts = [line for line in _code_lines() if line.startswith(("uv run inspector-hmi", "uv run inspector run"))]
    assert len(starts) == 1, "README gives exactly one command that starts the station"
    flag = "--recipe" if "--recipe" in starts[0] else "--product"
    recipe = starts[0].split(flag, 1)[1].split()[0]
    assert (ROOT / "recipes" / f"{recipe}.yaml").is_file(), f"README starts recipe {recipe!r}, not shipped"


def test_readme_names_the_hmi_system_packages_as_the_code_and_ci_do() -> None:
    """One line of Debian / Ubuntu packages: the HMI's startup check prints it and .ci/run installs it."""
    from inspector.site.local_server import INSTALL_LINE as SERVER_LINE
    from ui.platform_check import APT_PACKAGES, INSTALL_LINE

    lines = [line for line in _code_lines() if "apt-get install" in line]
    assert lines == [INSTALL_LINE, SERVER_LINE], "the HMI's line (ui/platform_check.py), then the site tests' server"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 ui/platform_check.py" in ci and "apt-get install" in ci, "CI installs the README's packages"
    assert ci.index("apt-get install") < ci.index(next(c for c in _code_lines() if "--extra training pytest" in c))
    assert "install -y -q --no-install-recommends " + SERVER_LINE.split("install ", 1)[1] in ci
    assert INSTALL_LINE.split()[3:] == list(APT_PACKAGES)
