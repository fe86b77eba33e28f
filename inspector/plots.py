"""Pictures of an evaluation, and the figure helpers training uses too: PNGs drawn with matplotlib (Agg).

No pyplot: every figure is a :class:`~matplotlib.figure.Figure` on its own Agg canvas, so no
global state is touched (threads, a Qt application in the same process) and no display is
needed. Only commands import this module (an import contract keeps the station's run path
free of matplotlib).

:func:`write_evaluation_pictures` writes, next to an ``inspector evaluate`` report:

- ``confusion``: the confusion matrix (truth x decision), counts and row-normalised;
- ``scores``: per class, histograms of the anomaly score and the top-class confidence of every
  unit (item, or blister pocket) with the model's two thresholds drawn;
- ``roc_pr``: ROC and precision-recall curves of the anomaly score (items: good against
  defective; units: good against the classes withheld from the classifier), with the point
  the anomaly threshold alone operates at;
- ``misjudged``: a montage of every misjudged item the report lists, critical escapes first
  (image, truth, decision, confidence, anomaly; on a blister card the defective pockets and
  the deciding one outlined);
- ``pocket_confusion`` (blisters): the confusion matrix per pocket.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from inspector.evaluation import Evaluation, ItemOutcome
from inspector.taxonomy import OK, Criticality, Product

DPI = 100
PICTURE_KINDS = ("confusion", "scores", "roc_pr", "misjudged", "pocket_confusion")

ESCAPE_CRITICAL = "#c62828"
ESCAPE = "#ef6c00"
FALSE_REJECT = "#1565c0"
THRESHOLD = "#c62828"


def new_figure(width_in: float, height_in: float, *, layout: Literal["constrained"] | None = "constrained") -> Figure:
    """A figure on its own Agg canvas (no pyplot, no display); ``layout=None`` to place axes by hand (faster)."""
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def warm_up() -> None:
    """Draw a small figure once: loads the fonts and caches that the first picture would otherwise wait for.

    ``inspector evaluate`` calls it (with the import) on its other core while the model runs.
    """
    fig = new_figure(2.0, 1.0, layout=None)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1])
    ax.set_yscale("log")
    ax.set_title("warm-up", fontsize=9, weight="bold")
    fig.canvas.draw()


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


# -- confusion matrices ----------------------------------------------------------------------------
def _matrix_panel(
    fig: Figure, ax: Any, counts: np.ndarray, rows: Sequence[str], cols: Sequence[str], *, normalised: bool
) -> None:
    totals = counts.sum(axis=1, keepdims=True)
    shares = counts / np.maximum(totals, 1)
    # Colour by share of the row, so a rare class reads as clearly as the good one.
    im = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ok_col = list(cols).index(OK) if OK in cols else None
    for r in range(counts.shape[0]):
        for c in range(counts.shape[1]):
            n = int(counts[r, c])
            if n == 0:
                continue
            text = f"{100 * shares[r, c]:.1f}" if normalised else str(n)
            wrong = ok_col is not None and (c == ok_col) != (rows[r] == OK)
            colour = "white" if shares[r, c] > 0.6 else (ESCAPE_CRITICAL if wrong else "black")
            ax.text(c, r, text, ha="center", va="center", fontsize=8, color=colour, weight="bold" if wrong else None)
    ax.set_xticks(range(len(cols)), labels=list(cols), rotation=40, ha="right", fontsize=8)
    ax.set_yticks(
        range(len(rows)), labels=[f"{lab} ({int(t)})" for lab, t in zip(rows, totals[:, 0], strict=True)], fontsize=8
    )
    ax.set_xlabel("decision")
    ax.set_ylabel("truth (n)")
    ax.set_title("% of each row" if normalised else "counts", fontsize=10)
    if normalised:
        fig.colorbar(im, ax=ax, shrink=0.8, fraction=0.05, pad=0.03, label="share of the row")


def confusion_figure(matrix: Mapping[str, Any], title: str) -> Figure:
    """Counts and row-normalised shares side by side; wrong accept/reject cells in red."""
    rows, cols = list(matrix["rows"]), list(matrix["columns"])
    counts = np.asarray(matrix["counts"], np.int64).reshape(len(rows), len(cols))
    width = max(9.0, 2 * (0.62 * len(cols) + 2.2))
    height = 0.38 * len(rows) + 2.6
    fig = new_figure(width, height, layout=None)  # placed by hand: a layout engine costs more than the drawing
    fig.subplots_adjust(
        left=1.75 / width, right=1 - 0.75 / width, bottom=1.2 / height, top=1 - 0.6 / height, wspace=0.42
    )
    ax1, ax2 = fig.subplots(1, 2)
    _matrix_panel(fig, ax1, counts, rows, cols, normalised=False)
    _matrix_panel(fig, ax2, counts, rows, cols, normalised=True)
    fig.suptitle(title, fontsize=11)
    return fig


# -- score histograms ------------------------------------------------------------------------------
def unit_scores(outcomes: Sequence[ItemOutcome]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every unit's true label, anomaly score and top-class confidence (pockets for blisters)."""
    labels: list[str] = []
    anomaly: list[np.ndarray] = []
    confidence: list[np.ndarray] = []
    for o in outcomes:
        labels += list(o.pockets) if o.pockets is not None else [o.label] * len(o.anomaly)
        anomaly.append(np.asarray(o.anomaly, np.float64).ravel())
        confidence.append(np.asarray(o.scores, np.float64).max(axis=1))
    if not anomaly:
        return [], np.zeros(0), np.zeros(0)
    return labels, np.concatenate(anomaly), np.concatenate(confidence)


def _plain_ticks(axis: Any) -> None:
    """Log-axis labels as plain numbers (1, 10, 100), no minor ticks: clearer, and no slow mathtext."""
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_locator(NullLocator())


def _bins(values: np.ndarray, threshold: float, log: bool, n: int = 60) -> np.ndarray:
    lo, hi = min(float(values.min()), threshold), max(float(values.max()), threshold)
    if log:
        return np.geomspace(lo * 0.95, hi * 1.05, n + 1)
    if hi <= lo:
        hi = lo + 1e-6
    return np.linspace(lo, hi, n + 1)


def scores_figure(
    outcomes: Sequence[ItemOutcome], order: Sequence[str], thresholds: Mapping[str, float], unit: str, title: str
) -> Figure:
    """One row per class: anomaly score and top-class confidence histograms, thresholds drawn."""
    labels, anomaly, confidence = unit_scores(outcomes)
    lab = np.asarray(labels)
    present = [c for c in order if np.any(lab == c)]
    a_thr, c_thr = float(thresholds["anomaly"]), float(thresholds["confidence"])
    log = bool(anomaly.size) and float(anomaly.min()) > 0
    a_bins = _bins(anomaly, a_thr, log) if anomaly.size else np.linspace(0, 1, 2)
    c_lo = min(c_thr, float(confidence.min()) if confidence.size else c_thr) - 0.02
    c_bins = np.linspace(max(0.0, c_lo), 1.0, 51)
    rows = max(1, len(present))
    height = 0.95 * rows + 1.3
    fig = new_figure(11.0, height, layout=None)  # placed by hand: a layout engine costs seconds for 2 x 10 axes
    fig.subplots_adjust(left=0.12, right=0.98, top=1 - 0.75 / height, bottom=0.55 / height, wspace=0.12, hspace=0.25)
    axes = np.atleast_2d(fig.subplots(rows, 2, sharex="col", squeeze=False))
    for i, cls in enumerate(present):
        sel = lab == cls
        colour = "#2e7d32" if cls == OK else "#6a1b9a"
        a, c = anomaly[sel], confidence[sel]
        ax_a, ax_c = axes[i, 0], axes[i, 1]
        # One filled step patch per histogram (ax.hist draws a rectangle per bin: ten times slower).
        ax_a.stairs(np.histogram(a, a_bins)[0], a_bins, fill=True, color=colour, alpha=0.85)
        ax_c.stairs(np.histogram(c, c_bins)[0], c_bins, fill=True, color=colour, alpha=0.85)
        for ax, thr in ((ax_a, a_thr), (ax_c, c_thr)):
            ax.axvline(thr, color=THRESHOLD, linestyle="--", linewidth=1.2)
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.7)  # a bar of one shows; log autoscale would start at the smallest bar
            _plain_ticks(ax.yaxis)
            ax.tick_params(labelsize=7)
        if log:
            ax_a.set_xscale("log")
            _plain_ticks(ax_a.xaxis)
        over, under = int((a > a_thr).sum()), int((c < c_thr).sum())
        ax_a.set_ylabel(f"{cls}\nn={int(sel.sum())}", rotation=0, ha="right", va="center", fontsize=8)
        box = {"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1.0}
        ax_a.text(0.99, 0.9, f"{over} above", transform=ax_a.transAxes, ha="right", va="top", fontsize=7, bbox=box)
        ax_c.text(0.01, 0.9, f"{under} below", transform=ax_c.transAxes, ha="left", va="top", fontsize=7, bbox=box)
    axes[0, 0].set_title(f"anomaly score per {unit} (threshold {a_thr:.4g}, dashed)", fontsize=9)
    axes[0, 1].set_title(f"top-class confidence per {unit} (threshold {c_thr:.4g}, dashed)", fontsize=9)
    axes[-1, 0].set_xlabel("anomaly score" + (" (log)" if log else ""))
    axes[-1, 1].set_xlabel("top-class confidence")
    fig.suptitle(title, fontsize=11)
    return fig


# -- ROC and PR ------------------------------------------------------------------------------------
def roc_pr_points(
    negatives: np.ndarray, positives: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``fpr, tpr`` (from 0, 0) and ``recall, precision`` over every distinct score, higher = positive."""
    scores = np.concatenate([negatives, positives]).astype(np.float64)
    truth = np.concatenate([np.zeros(negatives.size), np.ones(positives.size)])
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # the last index of each run of equal scores
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    fpr = np.r_[0.0, fps / max(negatives.size, 1)]
    tpr = np.r_[0.0, tps / max(positives.size, 1)]
    recall = tps / max(positives.size, 1)
    precision = tps / np.maximum(tps + fps, 1)
    return fpr, tpr, recall, precision


def area(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoid area under ``y(x)``: the ROC curve's equals the rank AUROC (ties counted half)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def roc_pr_figure(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], threshold: float, title: str) -> Figure:
    """``curves``: (name, good scores, defective scores); the anomaly threshold's point marked on each.

    The ROC's false positive rate is on a log axis (an AUROC near 1 lives in its first percent);
    the precision axis is zoomed to the curves' range.
    """
    fig = new_figure(11.0, 4.8)
    ax_roc, ax_pr = fig.subplots(1, 2)
    colours = ["#1565c0", "#6a1b9a", "#2e7d32"]
    curves = [c for c in curves if c[1].size and c[2].size]
    # Where "no good item rejected" sits on the log axis: half of one good item of the largest set.
    floor = 0.5 / max((c[1].size for c in curves), default=1)
    low_precision = 1.0
    for (name, neg, pos), colour in zip(curves, colours, strict=False):
        fpr, tpr, recall, precision = roc_pr_points(neg, pos)
        auc = area(fpr, tpr)
        ax_roc.plot(np.maximum(fpr, floor), tpr, color=colour, label=f"{name}: AUROC {auc:.4f}")
        ax_pr.step(
            recall, precision, where="post", color=colour, label=f"{name}: {pos.size} defective / {neg.size} good"
        )
        low_precision = min(low_precision, float(precision[recall <= 0.99].min(initial=1.0)))
        caught, false = int((pos > threshold).sum()), int((neg > threshold).sum())
        ax_roc.plot([max(false / neg.size, floor)], [caught / pos.size], "o", color=THRESHOLD, markersize=6)
        ax_pr.plot([caught / pos.size], [caught / max(caught + false, 1)], "o", color=THRESHOLD, markersize=6)
    ax_roc.plot([], [], "o", color=THRESHOLD, label=f"anomaly threshold {threshold:.4g} alone")
    ax_roc.set_xscale("log")
    _plain_ticks(ax_roc.xaxis)
    ax_roc.set_xlim(floor * 0.8, 1.05)
    ax_roc.set_ylim(-0.01, 1.01)
    ax_roc.set_xlabel("good rejected (false positive rate, log; left edge: none)")
    ax_roc.set_ylabel("defective rejected (true positive rate)")
    ax_roc.set_title("ROC of the anomaly score", fontsize=10)
    ax_pr.set_xlim(-0.01, 1.01)
    ax_pr.set_ylim(max(0.0, low_precision - 0.05), 1.005)  # zoomed to the curves up to 99 % recall
    ax_pr.set_xlabel("recall (defective rejected)")
    ax_pr.set_ylabel("precision (rejected that are defective)")
    ax_pr.set_title("precision-recall of the anomaly score", fontsize=10)
    for ax, where in ((ax_roc, "lower right"), (ax_pr, "lower left")):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc=where)
    fig.suptitle(title, fontsize=11)
    return fig


def anomaly_curves(ev: Evaluation) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Item max anomaly (good vs defective items), and unit anomaly (good vs withheld-class units)."""
    item_max = np.array([float(np.max(o.anomaly)) for o in ev.outcomes], np.float64)
    is_ok = np.array([o.label == OK for o in ev.outcomes], bool)  # empty when the pose guard refused every item
    curves = [("items, all defects", item_max[is_ok], item_max[~is_ok])]
    withheld = list(ev.result.get("withheld_classes", []))
    if withheld:
        labels, anomaly, _ = unit_scores(ev.outcomes)
        lab = np.asarray(labels)
        unit = "pockets" if ev.rois is not None else "items"
        curves.append((f"{unit}, withheld {', '.join(withheld)}", anomaly[lab == OK], anomaly[np.isin(lab, withheld)]))
    return curves


# -- the misjudged montage -------------------------------------------------------------------------
def _thumbnail(path: Path, width: int) -> tuple[np.ndarray | None, float]:
    """The image at ``width`` pixels, RGB, and its scale; ``None`` when it cannot be read."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None, 1.0
    scale = width / img.shape[1]
    h = round(img.shape[0] * scale)
    return cv2.cvtColor(cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB), scale


def _outline_pockets(
    img: np.ndarray, scale: float, rois: Sequence[Any], truth: Sequence[str] | None, decided: int | None
) -> None:
    for i, roi in enumerate(rois):
        x, y, w, h = (round(v * scale) for v in roi)
        if truth is not None and truth[i] != OK:
            cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (229, 57, 53), 2)
        if decided == i:
            cv2.rectangle(img, (x + 3, y + 3), (x + w - 4, y + h - 4), (253, 216, 53), 2)


def misjudged_figure(ev: Evaluation) -> Figure:
    """Every misjudged item the report lists, defects accepted (critical first) then good items rejected."""
    mis = ev.result.get("misjudged") or {}
    accepted = list(mis.get("accepted_defects", []))
    rejected = list(mis.get("rejected_good", []))
    entries = [(e, "escape") for e in accepted] + [(e, "false_reject") for e in rejected]
    product = Product(ev.result["product"])
    thumb_w = {Product.VIAL: 136, Product.TABLET: 150, Product.BLISTER: 256}[product]
    cols = {Product.VIAL: 9, Product.TABLET: 8, Product.BLISTER: 5}[product]
    n_crit = sum(1 for e in accepted if e.get("criticality") == Criticality.CRITICAL.value)
    total_a, total_r = int(mis.get("accepted_defects_total", 0)), int(mis.get("rejected_good_total", 0))
    shown = "all shown" if len(entries) == total_a + total_r else f"{len(entries)} of {total_a + total_r} shown"
    head = [
        f"Misjudged items: {total_a} defects accepted ({n_crit} critical), {total_r} good items rejected; {shown}",
        "frame: red = critical defect accepted, orange = defect accepted, blue = good item rejected"
        + ("; pockets: red = defective, yellow = deciding" if ev.rois is not None else ""),
    ]
    if not entries:
        fig = new_figure(8.0, 1.4)
        fig.text(0.5, 0.62, f"{ev.result['product']}: no misjudged items", ha="center", fontsize=14, weight="bold")
        fig.text(0.5, 0.3, f"n = {ev.result['n']}: every defect rejected, every good item accepted", ha="center")
        return fig
    by_file = {o.file: o for o in ev.outcomes}
    caption_h, pad = 46, 6
    tiles: list[tuple[np.ndarray | None, dict[str, Any], str]] = []
    for e, kind in entries:
        thumb, scale = _thumbnail(ev.images_dir / str(e["file"]), thumb_w)
        if thumb is not None and ev.rois is not None:
            item = by_file.get(e["file"])
            _outline_pockets(thumb, scale, ev.rois, item.pockets if item else None, e.get("pocket_index"))
        tiles.append((thumb, e, kind))
    thumb_h = max((t.shape[0] for t, _, _ in tiles if t is not None), default=thumb_w)
    cell_w, cell_h = thumb_w + 2 * pad, thumb_h + caption_h + 2 * pad
    rows = math.ceil(len(tiles) / cols)
    cols = min(cols, len(tiles))
    header_h = 44
    text_w = max(7 * len(head[0]), 6 * len(head[1])) + 12  # about the header's width in pixels
    canvas = np.full((header_h + rows * cell_h, max(cols * cell_w, text_w), 3), 255, np.uint8)
    colours = {"critical": (198, 40, 40), "escape": (239, 108, 0), "false_reject": (21, 101, 192)}
    for i, (thumb, e, kind) in enumerate(tiles):
        r, c = divmod(i, cols)
        y0, x0 = header_h + r * cell_h, c * cell_w
        critical = kind == "escape" and e.get("criticality") == Criticality.CRITICAL.value
        colour = colours["critical" if critical else kind]
        canvas[y0 + 1 : y0 + thumb_h + 2 * pad - 1, x0 + 1 : x0 + cell_w - 1] = colour
        inner = canvas[y0 + pad : y0 + pad + thumb_h, x0 + pad : x0 + pad + thumb_w]
        if thumb is not None:
            inner[: thumb.shape[0]] = thumb
        else:
            inner[:] = 200
    fig = new_figure(canvas.shape[1] / DPI, canvas.shape[0] / DPI)
    fig.set_layout_engine("none")
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    ax.text(6, 6, head[0], va="top", ha="left", fontsize=9, weight="bold")
    ax.text(6, 24, head[1], va="top", ha="left", fontsize=8)
    for i, (thumb, e, kind) in enumerate(tiles):
        r, c = divmod(i, cols)
        y0, x0 = header_h + r * cell_h + thumb_h + 2 * pad, c * cell_w + pad
        critical = kind == "escape" and e.get("criticality") == Criticality.CRITICAL.value
        truth = f"{e['label']}{' CRITICAL' if critical else ''}"
        pocket = f" p{e['pocket_index']}" if "pocket_index" in e else ""
        lines = [
            f"{truth} -> {e['decision']}{pocket}",
            f"conf {e['confidence']:.3f}  anom {e['anomaly']:.3f}",
            str(e["file"])[-28:] + ("" if thumb is not None else " (missing)"),
        ]
        for k, line in enumerate(lines):
            ax.text(
                x0,
                y0 + 2 + 14 * k,
                line,
                va="top",
                ha="left",
                fontsize=7.5 if k < 2 else 6.5,
                color="black" if k < 2 else "#555555",
                weight="bold" if k == 0 else None,
                clip_on=True,
            )
    return fig


# -- all of them -----------------------------------------------------------------------------------
def picture_paths(folder: Path, stem: str, product: str) -> dict[str, Path]:
    """Where :func:`write_evaluation_pictures` writes each kind: ``<folder>/<stem>.<kind>.png``."""
    kinds = [k for k in PICTURE_KINDS if k != "pocket_confusion" or product == Product.BLISTER.value]
    return {k: folder / f"{stem}.{k}.png" for k in kinds}


def write_evaluation_pictures(ev: Evaluation, folder: Path, stem: str = "evaluation") -> dict[str, Path]:
    """Every picture of an evaluation as ``<folder>/<stem>.<kind>.png``; returns kind -> path."""
    res = ev.result
    model = res.get("model", {})
    name = f"{model.get('model_id', res['product'])} {model.get('version', '')}".strip()
    where = f"{name} on {Path(str(res.get('images', {}).get('path', ev.images_dir))).name}, n={res['n']}"
    paths = picture_paths(folder, stem, res["product"])
    unit = "pocket" if ev.rois is not None else "item"
    order = list(res["confusion_matrix"]["rows"])
    if ev.rois is not None and "pocket_confusion_matrix" in res:
        order = list(res["pocket_confusion_matrix"]["rows"])
    figures = {
        "confusion": lambda: confusion_figure(
            res["confusion_matrix"], f"Confusion per {'card' if ev.rois else 'item'}: {where}"
        ),
        "scores": lambda: scores_figure(ev.outcomes, order, res["thresholds"], unit, f"Scores per {unit}: {where}"),
        "roc_pr": lambda: roc_pr_figure(
            anomaly_curves(ev), float(res["thresholds"]["anomaly"]), f"Anomaly score: {where}"
        ),
        "misjudged": lambda: misjudged_figure(ev),
        "pocket_confusion": lambda: confusion_figure(res["pocket_confusion_matrix"], f"Confusion per pocket: {where}"),
    }
    written: dict[str, Path] = {}
    for kind, path in paths.items():
        written[kind] = save(figures[kind](), path)
    return written


__all__ = [
    "PICTURE_KINDS",
    "area",
    "confusion_figure",
    "misjudged_figure",
    "new_figure",
    "picture_paths",
    "roc_pr_figure",
    "roc_pr_points",
    "save",
    "scores_figure",
    "write_evaluation_pictures",
]


# -- reject-rate trend across batches ----------------------------------------------------------------
ALERT_COLOUR = "#ef6c00"
ACTION_COLOUR = "#c62828"


def trend_figure(report: Mapping[str, Any]) -> Figure:
    """Reject rate per class per batch (one panel per class) with the alert and action limits."""
    classes = list(report["classes"])
    batches = report["batches"]
    n = max(len(classes), 1)
    fig = new_figure(10.0, 1.0 + 1.9 * n)
    x = np.arange(len(batches))
    labels = [b["batch_id"][-13:] for b in batches]
    for k, cls in enumerate(classes):
        ax = fig.add_subplot(n, 1, k + 1)
        rates = np.array([100.0 * b["rates"].get(cls, 0.0) for b in batches])
        levels = [b["levels"].get(cls, "normal") for b in batches]
        colours = [ACTION_COLOUR if lv == "action" else ALERT_COLOUR if lv == "alert" else "#1565c0" for lv in levels]
        ax.plot(x, rates, color="#90a4ae", linewidth=1.0, zorder=1)
        ax.scatter(x, rates, c=colours, s=22, zorder=2)
        lim = report["limits"].get(cls)
        top = float(rates.max()) if len(rates) else 0.0
        if lim is not None:
            ax.axhline(100 * lim["alert"], color=ALERT_COLOUR, linestyle="--", linewidth=1.0, label="alert")
            ax.axhline(100 * lim["action"], color=ACTION_COLOUR, linestyle="--", linewidth=1.0, label="action")
            top = max(top, 100 * lim["action"])
        ax.set_ylim(0, top * 1.15 + 1e-6)
        ax.set_ylabel(f"{cls}\n% rejected", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels(labels if k == n - 1 else [""] * len(labels), rotation=45, ha="right", fontsize=6)
        if k == 0 and lim is not None:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the panel, never on a point
    fig.suptitle(f"Reject rate per batch: recipe {report['recipe_id']}", fontsize=10, weight="bold")
    return fig
