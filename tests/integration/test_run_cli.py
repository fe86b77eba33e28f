"""``inspector run`` and ``inspector bench`` in a real child process, on a throwaway project root."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inspector.taxonomy import IMAGE_SPECS, Product
from tests.support.onnx_models import make_package

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp: Path, product: Product, *, budget_ms: float = 200, rate: float = 1200) -> Path:
    record = make_package(tmp / "models" / product.value / "0.0.1", product, defect_class=None, dark_below=5)
    spec = IMAGE_SPECS[product]
    recipe = {
        "schema_version": 1,
        "recipe_id": f"{product.value}-test",
        "version": "1.0.0",
        "product": product.value,
        "camera": "sim.yaml",
        "frame": {"width": spec.width, "height": spec.height, "channels": spec.channels},
        "model": {"path": f"models/{product.value}/0.0.1", "sha256": record.sha256},
        "latency_budget_ms": budget_ms,
        "line_rate_per_min": rate,
    }
    if product is Product.BLISTER:
        from inspector.config.roi import DEFAULT_BLISTER_GRID

        recipe["pocket_grid"] = DEFAULT_BLISTER_GRID.model_dump(mode="json")
    (tmp / "recipes").mkdir(exist_ok=True)
    (tmp / "recipes" / f"{product.value}.yaml").write_text(yaml.safe_dump(recipe))
    return tmp


def _inspector(root: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INSPECTOR_HOME": str(root)}
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("product", [Product.TABLET, Product.BLISTER])
def test_run_sim_batch_writes_summary_and_records(tmp_path: Path, product: Product) -> None:
    root = _project(tmp_path, product)
    out = tmp_path / "summary.json"
    proc = _inspector(
        root,
        "run",
        "--recipe",
        product.value,
        "--camera",
        "sim",
        "--items",
        "40",
        "--line-rate",
        "1200",
        "--defect-rate",
        "0.3",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    s = json.loads(out.read_text())
    for key in (
        "items",
        "accepted",
        "rejected",
        "not_inspected",
        "escapes",
        "false_rejects",
        "latency_ms_p50",
        "latency_ms_p99",
        "latency_ms_max",
    ):
        assert key in s, key
    assert s["items"] == 40 and s["accepted"] + s["rejected"] == 40
    assert "40/40 items" in proc.stderr and "| accepted" in proc.stderr, "live progress line"
    assert proc.stderr.startswith("camera sim"), "the first progress line names the camera"
    assert proc.stdout == "", "JSON went to the file --json names"
    db = root / "var" / "inspector.sqlite"
    with sqlite3.connect(db) as conn:
        (n,) = conn.execute("SELECT count(*) FROM item_trace WHERE batch_id = ?", (s["batch_id"],)).fetchone()
        assert n == 40
        (sha,) = conn.execute("SELECT DISTINCT model_sha256 FROM item_trace").fetchone()
        assert sha == s["model_sha256"]
        (state,) = conn.execute("SELECT state FROM batches WHERE batch_id = ?", (s["batch_id"],)).fetchone()
        assert state == "ended"


def test_run_refuses_a_tampered_model(tmp_path: Path) -> None:
    root = _project(tmp_path, Product.VIAL)
    model = root / "models" / "vial" / "0.0.1" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    proc = _inspector(root, "run", "--recipe", "vial", "--items", "5")
    assert proc.returncode == 2
    assert "station refuses to start" in proc.stderr and "sha256" in proc.stderr


def test_run_refuses_a_malformed_recipe(tmp_path: Path) -> None:
    root = _project(tmp_path, Product.VIAL)
    path = root / "recipes" / "vial.yaml"
    data = yaml.safe_load(path.read_text())
    data["latency_budget_ms"] = "fast"
    data["colour"] = "blue"
    path.write_text(yaml.safe_dump(data))
    proc = _inspector(root, "run", "--recipe", "vial", "--items", "5")
    assert proc.returncode == 2
    assert "latency_budget_ms" in proc.stderr and "colour" in proc.stderr


def test_bench_prints_json_figures(tmp_path: Path) -> None:
    root = _project(tmp_path, Product.TABLET)
    proc = _inspector(root, "bench", "--recipe", "tablet", "--frames", "200", "--no-torch", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert "bench tablet-test: 200 frames" in proc.stderr
    for key in (
        "latency_ms_p50",
        "latency_ms_p99",
        "latency_ms_max",
        "items_per_s",
        "bare_ms_p50",
        "bare_ms_p99",
        "torch_ms_p50",
    ):
        assert key in r, key
    assert r["frames"] == 200 and r["items_per_s"] > 0
    assert r["latency_ms_p50"] >= r["bare_ms_p50"] > 0
    # Durable before release, same run: an accept is released when its record is durable.
    assert r["release_ms_p50"] >= r["latency_ms_p50"] * 0.5 and r["hold_ms_p50"] is not None
    assert r["release_over_decision_p50"] > 0 and r["record_commits"] > 0


def test_sigkill_mid_batch_keeps_every_committed_record(tmp_path: Path) -> None:
    """Kill ``inspector run`` with SIGKILL mid-batch: committed rows survive, the database opens cleanly."""
    import signal
    import time

    from inspector.records import RecordStore

    root = _project(tmp_path, Product.TABLET)
    env = {**os.environ, "INSPECTOR_HOME": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--recipe", "tablet", "--items", "100000", "--line-rate", "3000",
         "--defect-rate", "0.5", "--quiet"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    db = root / "var" / "inspector.sqlite"
    seen = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and seen < 60:
            time.sleep(0.2)
            if db.exists():
                with contextlib.suppress(sqlite3.Error), sqlite3.connect(db, timeout=1) as conn:
                    (seen,) = conn.execute("SELECT count(*) FROM items").fetchone()
        assert seen >= 60, "the batch did not get going"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()
    with RecordStore(db) as store:
        assert store.integrity_check() == "ok"
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT item_id, decision, reason, deadline_met FROM items ORDER BY item_id").fetchall()
            (killed, state) = conn.execute("SELECT batch_id, state FROM batches").fetchone()
    assert len(rows) >= seen, "nothing that was committed before the kill is lost"
    ids = [r[0] for r in rows]
    assert len(set(ids)) == len(ids) and min(ids) == 1, "committed rows are intact, each item once"
    assert all(r[1] == "reject" or (r[2] == "ok" and r[3] == 1) for r in rows)
    assert state == "running", "the killed batch stays visibly unfinished"
    # The station starts again on the same database and closes the killed batch as aborted, with an alarm.
    again = _inspector(root, "run", "--recipe", "tablet", "--items", "5", "--quiet")
    assert again.returncode == 0, again.stderr
    with RecordStore(db) as store:
        batch = store.batch(killed)
        codes = [a.code for a in store.alarms(killed)]
    assert batch["state"] == "aborted" and codes == ["BATCH_ABORTED"]
    assert batch["summary"]["reconciliation"]["records"]["inspected"] == len(rows)


@pytest.mark.parametrize("protocol", ["modbus", "s7"])
def test_run_sends_every_decision_to_the_line_simulator(tmp_path: Path, protocol: str) -> None:
    """``inspector run --plc`` against ``inspector line-sim``: every item decided, acknowledged, gated."""
    import time

    from inspector.plc.sim.process import LineSimProcess

    root = _project(tmp_path, Product.TABLET, rate=600)
    sim = LineSimProcess.start(protocol, "--line-rate", "600", "--gate-delay-ms", "500")
    try:
        out = tmp_path / "s.json"
        proc = _inspector(
            root,
            "run",
            "--recipe",
            "tablet",
            "--items",
            "30",
            "--line-rate",
            "600",
            "--defect-rate",
            "0.3",
            "--plc",
            f"{protocol}://127.0.0.1:{sim.port}",
            "--quiet",
            "--json",
            str(out),
        )
    finally:
        time.sleep(0.8)  # the last items still travel 500 ms to the gate
        line = sim.stop()
    assert proc.returncode == 0, proc.stderr
    s = json.loads(out.read_text())
    assert s["plc_decisions"] == 30 and s["plc_acked"] == 30
    assert s["plc_late"] == 0 and s["plc_missing"] == 0
    assert s["accepted"] + s["rejected"] == 30
    assert line["items"] == 30 and line["decision_missing"] == 0 and line["decision_late"] == 0
    assert line["accepted"] == s["accepted"], "the gate let through exactly the acknowledged accepts"


def test_headless_runs_store_their_alarms(tmp_path: Path) -> None:
    from inspector.records import RecordStore
    from inspector.station import open_station
    from tests.support.stations import station_config

    root = _project(tmp_path, Product.TABLET)
    db = tmp_path / "records.sqlite"
    session = open_station(station_config("tablet", items=5, line_rate=1200, db=db), root=root)
    try:
        batch = session.start_batch()
        session.station.raise_alarm("TEST_ALARM", "raised by the test", "test")
        assert session.station.wait_finished(20)
        session.end_batch()
    finally:
        session.close()
    with RecordStore(db) as store:
        alarms = store.alarms(batch)
    assert [(a.code, a.source, a.batch_id) for a in alarms] == [("TEST_ALARM", "test", batch)]
