"""Layering contracts: the core is Qt-free, training is never imported by the runtime, the PLC
drivers never import their simulator, and the simulator (its benchmark aside) no client driver."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "8 kept, 0 broken" in proc.stdout


def test_core_imports_without_qt() -> None:
    code = (
        "import sys, inspector.cli, inspector.synth, inspector.manifest, inspector.synth.generate\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PyQt6', 'ui', 'training', 'torch')]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def _imports(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _production_modules() -> list[Path]:
    return [p for pkg in ("inspector", "ui", "training") for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_only_the_records_layer_touches_the_database() -> None:
    """One writer: nothing outside inspector/records imports the database driver."""
    records = ROOT / "inspector" / "records"
    offenders = [
        str(p.relative_to(ROOT))
        for p in _production_modules()
        if records not in p.parents and any(m == "sqlite3" or m.startswith("sqlite3.") for m in _imports(p))
    ]
    assert offenders == []


def test_a_station_is_built_in_one_place() -> None:
    """Nobody but the station's assembly (and the pipeline that defines it) constructs a Station."""
    import ast

    allowed = {ROOT / "inspector" / "station" / "session.py", ROOT / "inspector" / "pipeline" / "station.py"}
    builders = []
    for path in _production_modules():
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Station":
                builders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert builders == []


def test_cameras_declare_what_line_sources_provide() -> None:
    """The pipeline and the HMI read a camera's batch size, pace and end through its interface, never getattr."""
    import re

    pattern = re.compile(r"getattr\([^,]*camera[^,]*,")
    offenders = [
        str(p.relative_to(ROOT)) for p in _production_modules() if pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []
