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
    assert "4 kept, 0 broken" in proc.stdout


def test_core_imports_without_qt() -> None:
    code = (
        "import sys, inspector.cli, inspector.synth, inspector.manifest, inspector.synth.generate\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PyQt6', 'ui', 'training', 'torch')]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
