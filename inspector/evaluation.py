"""Evaluate a model package on any labelled set, through the station's own path.

Each image goes through :func:`~inspector.inference.units.to_units`, the
:class:`~inspector.inference.session.InferenceEngine` (ONNX Runtime, one thread) and
:func:`~inspector.pipeline.decision.decide` with the record's thresholds, exactly as on the
line. The report holds the confusion matrix (true label x decided reason), per-class
recall, the false reject rate, critical escapes, anomaly AUROC (also on the classes the
classifier never saw) and inference latency, and checks the record's acceptance criteria,
which were fixed before any test. Runtime side: no torch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspector.config.identity import IdentitySpec
from inspector.config.registration import RegistrationSpec
from inspector.config.roi import Roi
from inspector.inference.identity import check_units, unit_reasons
from inspector.inference.package import ModelIntegrityError, ModelRecord, load_package
from inspector.inference.registration import register
from inspector.inference.session import InferenceEngine
from inspector.inference.units import to_units
from inspector.manifest import ManifestError, read_manifest, sha256_bytes
from inspector.pipeline.decision import Verdict, decide
from inspector.taxonomy import (
    IMAGE_SPECS,
    OK,
    Criticality,
    Product,
    Reason,
    RejectReason,
    criticality,
    defect,
    labels,
)

STATION_REASONS = (RejectReason.UNDECIDED.value, RejectReason.ANOMALY.value)


@dataclass(frozen=True)
class ItemOutcome:
    """Model outputs for one labelled item (all its units) and how long inference took."""

    label: str
    scores: np.ndarray  # [U, K]
    anomaly: np.ndarray  # [U]
    pockets: tuple[str, ...] | None = None
    infer_ms: float | None = None
    file: str | None = None  # manifest path, for the list of misjudged items
    pose: dict[str, float] | None = None  # where registration found the item (None: no registration, or not found)
    refused: str | None = None  # why the pose guard refused the item (rejected not_inspected, no model outputs)
    identity: tuple[Reason | None, ...] | None = None  # per unit: the failed identity check's reason, or None
    foreign: dict[str, Any] | None = None  # a random foreign tablet's margins (inspector.synth.foreign)


MISJUDGED_LISTED = 200  # items listed per kind; the counts are always complete


def _is_critical(entry: dict[str, Any]) -> bool:
    return bool(entry.get("criticality") == Criticality.CRITICAL.value)


def _misjudged(item: ItemOutcome, v: Verdict, prod: Product) -> dict[str, Any]:
    """One wrongly accepted defect or wrongly rejected good item, as QA would look it up."""
    entry: dict[str, Any] = {
        "file": item.file,
        "label": item.label,
        "decision": OK if v.accept else v.reason,
        "top_class": v.label,
        "confidence": round(v.confidence, 4),
        "anomaly": round(v.anomaly, 4),
    }
    if item.label != OK:
        entry["criticality"] = defect(prod, item.label).criticality.value
    if v.pocket_index is not None:
        entry["pocket_index"] = v.pocket_index
    return entry


def auroc(negatives: Sequence[float] | np.ndarray, positives: Sequence[float] | np.ndarray) -> float | None:
    """Area under the ROC curve (positives should score higher); ties count half. ``None`` if a side is empty."""
    neg = np.asarray(negatives, np.float64).ravel()
    pos = np.asarray(positives, np.float64).ravel()
    if neg.size == 0 or pos.size == 0:
        return None
    x = np.concatenate([neg, pos])
    order = np.argsort(x, kind="mergesort")
    _, inverse, counts = np.unique(x[order], return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    average_rank = (last - counts + 1 + last) / 2.0  # mean 1-based rank of each tie group
    ranks = np.empty(x.size, np.float64)
    ranks[order] = average_rank[inverse]
    pos_rank_sum = float(ranks[neg.size :].sum())
    return (pos_rank_sum - pos.size * (pos.size + 1) / 2.0) / (pos.size * neg.size)


def _rate(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


Z_95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(k: int, n: int, z: float = Z_95) -> list[float] | None:
    """Wilson score interval ``[low, high]`` of a rate ``k / n`` (95 % by default); ``None`` if n is 0.

    A rate measured on a few hundred good items moves by whole tenths of a percent from one
    set to the next: the interval says how far the figure can be trusted. Unlike the plain
    normal interval it stays inside 0..1 and is not empty at 0 or n events (0 of 1,000 false
    rejects still allows up to about 0.38 %).
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return None
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # At 0 or n events the bound is exactly 0 or 1 (the formula leaves a rounding error there).
    low = 0.0 if k == 0 else max(0.0, float(centre - half))
    high = 1.0 if k == n else min(1.0, float(centre + half))
    return [low, high]


#: The identity issue's margins: a foreign tablet this far from the product must never be accepted.
FOREIGN_DELTA_E = 10.0
FOREIGN_SIZE = 0.10


def beyond_margins(f: Mapping[str, Any]) -> bool:
    """Colour delta E >= 10, or area or length >= 10 % off the product's."""
    return bool(
        f["delta_e"] >= FOREIGN_DELTA_E
        or abs(f["area_ratio"] - 1.0) >= FOREIGN_SIZE
        or abs(f["length_ratio"] - 1.0) >= FOREIGN_SIZE
    )


def foreign_detection(items: Sequence[tuple[Mapping[str, Any], bool]]) -> dict[str, Any]:
    """How many random foreign tablets were rejected: in all, beyond the margins, and by margin band."""
    beyond = [rej for f, rej in items if beyond_margins(f)]
    within = [rej for f, rej in items if not beyond_margins(f)]

    def band(sel: Sequence[bool]) -> dict[str, Any]:
        n, k = len(sel), int(sum(sel))
        return {
            "n": n,
            "rejected": k,
            "accepted": n - k,
            "detection": _rate(k, n),
            "interval_95": wilson_interval(k, n),
        }

    def closest(f: Mapping[str, Any]) -> float:
        # How far from the product on its nearest measure, in units of the margin (1 = on the margin).
        size = max(abs(float(f["area_ratio"]) - 1.0), abs(float(f["length_ratio"]) - 1.0)) / FOREIGN_SIZE
        return max(float(f["delta_e"]) / FOREIGN_DELTA_E, size)

    bands: dict[str, Any] = {}
    for lo, hi in ((0.0, 0.5), (0.5, 0.75), (0.75, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, float("inf"))):
        sel = [rej for f, rej in items if lo <= closest(f) < hi]
        if sel:
            bands[f"{lo:g}-{hi:g}" if hi != float("inf") else f">={lo:g}"] = band(sel)
    accepted = [dict(f) for f, rej in items if not rej]
    return {
        "margins": {"delta_e": FOREIGN_DELTA_E, "size": FOREIGN_SIZE},
        "all": band([rej for _, rej in items]),
        "beyond_margins": band(beyond),
        "within_margins": band(within),
        "by_distance_in_margins": bands,
        "accepted": accepted[:MISJUDGED_LISTED],
    }


def summarize(
    product: Product | str,
    classes: Sequence[str],
    outcomes: Iterable[ItemOutcome],
    *,
    confidence_threshold: float,
    anomaly_threshold: float,
    accept_minor: frozenset[str] = frozenset(),
    withheld: Sequence[str] = (),
) -> dict[str, Any]:
    """Decide every item with :func:`decide` and compute the report's figures.

    An item the pose guard refused (``refused``) is rejected ``not_inspected``, as on the line; it
    has no model outputs, so it counts in the rates and the confusion matrix but in no score.
    """
    prod = Product(product)
    all_labels = list(labels(prod))
    outcomes = list(outcomes)
    refused_any = any(o.refused is not None for o in outcomes)
    columns = [*classes, *STATION_REASONS, *([RejectReason.NOT_INSPECTED.value] if refused_any else [])]
    col_index = {c: i for i, c in enumerate(columns)}
    confusion = np.zeros((len(all_labels), len(columns)), np.int64)
    rejected: dict[str, int] = dict.fromkeys(all_labels, 0)
    right_reason: dict[str, int] = dict.fromkeys(all_labels, 0)
    count: dict[str, int] = dict.fromkeys(all_labels, 0)
    item_anomaly: dict[str, list[float]] = {lab: [] for lab in all_labels}
    unit_anomaly: dict[str, list[float]] = {lab: [] for lab in all_labels}
    pocket_confusion = np.zeros_like(confusion)
    pocket_hits = pocket_rejects = 0
    times: list[float] = []
    verdicts: list[Verdict] = []
    wrong_accepts: list[dict[str, Any]] = []
    wrong_rejects: list[dict[str, Any]] = []
    foreign: list[tuple[Mapping[str, Any], bool]] = []  # a random foreign tablet's margins, and rejected?
    for item in outcomes:
        lab = item.label
        count[lab] += 1
        if item.refused is not None:
            confusion[all_labels.index(lab), col_index[RejectReason.NOT_INSPECTED.value]] += 1
            rejected[lab] += 1
            if item.foreign is not None:
                foreign.append((item.foreign, True))
            if lab == OK:
                entry = {"file": item.file, "label": lab, "decision": "not_inspected", "top_class": "",
                         "confidence": 0.0, "anomaly": 0.0, "pose": item.refused}  # fmt: skip
                wrong_rejects.append(entry)
            continue
        v = decide(
            prod,
            list(classes),
            item.scores,
            item.anomaly,
            confidence_threshold=confidence_threshold,
            anomaly_threshold=anomaly_threshold,
            accept_minor=accept_minor,
            identity=item.identity,
        )
        verdicts.append(v)
        if item.foreign is not None:
            foreign.append((item.foreign, not v.accept))
        # An accepted item shows as "ok" in the matrix, whatever its top class was.
        confusion[all_labels.index(lab), col_index[OK if v.accept else v.reason]] += 1
        rejected[lab] += int(not v.accept)
        right_reason[lab] += int(v.reason == lab)
        if v.accept != (lab == OK):
            wrong = wrong_accepts if v.accept else wrong_rejects
            wrong.append(_misjudged(item, v, prod))
        item_anomaly[lab].append(float(item.anomaly.max()))
        unit_labels = list(item.pockets) if item.pockets is not None else [lab]
        for u, ulab in enumerate(unit_labels):
            unit_anomaly[ulab].append(float(item.anomaly[u]))
            if item.pockets is not None:
                pocket_confusion[all_labels.index(ulab), col_index[v.unit_reasons[u]]] += 1
        if item.pockets is not None and lab != OK and not v.accept:
            pocket_rejects += 1
            pocket_hits += int(v.pocket_index is not None and item.pockets[v.pocket_index] != OK)
        if item.infer_ms is not None:
            times.append(item.infer_ms)
    present = [lab for lab in all_labels if count[lab]]
    recall: dict[str, float | None] = {}
    for lab in present:
        # Recall of a defect class: share rejected; of ok: share accepted (1 - false reject rate).
        recall[lab] = _rate(count[lab] - rejected[lab], count[lab]) if lab == OK else _rate(rejected[lab], count[lab])
    escapes = {lab: count[lab] - rejected[lab] for lab in present if lab != OK}
    crit = {lab for lab in present if criticality(prod, lab) is Criticality.CRITICAL}
    ok_units = unit_anomaly[OK]
    defective_items = [s for lab in present if lab != OK for s in item_anomaly[lab]]
    withheld_units = [s for lab in withheld for s in unit_anomaly.get(lab, [])]
    result: dict[str, Any] = {
        "product": prod.value,
        "n": int(sum(count.values())),
        "n_per_class": {lab: count[lab] for lab in present},
        "thresholds": {"confidence": confidence_threshold, "anomaly": anomaly_threshold},
        "accept_minor": sorted(accept_minor),
        "per_class_recall": recall,
        "per_class_reason_recall": {lab: _rate(right_reason[lab], count[lab]) for lab in present},
        "false_reject_rate": _rate(rejected.get(OK, 0), count.get(OK, 0)),
        "critical_escapes": int(sum(escapes[lab] for lab in crit)),
        "intervals_95": {
            "method": "Wilson score, 95 %",
            "false_reject_rate": wilson_interval(rejected.get(OK, 0), count.get(OK, 0)),
            "per_class_recall": {
                lab: wilson_interval(count[lab] - rejected[lab] if lab == OK else rejected[lab], count[lab])
                for lab in present
            },
        },
        "escapes_per_class": escapes,
        "must_reject_escapes": int(sum(n for lab, n in escapes.items() if defect(prod, lab).must_reject)),
        "anomaly_auroc": auroc(item_anomaly[OK], defective_items),
        "anomaly_auroc_withheld": auroc(ok_units, withheld_units),
        "anomaly_auroc_per_class": {lab: auroc(ok_units, unit_anomaly[lab]) for lab in present if lab != OK},
        "withheld_classes": list(withheld),
        "confusion_matrix": {
            "rows": present,
            "columns": columns,
            "counts": [confusion[all_labels.index(lab)].tolist() for lab in present],
        },
        "misjudged": {
            "listed_max": MISJUDGED_LISTED,
            "accepted_defects_total": len(wrong_accepts),
            "rejected_good_total": len(wrong_rejects),
            # Critical escapes first: they are the ones a validation team must see.
            "accepted_defects": sorted(wrong_accepts, key=lambda e: not _is_critical(e))[:MISJUDGED_LISTED],
            "rejected_good": wrong_rejects[:MISJUDGED_LISTED],
        },
    }
    if prod is Product.BLISTER:
        rows = [lab for lab in all_labels if pocket_confusion[all_labels.index(lab)].sum()]
        result["pocket_confusion_matrix"] = {
            "rows": rows,
            "columns": columns,
            "counts": [pocket_confusion[all_labels.index(lab)].tolist() for lab in rows],
        }
        result["pocket_index_correct"] = _rate(pocket_hits, pocket_rejects)
    if any(o.pose is not None or o.refused is not None for o in outcomes):
        result["registration"] = pose_distribution(outcomes)
    if foreign:
        result["foreign"] = foreign_detection(foreign)
    if times:
        t = np.asarray(times)
        result.update(
            infer_ms_p50=float(np.percentile(t, 50)),
            infer_ms_p99=float(np.percentile(t, 99)),
            infer_ms_mean=float(t.mean()),
            infer_ms_max=float(t.max()),
        )
    return result


def pose_distribution(outcomes: Sequence[ItemOutcome]) -> dict[str, Any]:
    """How the set's items lay (percentiles of dx, dy, angle and match score) and how many the guard refused."""
    poses = [o.pose for o in outcomes if o.pose is not None]
    refused = [o for o in outcomes if o.refused is not None]
    spread: dict[str, Any] = {}
    for key in ("dx", "dy", "angle_deg", "score"):
        v = np.asarray([p[key] for p in poses], np.float64)
        if v.size:
            spread[key] = {q: round(float(np.percentile(v, pct)), 3)
                           for q, pct in (("min", 0), ("p1", 1), ("p50", 50), ("p99", 99), ("max", 100))}  # fmt: skip
    by_label: dict[str, int] = {}
    for o in refused:
        by_label[o.label] = by_label.get(o.label, 0) + 1
    return {
        "located": len(poses),
        "refused": len(refused),
        "refused_per_class": by_label,
        "refused_first": [{"file": o.file, "label": o.label, "why": o.refused} for o in refused[:20]],
        "pose": spread,
    }


def check_acceptance(product: Product | str, result: dict[str, Any], criteria: dict[str, Any]) -> dict[str, Any]:
    """Compare a result with acceptance criteria (keys ``*_max`` / ``*_min``); unknown keys are ignored."""
    prod = Product(product)
    recall = result.get("per_class_recall", {})
    rejectable = [lab for lab in recall if lab != OK and defect(prod, lab).must_reject]
    critical = [lab for lab in rejectable if defect(prod, lab).criticality is Criticality.CRITICAL]

    def worst(labs: list[str]) -> float | None:
        vals = [recall[lab] for lab in labs if recall[lab] is not None]
        return min(vals) if vals else None

    measured = {
        "critical_escapes_max": result.get("critical_escapes"),
        "critical_recall_min": worst(critical),
        "rejectable_recall_min": worst(rejectable),
        "false_reject_rate_max": result.get("false_reject_rate"),
        "anomaly_auroc_withheld_min": result.get("anomaly_auroc_withheld"),
        "infer_ms_p50_max": result.get("infer_ms_p50"),
        "infer_ms_p99_max": result.get("infer_ms_p99"),
    }
    checks: dict[str, Any] = {}
    for key, limit in criteria.items():
        if key not in measured or not isinstance(limit, int | float):
            continue
        value = measured[key]
        passed = None if value is None else (value <= limit if key.endswith("_max") else value >= limit)
        checks[key] = {"limit": limit, "value": value, "passed": passed}
    return {"checks": checks, "passed": all(c["passed"] is not False for c in checks.values()) and bool(checks)}


def _read_image(path: Path, want_sha: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path}: image listed in the manifest is missing") from None
    if sha256_bytes(data) != want_sha:
        raise ValueError(f"{path}: sha256 does not match the manifest; the image was changed")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint8 or img.shape != shape:
        got = None if img is None else f"{img.dtype}{list(img.shape)}"
        raise ValueError(f"{path}: expected a uint8 frame of shape {list(shape)}, got {got}")
    return img


def _frame_shape(record: ModelRecord) -> tuple[int, ...]:
    if record.pocket_grid is not None:
        w, h = record.pocket_grid.image_size
        return (h, w, 3)
    return IMAGE_SPECS[record.product].shape


@dataclass(frozen=True)
class Evaluation:
    """An evaluation's report and what it was computed from (for the pictures)."""

    result: dict[str, Any]
    outcomes: list[ItemOutcome]
    images_dir: Path
    rois: list[Roi] | None  # blister pocket boxes in the frame; None for whole-frame units


def evaluate(
    model_dir: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    *,
    accept_minor: Sequence[str] = (),
    limit: int | None = None,
    threads: int = 1,
    progress: Callable[[int, int], None] | None = None,
    registration: RegistrationSpec | None = None,
    identity: IdentitySpec | None = None,
) -> dict[str, Any]:
    """Run a model package over a labelled set (folder with ``manifest.jsonl``) and report.

    ``registration``: the recipe's, so that the items are located and guarded as on the line;
    ``identity``: the recipe's deterministic identity check, judged beside the model as on the line.
    """
    return run_evaluation(
        model_dir,
        images_dir,
        accept_minor=accept_minor,
        limit=limit,
        threads=threads,
        progress=progress,
        registration=registration,
        identity=identity,
    ).result


def run_evaluation(
    model_dir: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    *,
    accept_minor: Sequence[str] = (),
    limit: int | None = None,
    threads: int = 1,
    progress: Callable[[int, int], None] | None = None,
    registration: RegistrationSpec | None = None,
    identity: IdentitySpec | None = None,
) -> Evaluation:
    """:func:`evaluate`, keeping every item's outputs; ``progress(done, total)`` after each item."""
    try:
        package = load_package(model_dir)
    except ModelIntegrityError as exc:
        raise ValueError(f"cannot use model package {model_dir}: {exc}") from None
    record = package.record
    try:
        entries = read_manifest(images_dir)
    except ManifestError as exc:
        raise ValueError(str(exc)) from None
    if not entries:
        raise ValueError(f"{images_dir}: the set is empty")
    wrong = sorted({e.product.value for e in entries if e.product is not record.product})
    if wrong:
        raise ValueError(f"{images_dir}: holds {wrong} items but the model is for {record.product.value}")
    for code in accept_minor:
        if code not in labels(record.product) or defect(record.product, code).criticality is not Criticality.MINOR:
            raise ValueError(f"accept_minor: {code!r} is not a minor {record.product.value} defect")
    if limit is not None:
        entries = entries[: max(limit, 0)]
    engine = InferenceEngine(package, threads=threads)
    rois = record.pocket_grid.rois() if record.pocket_grid is not None else None
    shape = _frame_shape(record)
    root = Path(images_dir)
    outcomes: list[ItemOutcome] = []
    for i, e in enumerate(entries, 1):
        image = _read_image(root / e.file, e.sha256, shape)
        pockets = tuple(e.pockets) if e.pockets is not None else None
        pose = None
        if registration is not None:
            reg = register(record.product, image, registration, rois)
            pose = reg.pose.as_dict() if reg.pose is not None else None
            if reg.units is None:
                empty = np.zeros((0, len(record.classes)), np.float32)
                outcomes.append(
                    ItemOutcome(
                        e.label,
                        empty,
                        np.zeros(0, np.float32),
                        pockets,
                        None,
                        e.file,
                        pose,
                        reg.refused,
                        foreign=e.foreign,
                    )
                )
                if progress is not None:
                    progress(i, len(entries))
                continue
            units = reg.units
        else:
            units = to_units(image, rois)
        failed = None
        if identity is not None:
            failed = unit_reasons(record.product, check_units(units, identity))
        t0 = time.perf_counter()
        scores, anomaly = engine.run(units)
        ms = (time.perf_counter() - t0) * 1e3
        outcomes.append(
            ItemOutcome(e.label, scores, anomaly, pockets, ms, e.file, pose, identity=failed, foreign=e.foreign)
        )
        if progress is not None:
            progress(i, len(entries))
    result = summarize(
        record.product,
        record.classes,
        outcomes,
        confidence_threshold=record.thresholds.confidence,
        anomaly_threshold=record.thresholds.anomaly,
        accept_minor=frozenset(accept_minor),
        withheld=list(record.training.get("withheld_classes", [])),
    )
    result = {
        "model": {
            "path": str(model_dir),
            "model_id": record.model_id,
            "version": record.version,
            "sha256": record.sha256,
            "status": record.status,
        },
        "images": {"path": str(images_dir), "items": len(entries)},
        "unit": record.unit,
        "threads": threads,
        **result,
    }
    if record.acceptance_criteria:
        result["acceptance"] = check_acceptance(record.product, result, record.acceptance_criteria)
    # The pictures show model outputs: an item the pose guard refused has none.
    return Evaluation(result, [o for o in outcomes if o.refused is None], root, rois)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.2f}%"


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _interval_range(result: dict[str, Any], key: str, lab: str | None = None) -> str | None:
    """``a-b%`` for a rate's 95 % interval; None for results written before intervals were."""
    iv = result.get("intervals_95", {}).get(key)
    if lab is not None and iv is not None:
        iv = iv.get(lab)
    return None if not iv else f"{100 * iv[0]:.2f}-{100 * iv[1]:.2f}%"


def _interval(result: dict[str, Any], key: str, lab: str | None = None) -> str:
    """`` (95 % a-b%)`` after a rate, or nothing."""
    rng = _interval_range(result, key, lab)
    return "" if rng is None else f" (95 % {rng})"


def format_report(result: dict[str, Any]) -> str:
    """Plain-text report for the terminal."""
    lines = [
        f"model {result.get('model', {}).get('model_id', '?')} {result.get('model', {}).get('version', '')}"
        f" on {result.get('images', {}).get('path', '?')}: n={result['n']}",
        f"false reject rate {_pct(result['false_reject_rate'])}{_interval(result, 'false_reject_rate')}"
        f"   critical escapes {result['critical_escapes']}"
        f"   must-reject escapes {result['must_reject_escapes']}",
        f"anomaly AUROC {_num(result['anomaly_auroc'])}   withheld {result['withheld_classes']}:"
        f" {_num(result['anomaly_auroc_withheld'])}",
    ]
    if "infer_ms_p50" in result:
        lines.append(
            f"inference ms p50 {result['infer_ms_p50']:.3f}  p99 {result['infer_ms_p99']:.3f}"
            f"  mean {result['infer_ms_mean']:.3f}  max {result['infer_ms_max']:.3f}"
        )
    lines.append("per-class recall (defects: share rejected; ok: share accepted), reason code right:")
    for lab, r in result["per_class_recall"].items():
        lines.append(
            f"  {lab:17} n={result['n_per_class'][lab]:5}  recall {_pct(r):>8}"
            f"{_interval(result, 'per_class_recall', lab):<24}"
            f"  reason {_pct(result['per_class_reason_recall'][lab]):>8}"
        )
    cm = result["confusion_matrix"]
    width = max(9, *(len(c) for c in cm["columns"])) + 1
    lines.append("confusion (rows: truth, columns: decision)")
    lines.append(" " * 18 + "".join(c[: width - 1].rjust(width) for c in cm["columns"]))
    for lab, row in zip(cm["rows"], cm["counts"], strict=True):
        lines.append(f"  {lab:16}" + "".join(str(v).rjust(width) for v in row))
    lines.extend(_misjudged_lines(result))
    reg = result.get("registration")
    if reg:
        spread = reg["pose"]
        parts = [f"{k} {v['p1']:+.1f}..{v['p99']:+.1f}" for k, v in spread.items() if k != "score"]
        score = f", score p1 {spread['score']['p1']:.2f}" if "score" in spread else ""
        lines.append(
            f"registration: {reg['located']} located, {reg['refused']} refused by the pose guard"
            f" {reg['refused_per_class'] or ''}; pose p1..p99: {', '.join(parts)}{score}"
        )
    acc = result.get("acceptance")
    if acc:
        lines.append(f"acceptance criteria: {'PASS' if acc['passed'] else 'FAIL'}")
        for key, c in acc["checks"].items():
            mark = {True: "ok  ", False: "FAIL", None: "n/a "}[c["passed"]]
            lines.append(f"  {mark} {key}: {c['value']} (limit {c['limit']})")
    return "\n".join(lines)


MISJUDGED_PRINTED = 10


def _misjudged_lines(result: dict[str, Any]) -> list[str]:
    """The first misjudged items of each kind (all of them are in the JSON, up to ``listed_max``)."""
    mis = result.get("misjudged")
    if not mis:
        return []
    lines = []
    for key, head in (("accepted_defects", "defects accepted"), ("rejected_good", "good items rejected")):
        items, total = mis[key], mis[f"{key}_total"]
        if not items:
            continue
        more = f", first {MISJUDGED_PRINTED} shown" if total > MISJUDGED_PRINTED else ""
        lines.append(f"{head}: {total}{more} (file, truth -> decision, confidence, anomaly)")
        for e in items[:MISJUDGED_PRINTED]:
            crit = " CRITICAL" if _is_critical(e) else ""
            pocket = f" pocket {e['pocket_index']}" if "pocket_index" in e else ""
            lines.append(
                f"  {e['file']}: {e['label']} -> {e['decision']}{pocket}  conf {e['confidence']:.3f}"
                f"  anomaly {e['anomaly']:.3f}{crit}"
            )
    return lines


def format_markdown(
    result: dict[str, Any], title: str = "Evaluation", *, pictures: Mapping[str, str] | None = None
) -> str:
    """Short human-readable report (for ``evaluation.md`` in a model package); ``pictures``: kind -> link."""
    m = result.get("model", {})
    out = [
        f"# {title}",
        "",
        f"- model: `{m.get('model_id', '?')}` {m.get('version', '')} (sha256 `{m.get('sha256', '?')}`)",
        f"- images: `{result.get('images', {}).get('path', '?')}`, n = {result['n']}",
        f"- thresholds: confidence {result['thresholds']['confidence']:.4f},"
        f" anomaly {result['thresholds']['anomaly']:.4f}; accept_minor {result['accept_minor']}",
        f"- false reject rate: {_pct(result['false_reject_rate'])}{_interval(result, 'false_reject_rate')}",
        f"- critical escapes: {result['critical_escapes']} (must-reject escapes: {result['must_reject_escapes']})",
        f"- anomaly AUROC: all defects {_num(result['anomaly_auroc'])},"
        f" withheld {result['withheld_classes']} {_num(result['anomaly_auroc_withheld'])}",
    ]
    if "infer_ms_p50" in result:
        out.append(
            f"- inference per {'card' if result.get('unit') == 'pocket' else 'item'}, 1 thread:"
            f" p50 {result['infer_ms_p50']:.3f} ms, p99 {result['infer_ms_p99']:.3f} ms,"
            f" mean {result['infer_ms_mean']:.3f} ms"
        )
    if "pocket_index_correct" in result:
        out.append(f"- rejected defective cards naming a defective pocket: {_pct(result['pocket_index_correct'])}")
    out += [
        "",
        "| class | n | recall | recall, 95 % interval | reason right | anomaly AUROC |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for lab, r in result["per_class_recall"].items():
        au = result["anomaly_auroc_per_class"].get(lab)
        iv = _interval_range(result, "per_class_recall", lab) or "n/a"
        out.append(
            f"| {lab} | {result['n_per_class'][lab]} | {_pct(r)} | {iv}"
            f" | {_pct(result['per_class_reason_recall'][lab])} | {_num(au)} |"
        )
    cm = result["confusion_matrix"]
    out += ["", "Confusion (rows: truth, columns: decision)", ""]
    out.append("| truth | " + " | ".join(cm["columns"]) + " |")
    out.append("|---|" + "---:|" * len(cm["columns"]))
    for lab, row in zip(cm["rows"], cm["counts"], strict=True):
        out.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
    mis = result.get("misjudged")
    if mis and (mis["accepted_defects"] or mis["rejected_good"]):
        out += [
            "",
            f"Misjudged items (defects accepted {mis['accepted_defects_total']}, good items rejected"
            f" {mis['rejected_good_total']}; the first {MISJUDGED_PRINTED} of each here,"
            f" up to {mis['listed_max']} in the JSON)",
            "",
            "| file | truth | decision | confidence | anomaly |",
            "|---|---|---|---:|---:|",
        ]
        for e in [*mis["accepted_defects"][:MISJUDGED_PRINTED], *mis["rejected_good"][:MISJUDGED_PRINTED]]:
            truth = f"**{e['label']} (critical)**" if _is_critical(e) else e["label"]
            out.append(f"| {e['file']} | {truth} | {e['decision']} | {e['confidence']:.3f} | {e['anomaly']:.3f} |")
    acc = result.get("acceptance")
    if acc:
        out += ["", f"Acceptance criteria (fixed before testing): **{'PASS' if acc['passed'] else 'FAIL'}**", ""]
        for key, c in acc["checks"].items():
            mark = {True: "pass", False: "FAIL", None: "n/a"}[c["passed"]]
            out.append(f"- {key}: {c['value']} (limit {c['limit']}): {mark}")
    if pictures:
        out += ["", "## Pictures", ""]
        for kind, link in pictures.items():
            out += [f"**{PICTURE_TITLES.get(kind, kind)}**", "", f"![{kind}]({link})", ""]
    return "\n".join(out).rstrip("\n") + "\n"


PICTURE_TITLES = {
    "confusion": "Confusion matrix (counts and row-normalised)",
    "scores": "Anomaly score and confidence per class, thresholds dashed",
    "roc_pr": "ROC and precision-recall of the anomaly score",
    "misjudged": "Misjudged items, critical escapes first",
    "pocket_confusion": "Confusion matrix per pocket",
}
