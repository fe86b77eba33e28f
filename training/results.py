"""What a training run leaves beside its checkpoint: ``results.csv`` (a row per epoch) and ``results.png``.

``results.csv`` grows while the run goes (one row per classifier epoch, one per logged stretch
of autoencoder steps, one for the averaged weights), so a long run can be followed with
``tail -f``; ``results.png`` draws it when the run ends: the classifier's loss and accuracies
per epoch, and the autoencoder's reconstruction loss per step.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS_CSV = "results.csv"
RESULTS_PNG = "results.png"
COLUMNS = ("phase", "epoch", "step", "loss", "train_acc", "val_acc", "seconds")


class ResultsLog:
    """``results.csv`` of a run folder, written row by row (flushed, so it can be followed)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.path = Path(folder) / RESULTS_CSV
        self.rows: list[dict[str, Any]] = []
        with self.path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(COLUMNS)

    def add(self, phase: str, **values: Any) -> None:
        row = {"phase": phase, **{k: values.get(k) for k in COLUMNS[1:]}}
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"results.csv has no column {sorted(unknown)}")
        self.rows.append(row)
        with self.path.open("a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(["" if row[k] is None else row[k] for k in COLUMNS])


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a ``results.csv`` (numbers as floats, empty cells as ``None``)."""
    rows = []
    with Path(path).open(newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            rows.append({k: (v if k == "phase" else float(v) if v else None) for k, v in raw.items()})
    return rows


def write_curves(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], title: str) -> Path:
    """``results.png``: classifier loss and accuracies per epoch; autoencoder loss per step."""
    from inspector.plots import new_figure, save

    clf = [r for r in rows if r["phase"] == "classifier"]
    ae = [r for r in rows if r["phase"] == "autoencoder"]
    averaged = [r for r in rows if r["phase"] == "averaged"]
    fig = new_figure(11.0, 4.2)
    ax_loss, ax_ae = fig.subplots(1, 2)
    if clf:
        epochs = [r["epoch"] for r in clf]
        ax_loss.plot(epochs, [r["loss"] for r in clf], "o-", color="#c62828", label="training loss")
        ax_loss.set_xlabel("classifier epoch")
        ax_loss.set_ylabel("cross-entropy + map loss", color="#c62828")
        ax_loss.set_xticks(epochs)
        ax_acc = ax_loss.twinx()
        ax_acc.plot(epochs, [r["train_acc"] for r in clf], "s-", color="#1565c0", label="train accuracy")
        ax_acc.plot(epochs, [r["val_acc"] for r in clf], "^-", color="#2e7d32", label="val accuracy")
        for r in averaged:
            ax_acc.plot(
                [epochs[-1]], [r["val_acc"]], "*", color="#2e7d32", markersize=12, label="val, averaged weights"
            )
        ax_acc.set_ylabel("accuracy")
        lines = ax_loss.get_legend_handles_labels()[0] + ax_acc.get_legend_handles_labels()[0]
        ax_loss.legend(lines, [str(h.get_label()) for h in lines], fontsize=8, loc="center right")
        ax_loss.grid(alpha=0.3)
    ax_loss.set_title("classifier", fontsize=10)
    if ae:
        ax_ae.plot([r["step"] for r in ae], [r["loss"] for r in ae], "o-", color="#6a1b9a")
        ax_ae.set_yscale("log")
        ax_ae.grid(alpha=0.3, which="both")
    ax_ae.set_xlabel("autoencoder step")
    ax_ae.set_ylabel("reconstruction loss (MSE, log)")
    ax_ae.set_title("anomaly autoencoder (good units only)", fontsize=10)
    fig.suptitle(title, fontsize=11)
    return save(fig, Path(path))
