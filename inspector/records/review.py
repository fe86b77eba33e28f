"""Export reviewed rejects as a labelled image set that training reads (the retraining loop).

Each reviewed reject becomes a PNG plus one ``manifest.jsonl`` line (``source: "review"``)
in ``<root>/var/review/<product>/``. For a blister card the engineer's class goes to the
deciding pocket and every other pocket is ``ok``; a false reject is ``ok`` everywhere.

The manifest format refuses unknown keys, so who reviewed what, and what the station had
decided, goes to ``review_log.jsonl`` beside it. The reviewer name comes from the
logged-in user (``reviewer_authenticated``); each review also writes an audit entry.

Part of the records layer: the HMI asks for a review through its station client and never
writes the set itself.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspector.events import ItemDecision, utc_now
from inspector.manifest import MANIFEST_NAME, ManifestEntry, append_entry, read_manifest, sha256_bytes
from inspector.taxonomy import OK, Product, criticality, labels

REVIEW_LOG = "review_log.jsonl"


class ReviewError(ValueError):
    """The review cannot be exported as asked (already exported, bad label, no reviewer)."""


@dataclass(frozen=True)
class Review:
    """What an engineer said about a reject, and where the labelled image went."""

    label: str
    false_reject: bool
    reviewer: str
    at_utc: str
    file: str


@dataclass(frozen=True)
class ReviewRequest:
    batch_id: str
    decision: ItemDecision  # the reject as decided, with its image
    label: str  # "ok" for a false reject, else the confirmed defect class
    reviewer: str
    pocket_index: int | None = None  # blisters: the pocket that holds the defect
    reviewer_authenticated: bool = False  # the reviewer logged in (a user account), not a typed name

    @property
    def image(self) -> np.ndarray:
        if self.decision.image is None:
            raise ReviewError(f"item {self.decision.item_id}: the reject's image was not kept; it cannot be reviewed")
        return self.decision.image


def review_folder(root: Path, product: Product | str) -> Path:
    return root / "var" / "review" / Product(product).value


class ReviewExporter:
    """Writes reviewed rejects into one labelled set; safe to call from worker threads."""

    def __init__(self, folder: Path, product: Product | str, pocket_count: int | None = None) -> None:
        self.folder = Path(folder)
        self.product = Product(product)
        self.pocket_count = pocket_count
        if self.product is Product.BLISTER and not pocket_count:
            raise ValueError("a blister review set needs the recipe's pocket count")
        self._lock = threading.Lock()

    @staticmethod
    def file_name(batch_id: str, item_id: int) -> str:
        return f"{batch_id}_item{item_id:07d}.png"

    def already_exported(self, batch_id: str, item_id: int) -> bool:
        return (self.folder / self.file_name(batch_id, item_id)).exists()

    def export(self, req: ReviewRequest) -> Review:
        """Write the PNG and append its manifest line; refuses to label the same reject twice."""
        reviewer = req.reviewer.strip()
        if not reviewer:
            raise ReviewError("enter the station operator's name before reviewing")
        if req.label not in labels(self.product):
            raise ReviewError(f"{req.label!r} is not a {self.product.value} class")
        pockets = self._pockets(req)
        ok, buf = cv2.imencode(".png", req.image)
        if not ok:
            raise ReviewError("the reject image could not be encoded as PNG")
        data = buf.tobytes()
        name = self.file_name(req.batch_id, req.decision.item_id)
        entry = ManifestEntry(
            file=name,
            product=self.product,
            label=req.label,
            criticality=criticality(self.product, req.label),
            seed=None,  # a camera image: it cannot be re-rendered
            sha256=sha256_bytes(data),
            pockets=pockets,
            source="review",
        )
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            if (self.folder / MANIFEST_NAME).exists() and any(
                e.file == name for e in read_manifest(self.folder, verify=False)
            ):
                raise ReviewError(f"{name} is already in the review set")
            self._write_image(self.folder / name, data)
            append_entry(self.folder, entry)
            review = Review(
                label=req.label, false_reject=req.label == OK, reviewer=reviewer, at_utc=utc_now(), file=name
            )
            self._log(req, review)
        return review

    def _pockets(self, req: ReviewRequest) -> list[str] | None:
        if self.product is not Product.BLISTER:
            return None
        assert self.pocket_count is not None
        pockets = [OK] * self.pocket_count
        if req.label != OK:
            idx = req.pocket_index if req.pocket_index is not None else req.decision.pocket_index
            if idx is None or not 0 <= idx < self.pocket_count:
                raise ReviewError(f"choose the pocket (0..{self.pocket_count - 1}) that holds the defect")
            pockets[idx] = req.label
        return pockets

    @staticmethod
    def _write_image(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # the image must be durable before the manifest line that names it
        try:
            os.link(tmp, path)  # never overwrites a labelled image
        except FileExistsError:
            raise ReviewError(f"{path.name} already exists in the review set") from None
        finally:
            tmp.unlink(missing_ok=True)

    def _log(self, req: ReviewRequest, review: Review) -> None:
        d = req.decision
        line = {
            "file": review.file,
            "reviewed_utc": review.at_utc,
            "reviewer": review.reviewer,
            "reviewer_authenticated": req.reviewer_authenticated,
            "batch_id": req.batch_id,
            "item_id": d.item_id,
            "station_reason": d.reason,
            "station_label": d.label,
            "station_pocket_index": d.pocket_index,
            "confidence": d.confidence,
            "anomaly": d.anomaly,
            "scores": d.scores,
            "confirmed_label": review.label,
            "false_reject": review.false_reject,
        }
        with open(self.folder / REVIEW_LOG, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
