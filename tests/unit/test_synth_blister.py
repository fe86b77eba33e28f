"""Blister card renderer: determinism, ground truth and what the pixels actually show."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.config.roi import DEFAULT_BLISTER_GRID
from inspector.synth import blister
from inspector.synth import render as dispatch_render
from inspector.taxonomy import IMAGE_SPECS, OK, Criticality, Product, labels, worst

GRID = DEFAULT_BLISTER_GRID
ROIS = GRID.rois()
DEFECTS = [lab for lab in labels(Product.BLISTER) if lab != OK]


def orange_pixels(image: np.ndarray, roi: tuple[int, int, int, int] | None = None, strict: bool = False) -> np.ndarray:
    """Boolean map of light-orange (tablet film coat) pixels, by HSV hue / saturation / value."""
    if roi is not None:
        x, y, w, h = roi
        image = image[y : y + h, x : x + w]
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.int32)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    min_sat, min_val = (100, 120) if strict else (90, 90)
    return (hue >= 6) & (hue <= 24) & (sat >= min_sat) & (val >= min_val)


def orange_count(image: np.ndarray, roi: tuple[int, int, int, int]) -> int:
    return int(orange_pixels(image, roi).sum())


def card_with(label: str, pocket: int) -> list[str]:
    pockets = [OK] * GRID.count
    pockets[pocket] = label
    return pockets


# --------------------------------------------------------------------------- basics


def test_shape_dtype_and_truth_keys() -> None:
    r = blister.render("foil_damage", 3)
    assert r.image.shape == IMAGE_SPECS[Product.BLISTER].shape
    assert r.image.dtype == np.uint8
    assert r.mask.shape == r.image.shape[:2] and r.mask.dtype == np.uint8
    assert r.pockets is not None and len(r.pockets) == GRID.count
    assert r.pocket_masks is not None and len(r.pocket_masks) == GRID.count
    assert r.truth["pocket_rois"] == [tuple(roi) for roi in ROIS]
    assert r.truth["grid"] == GRID.model_dump()
    assert len(r.truth["pocket_centers"]) == GRID.count


def test_same_seed_same_bytes_and_different_seed_differs() -> None:
    for label in (OK, "broken_tablet", "foil_damage"):
        a, b = blister.render(label, 11), blister.render(label, 11)
        assert a.image.tobytes() == b.image.tobytes()
        assert a.mask.tobytes() == b.mask.tobytes()
        assert a.pockets == b.pockets
        c = blister.render(label, 12)
        assert a.image.tobytes() != c.image.tobytes()


def test_dispatcher_renders_the_same_card() -> None:
    a = dispatch_render("blister", "double_tablet", 5, 1.0)
    b = blister.render("double_tablet", 5, 1.0)
    assert a.image.tobytes() == b.image.tobytes()


def test_render_card_reproduces_render() -> None:
    r = blister.render("empty_pocket", 21)
    assert r.pockets is not None
    again = blister.render_card(r.pockets, 21)
    assert again.image.tobytes() == r.image.tobytes()
    assert again.mask.tobytes() == r.mask.tobytes()


# --------------------------------------------------------------------------- labels and masks


@pytest.mark.parametrize("label", DEFECTS)
def test_defect_cards_have_defect_pockets_with_masks(label: str) -> None:
    for seed in range(4):
        r = blister.render(label, seed)
        assert r.label == label
        assert r.criticality is not None
        assert r.pockets is not None and r.pocket_masks is not None
        carriers = [i for i, p in enumerate(r.pockets) if p != OK]
        assert 1 <= len(carriers) <= 2 and all(r.pockets[i] == label for i in carriers)
        union = np.zeros_like(r.mask)
        for i, m in enumerate(r.pocket_masks):
            assert set(np.unique(m)) <= {0, 255}
            assert (np.count_nonzero(m) > 0) == (i in carriers)
            union |= m
        assert np.array_equal(union, r.mask)
        assert np.count_nonzero(r.mask) >= 40


def test_ok_cards_have_empty_masks() -> None:
    for seed in range(3):
        r = blister.render(OK, seed)
        assert r.label == OK and r.criticality is None
        assert r.pockets == (OK,) * GRID.count
        assert not r.mask.any()
        assert r.pocket_masks is not None and not any(m.any() for m in r.pocket_masks)


def test_card_label_is_the_worst_pocket() -> None:
    pockets = [OK, "double_tablet", "foil_damage", "foreign_tablet", OK, "empty_pocket", OK, OK, "broken_tablet", OK]
    r = blister.render_card(pockets, 7)
    assert r.pockets == tuple(pockets)
    assert r.label == worst(Product.BLISTER, pockets)[0] == "foreign_tablet"
    assert r.criticality is Criticality.CRITICAL
    assert r.truth["worst_pocket"] == 3
    minor = blister.render_card(card_with("double_tablet", 4), 7)
    assert minor.label == "double_tablet" and minor.criticality is Criticality.MAJOR


def test_each_pocket_mask_stays_in_its_roi() -> None:
    pockets = ["foil_damage", "double_tablet", "foreign_tablet", "broken_tablet", "empty_pocket"] * 2
    for seed in range(3):
        r = blister.render_card(pockets, seed, nuisance=3.0)
        assert r.pocket_masks is not None
        for m, (x, y, w, h) in zip(r.pocket_masks, ROIS, strict=True):
            assert np.count_nonzero(m) == np.count_nonzero(m[y : y + h, x : x + w]) > 0


# --------------------------------------------------------------------------- pixels vs truth


def test_tablet_pixels_per_pocket_match_the_labels() -> None:
    pockets = ["empty_pocket", OK, "double_tablet", OK, "foreign_tablet", OK, "broken_tablet", OK, "foil_damage", OK]
    for seed in range(6):
        r = blister.render_card(pockets, seed)
        counts = [orange_count(r.image, roi) for roi in ROIS]
        ok_counts = [c for c, p in zip(counts, pockets, strict=True) if p in (OK, "foil_damage")]
        nominal = float(np.median(ok_counts))
        assert nominal > 1800  # a 56 px tablet is ~2460 px; the highlight takes a little
        assert all(0.85 * nominal <= c <= 1.15 * nominal for c in ok_counts), ok_counts
        assert counts[0] <= 10, "an empty pocket shows no tablet colour"
        assert counts[2] >= 1.25 * nominal, "two tablets cover clearly more of the pocket"
        assert counts[4] <= 0.6 * nominal, "a foreign tablet has another colour or a clearly smaller area"
        assert counts[6] <= 0.8 * nominal, "a broken tablet misses a part"


def test_domes_and_tablets_stay_inside_their_rois_at_high_nuisance() -> None:
    radius = GRID.pocket_diameter / 2
    for seed in range(4):
        r = blister.render(OK, seed, nuisance=3.0)
        outside = np.ones(r.image.shape[:2], bool)
        truth = zip(r.truth["pocket_centers"], r.truth["tablet_centers"], ROIS, strict=True)
        for (cx, cy), (tx, ty), (x, y, w, h) in truth:
            assert x + 2 <= cx - radius and cx + radius <= x + w - 3
            assert y + 2 <= cy - radius and cy + radius <= y + h - 3
            assert np.hypot(tx - cx, ty - cy) <= 5.5, "the tablet lies in its dome"
            # The tablet seen in the ROI is where the truth says (the shading biases the centroid a little).
            ys, xs = np.nonzero(orange_pixels(r.image, (x, y, w, h), strict=True))
            assert len(xs) > 1000
            assert np.hypot(xs.mean() + x - tx, ys.mean() + y - ty) <= 3.5
            outside[y : y + h, x : x + w] = False
        # No tablet colour anywhere outside the ROIs (a few noisy pixels on the nest at most).
        assert np.count_nonzero(orange_pixels(r.image, strict=True) & outside) <= 3


def test_pose_jitter_is_clamped() -> None:
    shifts, angles = [], []
    for seed in range(8):
        pose = blister.render(OK, seed, nuisance=3.0).truth["pose"]
        shifts.append(max(abs(v) for v in pose["shift_px"]))
        angles.append(abs(pose["angle_deg"]))
    # About 5 px / 1 degree at nuisance 1, and never much more however large the nuisance.
    assert max(shifts) <= 7.0 and max(angles) <= 1.4
    assert max(shifts) > 2.0, "the card still moves"


@pytest.mark.parametrize("label", DEFECTS)
def test_mask_is_where_the_card_differs_from_the_ok_card(label: str) -> None:
    pocket = 6
    for seed in (1, 2):
        good = blister.render_card([OK] * GRID.count, seed)
        bad = blister.render_card(card_with(label, pocket), seed)
        diff = np.abs(good.image.astype(np.int16) - bad.image.astype(np.int16)).max(axis=2)
        x, y, w, h = ROIS[pocket]
        elsewhere = diff.copy()
        elsewhere[y : y + h, x : x + w] = 0
        assert elsewhere.max() <= 3, "only the defective pocket may change"
        # Strong changes lie in the mask (give or take 4 px); further out only soft shadows change.
        near = cv2.dilate(bad.mask, np.ones((9, 9), np.uint8)) > 0
        assert np.count_nonzero((diff > 40) & ~near) <= 5
        around = cv2.dilate(bad.mask, np.ones((13, 13), np.uint8)) > 0
        assert diff[~around].max() <= 35
        in_mask = diff[bad.mask > 0]
        assert in_mask.size > 0 and np.mean(in_mask > 10) >= 0.55, "the masked pixels really changed"


def test_foil_damage_shows_a_dark_hole_with_bright_edges() -> None:
    for seed in range(5):
        good = blister.render_card([OK] * GRID.count, seed)
        bad = blister.render_card(card_with("foil_damage", 2), seed)
        grey_good = cv2.cvtColor(good.image, cv2.COLOR_BGR2GRAY).astype(np.int16)
        grey_bad = cv2.cvtColor(bad.image, cv2.COLOR_BGR2GRAY).astype(np.int16)
        region = bad.mask > 0
        assert np.count_nonzero(grey_bad[region] < grey_good[region] - 60) >= 6, "dark hole or crease"
        assert np.count_nonzero(grey_bad[region] > grey_good[region] + 25) >= 4, "bright torn edge"


# --------------------------------------------------------------------------- bad input


def test_bad_input_raises_value_error() -> None:
    with pytest.raises(ValueError, match="unknown blister label"):
        blister.render("cracked", 1)
    with pytest.raises(ValueError, match="expected 10 pocket labels"):
        blister.render_card([OK] * 9, 1)
    with pytest.raises(ValueError, match="pocket 3: unknown blister label"):
        blister.render_card([OK, OK, OK, "chip", OK, OK, OK, OK, OK, OK], 1)
    with pytest.raises(ValueError, match="sequence of pocket labels"):
        blister.render_card("ok", 1)
    with pytest.raises(ValueError, match="nuisance"):
        blister.render(OK, 1, nuisance=3.5)
    with pytest.raises(ValueError, match="seed"):
        blister.render(OK, -1)
