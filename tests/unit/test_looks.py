"""The renderer's looks: other lines' products, backgrounds and light, tuning and held out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.cli import main as cli_main
from inspector.manifest import read_manifest
from inspector.synth import looks, render
from inspector.synth.generate import generate
from inspector.synth.tablet import _wrong_colors
from inspector.taxonomy import OK, Product, labels

# sha256 over the image and mask digests of 264 renders (every product and label, seeds 1000-1003,
# nuisance 0.5 / 1.0 / 2.5), taken before looks existed: the renderer's own look is unchanged by them.
NOMINAL_DIGEST = "77240cffdbca88052854b24405e939b77cc145aa5bec3df875fa335751fab28c"


def _nominal_digest(look: str | None) -> str:
    lines = []
    for p in Product:
        for lab in labels(p):
            for s in range(4):
                for n in (0.5, 1.0, 2.5):
                    r = render(p, lab, 1000 + s, n, look=look)
                    img = hashlib.sha256(r.image.tobytes()).hexdigest()[:16]
                    mask = hashlib.sha256(r.mask.tobytes()).hexdigest()[:16]
                    lines.append(f"{p.value} {lab} {s} {n} {img} {mask}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@pytest.mark.parametrize("look", [None, "nominal"])
def test_the_renderers_own_look_is_byte_for_byte_as_before(look: str | None) -> None:
    assert _nominal_digest(look) == NOMINAL_DIGEST


def test_every_product_has_tuning_and_held_out_looks() -> None:
    for p in Product:
        assert looks.NOMINAL in looks.names(p, held_out=False)
        assert len(looks.names(p, held_out=False)) >= 3, p
        assert len(looks.names(p, held_out=True)) >= 2, p
        for name in looks.names(p):
            look = looks.LOOKS[p][name]
            assert look.product is p and look.summary
            assert name == looks.NOMINAL or look.scene.name == name


CASES = [(p, name) for p in Product for name in looks.names(p) if name != looks.NOMINAL]


@pytest.mark.parametrize(("product", "name"), CASES, ids=[f"{p.value}-{n}" for p, n in CASES])
def test_a_look_draws_every_class_visibly_and_deterministically(product: Product, name: str) -> None:
    for label in labels(product):
        for seed in (3, 4):
            r = render(product, label, seed, 1.0, look=name)
            again = render(product, label, seed, 1.0, look=name)
            assert r.image.tobytes() == again.image.tobytes()
            nominal = render(product, label, seed, 1.0)
            assert r.image.shape == nominal.image.shape and r.image.dtype == np.uint8
            assert r.image.tobytes() != nominal.image.tobytes()  # the look shows
            if label == OK:
                assert not r.mask.any()
                continue
            # The defect is drawn on the look's product and is there to see: a marked region whose
            # pixels differ from the same item rendered good (same seed: same pose, light and noise).
            good = render(product, OK, seed, 1.0, look=name)
            where = r.mask > 0
            assert where.sum() >= 4, (label, seed)
            diff = np.abs(r.image.astype(np.int16) - good.image.astype(np.int16))
            diff = diff.max(axis=2) if diff.ndim == 3 else diff
            assert float(diff[where].mean()) > 8.0, (label, seed)


def test_a_tablet_looks_wrong_tablet_never_has_the_products_colour() -> None:
    for name in looks.names(Product.TABLET):
        style = looks.LOOKS[Product.TABLET][name].scene.style
        own = np.array(style.color_bgr)
        for colour in _wrong_colors(style).values():
            assert float(np.linalg.norm(np.array(colour) - own)) >= 60.0, name


def test_an_elongated_products_chip_bites_its_outline() -> None:
    # A chip on an oblong or oval tablet sits on its outline in every direction, not only along its long axis.
    for name in ("oblong-white", "blue-oval"):
        for seed in range(12):
            r = render(Product.TABLET, "chip", seed, 1.0, look=name)
            good = render(Product.TABLET, OK, seed, 1.0, look=name)
            gone = (good.truth["object_mask"] > 0) & (r.truth["object_mask"] == 0)
            assert gone.sum() >= 20, (name, seed)


def test_unknown_look_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown tablet look 'nope'; known: nominal, "):
        render(Product.TABLET, OK, 1, look="nope")
    with pytest.raises(ValueError, match="unknown vial look 'woven-white'"):
        render(Product.VIAL, OK, 1, look="woven-white")


def test_a_sets_manifest_names_its_look(tmp_path: Path) -> None:
    entries = generate("blister", 6, 11, tmp_path / "b", look="gold-foil", masks=False, workers=1)
    assert {e.look for e in entries} == {"gold-foil"}
    assert {e.look for e in read_manifest(tmp_path / "b", verify=True)} == {"gold-foil"}
    first = cv2.imread(str(tmp_path / "b" / entries[0].file))
    assert (
        first.tobytes()
        == render(Product.BLISTER, entries[0].label, entries[0].seed, 1.0, look="gold-foil").image.tobytes()
    )
    own = generate("blister", 2, 11, tmp_path / "n", look="nominal", masks=False, workers=1)
    assert {e.look for e in own} == {None}
    assert '"look"' not in (tmp_path / "n" / "manifest.jsonl").read_text()


def test_cli_lists_looks_and_renders_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["samples", "looks", "--product", "tablet", "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["look"]: r["role"] for r in rows}["woven-white"] == "held-out"
    assert {r["role"] for r in rows} == {"tuning", "held-out"}
    out = tmp_path / "w"
    code = cli_main(
        ["samples", "generate", "--product", "tablet", "--count", "3", "--seed", "5", "--look", "woven-white",
         "--out", str(out), "--no-masks", "--quiet", "--workers", "1"]
    )  # fmt: skip
    assert code == 0
    assert {e.look for e in read_manifest(out)} == {"woven-white"}
    assert cli_main(["samples", "generate", "--product", "tablet", "--count", "3", "--seed", "5",
                     "--look", "nope", "--out", str(tmp_path / "x"), "--quiet"]) == 2  # fmt: skip
    assert "unknown tablet look 'nope'" in capsys.readouterr().err
