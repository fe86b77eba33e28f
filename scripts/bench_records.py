"""Cost of the tamper-evident records: verification of a large trail and batch, and hashing per item (JSON).

Builds a throwaway database with N audit entries and a batch of N items (written through the
records layer, so every hash link is the real one), then times ``audit.verify`` and
``chain.verify_batch`` and the per-row hashing that the writer thread does per item.

    python scripts/bench_records.py --entries 100000 --items 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspector.events import utc_now
from inspector.records import ItemRecord, RecordStore, audit
from inspector.records.audit import SYSTEM_ACTOR
from inspector.records.chain import verify_batch
from inspector.records.hashing import row_hash


def _item(batch: str, i: int) -> ItemRecord:
    return ItemRecord(
        batch_id=batch,
        item_id=i,
        frame_id=i,
        t_frame=1000.0 + i * 0.05,
        created_utc=utc_now(),
        decision="accept" if i % 10 else "reject",
        reason="ok" if i % 10 else "chip",
        deadline_met=True,
        label="ok" if i % 10 else "chip",
        confidence=0.97,
        class_scores={"ok": 0.97, "chip": 0.02, "crack": 0.01},
        anomaly_score=0.12,
        latency={"queue_ms": 0.05, "infer_ms": 1.3, "decide_ms": 0.02, "total_ms": 1.5},
        image_path=None if i % 10 else f"var/images/{batch}/{i}.png",
        image_sha256=None if i % 10 else "ab" * 32,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=100_000)
    p.add_argument("--items", type=int, default=100_000)
    args = p.parse_args(argv)
    out: dict[str, object] = {"entries": args.entries, "items": args.items}
    with (
        tempfile.TemporaryDirectory(prefix="inspector-bench-records-") as tmp,
        RecordStore(Path(tmp) / "r.sqlite", synchronous="NORMAL") as store,
    ):
        t = time.perf_counter()
        with store.transaction():
            for i in range(args.entries):
                audit.append(store, SYSTEM_ACTOR, "setting.change", object_type="setting", object_id="x",
                             old=i, new=i + 1, reason=f"bench {i}")  # fmt: skip
        out["audit_write_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        result = audit.verify(store)
        out["audit_verify_s"] = round(time.perf_counter() - t, 3)
        out["audit_ok"] = result.ok

        store.start_batch("B-BENCH", product="tablet", recipe_id="r", recipe_version="1.0.0", recipe_sha256="a" * 64,
                          model_id="m", model_version="1.0.0", model_sha256="b" * 64, camera_serial="S",
                          camera_settings={})  # fmt: skip
        records = [_item("B-BENCH", i) for i in range(1, args.items + 1)]
        t = time.perf_counter()
        for k in range(0, len(records), 256):  # the writer's group size
            store.insert_items(records[k : k + 256])
        out["items_write_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        check = verify_batch(store, "B-BENCH")
        out["items_verify_s"] = round(time.perf_counter() - t, 3)
        out["items_ok"] = check.ok
        values = [
            ["B-BENCH", i, i, 1000.0, "2026-12-06T00:00:00+00:00", "accept", "ok", 1, "ok", None, 0.97,
             '{"ok": 0.97}', 0.12, '{"total_ms": 1.5}', None, None, None, None]
            for i in range(10_000)
        ]  # fmt: skip
        t = time.perf_counter()
        prev = "0" * 64
        for v in values:
            prev = row_hash(prev, v)
        out["row_hash_us_per_item"] = round((time.perf_counter() - t) / len(values) * 1e6, 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
