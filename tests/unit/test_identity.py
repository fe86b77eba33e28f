"""The deterministic identity check: measured by OpenCV, judged against the recipe, never overruled to accept."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from inspector.config.identity import IdentitySpec
from inspector.config.recipe import load_recipe
from inspector.inference.identity import (
    CARD_MEASURES,
    Checked,
    Measurement,
    card_deviations,
    check,
    check_units,
    measure,
    measure_as,
    specify,
    unit_reasons,
)
from inspector.inference.registration import register
from inspector.pipeline.decision import decide
from inspector.synth import render
from inspector.synth.foreign import ForeignTablet, draw
from inspector.taxonomy import OK, DefectCode, Product, labels

ROOT = Path(__file__).resolve().parents[2]


def _units(product: str, image: np.ndarray) -> np.ndarray:
    rec = load_recipe(product).recipe
    rois = rec.pocket_grid.rois() if rec.pocket_grid is not None else None
    assert rec.registration is not None
    reg = register(rec.product, image, rec.registration, rois)
    assert reg.units is not None
    return reg.units


def _foreign(product: Product, **kw: object) -> ForeignTablet:
    base = draw(np.random.default_rng(0), product)
    fields = {**base.__dict__, **kw}
    return ForeignTablet(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("product", ["tablet", "blister"])
def test_good_product_passes_the_shipped_specification(product: str) -> None:
    spec = load_recipe(product).recipe.identity
    assert spec is not None
    for seed in range(6):
        units = _units(product, render(product, OK, 5000 + seed).image)
        checks = check_units(units, spec)
        assert all(c.ok for c in checks), [c.describe() for c in checks if not c.ok]
        assert unit_reasons(Product(product), checks) == (None,) * len(units)


def test_a_foreign_tablet_of_another_colour_fails_whatever_its_size() -> None:
    spec = load_recipe("tablet").recipe.identity
    assert spec is not None
    blue = _foreign(Product.TABLET, shape="round", length_px=150.0, width_px=150.0, color_bgr=(220.0, 150.0, 90.0))
    image = render("tablet", "wrong_tablet", 77, foreign=blue).image
    (checked,) = check_units(_units("tablet", image), spec)
    assert not checked.ok and any(f.startswith("chroma") for f in checked.failures), checked.describe()
    assert unit_reasons(Product.TABLET, [checked]) == (DefectCode.WRONG_TABLET,)
    record = checked.as_record()
    assert record["found"] is True and record["failures"] and record["delta_e"] is not None


def test_a_smaller_tablet_of_the_same_colour_fails_on_size() -> None:
    spec = load_recipe("tablet").recipe.identity
    assert spec is not None
    small = _foreign(Product.TABLET, shape="round", length_px=118.0, width_px=118.0, color_bgr=(210.0, 215.0, 217.0))
    (checked,) = check_units(_units("tablet", render("tablet", "wrong_tablet", 78, foreign=small).image), spec)
    assert not checked.ok and any(f.startswith(("area", "length")) for f in checked.failures), checked.describe()


def test_an_empty_pocket_is_found_empty_and_a_foreign_pocket_foreign() -> None:
    spec = load_recipe("blister").recipe.identity
    assert spec is not None
    empty = render("blister", "empty_pocket", 11)
    reasons = unit_reasons(Product.BLISTER, check_units(_units("blister", empty.image), spec))
    assert empty.pockets is not None
    for label, reason in zip(empty.pockets, reasons, strict=True):
        assert reason == (DefectCode.EMPTY_POCKET if label == "empty_pocket" else None)
    green = _foreign(Product.BLISTER, shape="oval", length_px=60.0, width_px=45.0, color_bgr=(90.0, 200.0, 90.0))
    card = render("blister", "foreign_tablet", 12, foreign=green)
    reasons = unit_reasons(Product.BLISTER, check_units(_units("blister", card.image), spec))
    assert card.pockets is not None
    for label, reason in zip(card.pockets, reasons, strict=True):
        assert reason == (DefectCode.FOREIGN_TABLET if label == "foreign_tablet" else None)


def test_no_model_output_turns_a_failed_identity_check_into_an_accept() -> None:
    classes = list(labels(Product.BLISTER))
    scores = np.zeros((10, len(classes)), np.float32)
    scores[:, classes.index(OK)] = 1.0  # the model is certain every pocket is good
    anomaly = np.zeros(10, np.float32)
    identity = [None] * 10
    identity[3] = DefectCode.FOREIGN_TABLET
    v = decide(Product.BLISTER, classes, scores, anomaly, confidence_threshold=0.5, anomaly_threshold=0.5,
               identity=identity)  # fmt: skip
    assert not v.accept and v.reason == DefectCode.FOREIGN_TABLET and v.pocket_index == 3
    # The model's own major finding gives way to the critical identity reason; a critical one stays.
    scores[3] = 0.0
    scores[3, classes.index("broken_tablet")] = 1.0
    v = decide(Product.BLISTER, classes, scores, anomaly, confidence_threshold=0.5, anomaly_threshold=0.5,
               identity=identity)  # fmt: skip
    assert v.reason == DefectCode.FOREIGN_TABLET
    scores[3] = 0.0
    scores[3, classes.index("empty_pocket")] = 1.0
    v = decide(Product.BLISTER, classes, scores, anomaly, confidence_threshold=0.5, anomaly_threshold=0.5,
               identity=identity)  # fmt: skip
    assert v.reason == DefectCode.EMPTY_POCKET
    with pytest.raises(ValueError, match="identity has 2 units"):
        decide(Product.BLISTER, classes, scores, anomaly, confidence_threshold=0.5, anomaly_threshold=0.5,
               identity=[None, None])  # fmt: skip


def test_the_specification_comes_from_good_tablets_and_refuses_too_few() -> None:
    units = [u for s in range(4) for u in _units("blister", render("blister", OK, 900 + s).image)]
    measured = [measure(u, segment_delta_e=18.0, search_radius_px=34.0) for u in units]
    spec = specify(measured, sigmas=4.0, segment_delta_e=18.0, search_radius_px=34.0)
    assert all(check(m, spec).ok for m in measured)  # every reference tablet inside its own tolerances
    assert spec.width_px.mean <= spec.length_px.mean and spec.area_px.tolerance > 0
    with pytest.raises(ValueError, match="at least 30"):
        specify(measured[:10], sigmas=4.0, segment_delta_e=18.0, search_radius_px=34.0)


def test_the_check_refuses_a_grey_image() -> None:
    with pytest.raises(ValueError, match="colour image"):
        measure(np.zeros((64, 64), np.uint8), segment_delta_e=18.0)


def test_foreign_tablets_are_drawn_the_same_for_the_same_seed() -> None:
    a = draw(np.random.default_rng([5, 1]), Product.BLISTER)
    b = draw(np.random.default_rng([5, 1]), Product.BLISTER)
    assert a == b and a.shape in ("round", "oval", "capsule", "oblong")
    img_a = render("blister", "foreign_tablet", 3, foreign=a).image
    img_b = render("blister", "foreign_tablet", 3, foreign=b).image
    assert np.array_equal(img_a, img_b)
    with pytest.raises(ValueError, match="foreign_tablet only"):
        render("blister", OK, 3, foreign=a)


def test_identity_reference_and_evaluate_from_the_command_line(tmp_path: Path) -> None:
    """The reference command measures good tablets into a block the recipe accepts; evaluate reports the
    foreign tablets it was given, with the check and without it."""
    from inspector.cli import main
    from inspector.config.identity import IdentitySpec
    from inspector.synth.generate import generate

    good, foreign = tmp_path / "good", tmp_path / "foreign"
    generate("tablet", 40, 963001, good, defect_rate=0.0, masks=False, workers=1)
    generate("tablet", 30, 964001, foreign, masks=False, workers=1, foreign_tablets=True)
    out = tmp_path / "ref.json"
    assert main(["identity-reference", "--recipe", "tablet", "--images", str(good), "--json", str(out)]) == 0
    ref = json.loads(out.read_text())
    spec = IdentitySpec.model_validate(ref["identity"])
    assert ref["tablets"] == 40 and ref["not_found"] == 0 and spec.area_px.tolerance > 0
    assert main(["identity-reference", "--recipe", "vial", "--images", str(good)]) == 2  # no tablets to measure
    assert main(["identity-reference", "--recipe", "tablet", "--images", str(foreign)]) == 2  # no good items
    with_check, model_alone = tmp_path / "with.json", tmp_path / "alone.json"
    common = ["evaluate", "--model", str(ROOT / "models" / "tablet" / "1.4.0"), "--images", str(foreign)]
    main([*common, "--no-plots", "--quiet", "--json", str(with_check)])
    main([*common, "--no-plots", "--quiet", "--json", str(model_alone), "--no-identity"])
    a, b = json.loads(with_check.read_text()), json.loads(model_alone.read_text())
    assert a["recipe"]["identity"] is True and b["recipe"]["identity"] is False
    assert a["foreign"]["all"]["n"] == b["foreign"]["all"]["n"] == 30
    assert a["foreign"]["all"]["accepted"] <= b["foreign"]["all"]["accepted"]  # the check only adds rejects


def test_a_card_compares_each_tablet_with_its_neighbours_as_well() -> None:
    """A tablet the absolute specification lets through (it must allow for every lighting the line
    shows) still fails when it stands out from the nine tablets that share its card's lighting."""
    spec = load_recipe("blister").recipe.identity
    assert spec is not None and spec.card is not None
    near = _foreign(Product.BLISTER, shape="round", length_px=56.0, width_px=56.0, color_bgr=(60.0, 160.0, 235.0),
                    second_bgr=None, coated=True, marking=True)  # fmt: skip
    card = render("blister", "foreign_tablet", 12, foreign=near)
    assert card.pockets is not None
    units = _units("blister", card.image)
    pocket = list(card.pockets).index("foreign_tablet")
    assert check(measure_as(units[pocket], spec), spec).ok  # inside the absolute tolerances
    checks = check_units(units, spec)
    failed = checks[pocket]
    assert not failed.ok and all(f.endswith(f"(card tolerance {spec.card.chroma:.3g})") for f in failed.failures)
    assert failed.failures[0].startswith("chroma ")
    assert [c.ok for i, c in enumerate(checks) if i != pocket] == [True] * 9
    assert unit_reasons(Product.BLISTER, checks)[pocket] == DefectCode.FOREIGN_TABLET
    record = failed.as_record()
    assert isinstance(record["card"], dict) and set(record["card"]) == set(CARD_MEASURES)
    # Without the card tolerances the same tablet passes: the relative check is what caught it.
    absolute = spec.model_copy(update={"card": None})
    assert check_units(units, absolute)[pocket].ok


def test_the_relative_check_needs_enough_tablets_on_the_card() -> None:
    spec = load_recipe("blister").recipe.identity
    assert spec is not None and spec.card is not None
    good = measure_as(_units("blister", render("blister", OK, 5100).image)[0], spec)
    odd = dataclasses.replace(good, lab=(good.lab[0], good.lab[1], good.lab[2] + spec.card.chroma + 2.0))
    assert check(odd, spec).ok  # the absolute chroma tolerance is wider
    crowd = [good] * (spec.card.min_tablets - 1) + [odd]
    deviations = card_deviations(crowd, spec, spec.card.min_tablets)
    assert deviations[-1] is not None and deviations[-1]["chroma"] > spec.card.chroma
    assert not check(odd, spec, deviations[-1]).ok
    few = card_deviations([good, good, Measurement(found=False), odd], spec, spec.card.min_tablets)
    assert few == [None] * 4  # a median of three says nothing: only the absolute check applies


def test_card_tolerances_come_from_the_reference_cards() -> None:
    images = [render("blister", OK, 900 + s).image for s in range(4)]
    cards = [[measure(u, segment_delta_e=18.0, search_radius_px=34.0) for u in _units("blister", i)] for i in images]
    spec = specify([m for c in cards for m in c], sigmas=4.0, segment_delta_e=18.0, search_radius_px=34.0, cards=cards)
    assert spec.card is not None and spec.card.chroma > 0 and spec.card.area < 0.2
    for card in cards:  # every reference tablet inside its own card tolerances
        assert all(c.ok for c in check_units_measured(card, spec))
    with pytest.raises(ValueError, match="measure more cards"):
        specify([m for c in cards for m in c], sigmas=4.0, segment_delta_e=18.0, search_radius_px=34.0,
                cards=[cards[0][:4]] * 8)  # fmt: skip


def check_units_measured(card: list[Measurement], spec: IdentitySpec) -> list[Checked]:
    """``check_units`` on tablets already measured."""
    assert spec.card is not None
    return [check(m, spec, d) for m, d in zip(card, card_deviations(card, spec, spec.card.min_tablets), strict=True)]


def test_a_reference_whose_outlines_are_not_the_tablets_is_refused_with_what_to_change() -> None:
    """Light blue tablets under dark foil on a black nest (a held-out look) at nuisance 2.5: at the shipped
    colour distance some outlines run into the pocket, and the reference would let a tablet half the
    size pass; at a lower distance every outline is the tablet's."""
    images = [render("blister", OK, s, nuisance=2.5, look="blue-dark-nest").image for s in (919, 922, 942, 945)]
    units = [u for image in images for u in _units("blister", image)]
    cards = [units[i : i + 10] for i in range(0, len(units), 10)]
    for delta_e, refused in ((18.0, True), (10.0, False)):
        measured = [[measure(u, segment_delta_e=delta_e, search_radius_px=34.0) for u in c] for c in cards]
        flat = [m for c in measured for m in c]
        kwargs = {"sigmas": 4.0, "segment_delta_e": delta_e, "search_radius_px": 34.0, "cards": measured}
        if refused:
            with pytest.raises(ValueError, match=r"outline found is not the tablet's.*--segment-delta-e"):
                specify(flat, **kwargs)  # type: ignore[arg-type]
        else:
            spec = specify(flat, **kwargs)  # type: ignore[arg-type]
            assert spec.area_px.tolerance / spec.area_px.mean < 0.2 and spec.card is not None
            assert spec.card.area < 0.2
