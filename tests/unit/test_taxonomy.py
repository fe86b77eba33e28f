from __future__ import annotations

import pytest

from inspector import taxonomy as tx
from inspector.taxonomy import OK, Criticality, Product


def test_every_product_has_defects_and_ok_first() -> None:
    for product in Product:
        labs = tx.labels(product)
        assert labs[0] == OK
        assert len(labs) >= 6
        assert len(set(labs)) == len(labs)


def test_codes_unique_and_plc_codes_unique() -> None:
    plc = [d.plc_code for d in tx.DEFECTS]
    assert len(set(plc)) == len(plc)
    assert all(c >= 100 for c in plc), "1xx..3xx are defects; 0..99 are station-level reasons"


def test_only_minor_defects_may_be_accepted_by_recipe() -> None:
    for d in tx.DEFECTS:
        assert d.must_reject == (d.criticality is not Criticality.MINOR), d.code


def test_domain_taxonomy_present() -> None:
    assert tx.defect("vial", "particle").criticality is Criticality.CRITICAL
    assert tx.defect("vial", "fill_low").criticality is Criticality.MAJOR
    assert tx.defect("tablet", "wrong_tablet").criticality is Criticality.CRITICAL
    assert tx.defect("blister", "empty_pocket").criticality is Criticality.CRITICAL
    assert tx.criticality("vial", OK) is None


def test_worst_pocket_picks_highest_criticality_first_on_ties() -> None:
    pockets = [OK, "double_tablet", OK, "empty_pocket", "foreign_tablet"]
    assert tx.worst(Product.BLISTER, pockets) == ("empty_pocket", 3)
    assert tx.worst(Product.BLISTER, [OK] * 10) == (OK, None)


def test_unknown_label_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown vial label 'bubble'"):
        tx.defect("vial", "bubble")
    with pytest.raises(ValueError):
        tx.labels("syringe")


def test_docs_list_every_defect() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "taxonomy.md").read_text()
    for d in tx.DEFECTS:
        row = f"| `{d.code}` | {d.plc_code} | {d.criticality.value} |"
        assert row in doc, f"docs/taxonomy.md is missing or has a stale row for {d.code}"
