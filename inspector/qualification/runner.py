"""Run a qualification suite through the exact production path and write its report.

Each challenge set is one batch of the station the station file describes, with its camera
replaced by the files camera on that set (the line rate of the suite or recipe, the recipe's
deadline and fail-safe rules, the records, and the line simulator's PLC when the suite asks for
it): :func:`inspector.station.open_station`, never a shortcut around the pipeline. Rendered sets
are rendered first (same spec, same bytes), each item ``presentations`` times.

Item ``n`` of a batch is the ``n``-th manifest entry of its set (the files camera delivers them
in order, ids from one), so every decision, including an item that never got a frame, is tied
to its item and presentation.
"""

from __future__ import annotations

import csv
import hashlib
import json
import platform
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector import __version__
from inspector.config.recipe import load_recipe
from inspector.config.station import StationConfig, apply_flags
from inspector.config.suite import LoadedSuite
from inspector.events import ItemDecided, StationEvent, utc_now
from inspector.manifest import ManifestEntry, read_manifest
from inspector.qualification.stats import Presentation, summarize
from inspector.records import RecordStore, audit
from inspector.records.audit import Actor
from inspector.station import open_station
from inspector.synth.generate import generate

Progress = Callable[[str, int, int], None]  # set name, items done, items in the set


class QualificationError(ValueError):
    """The suite cannot be run as asked (wrong product, missing set, short of presentations)."""


@dataclass(frozen=True)
class ChallengeFolder:
    name: str
    folder: Path
    entries: list[ManifestEntry]


def software_identity(root: Path) -> dict[str, str]:
    """Inspector's version and, in a source checkout, its git commit (what the report names)."""
    out = {"inspector": __version__, "python": platform.python_version()}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    if commit:
        out["git_commit"] = commit + ("+local-changes" if dirty else "")
    return out


def read_baseline(path: Path) -> dict[str, float]:
    """The manual-inspection baseline: CSV with a header ``item_key,p_manual`` (0..1 per item).

    Lines starting with ``#`` are comments (say where the figures come from).
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    except OSError as exc:
        raise QualificationError(f"manual baseline {path}: {exc.strerror}") from None
    out: dict[str, float] = {}
    for n, row in enumerate(rows, start=2):
        try:
            key, p = row["item_key"].strip(), float(row["p_manual"])
        except (KeyError, ValueError, AttributeError):
            raise QualificationError(f"{path}:{n}: expected item_key,p_manual with p_manual a number") from None
        if not 0.0 <= p <= 1.0 or not key:
            raise QualificationError(f"{path}:{n}: p_manual must be in 0..1 and item_key not empty")
        if key in out:
            raise QualificationError(f"{path}:{n}: item {key} is listed twice")
        out[key] = p
    return out


def prepare_sets(loaded: LoadedSuite, cache: Path, *, workers: int | None = None) -> list[ChallengeFolder]:
    """The challenge sets as manifest folders: rendered ones rendered into ``cache`` (once)."""
    suite = loaded.suite
    out = []
    for cs in suite.challenge_sets:
        if cs.folder is not None:
            folder = loaded.resolve(cs.folder)
        else:
            assert cs.render is not None
            r = cs.render
            folder = cache / f"{suite.product.value}-{cs.name}-s{r.seed}-n{r.items}-p{suite.presentations}"
            if not (folder / "manifest.jsonl").is_file():
                partial = folder.with_name(folder.name + ".partial")
                if partial.exists():
                    import shutil

                    shutil.rmtree(partial)
                generate(
                    suite.product.value,
                    r.items,
                    r.seed,
                    partial,
                    defect_rate=r.defect_rate,
                    nuisance=r.nuisance,
                    masks=False,
                    workers=workers,
                    presentations=suite.presentations,
                )
                partial.rename(folder)
        try:
            entries = read_manifest(folder, verify=True)  # a file that is not the one listed stops the run
        except ValueError as exc:
            raise QualificationError(f"challenge set {cs.name}: {exc}") from None
        bad = [e.file for e in entries if e.product is not suite.product or e.item_key is None]
        if bad:
            raise QualificationError(
                f"challenge set {cs.name}: {len(bad)} images are not {suite.product.value} items with an item_key"
                f" (e.g. {bad[0]}); render with --presentations or add item_key and presentation"
            )
        out.append(ChallengeFolder(cs.name, folder, entries))
    return out


def run_suite(
    loaded: LoadedSuite,
    station: StationConfig,
    *,
    root: Path,
    out: Path,
    cache: Path,
    actor: Actor | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Run every challenge set as a batch of the production station; returns the report (also in ``out``)."""
    suite = loaded.suite
    recipe = load_recipe(suite.recipe, root)
    if recipe.recipe.product is not suite.product:
        raise QualificationError(f"suite {loaded.object_id} is for {suite.product.value}, recipe {suite.recipe} is not")
    manual = read_baseline(loaded.resolve(suite.manual_baseline)) if suite.manual_baseline else None
    sets = prepare_sets(loaded, cache, workers=workers)
    run_id = run_id or f"QUAL-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    started = utc_now()
    t0 = time.perf_counter()
    presentations: list[Presentation] = []
    batches: list[dict[str, Any]] = []
    identity: dict[str, Any] = {}
    for cs in sets:
        config = apply_flags(
            station,
            recipe=suite.recipe,
            camera="files",
            images=str(cs.folder),
            line_rate=suite.line_rate_per_min,
            plc=None if suite.plc == "station" else suite.plc,
        )
        decided: dict[int, tuple[bool, str]] = {}

        def on_event(
            event: StationEvent,
            sink: dict[int, tuple[bool, str]] = decided,
            name: str = cs.name,
            total: int = len(cs.entries),
        ) -> None:
            if isinstance(event, ItemDecided):
                d = event.decision
                sink[d.item_id] = (d.accept, str(d.reason))
                if progress is not None and len(sink) % 50 == 0:
                    progress(name, len(sink), total)

        session = open_station(config, root=root, on_event=on_event)
        try:
            identity = {
                "recipe": {"id": f"{recipe.recipe.recipe_id}@{recipe.recipe.version}", "sha256": session.recipe.sha256},
                "model": {
                    "id": session.package.object_id,
                    "digest": session.package.digest,
                    "onnx_sha256": session.package.sha256,
                },
                "station": {"id": config.station_id, "mode": config.mode},
            }
            result = session.run(
                batch_id=f"{run_id}-{cs.name}",
                actor=actor,
                operator=actor.username if actor else None,
                qualification=True,
            )
        finally:
            session.close()
        if progress is not None:
            progress(cs.name, len(decided), len(cs.entries))
        missing = [i for i in range(1, len(cs.entries) + 1) if i not in decided]
        if missing:
            raise QualificationError(
                f"challenge set {cs.name}: {len(missing)} items got no decision (first {missing[0]})"
            )
        for i, e in enumerate(cs.entries, start=1):
            accepted, reason = decided[i]
            assert e.item_key is not None and e.presentation is not None
            presentations.append(
                Presentation(
                    e.item_key,
                    e.presentation,
                    e.label,
                    accepted,
                    reason,
                    str(cs.folder / e.file),
                    i,
                    result.batch_id or "",
                )
            )
        batches.append({"set": cs.name, "folder": str(cs.folder), **result.as_dict()})
    elapsed = time.perf_counter() - t0
    stats = summarize(
        suite.product,
        presentations,
        manual=manual,
        criteria=suite.criteria,
        accept_minor=recipe.recipe.accept_minor,
        expected_presentations=suite.presentations,
    )
    db = _database(station, root)
    head = (0, "")
    if db is not None:
        with RecordStore(db) as store:
            head = audit.head(store)
    report = {
        "kind": "qualification_report",
        "run_id": run_id,
        "started_utc": started,
        "ended_utc": utc_now(),
        "suite": {
            "id": loaded.object_id,
            "file": str(loaded.path),
            "sha256": loaded.sha256,
            "presentations": suite.presentations,
            "criteria": suite.criteria.model_dump(mode="json"),
            "description": suite.description,
        },
        **identity,
        "software": software_identity(root),
        "run_by": None
        if actor is None
        else {"username": actor.username, "full_name": actor.full_name, "role": actor.role},
        "audit_head": {"seq": head[0], "hash": head[1]},
        "performance": {
            "seconds": round(elapsed, 2),
            "items_per_s": round(len(presentations) / elapsed, 1) if elapsed > 0 else None,
            "latency_ms_p99_worst_batch": max((b["latency_ms_p99"] or 0 for b in batches), default=None),
        },
        "batches": batches,
        "result": stats,
        "passed": stats["passed"],
    }
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    (out / "report.json").write_text(text, encoding="utf-8")
    report["report_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return report


def _database(station: StationConfig, root: Path) -> Path | None:
    if station.records is None:
        return None
    p = Path(station.records.database)
    return p if p.is_absolute() else root / p
