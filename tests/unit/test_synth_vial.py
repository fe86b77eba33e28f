"""The vial renderer: determinism, ground truth, and truth checked against the pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.synth import render as dispatch_render
from inspector.synth.vial import FILL_DEFECT_MIN_PX, OK_FILL_MAX_PX, render
from inspector.taxonomy import IMAGE_SPECS, Product, criticality, labels

LABELS = labels(Product.VIAL)
DEFECTS = LABELS[1:]
SEEDS = (0, 7, 123)


def measured_meniscus_row(image: np.ndarray, center_x: float, nominal_y: float) -> int:
    """The darkest row of the centre column's profile within the liquid body (the meniscus band)."""
    col = round(center_x)
    profile = image[:, col - 1 : col + 2].astype(np.float32).mean(axis=1)
    profile = np.convolve(profile, np.ones(3, np.float32) / 3, mode="same")
    lo, hi = round(nominal_y) - 55, round(nominal_y) + 60
    return lo + int(np.argmin(profile[lo:hi]))


def test_shape_dtype_and_criticality() -> None:
    for label in LABELS:
        r = render(label, 5)
        assert r.image.shape == IMAGE_SPECS[Product.VIAL].shape
        assert r.image.dtype == np.uint8
        assert r.mask.shape == r.image.shape and r.mask.dtype == np.uint8
        assert set(np.unique(r.mask)) <= {0, 255}
        assert r.criticality == criticality(Product.VIAL, label)
        assert r.product is Product.VIAL and r.label == label and r.seed == 5


def test_deterministic_per_seed_and_varies_across_seeds() -> None:
    for label in LABELS:
        a, b = render(label, 42, 1.3), render(label, 42, 1.3)
        assert a.image.tobytes() == b.image.tobytes()
        assert a.mask.tobytes() == b.mask.tobytes()
        assert a.truth == b.truth
        assert render(label, 43, 1.3).image.tobytes() != a.image.tobytes()


def test_dispatcher_reaches_this_renderer() -> None:
    assert dispatch_render("vial", "particle", 9).image.tobytes() == render("particle", 9).image.tobytes()


def test_unknown_label_raises() -> None:
    with pytest.raises(ValueError, match="unknown vial label"):
        render("broken", 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_masks_empty_for_ok_and_present_for_defects(seed: int) -> None:
    assert not render("ok", seed).mask.any()
    for label in DEFECTS:
        assert (render(label, seed).mask > 0).sum() >= 20, label


@pytest.mark.parametrize("nuisance", [0.0, 1.0, 3.0])
def test_meniscus_row_matches_truth(nuisance: float) -> None:
    for label in ("ok", "fill_low", "fill_high"):
        for seed in SEEDS:
            r = render(label, seed, nuisance)
            row = measured_meniscus_row(r.image, r.truth["center_x"], r.truth["nominal_meniscus_y"])
            assert abs(row - r.truth["meniscus_y"]) <= 2.5, (label, seed, row, r.truth)


def test_fill_defects_move_the_meniscus_clearly() -> None:
    for seed in (*SEEDS, 99, 2024):
        ok = render("ok", seed)
        ok_row = measured_meniscus_row(ok.image, ok.truth["center_x"], ok.truth["nominal_meniscus_y"])
        low = render("fill_low", seed)
        high = render("fill_high", seed)
        low_row = measured_meniscus_row(low.image, low.truth["center_x"], low.truth["nominal_meniscus_y"])
        high_row = measured_meniscus_row(high.image, high.truth["center_x"], high.truth["nominal_meniscus_y"])
        assert low_row - ok_row >= 12, (seed, ok_row, low_row)
        assert ok_row - high_row >= 12, (seed, ok_row, high_row)


@pytest.mark.parametrize("nuisance", [0.0, 1.0, 3.0])
def test_fill_bands_keep_a_gap_at_every_nuisance(nuisance: float) -> None:
    for seed in range(20):
        ok = render("ok", seed, nuisance).truth
        assert abs(ok["meniscus_y"] - ok["nominal_meniscus_y"]) <= OK_FILL_MAX_PX + 0.5
        low = render("fill_low", seed, nuisance).truth
        high = render("fill_high", seed, nuisance).truth
        assert low["meniscus_y"] - low["nominal_meniscus_y"] >= FILL_DEFECT_MIN_PX - 1.0
        assert high["nominal_meniscus_y"] - high["meniscus_y"] >= FILL_DEFECT_MIN_PX - 1.0


def test_fill_mask_spans_nominal_to_actual_meniscus() -> None:
    for label in ("fill_low", "fill_high"):
        r = render(label, 11)
        rows = np.nonzero(r.mask[:, round(r.truth["center_x"])])[0]
        top, bottom = sorted((r.truth["nominal_meniscus_y"], r.truth["meniscus_y"]))
        assert abs(rows.min() - top) <= 2.5 and abs(rows.max() - bottom) <= 2.5


@pytest.mark.parametrize("seed", SEEDS)
def test_missing_cap_makes_the_cap_region_much_brighter(seed: int) -> None:
    ok, bad = render("ok", seed), render("missing_cap", seed)
    region = bad.mask > 0
    assert bad.truth["cap_present"] is False and ok.truth["cap_present"] is True
    assert bad.image[region].mean() - ok.image[region].mean() > 50


@pytest.mark.parametrize("seed", SEEDS)
def test_missing_stopper_makes_the_neck_brighter(seed: int) -> None:
    ok, bad = render("ok", seed), render("missing_stopper", seed)
    region = bad.mask > 0
    assert bad.truth["stopper_present"] is False and ok.truth["stopper_present"] is True
    assert bad.image[region].mean() - ok.image[region].mean() > 50


@pytest.mark.parametrize("seed", SEEDS)
def test_particles_are_darker_than_the_liquid_around_them(seed: int) -> None:
    r = render("particle", seed)
    mask = r.mask > 0
    ring = (cv2.dilate(r.mask, np.ones((9, 9), np.uint8)) > 0) & ~(cv2.dilate(r.mask, np.ones((3, 3), np.uint8)) > 0)
    surround = float(np.median(r.image[ring]))
    assert surround - float(r.image[mask].min()) >= 40
    assert surround - float(r.image[mask].mean()) >= 15


@pytest.mark.parametrize(
    "label", ["missing_cap", "missing_stopper", "glass_crack", "particle", "crimp_defect", "cosmetic_scratch"]
)
def test_mask_lies_where_pixels_differ_from_the_same_item_ok(label: str) -> None:
    for seed in SEEDS:
        ok, bad = render("ok", seed), render(label, seed)
        diff = np.abs(bad.image.astype(np.int16) - ok.image.astype(np.int16)) > 20
        near_mask = cv2.dilate(bad.mask, np.ones((5, 5), np.uint8)) > 0
        assert diff.any(), (label, seed)
        assert (diff & ~near_mask).sum() <= 0.02 * diff.sum(), (label, seed)
        # And the mask is not far bigger than what changed.
        assert (diff & (bad.mask > 0)).sum() >= 0.15 * (bad.mask > 0).sum(), (label, seed)


def test_crack_is_longer_and_darker_than_a_cosmetic_scratch() -> None:
    for seed in SEEDS:
        ok = render("ok", seed).image.astype(np.int16)
        crack, scratch = render("glass_crack", seed), render("cosmetic_scratch", seed)
        crack_extent = np.ptp(np.nonzero(crack.mask)[0]) + 1
        scratch_ys, scratch_xs = np.nonzero(scratch.mask)
        assert crack_extent >= 30
        assert max(np.ptp(scratch_ys), np.ptp(scratch_xs)) + 1 <= 28
        crack_dark = (ok - crack.image)[crack.mask > 0].max()
        scratch_dark = (ok - scratch.image)[scratch.mask > 0].max()
        assert crack_dark > scratch_dark >= 20


def test_ok_items_vary_but_stay_ok_at_high_nuisance() -> None:
    canonical = render("ok", 3, 0.0)
    wide = render("ok", 3, 3.0)
    assert canonical.image.tobytes() != wide.image.tobytes()
    assert not wide.mask.any()
    assert wide.truth["cap_present"] and wide.truth["stopper_present"]
