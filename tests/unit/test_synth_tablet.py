"""Tablet renderer: determinism, format, and ground truth checked against the pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import inspector.synth as synth
from inspector.synth import tablet
from inspector.synth.base import Rendered
from inspector.taxonomy import IMAGE_SPECS, OK, Product, criticality, labels

DEFECTS = [lab for lab in labels(Product.TABLET) if lab != OK]
SEEDS = (0, 1, 2, 3)
# Belt is ~50 grey levels, the darkest tablet pixel (shaded bevel) ~115: split in between.
TABLET_GREY = 85


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.int16)


def bright(image: np.ndarray) -> np.ndarray:
    """Tablet pixels as seen from the image: brighter than the dark belt."""
    return grey(image) > TABLET_GREY


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / float((a | b).sum())


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def pair(label: str, seed: int, nuisance: float = 1.0) -> tuple[Rendered, Rendered]:
    """The defect and the same item rendered ok (same pose, lighting and noise)."""
    return tablet.render(label, seed, nuisance), tablet.render(OK, seed, nuisance)


@pytest.mark.parametrize("label", labels(Product.TABLET))
def test_format_mask_and_truth(label: str) -> None:
    for seed in SEEDS:
        r = tablet.render(label, seed)
        assert r.image.shape == IMAGE_SPECS[Product.TABLET].shape and r.image.dtype == np.uint8
        assert r.mask.shape == r.image.shape[:2] and r.mask.dtype == np.uint8
        assert set(np.unique(r.mask).tolist()) <= {0, 255}
        assert r.label == label and r.seed == seed and r.product is Product.TABLET
        assert r.criticality == criticality(Product.TABLET, label)
        assert (r.mask.any()) == (label != OK)
        obj = r.truth["object_mask"]
        assert obj.shape == r.mask.shape and obj.dtype == np.uint8 and obj.any()
        assert r.truth["shape"] in ("round", "oblong")
        # The defect lies on the tablet (or, for missing material, on where the tablet was).
        if label not in ("broken", "chip"):
            assert not (r.mask & ~obj).any()


def test_deterministic_per_seed() -> None:
    for label in labels(Product.TABLET):
        a, b = tablet.render(label, 7, 1.3), tablet.render(label, 7, 1.3)
        assert a.image.tobytes() == b.image.tobytes()
        assert a.mask.tobytes() == b.mask.tobytes()
        assert a.truth["object_mask"].tobytes() == b.truth["object_mask"].tobytes()
        assert a.image.tobytes() != tablet.render(label, 8, 1.3).image.tobytes()


def test_dispatcher_gives_same_bytes() -> None:
    assert synth.render("tablet", "chip", 5).image.tobytes() == tablet.render("chip", 5).image.tobytes()


def test_unknown_label_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown tablet label"):
        tablet.render("scratch", 0)
    with pytest.raises(ValueError):
        synth.render("tablet", "missing_cap", 0)


def test_truth_matches_pixels_for_ok() -> None:
    for seed in SEEDS:
        r = tablet.render(OK, seed)
        obj = r.truth["object_mask"] > 0
        assert iou(bright(r.image), obj) > 0.97
        ys, xs = np.nonzero(obj)
        cx, cy = r.truth["center"]
        assert abs(xs.mean() - cx) < 1.0 and abs(ys.mean() - cy) < 1.0
        # Area of a disc of the stated diameter.
        assert abs(obj.sum() / (np.pi * (r.truth["size_px"] / 2) ** 2) - 1.0) < 0.03
        assert r.truth["shape"] == "round"


def test_nuisance_zero_is_canonical_and_wide_nuisance_stays_ok() -> None:
    r = tablet.render(OK, 3, 0.0)
    assert r.truth["center"] == (128.0, 128.0) and r.truth["size_px"] == 150.0
    assert r.truth["emboss_angle_deg"] == 0.0
    for seed in range(12):
        wide = tablet.render(OK, seed, 3.0)
        assert abs(wide.truth["size_px"] / 150.0 - 1.0) <= tablet.SIZE_LIMIT + 1e-9
        obj = wide.truth["object_mask"]
        # Whole tablet in view: nothing touches the image border.
        assert not (obj[0].any() or obj[-1].any() or obj[:, 0].any() or obj[:, -1].any())


def test_defect_mask_is_where_pixels_differ_from_ok() -> None:
    for label in ("broken", "chip", "crack", "foreign_spot", "discoloration"):
        for seed in SEEDS:
            bad, ok = pair(label, seed)
            diff = np.abs(bad.image.astype(np.int16) - ok.image.astype(np.int16)).max(axis=2)
            mask = bad.mask > 0
            assert np.median(diff[mask]) >= 30, (label, seed)
            changed = diff > 40
            assert changed.sum() > 0
            assert (changed & dilate(mask, 3)).sum() >= 0.97 * changed.sum(), (label, seed)


def test_broken_tablet_is_missing_a_large_part() -> None:
    for seed in range(6):
        bad, ok = pair("broken", seed)
        tablet_px, ok_px = bright(bad.image), bright(ok.image)
        assert tablet_px.sum() < 0.75 * ok_px.sum()
        assert iou(tablet_px, bad.truth["object_mask"] > 0) > 0.95
        # Belt shows where the tablet was.
        missing = bad.mask > 0
        assert (~tablet_px[missing]).mean() > 0.85
        assert 0.25 <= missing.sum() / ok_px.sum() <= 0.62


def test_chip_bites_at_least_6px_into_the_edge() -> None:
    for seed in range(6):
        bad, ok = pair("chip", seed)
        near = dilate(bad.mask > 0, 4)
        assert bright(bad.image)[near].sum() < bright(ok.image)[near].sum() - 40
        # Depth measured from the pixels: how far inside the intact outline tablet pixels went missing.
        ok_obj = ok.truth["object_mask"]
        gone = (ok_obj > 0) & (bad.truth["object_mask"] == 0)
        depth = cv2.distanceTransform(ok_obj, cv2.DIST_L2, 5)[gone].max()
        assert depth >= 6.0, (seed, depth)
        assert bright(bad.image)[gone].mean() <= 0.2


def test_crack_is_a_long_thin_dark_line() -> None:
    for seed in range(6):
        bad, ok = pair("crack", seed)
        mask = bad.mask > 0
        darker = grey(ok.image)[mask] - grey(bad.image)[mask]
        assert np.median(darker) >= 40
        ys, xs = np.nonzero(mask)
        assert np.hypot(np.ptp(xs), np.ptp(ys)) >= 25
        # Hairline: hardly anything of the mask survives an erosion that removes lines up to 2 px wide.
        assert (cv2.erode(bad.mask, np.ones((3, 3), np.uint8)) > 0).sum() <= 0.15 * mask.sum()


def test_foreign_spot_is_the_darkest_or_odd_coloured_thing_on_the_face() -> None:
    for seed in range(8):
        bad = tablet.render("foreign_spot", seed)
        # Tablet face, away from the dark outer bevel.
        face = cv2.erode(bad.truth["object_mask"], np.ones((25, 25), np.uint8)) > 0
        g = grey(bad.image)
        hsv = cv2.cvtColor(bad.image, cv2.COLOR_BGR2HSV)
        reference = np.median(g[face])
        odd = face & ((g < reference - 60) | ((hsv[:, :, 1] > 90) & (g < reference - 30)))
        spot = dilate(bad.mask > 0, 2)
        assert odd.sum() >= 10
        assert (odd & spot).sum() >= 0.95 * odd.sum(), seed
        radius = bad.truth["spot_radius_px"]
        assert radius >= 2.5


def test_discoloration_changes_the_colour_inside_the_mask() -> None:
    for seed in range(6):
        bad = tablet.render("discoloration", seed)
        img = bad.image.astype(np.float32)
        yellowness = img[:, :, 2] - img[:, :, 0]  # R - B: high for yellow and brown
        inside = bad.mask > 0
        rest = (bad.truth["object_mask"] > 0) & ~dilate(inside, 6)
        assert inside.sum() >= 300
        assert yellowness[inside].mean() - yellowness[rest].mean() >= 20, seed


def test_wrong_tablet_differs_in_shape_size_or_colour() -> None:
    kinds = set()
    for seed in range(16):
        bad, ok = pair("wrong_tablet", seed)
        obj, ok_obj = bad.truth["object_mask"] > 0, ok.truth["object_mask"] > 0
        assert np.array_equal(bad.mask > 0, obj)
        assert iou(bright(bad.image), obj) > 0.95
        area_ratio = obj.sum() / ok_obj.sum()
        colour_shift = np.abs(bad.image[obj].mean(axis=0) - ok.image[ok_obj].mean(axis=0)).max()
        contours, _ = cv2.findContours(obj.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        (_, _), (w, h), _ = cv2.minAreaRect(max(contours, key=cv2.contourArea))
        elongation = max(w, h) / min(w, h)
        assert (bad.truth["shape"] == "oblong") == (elongation > 1.4)
        assert abs(area_ratio - 1.0) >= 0.25 or elongation > 1.4 or colour_shift >= 25, seed
        kinds.add(bad.truth["wrong_kind"])
    assert len(kinds) >= 3
