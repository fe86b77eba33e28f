"""``evaluation.md`` for a model package: evaluate results plus proof the test sets are independent.

Independence: no image of a test set (by sha256) may appear in any data set the model was
trained, validated or internally tested on (the record lists them with their folders).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inspector.evaluation import format_markdown
from inspector.inference.package import read_record
from inspector.manifest import read_manifest
from training.verdict import judge, verdict_markdown


def _shas(folder: str | os.PathLike[str]) -> set[str]:
    return {e.sha256 for e in read_manifest(folder)}


def independence(record_datasets: Sequence[dict[str, Any]], test_folder: str) -> dict[str, Any]:
    """Count test images that also sit in a training data set; folders no longer on disk are reported."""
    test = _shas(test_folder)
    overlap = 0
    checked, missing = [], []
    for ds in record_datasets:
        folder = ds["folder"]
        if not Path(folder, "manifest.jsonl").is_file():
            missing.append(folder)
            continue
        overlap += len(test & _shas(folder))
        checked.append(folder)
    return {"test_images": len(test), "overlap": overlap, "checked": checked, "not_found": missing}


def _after_training(training: dict[str, Any]) -> list[str]:
    """What was done to the trained network before export: thresholds re-chosen, anomaly rescored."""
    lines = []
    if training.get("thresholds_command"):
        lines.append(f"Thresholds re-chosen on validation: `{training['thresholds_command']}`.")
    rescored = training.get("reconstruction_rescored")
    if rescored:
        how = rescored.get("reconstruction") or (
            "error over its mean per unit (contrast)" if rescored.get("ae_contrast") else "absolute error"
        )
        quantile = rescored.get("norm_quantile")
        at = f" at their {quantile} quantile" if quantile is not None else ""
        lines.append(
            f"Anomaly reconstruction part rescored as {how}, weights unchanged "
            f"(part scales refitted on ok training units{at}, {rescored.get('seconds')} s)."
        )
    if training.get("onnx_graph"):
        lines.append(f"Exported graph: {training['onnx_graph']}; parity with the trained module below in the record.")
    return lines


def _machine(training: dict[str, Any]) -> str:
    """``x86_64 2 cores`` plus, in records that name them, the CPU and torch's kernel set."""
    words = str(training.get("machine", "?"))
    cpu = [str(training[k]) for k in ("cpu", "cpu_capability") if training.get(k)]
    return f"{words} ({', '.join(cpu)})" if cpu else words


def write_report(package: str | os.PathLike[str], results: Sequence[str | os.PathLike[str]]) -> Path:
    """Write ``evaluation.md`` into ``package`` from evaluate JSON files (the first is the primary test)."""
    root = Path(package)
    record = read_record(root)
    datasets = record.training.get("datasets", [])
    parts = [
        f"# Evaluation of {record.model_id} {record.version} ({record.product.value})",
        "",
        f"Status **{record.status}**. Model sha256 `{record.sha256}`. Trained from scratch: "
        f"{record.training.get('from_scratch')}; withheld from the classifier: "
        f"{record.training.get('withheld_classes')}.",
        f"Training: `{record.training.get('command', '')}` (seed {record.training.get('seed')},"
        f" {record.training.get('train_seconds')} s on {_machine(record.training)}).",
        *_after_training(record.training),
        f"Acceptance criteria fixed before testing ({record.acceptance_criteria.get('fixed_utc', '?')}):"
        f" {json.dumps({k: v for k, v in record.acceptance_criteria.items() if k != 'fixed_utc'})}",
        "",
    ]
    val = record.metrics.get("val")
    if val:
        parts += verdict_markdown(judge(record.product, val, record.acceptance_criteria), where="validation")
    for i, path in enumerate(results):
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        if result.get("model", {}).get("sha256") != record.sha256:
            raise ValueError(f"{path}: evaluates another model (sha256 differs from the package's)")
        proof = independence(datasets, result["images"]["path"])
        if proof["overlap"]:
            raise ValueError(f"{path}: {proof['overlap']} test images are also in the training data")
        title = "Primary test set" if i == 0 else f"Additional test set {i}"
        body = format_markdown(result, title=f"{title}: `{Path(path).name}`").replace("\n# ", "\n## ")
        parts.append("#" + body)
        parts += verdict_markdown(judge(record.product, result, record.acceptance_criteria), where="this test set")
        parts.append(
            f"- independence: {proof['test_images']} test images, {proof['overlap']} shared with the "
            f"{len(proof['checked'])} training data sets checked"
            + (f" ({len(proof['not_found'])} no longer on disk)" if proof["not_found"] else "")
        )
        parts.append("")
    out = root / "evaluation.md"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
