"""The one place a station is assembled: :func:`open_station` turns a station file into a running station.

Every entry point (``inspector run``, ``inspector bench``, the HMI, qualification) opens its
station here, so every one verifies the model package, records and talks to the PLC the same
way. Callers may inject a camera or a PLC link (bench, qualification, tests); nobody else
builds a :class:`~inspector.pipeline.station.Station`.

What :class:`StationSession` owns, it closes: the PLC link (and a demo line simulator), the
camera, the recorder. A batch starts with its record (refused before the camera starts if the
batch id is taken) and ends with its result, reconciled against the committed records. A batch
that a crashed station left running is closed as aborted when the next station opens on the
same records, with a ``BATCH_ABORTED`` alarm.
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
from inspector.config.errors import ConfigError
from inspector.config.recipe import LoadedRecipe, find_project_root, load_recipe
from inspector.config.station import CameraChoice, StationConfig
from inspector.events import (
    NOT_RELEASED,
    QUALIFICATION_RUN,
    RELEASED,
    STARTUP_CHALLENGE,
    Alarm,
    AlarmAcknowledged,
    AlarmSeverity,
    BatchResult,
    StationEvent,
    StationState,
)
from inspector.inference.package import ModelIntegrityError, ModelPackage, load_package
from inspector.inference.session import InferenceEngine
from inspector.inference.units import to_units
from inspector.manifest import MANIFEST_NAME, ManifestError, read_manifest, sha256_file
from inspector.pipeline.station import Station, StationError
from inspector.plc.base import PlcLink
from inspector.plc.config import load_plc_config
from inspector.plc.factory import create_link
from inspector.records import AlarmAck, Recorder, RecordError, RecordWriterError
from inspector.records.audit import Actor
from inspector.records.recorder import record_integrity_failure
from inspector.records.review import Review, ReviewExporter, ReviewRequest, review_folder
from inspector.records.users import PermissionDenied, require
from inspector.roles import Action
from inspector.site.process import ForwarderProcess
from inspector.station.demo import DemoLine, start_demo_line
from inspector.station.plc import PlcSink
from inspector.station.reconcile import AbortedBatch, Reconciliation, close_aborted_batches, reconcile
from inspector.taxonomy import OK, Product, Reason

log = logging.getLogger(__name__)

PLC_CONNECT_TIMEOUT_S = 10.0
FORWARD_DRAIN_S = 10.0  # at close, how long the site may take to get the last records
#: Who acts in a demo when nobody is logged in (never in production).
DEMO_ACTOR = Actor("demo", "demo", "Demo station (nobody logged in)")


def new_batch_id(prefix: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:6]}"


def make_camera(choice: CameraChoice, loaded: LoadedRecipe, root: Path) -> Camera:
    """The camera a station file names (sim, files or genicam)."""
    rec = loaded.recipe
    rate = choice.line_rate_per_min or rec.line_rate_per_min
    if choice.kind == "sim":
        from inspector.camera.sim import SimCamera
        from inspector.synth.line import LinePresentation

        return SimCamera(
            rec.product,
            line_rate_per_min=rate,
            items=choice.items,
            seed=choice.seed,
            defect_rate=choice.defect_rate,
            nuisance=choice.nuisance,
            line=LinePresentation(shift_px=choice.shift_px, turn_deg=choice.turn_deg),
        )
    if choice.kind == "files":
        from inspector.camera.sim import FilesCamera

        assert choice.images is not None  # the station file's validation says so
        return FilesCamera(choice.images, line_rate_per_min=rate, frame_shape=rec.frame.shape, items=choice.items)
    from inspector.camera.genicam import GenICamCamera
    from inspector.config.camera import CAMERA_CONFIGS_DIR, load_camera_config

    name = choice.config or rec.camera
    path = Path(name)
    if not path.is_absolute() and not path.exists():
        path = root / CAMERA_CONFIGS_DIR / name
    return GenICamCamera(load_camera_config(path), items=choice.items)


@dataclass(frozen=True)
class ChallengeResult:
    """A start-up challenge: every item and whether it was judged right."""

    batch_id: str
    passed: bool
    items: tuple[dict[str, Any], ...]
    recipe_sha256: str
    model_digest: str
    at_utc: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "passed": self.passed,
            "items": list(self.items),
            "recipe_sha256": self.recipe_sha256,
            "model_digest": self.model_digest,
            "at_utc": self.at_utc,
        }


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
    last_batch_report: Path | None = field(default=None, init=False)  # folder of the last batch's report
    _batch_actor: Actor = field(default=DEMO_ACTOR, init=False)
    last_challenge: ChallengeResult | None = field(default=None, init=False)
    _batch_challenge: dict[str, Any] | None = field(default=None, init=False)
    _batch_reinspection: str | None = field(default=None, init=False)
    #: Batches a crashed station left running, closed as aborted when this one opened, and their alarms.
    aborted_batches: list[AbortedBatch] = field(default_factory=list)
    startup_alarms: list[Alarm] = field(default_factory=list)
    #: The store-and-forward process pushing the records to the site database (records.site), or None.
    forwarder: ForwarderProcess | None = None

    @property
    def product(self) -> Product:
        return self.recipe.recipe.product

    # -- batches ----------------------------------------------------------------------------------
    @property
    def production(self) -> bool:
        return self.config.mode == "production"

    def _authorise(self, actor: Actor | None, action: Action, what: str) -> Actor:
        """The acting user; in production one must be logged in and allowed, in a demo the station acts."""
        if actor is None:
            if self.production:
                raise StationError(f"{what}: log in first (a production station acts only for a user)")
            return DEMO_ACTOR
        try:
            require(actor, action)
        except PermissionDenied as exc:
            raise StationError(f"{what}: {exc}") from None
        return actor

    def release_problems(self) -> list[str]:
        """What keeps this recipe and model from production: not approved, or changed since approval."""
        if self.recorder is None:
            return ["the station keeps no records, so nothing can be released"]
        rec = self.recipe.recipe
        wanted = (
            ("model", self.package.object_id, self.package.digest, "inspector models"),
            ("recipe", f"{rec.recipe_id}@{rec.version}", self.recipe.sha256, "inspector recipes"),
        )
        problems = []
        for kind, object_id, sha, command in wanted:
            state = self.recorder.release_state(kind, object_id, sha)
            if state != "approved":
                was = "not registered" if state is None else state
                others = self.recorder.approved_hashes(kind, object_id)
                if others:
                    was = f"{was} (the approved {kind} had sha256 {others[0][:12]}: this file was changed)"
                problems.append(
                    f"{kind} {object_id} (sha256 {sha[:12]}) is {was}; an engineer registers it and a QA user"
                    f" other than its author reviews and approves it ({command} review / approve)"
                )
        if rec.startup_challenge is None:
            problems.append(
                f"recipe {rec.recipe_id}@{rec.version} names no start-up challenge (startup_challenge:), and every"
                " production batch starts with one"
            )
        return problems

    def start_batch(
        self,
        batch_id: str | None = None,
        operator: str | None = None,
        *,
        actor: Actor | None = None,
        qualification: bool = False,
        reinspection_of: str | None = None,
    ) -> str:
        """Open the batch record, then start the station; a refused start leaves no open batch.

        Production: the acting user must be allowed to run batches, and the recipe and model must
        be approved with exactly these file hashes; otherwise the start is refused with an
        audited alarm (``RELEASE_REFUSED``) saying what is missing and who may approve it.
        A demo batch runs drafts and is marked NOT RELEASED - DEMO in every record. A
        qualification batch (a challenge set presented to qualify the station, by a user who may
        run qualifications) runs the recipe and model under test, released or not, and is marked
        so: no product is released from it.

        ``reinspection_of``: this batch inspects again the items of that ended batch (same
        product): a pass of its own, linked to the first in both reports, never changing it.
        """
        if qualification:
            who = self._authorise(actor, Action.RUN_QUALIFICATION, "running a qualification")
        else:
            who = self._authorise(actor, Action.RUN_BATCH, "starting a batch")
        bid = batch_id or new_batch_id(self.product.value)
        if reinspection_of is not None:
            self._check_reinspection(reinspection_of, qualification)
        self.station.check_startable()
        release = QUALIFICATION_RUN if qualification else NOT_RELEASED
        if self.production and not qualification:
            problems = self.release_problems()
            if problems:
                message = "production refuses to start: " + "; ".join(problems)
                self.station.raise_alarm("RELEASE_REFUSED", message, "release", AlarmSeverity.FAULT)
                if self.recorder is not None:
                    self.recorder.audit(
                        who,
                        "release.refused",
                        object_type="batch",
                        object_id=bid,
                        new={"problems": problems},
                        reason="a production batch needs an approved recipe and model, unchanged",
                    )
                raise StationError(message)
            ch = self.last_challenge
            this = (self.recipe.sha256, self.package.digest)
            if ch is None or not ch.passed or (ch.recipe_sha256, ch.model_digest) != this:
                why = "it has not run" if ch is None else "it failed" if not ch.passed else "it was another recipe"
                message = (
                    "production stays locked until the start-up challenge passes for this recipe and model"
                    f" ({why}): run it from the HMI's batch bar or inspector run --challenge"
                )
                self.station.raise_alarm("CHALLENGE_REQUIRED", message, "release", AlarmSeverity.WARNING)
                raise StationError(message)
            release = RELEASED
        context = dataclasses.replace(
            self.station.batch_context(bid, operator or (actor.username if actor else None)), release_status=release
        )
        if self.plc is not None:
            context = dataclasses.replace(context, plc=self.plc.describe())
        if self.recorder is not None:
            self.recorder.open_batch(context, actor=who)
        self.station.start(context)
        self._batch_actor = who
        self._batch_reinspection = reinspection_of
        if not qualification and self.last_challenge is not None:
            # Stored with this batch; the next (production) batch needs a challenge of its own.
            self._batch_challenge = {"batch_id": self.last_challenge.batch_id, "passed": self.last_challenge.passed}
            self.last_challenge = None
        return bid

    def end_batch(self, timeout_s: float = 10.0) -> BatchResult:
        """Stop, commit every record, reconcile, and end the batch record with its result.

        A record the database refused does not keep the batch open: the batch ends NOT
        reconciled, and its reconciliation says what could not be stored.
        """
        # A finite source is complete when it delivered every item or its acquisition ended by itself:
        # then every item of it (every manifest entry) must be decided, or the batch is not reconciled.
        camera = self.station.camera
        complete = camera.finished or self.station.acquisition_ended
        result = self.station.stop(timeout_s)
        refused: str | None = None
        if self.recorder is not None:
            try:
                self.recorder.flush(30.0)
            except (RecordWriterError, TimeoutError) as exc:
                refused = f"not every record was stored: {exc}"
        report = reconcile(result, self.recorder, expected_items=camera.items, source_complete=complete)
        if refused is not None:
            report = dataclasses.replace(report, error="; ".join(e for e in (report.error, refused) if e))
        self.last_reconciliation = report
        extra: dict[str, Any] = {"model_digest": self.package.digest}
        if self._batch_challenge is not None:
            extra["startup_challenge"] = self._batch_challenge
        if self._batch_reinspection is not None:
            extra["reinspection_of"] = self._batch_reinspection
        self._batch_challenge = self._batch_reinspection = None
        self.last_batch_report = None
        if self.recorder is not None:
            self.recorder.close_batch(result, reconciliation=report.as_dict(), actor=self._batch_actor, extra=extra)
            self.last_batch_report = self._write_batch_report(result.batch_id)
        return result

    def _check_reinspection(self, first: str, qualification: bool) -> None:
        """A re-inspection names an ended batch of this product in this station's records."""
        from inspector.records import RecordStore

        if qualification:
            raise StationError("a qualification run is not a re-inspection")
        if self.recorder is None:
            raise StationError("a re-inspection is linked to the first batch's records: this station keeps none")
        try:
            with RecordStore(self.recorder.database) as store:
                row = store.batch(first)
        except RecordError as exc:
            raise StationError(f"re-inspection of {first}: {exc}") from None
        if row["state"] == "running":
            raise StationError(f"re-inspection of {first}: that batch is still running")
        if row["product"] != self.product.value:
            raise StationError(f"re-inspection of {first}: that batch is {row['product']}, this station inspects"
                               f" {self.product.value}")  # fmt: skip

    def batch_report_folder(self, batch_id: str) -> Path:
        """Where a batch's report is written: ``reports/<batch>/`` beside the record database."""
        assert self.recorder is not None
        return Path(self.recorder.database).parent / "reports" / batch_id

    def _write_batch_report(self, batch_id: str | None) -> Path | None:
        """The batch report (JSON + PDF) from the committed records; a failure is logged, the records stay."""
        if self.recorder is None or not batch_id:
            return None
        from inspector.records import RecordStore
        from inspector.reports import batch as batch_report

        folder = self.batch_report_folder(batch_id)
        try:
            with RecordStore(self.recorder.database) as store:
                batch_report.write(store, batch_id, folder)
        except (OSError, RecordError, ValueError) as exc:
            log.error("batch report of %s not written (inspector batches report makes it again): %s", batch_id, exc)
            return None
        return folder

    # -- start-up challenge -------------------------------------------------------------------
    def challenge_folder(self) -> Path:
        """The recipe's challenge set as a manifest folder (a rendered one rendered once, same bytes)."""
        rec = self.recipe.recipe
        ch = rec.startup_challenge
        if ch is None:
            raise StationError(f"recipe {rec.recipe_id} names no start-up challenge")
        if ch.folder is not None:
            folder = _resolve(ch.folder, self.root)
            try:
                actual = sha256_file(folder / MANIFEST_NAME)
                read_manifest(folder, verify=True)  # every image as its manifest lists it
            except (OSError, ManifestError) as exc:
                raise StationError(f"start-up challenge {folder}: {exc}") from None
            if actual != ch.manifest_sha256:
                raise StationError(
                    f"start-up challenge {folder}: its manifest has sha256 {actual[:12]}, the recipe pins"
                    f" {str(ch.manifest_sha256)[:12]}: the challenge set was changed"
                )
            return folder
        assert ch.seed is not None
        folder = self.root / "var" / "challenge" / f"{rec.recipe_id}-{rec.version}-{ch.seed}"
        if not (folder / "manifest.jsonl").is_file():
            from inspector.synth.generate import generate
            from inspector.taxonomy import Criticality, defects

            classes = ch.classes or [
                d.code.value for d in defects(rec.product) if d.criticality is Criticality.CRITICAL
            ]
            labels = [*classes, *([OK] * ch.good_items)]
            partial = folder.with_name(folder.name + ".partial")
            if partial.exists():
                import shutil

                shutil.rmtree(partial)
            generate(rec.product.value, len(labels), ch.seed, partial, labels=labels, masks=False, workers=1)
            partial.rename(folder)
        return folder

    def run_startup_challenge(self, *, actor: Actor | None = None, timeout_s: float = 60.0) -> ChallengeResult:
        """Present the recipe's challenge set through this station (its PLC not told) and judge it.

        Right means: every defect rejected for a defect reason (not merely not inspected), every
        good item accepted. A production batch starts only after a passing challenge of this very
        recipe and model; the result is stored as its own batch and with the next production batch.
        """
        from inspector.camera.sim import FilesCamera
        from inspector.events import ItemDecided, ItemDecision

        who = self._authorise(actor, Action.RUN_BATCH, "running the start-up challenge")
        folder = self.challenge_folder()
        cam = FilesCamera(folder, line_rate_per_min=self.recipe.recipe.line_rate_per_min, serial="CHALLENGE")
        decided: dict[int, ItemDecision] = {}

        def collect(event: StationEvent) -> None:
            if isinstance(event, ItemDecided):
                decided[event.decision.item_id] = event.decision

        bid = new_batch_id(f"challenge-{self.product.value}")
        subscription = self.station.subscribe(collect)
        old_camera = self.station.replace_camera(cam)
        old_sinks, self.station.sinks = self.station.sinks, []  # the line PLC never sees challenge items
        try:
            context = dataclasses.replace(
                self.station.batch_context(bid, actor.username if actor else None), release_status=STARTUP_CHALLENGE
            )
            if self.recorder is not None:
                self.recorder.open_batch(context, actor=who)
            self._batch_actor = who
            self.station.start(context)
            self.station.wait_finished(timeout_s)
            result = self.station.stop()
            if self.recorder is not None:
                self.recorder.flush(30.0)
            report = reconcile(result, self.recorder, expected_items=cam.items, source_complete=cam.finished)
            accept_minor = set(self.recipe.recipe.accept_minor)
            items = []
            for i, e in enumerate(cam.entries, start=1):
                d = decided.get(i)
                reject_expected = e.label != OK and e.label not in accept_minor
                right = d is not None and (
                    (not d.accept and d.reason != "not_inspected") if reject_expected else d.accept
                )
                items.append({"file": e.file, "label": e.label, "expected": "reject" if reject_expected else "accept",
                              "decided": None if d is None else ("accept" if d.accept else str(d.reason)),
                              "right": right})  # fmt: skip
            challenge = ChallengeResult(
                batch_id=bid,
                passed=bool(items) and all(it["right"] for it in items) and report.reconciled,
                items=tuple(items),
                recipe_sha256=self.recipe.sha256,
                model_digest=self.package.digest,
                at_utc=context.started_utc,
            )
            if self.recorder is not None:
                self.recorder.close_batch(result, reconciliation=report.as_dict(), actor=who,
                                          extra={"startup_challenge": challenge.as_dict(),
                                                 "model_digest": self.package.digest})  # fmt: skip
        finally:
            self.station.sinks = old_sinks
            if self.station.state is StationState.IDLE:
                self.station.replace_camera(old_camera)
            subscription.cancel()
            cam.close()
        self.last_challenge = challenge
        return challenge

    def run(
        self,
        *,
        duration_s: float | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        tick_s: float = 0.5,
        batch_id: str | None = None,
        operator: str | None = None,
        actor: Actor | None = None,
        qualification: bool = False,
        reinspection_of: str | None = None,
    ) -> BatchResult:
        """One batch until a finite source is exhausted, ``duration_s`` passes, or Ctrl-C."""
        self.start_batch(batch_id, operator, actor=actor, qualification=qualification, reinspection_of=reinspection_of)
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
    def acknowledge_alarms(self, alarm_ids: Sequence[str], who: str, *, actor: Actor | None = None) -> list[AlarmAck]:
        """Acknowledge alarms by id as ``who`` (the logged-in user's name); stored and audited, then announced."""
        if actor is not None or self.production:
            actor = self._authorise(actor, Action.ACK_ALARM, "acknowledging alarms")
            who = actor.full_name or actor.username
        who = who.strip()
        if not who:
            raise ValueError("an alarm acknowledgement must name who acknowledged it")
        if self.recorder is not None:
            acks = self.recorder.acknowledge_alarms(alarm_ids, who, actor=actor)
        else:
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            acks = [AlarmAck(alarm_id=a, row_id=-1, by=who, at_utc=now) for a in alarm_ids]
        for ack in acks:
            self.station.publish(AlarmAcknowledged(ack.alarm_id, ack.by, ack.at_utc))
        return acks

    def review(self, request: ReviewRequest, *, actor: Actor | None = None) -> Review:
        """Export a reviewed reject into the labelled review set (``ok`` = a false reject); audited."""
        who = self._authorise(actor, Action.REVIEW_REJECT, "reviewing a reject") if actor or self.production else None
        if who is not None:
            request = dataclasses.replace(request, reviewer=who.full_name or who.username, reviewer_authenticated=True)
        if self.reviews is None:
            raise ValueError("this station keeps no review set")
        review = self.reviews.export(request)
        if self.recorder is not None:
            d = request.decision
            self.recorder.audit(
                who or Actor(review.reviewer, "unauthenticated"),
                "reject.review",
                object_type="item",
                object_id=f"{request.batch_id}/{d.item_id}",
                old={"station_reason": str(d.reason), "label": d.label},
                new={"confirmed_label": review.label, "false_reject": review.false_reject, "file": review.file},
            )
        return review

    # -- users ----------------------------------------------------------------------------------
    def login(self, username: str, password: str) -> Actor:
        """Authenticate a user against this station's accounts (audited; a failure counts toward lockout)."""
        if self.recorder is None:
            raise StationError("this station keeps no records, so it has no user accounts")
        return self.recorder.login(username, password)

    def logout(self, actor: Actor, *, idle: bool = False) -> None:
        if self.recorder is not None:
            self.recorder.logout(actor, idle=idle)

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
        if self.forwarder is not None:  # after the records: the site gets the batch's end too
            final = self.forwarder.stop(drain_s=FORWARD_DRAIN_S)
            if final is None or final["rows_behind"]:
                log.warning("the site has not got every record yet (%s); it will when forwarding runs again", final)

    def site_status(self) -> dict[str, Any] | None:
        """The forwarder's last status (rows and seconds behind, error), None without a site."""
        return None if self.forwarder is None else self.forwarder.status()

    def __enter__(self) -> StationSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare_records(database: Path, mode: str) -> None:
    """Bind the record database to the station's mode (demo data never enters a production database)."""
    from inspector.records import RecordStore
    from inspector.records.users import claim_mode

    with RecordStore(database) as store:
        claim_mode(store, mode)


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
        session.plc = PlcSink(link, session.station, product=session.product, records=session.recorder)
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
    db = _resolve(config.records.database, base) if config.records is not None else None
    if db is not None:
        prepare_records(db, config.mode)
    loaded = load_recipe(config.recipe, base)
    rec = loaded.recipe
    model_dir = _resolve(rec.model.path, base)
    try:
        package = load_package(model_dir, expected_sha256=rec.model.sha256)
    except ModelIntegrityError as exc:
        if db is not None:  # a changed byte in a deployed model: refused, with an audited alarm
            record_integrity_failure(
                db, "model", str(exc), {"path": str(model_dir), "recipe": f"{rec.recipe_id}@{rec.version}"}
            )
        raise
    engine = InferenceEngine(package, threads=config.inference_threads)
    cam = camera if camera is not None else make_camera(config.camera, loaded, base)
    recorder: Recorder | None = None
    session: StationSession | None = None
    try:
        aborted: list[AbortedBatch] = []
        if config.records is not None and db is not None:
            images = _resolve(config.records.images, base) if config.records.images else None
            recorder = Recorder(db, images)
            aborted = close_aborted_batches(recorder)
        station = Station(rec, cam, engine, recipe_sha256=loaded.sha256)
        if station.looser_thresholds:
            what = (
                f"recipe {rec.recipe_id} {rec.version}: thresholds looser than model {package.record.model_id}"
                f" {package.record.version} was validated with ({station.looser_text()})"
            )
            if config.mode == "production":
                raise ConfigError(f"{what}: refused on a production station")
            log.warning("%s: allowed in demo mode, marked in every record and on screen", what)
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
            aborted_batches=aborted,
        )
        if recorder is not None:
            station.subscribe(recorder)
            for batch in aborted:  # stored with the aborted batch; QA decides about its items
                session.startup_alarms.append(
                    station.raise_alarm(
                        "BATCH_ABORTED",
                        batch.describe(),
                        "records",
                        AlarmSeverity.WARNING,
                        batch_id=batch.batch_id,
                        items=batch.reconciliation["records"]["inspected"],
                    )
                )

            def records_failed(message: str) -> None:
                station.raise_alarm("SINK_ERROR", message, "records", AlarmSeverity.FAULT)

            recorder.on_failure = records_failed
        if config.records is not None and config.records.site and db is not None:
            session.forwarder = ForwarderProcess(
                db, config.records.site, config.station_id, db.with_name(f"{db.stem}.forwarder.json")
            )
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
        if session is not None and session.forwarder is not None:
            with contextlib.suppress(Exception):
                session.forwarder.stop(drain_s=0.0)
        with contextlib.suppress(Exception):
            cam.close()
        raise
    return session
