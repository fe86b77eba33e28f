"""The hashes that make records tamper-evident: canonical serialisations and SHA-256.

An item row is hash-linked to the row before it in its batch (insertion order); the first
row links to the batch's anchor, the hash of the batch record as opened (recipe, model and
camera hashes included), so changing the batch's recipe or model hash breaks the chain too.
Values are hashed exactly as stored (JSON columns as their stored text), so verification
recomputes from the database without re-serialising anything.

A PLC acknowledgement arrives after its row: it gets its own hash, linked to the row's hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

#: Item columns the row hash covers: everything known when the row is inserted.
ITEM_FIELDS = (
    "batch_id",
    "item_id",
    "frame_id",
    "t_frame",
    "created_utc",
    "decision",
    "reason",
    "deadline_met",
    "label",
    "pocket_index",
    "confidence",
    "class_scores",
    "anomaly_score",
    "latency",
    "image_path",
    "image_sha256",
    "truth_label",
    "alarm",
    # Added with schema 5 and 6; hashed only when set, so the chains of items written before stay valid.
    "pose",
    "identity",
)
_ITEM_FIELDS_ALWAYS = 18

#: Batch columns the anchor covers: everything fixed when the batch opens.
BATCH_FIELDS = (
    "batch_id",
    "product",
    "recipe_id",
    "recipe_version",
    "recipe_sha256",
    "model_id",
    "model_version",
    "model_sha256",
    "camera_serial",
    "camera_settings",
    "started_utc",
    "operator",
    "release_status",
    # Added with schema 4; hashed only when set, so anchors of batches opened before stay valid.
    "plc",
    "thresholds",
    "thresholds_validated",
)
_BATCH_FIELDS_ALWAYS = 13


def _digest(parts: Sequence[Any]) -> str:
    text = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def batch_anchor(values: Sequence[Any]) -> str:
    """Hash of a batch record's opening values (in :data:`BATCH_FIELDS` order; trailing unset later fields left out)."""
    parts = list(values)
    while len(parts) > _BATCH_FIELDS_ALWAYS and parts[-1] is None:
        parts.pop()
    return _digest(["batch", *parts])


def row_hash(prev_hash: str, values: Sequence[Any]) -> str:
    """Hash of an item row's values (in :data:`ITEM_FIELDS` order; trailing unset later fields left out)
    linked to the previous hash."""
    parts = list(values)
    while len(parts) > _ITEM_FIELDS_ALWAYS and parts[-1] is None:
        parts.pop()
    return _digest([prev_hash, *parts])


def ack_hash(item_row_hash: str, plc_ack: str, plc_ack_utc: str) -> str:
    return _digest(["ack", item_row_hash, plc_ack, plc_ack_utc])
