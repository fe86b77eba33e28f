"""Assemble a station from a recipe: verified model, camera, records; run batches headless.

The CLI (``inspector run``, ``inspector bench``) and the HMI build stations through
:func:`open_station`, so every entry point verifies the model package and records the
same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspector.camera.base import Camera
from inspector.config.recipe import LoadedRecipe, find_project_root, load_recipe
from inspector.inference.package import ModelPackage, load_package
from inspector.inference.session import InferenceEngine
from inspector.pipeline.station import DecisionSink, Station
from inspector.pipeline.types import EventKind, ItemDecision, StationEvent
from inspector.records import ItemRecord, RecordStore, RecordWriter

log = logging.getLogger(__name__)

DEFAULT_DB = "var/inspector.sqlite"


def new_batch_id(prefix: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:6]}"


class RecordsSink:
    """Hands every decision to the record writer (its own thread); rejects keep their image."""

    name = "records"

    def __init__(self, writer: RecordWriter, batch_id: str) -> None:
        self.writer = writer
        self.batch_id = batch_id

    def on_decision(self, d: ItemDecision) -> None:
        record = ItemRecord(
            batch_id=self.batch_id,
            item_id=d.item_id,
            frame_id=d.frame_id,
            t_frame=d.times.t_acquired,
            created_utc=datetime.now(UTC).isoformat(timespec="microseconds"),
            decision="accept" if d.accept else "reject",
            reason=d.reason,
            deadline_met=d.deadline_met,
            label=d.label,
            pocket_index=d.pocket_index,
            confidence=d.confidence,
            class_scores=dict(d.scores or {}),
            anomaly_score=d.anomaly,
            latency=d.times.ms(),
            truth_label=d.truth.label if d.truth is not None else None,
            alarm=d.not_inspected.value if d.not_inspected is not None else None,
        )
        image = d.image if (not d.accept and d.image is not None and d.image.size) else None
        self.writer.submit(record, image)


def record_batch_start(
    store_path: Path,
    batch_id: str,
    loaded: LoadedRecipe,
    package: ModelPackage,
    camera: Camera,
    operator: str | None = None,
) -> None:
    """Open the batch record: recipe, model and camera are fixed for every item of the batch."""
    rec = loaded.recipe
    with RecordStore(store_path) as store:
        store.start_batch(
            batch_id,
            product=rec.product.value,
            recipe_id=rec.recipe_id,
            recipe_version=rec.version,
            recipe_sha256=loaded.sha256,
            model_id=package.record.model_id,
            model_version=package.record.version,
            model_sha256=package.sha256,
            camera_serial=camera.serial,
            camera_settings=camera.describe(),
            operator=operator,
        )


@dataclass
class StationSession:
    """A ready station and what it owns; ``close()`` releases everything."""

    station: Station
    camera: Camera
    engine: InferenceEngine
    recipe: LoadedRecipe
    package: ModelPackage
    writer: RecordWriter | None
    root: Path
    extra_sinks: list[DecisionSink] = field(default_factory=list)

    def start_batch(self, batch_id: str | None = None, operator: str | None = None) -> str:
        rec = self.recipe.recipe
        bid = batch_id or new_batch_id(rec.product.value)
        self.station.check_startable()  # before the batch row: a refused start leaves no open batch
        sinks: list[DecisionSink] = list(self.extra_sinks)
        if self.writer is not None:
            record_batch_start(self.writer.store_path, bid, self.recipe, self.package, self.camera, operator)
            sinks.append(RecordsSink(self.writer, bid))
        self.station.sinks = sinks
        self.station.start(bid)
        return bid

    def end_batch(self, timeout_s: float = 10.0) -> dict[str, Any]:
        summary = self.station.stop(timeout_s)
        if self.writer is not None:
            self.writer.flush(timeout=30)
            with RecordStore(self.writer.store_path) as store:
                store.end_batch(str(summary["batch_id"]), summary)
        return summary

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.station.state.value in ("running", "fault"):
                self.station.stop()
        for sink in self.extra_sinks:
            close = getattr(sink, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        with contextlib.suppress(Exception):
            self.camera.close()
        if self.writer is not None:
            self.writer.close()


def make_camera(
    kind: str,
    loaded: LoadedRecipe,
    *,
    items: int | None,
    line_rate: float | None,
    seed: int,
    defect_rate: float,
    nuisance: float,
    images: str | None = None,
    root: Path,
) -> Camera:
    rec = loaded.recipe
    rate = line_rate or rec.line_rate_per_min
    if kind == "sim":
        from inspector.camera.sim import SimCamera

        return SimCamera(
            rec.product, line_rate_per_min=rate, items=items, seed=seed, defect_rate=defect_rate, nuisance=nuisance
        )
    if kind == "files":
        from inspector.camera.sim import FilesCamera

        if not images:
            raise ValueError("--camera files needs --images DIR (a manifest folder)")
        return FilesCamera(images, line_rate_per_min=rate)
    if kind == "genicam":
        from inspector.camera.genicam import GenICamCamera
        from inspector.config.camera import load_camera_config

        cfg = load_camera_config(root / "camera_configs" / rec.camera)
        return GenICamCamera(cfg)
    raise ValueError(f"unknown camera {kind!r}; choose sim, files or genicam")


def open_station(
    recipe: str,
    *,
    camera: str = "sim",
    items: int | None = None,
    line_rate: float | None = None,
    seed: int = 0,
    defect_rate: float = 0.05,
    nuisance: float = 1.0,
    images: str | None = None,
    db: str | os.PathLike[str] | None = DEFAULT_DB,
    root: Path | None = None,
    threads: int = 1,
    on_event: Callable[[StationEvent], None] | None = None,
) -> StationSession:
    """Load and verify everything a batch needs; raises ConfigError / ModelIntegrityError / ValueError."""
    base = root or find_project_root()
    loaded = load_recipe(recipe, base)
    rec = loaded.recipe
    model_dir = Path(rec.model.path)
    if not model_dir.is_absolute():
        model_dir = base / model_dir
    package = load_package(model_dir, expected_sha256=rec.model.sha256)
    engine = InferenceEngine(package, threads=threads)
    cam = make_camera(
        camera,
        loaded,
        items=items,
        line_rate=line_rate,
        seed=seed,
        defect_rate=defect_rate,
        nuisance=nuisance,
        images=images,
        root=base,
    )
    writer = None
    if db is not None:
        db_path = Path(db)
        if not db_path.is_absolute():
            db_path = base / db_path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        writer = RecordWriter(db_path, db_path.parent / "images")
    station = Station(rec, cam, engine)
    if on_event is not None:
        station.subscribe(on_event)
    return StationSession(
        station=station, camera=cam, engine=engine, recipe=loaded, package=package, writer=writer, root=base
    )


def record_alarms(session: StationSession) -> None:
    """Store every station alarm in the record database (headless runs; the HMI stores its own).

    Each alarm names the batch the station is running at that moment (the batch row exists
    before the station starts, so the reference is always valid).
    """
    writer = session.writer
    if writer is None:
        return
    station = session.station

    def on_event(event: StationEvent) -> None:
        if event.kind is not EventKind.ALARM or event.alarm is None:
            return
        a = event.alarm
        try:
            writer.submit_alarm(a.source, a.code, a.message, batch_id=station.batch_id)
        except Exception as exc:  # writer full or closed: the alarm is still logged
            log.warning("alarm %s not stored: %s", a.code, exc)

    station.subscribe(on_event)


def run_until_done(
    session: StationSession,
    *,
    items: int | None,
    duration_s: float | None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    tick_s: float = 0.5,
) -> dict[str, Any]:
    """Run one batch until the sim/files source is exhausted or ``duration_s`` passes."""
    session.start_batch()
    end = time.monotonic() + duration_s if duration_s else None
    try:
        while True:
            if session.station.wait_finished(tick_s):
                break
            if progress is not None:
                progress(session.station.summary.as_dict())
            if end is not None and time.monotonic() >= end:
                break
    except KeyboardInterrupt:
        pass
    summary = session.end_batch()
    if progress is not None:
        progress(summary)
    return summary
