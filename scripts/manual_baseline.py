"""Write an ILLUSTRATIVE manual-inspection baseline (item_key,p_manual) for a rendered challenge set.

A real baseline is measured: trained inspectors inspect each physical item of the challenge set
many times (Knapp: e.g. 5 inspectors x 10 presentations) and ``p_manual`` is the share of those
inspections that rejected it. The rendered sets shipped with Inspector have no such data, so
this script assigns each item the manual rejection probability of its class from a stated,
literature-typical table (gross defects nearly always seen, subtle ones often missed, cosmetic
ones rarely rejected). It exists so that the shipped suites can show the Knapp comparison end to
end; a site replaces the file with its own measurement before a formal qualification.

    python scripts/manual_baseline.py --set var/qualification-sets/vial-oq-... --out qualification/vial-manual.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspector.manifest import read_manifest

# Manual rejection probability per class (illustrative, not measured).
P_MANUAL = {
    "ok": 0.02,
    # gross: the item looks wrong at a glance
    "missing_cap": 0.97, "missing_stopper": 0.9, "broken": 0.95, "wrong_tablet": 0.9, "empty_pocket": 0.97,
    "foreign_tablet": 0.85, "double_tablet": 0.9,
    # subtle: needs a trained eye, often missed at line speed
    "glass_crack": 0.7, "particle": 0.72, "fill_low": 0.8, "fill_high": 0.8, "crimp_defect": 0.75,
    "chip": 0.75, "crack": 0.7, "foreign_spot": 0.75, "discoloration": 0.7, "broken_tablet": 0.85,
    "foil_damage": 0.75,
    # cosmetic: acceptable by recipe, rarely rejected
    "cosmetic_scratch": 0.3,
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", required=True, type=Path, help="manifest folder with item_key per image")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    items: dict[str, str] = {}
    for e in read_manifest(args.set):
        if e.item_key is None:
            raise SystemExit(f"{args.set}: {e.file} has no item_key (render with --presentations)")
        items[e.item_key] = e.label
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        fh.write("# ILLUSTRATIVE manual baseline: p_manual by class (scripts/manual_baseline.py), not measured.\n")
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["item_key", "p_manual"])
        for key, label in sorted(items.items()):
            w.writerow([key, P_MANUAL[label]])
    print(f"{args.out}: {len(items)} items")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
