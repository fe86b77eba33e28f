"""What a trained checkpoint does per class on validation, against its acceptance criteria.

``train`` and ``thresholds`` end with this table: every class's recall (for ``ok``: the share of
good items accepted) and right-reason rate (rejected for its own class), the limit the record's
criteria set for it, and, for a class that misses it, what the model took it for (the confusion
matrix's largest cells of its row). The classes that miss are named, with what to collect more of.
The same check decides whether ``export`` packages the checkpoint: every criterion that validation
can judge (all but inference time, which the exported graph is measured for).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from inspector.evaluation import check_acceptance
from inspector.taxonomy import OK, Criticality, Product, criticality, defect

#: Criteria judged on the exported graph, not on validation.
_NOT_ON_VALIDATION = ("infer_ms_p50_max", "infer_ms_p99_max")


@dataclass(frozen=True)
class ClassRow:
    label: str
    kind: str  # 'good', 'critical', 'rejectable' or 'accepted minor'
    n: int
    recall: float | None
    right_reason: float | None
    limit: float | None
    met: bool | None  # None: no limit for this class
    confused_with: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    met: bool
    rows: list[ClassRow]
    missed_classes: list[str]
    missed_checks: dict[str, dict[str, Any]]
    suggestions: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kind(product: Product, label: str) -> str:
    if label == OK:
        return "good"
    if not defect(product, label).must_reject:
        return "accepted minor"
    return "critical" if criticality(product, label) is Criticality.CRITICAL else "rejectable"


def _confusions(metrics: dict[str, Any], label: str, top: int = 3) -> list[tuple[str, int]]:
    cm = metrics.get("confusion_matrix") or {}
    rows, columns, counts = cm.get("rows", []), cm.get("columns", []), cm.get("counts", [])
    if label not in rows:
        return []
    row = counts[rows.index(label)]
    cells = [(col, int(n)) for col, n in zip(columns, row, strict=True) if n and col != label]
    return sorted(cells, key=lambda c: -c[1])[:top]


def judge(product: Product | str, metrics: dict[str, Any], criteria: dict[str, Any]) -> Verdict:
    """The per-class table of validation ``metrics`` (:func:`inspector.evaluation.summarize`) against ``criteria``."""
    prod = Product(product)
    recall: dict[str, float | None] = metrics.get("per_class_recall", {})
    reason: dict[str, float | None] = metrics.get("per_class_reason_recall", {})
    counts: dict[str, int] = metrics.get("n_per_class", {})
    limits = {
        "good": None if criteria.get("false_reject_rate_max") is None else 1.0 - criteria["false_reject_rate_max"],
        "critical": criteria.get("critical_recall_min"),
        "rejectable": criteria.get("rejectable_recall_min"),
        "accepted minor": None,
    }
    rows = []
    for label in recall:
        kind = _kind(prod, label)
        limit, value = limits[kind], recall[label]
        met = None if limit is None or value is None else value >= limit - 1e-12
        rows.append(ClassRow(label, kind, int(counts.get(label, 0)), value, reason.get(label), limit, met,
                             _confusions(metrics, label) if met is False else []))  # fmt: skip
    checks = check_acceptance(prod, metrics, {k: v for k, v in criteria.items() if k not in _NOT_ON_VALIDATION})
    missed_checks = {k: c for k, c in checks["checks"].items() if c["passed"] is False}
    missed = [r.label for r in rows if r.met is False]
    suggestions = []
    for r in rows:
        if r.met is not False:
            continue
        took = ", ".join(f"'{c}' ({n})" for c, n in r.confused_with) or "nothing in particular"
        if r.kind == "good":
            suggestions.append(
                f"collect more good items of the conditions rejected as {took}: validation has {r.n} good items"
            )
        else:
            suggestions.append(
                f"collect more labelled '{r.label}' images, especially like those taken for {took}:"
                f" validation has {r.n}"
            )
    return Verdict(not missed_checks and not missed, rows, missed, missed_checks, suggestions)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def format_verdict(v: Verdict, *, where: str = "validation") -> str:
    """The table, the classes that miss and what to collect, as plain text."""
    lines = [f"per class on {where}:", f"  {'class':<18} {'kind':<15} {'n':>6} {'recall':>9} {'right reason':>13}"
             f" {'needs':>9}  verdict"]  # fmt: skip
    for r in v.rows:
        verdict = "-" if r.met is None else ("met" if r.met else "MISSED")
        lines.append(
            f"  {r.label:<18} {r.kind:<15} {r.n:>6} {_pct(r.recall):>9} {_pct(r.right_reason):>13}"
            f" {('>= ' + _pct(r.limit)) if r.limit is not None else '-':>9}  {verdict}"
        )
        for col, n in r.confused_with:
            lines.append(f"  {'':<18} taken for {col!r}: {n}")
    for key, c in v.missed_checks.items():
        lines.append(f"  criterion {key}: {c['value']} against {c['limit']}: MISSED")
    if v.met:
        lines.append(f"acceptance criteria met on {where}")
    else:
        named = ", ".join(v.missed_classes) or "see the criteria above"
        lines.append(f"acceptance criteria NOT met on {where}: {named}; export refuses this checkpoint")
        lines.extend(f"  suggestion: {s}" for s in v.suggestions)
    return "\n".join(lines)


def of_checkpoint(ckpt: dict[str, Any]) -> Verdict:
    """The verdict of a checkpoint's validation metrics against its own acceptance criteria."""
    return judge(ckpt["product"], ckpt["metrics"]["val"], ckpt.get("acceptance_criteria") or {})


def verdict_markdown(v: Verdict, *, where: str) -> list[str]:
    """The table as Markdown lines, with what to collect when a class misses."""
    lines = [
        f"Per class on {where} (recall: share rejected, for ok share accepted; right reason: rejected for its own"
        " class):",
        "",
        "| class | kind | n | recall | right reason | needs | verdict | taken for |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in v.rows:
        verdict = "-" if r.met is None else ("met" if r.met else "**missed**")
        needs = f">= {_pct(r.limit)}" if r.limit is not None else "-"
        took = ", ".join(f"{c} ({n})" for c, n in r.confused_with) or "-"
        lines.append(f"| {r.label} | {r.kind} | {r.n} | {_pct(r.recall)} | {_pct(r.right_reason)} | {needs}"
                     f" | {verdict} | {took} |")  # fmt: skip
    lines.append("")
    if v.met:
        lines.append(f"Every class meets its criterion on {where}.")
    else:
        lines.append(f"Missed on {where}: {', '.join(v.missed_classes) or 'see the criteria'}. What to collect:")
        lines.extend(f"- {s}" for s in v.suggestions)
    lines.append("")
    return lines
