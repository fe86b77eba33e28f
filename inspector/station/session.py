"""The one place a station is assembled: :func:`open_station` turns a station file into a running station.

Every entry point (``inspector run``, ``inspector bench``, the HMI, qualification) opens its
station here, so every one verifies the model package, records and talks to the PLC the same
way. Callers may inject a camera or a PLC link (bench, qualification, tests); nobody else
builds a :class:`~inspector.pipeline.station.Station`.

What :class:`StationSession` owns, it closes: the PLC link (and a demo line simulator), the
camera, the recorder. A batch starts with its record (refused before the camera starts if the
batch id is taken) and ends with its result, reconciled against the committed records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from inspector.camera.base import Camera
from inspector.config.recipe import LoadedRecipe, find_project_root, load_recipe
from inspector.config.station import CameraChoice, StationConfig
from inspector.events import AlarmAcknowledged, AlarmSeverity, BatchResult, StationEvent, StationState
from inspector.inference.package import ModelPackage, load_package
from inspector.inference.session import InferenceEngine
from inspector.inference.units import to_units
from inspector.pipeline.station import Station
from inspector.plc.base import PlcLink
from inspector.plc.config import load_plc_config
from inspector.plc.factory import create_link
from inspector.records import AlarmAck, Recorder, RecordWriterError
from inspector.records.review import Review, ReviewExporter, ReviewRequest, review_folder
from inspector.station.demo import DemoLine, start_demo_line
from inspector.station.plc import PlcSink
from inspector.station.reconcile import Reconciliation, reconcile
from inspector.taxonomy import OK, Product, Reason

log = logging.getLogger(__name__)

PLC_CONNECT_TIMEOUT_S = 10.0


def new_batch_id(prefix: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:6]}"


def make_camera(choice: CameraChoice, loaded: LoadedRecipe, root: Path) -> Camera:
    """The camera a station file names (sim, files or genicam)."""
    rec = loaded.recipe
    rate = choice.line_rate_per_min or rec.line_rate_per_min
    if choice.kind == "sim":
        from inspector.camera.sim import SimCamera

        return SimCamera(
            rec.product,
            line_rate_per_min=rate,
            items=choice.items,
            seed=choice.seed,
            defect_rate=choice.defect_rate,
            nuisance=choice.nuisance,
        )
    if choice.kind == "files":
        from inspector.camera.sim import FilesCamera

        assert choice.images is not None  # the station file's validation says so
        return FilesCamera(choice.images, line_rate_per_min=rate, items=choice.items)
    from inspector.camera.genicam import GenICamCamera
    from inspector.config.camera import CAMERA_CONFIGS_DIR, load_camera_config

    name = choice.config or rec.camera
    path = Path(name)
    if not path.is_absolute() and not path.exists():
        path = root / CAMERA_CONFIGS_DIR / name
    return GenICamCamera(load_camera_config(path), items=choice.items)


@dataclass
class StationSession:
    """A ready station and everything it owns; ``close()`` releases it all."""

    config: StationConfig
    root: Path
    station: Station
    camera: Camera
    engine: InferenceEngine
    recipe: LoadedRecipe
    package: ModelPackage
    recorder: Recorder | None
    plc: PlcSink | None = None
    demo_line: DemoLine | None = None
    reviews: ReviewExporter | None = None
    last_reconciliation: Reconciliation | None = field(default=None, init=False)

    @property
    def product(self) -> Product:
        return self.recipe.recipe.product

    # -- batches ----------------------------------------------------------------------------------
    def start_batch(self, batch_id: str | None = None, operator: str | None = None) -> str:
        """Open the batch record, then start the station; a refused start leaves no open batch."""
        bid = batch_id or new_batch_id(self.product.value)
        self.station.check_startable()
        context = self.station.batch_context(bid, operator)
        if self.recorder is not None:
            self.recorder.open_batch(context)
        self.station.start(context)
        return bid

    def end_batch(self, timeout_s: float = 10.0) -> BatchResult:
        """Stop, commit every record, reconcile, and end the batch record with its result.

        A record the database refused does not keep the batch open: the batch ends NOT
        reconciled, and its reconciliation says what could not be stored.
        """
        complete = self.camera.finished
        result = self.station.stop(timeout_s)
        refused: str | None = None
        if self.recorder is not None:
            try:
                self.recorder.flush(30.0)
            except RecordWriterError as exc:
                refused = f"not every record was stored: {exc}"
        report = reconcile(result, self.recorder, expected_items=self.camera.items, source_complete=complete)
        if refused is not None:
            report = dataclasses.replace(report, error="; ".join(e for e in (report.error, refused) if e))
        self.last_reconciliation = report
        if self.recorder is not None:
            self.recorder.close_batch(result, reconciliation=report.as_dict())
        return result

    def run(
        self,
        *,
        duration_s: float | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        tick_s: float = 0.5,
        batch_id: str | None = None,
        operator: str | None = None,
    ) -> BatchResult:
        """One batch until a finite source is exhausted, ``duration_s`` passes, or Ctrl-C."""
        self.start_batch(batch_id, operator)
        end = time.monotonic() + duration_s if duration_s else None
        try:
            while True:
                if self.station.wait_finished(tick_s):
                    break
                if progress is not None:
                    progress(self.station.summary.as_dict())
                if end is not None and time.monotonic() >= end:
                    break
        except KeyboardInterrupt:
            pass
        result = self.end_batch()
        if progress is not None:
            progress(result.as_dict())
        return result

    # -- operator actions -------------------------------------------------------------------------
    def acknowledge_alarms(self, alarm_ids: Sequence[str], who: str) -> list[AlarmAck]:
        """Acknowledge alarms by id as ``who``; each acknowledgement is stored, then announced."""
        who = who.strip()
        if not who:
            raise ValueError("an alarm acknowledgement must name who acknowledged it")
        if self.recorder is not None:
            acks = self.recorder.acknowledge_alarms(alarm_ids, who)
        else:
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            acks = [AlarmAck(alarm_id=a, row_id=-1, by=who, at_utc=now) for a in alarm_ids]
        for ack in acks:
            self.station.publish(AlarmAcknowledged(ack.alarm_id, ack.by, ack.at_utc))
        return acks

    def review(self, request: ReviewRequest) -> Review:
        """Export a reviewed reject into the labelled review set (``ok`` = a false reject)."""
        if self.reviews is None:
            raise ValueError("this station keeps no review set")
        return self.reviews.export(request)

    def heatmap(self, image: np.ndarray, unit_reasons: Sequence[Reason] | None) -> np.ndarray | None:
        """The model's heat map for a frame (blister: the rejected pockets only), or ``None``."""
        if not self.engine.has_heatmap:
            return None
        from inspector.inference.heatmap import heatmap_to_frame

        grid = self.recipe.recipe.pocket_grid
        rois = grid.rois() if grid is not None else None
        only = [i for i, r in enumerate(unit_reasons) if r != OK] if rois and unit_reasons else None
        maps = self.engine.heatmap(to_units(image, rois))
        return None if maps is None else heatmap_to_frame(maps, image.shape, rois, only=only)

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        """End a running batch, then close the PLC link, the demo line, the camera and the records."""
        if self.station.state in (StationState.RUNNING, StationState.FAULT):
            try:
                self.end_batch()
            except Exception:
                log.exception("ending the batch at close failed")
        if self.plc is not None:
            with contextlib.suppress(Exception):
                self.plc.close()
        if self.demo_line is not None:
            with contextlib.suppress(Exception):
                self.demo_line.close()
        with contextlib.suppress(Exception):
            self.camera.close()
        if self.recorder is not None:
            self.recorder.close()

    def __enter__(self) -> StationSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resolve(path: str, root: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


def _connect_plc(
    session: StationSession, config: StationConfig, link: PlcLink | None, connect_timeout_s: float
) -> None:
    """Start (or take) the PLC link and put its sink in front of the station."""
    if link is None:
        assert config.plc is not None
        if config.plc.is_line_sim:
            period = session.camera.period_s
            rate = 60.0 / period if period > 0 else session.recipe.recipe.line_rate_per_min
            session.demo_line = start_demo_line(
                config.plc.protocol, line_rate_per_min=rate, latency_budget_ms=session.recipe.recipe.latency_budget_ms
            )
            plc_config = load_plc_config(session.demo_line.url)
        else:
            plc_config = load_plc_config(config.plc.link, root=session.root)
        link = create_link(plc_config)
    if not link.connected:
        link.start(connect_timeout_s)
    try:
        session.plc = PlcSink(link, session.station, product=session.product)
    except Exception:
        link.close()
        raise
    session.station.sinks = [session.plc]
    if session.recorder is not None:
        session.recorder.expect_plc_acks = True


def open_station(
    config: StationConfig,
    *,
    root: Path | None = None,
    camera: Camera | None = None,
    plc: PlcLink | None = None,
    on_event: Callable[[StationEvent], None] | None = None,
    plc_connect_timeout_s: float = PLC_CONNECT_TIMEOUT_S,
) -> StationSession:
    """Load and verify everything a batch needs; raises ConfigError / ModelIntegrityError / PlcError / ValueError.

    ``camera`` replaces the station file's camera, ``plc`` its PLC (a link, started here if it is
    not connected yet). Whatever was opened is closed again when a later step fails.
    """
    base = root or find_project_root()
    loaded = load_recipe(config.recipe, base)
    rec = loaded.recipe
    package = load_package(_resolve(rec.model.path, base), expected_sha256=rec.model.sha256)
    engine = InferenceEngine(package, threads=config.inference_threads)
    cam = camera if camera is not None else make_camera(config.camera, loaded, base)
    recorder: Recorder | None = None
    session: StationSession | None = None
    try:
        if config.records is not None:
            db = _resolve(config.records.database, base)
            images = _resolve(config.records.images, base) if config.records.images else None
            recorder = Recorder(db, images)
        station = Station(rec, cam, engine, recipe_sha256=loaded.sha256)
        grid = rec.pocket_grid
        session = StationSession(
            config=config,
            root=base,
            station=station,
            camera=cam,
            engine=engine,
            recipe=loaded,
            package=package,
            recorder=recorder,
            reviews=ReviewExporter(review_folder(base, rec.product), rec.product, grid.count if grid else None),
        )
        if recorder is not None:
            station.subscribe(recorder)

            def records_failed(message: str) -> None:
                station.raise_alarm("SINK_ERROR", message, "records", AlarmSeverity.FAULT)

            recorder.on_failure = records_failed
        if plc is not None or config.plc is not None:
            _connect_plc(session, config, plc, plc_connect_timeout_s)
        if on_event is not None:
            station.subscribe(on_event)
    except BaseException:
        if session is not None and session.demo_line is not None:
            with contextlib.suppress(Exception):
                session.demo_line.kill()
        if recorder is not None:
            with contextlib.suppress(Exception):
                recorder.close()
        with contextlib.suppress(Exception):
            cam.close()
        raise
    return session
