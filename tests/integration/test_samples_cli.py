"""``inspector samples ...`` end to end: real files, real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.cli import main
from inspector.manifest import read_manifest
from inspector.taxonomy import IMAGE_SPECS, Product, labels

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("product", [p.value for p in Product])
def test_generate_twice_gives_identical_hashes(
    tmp_path: Path, product: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b"):
        code = main(
            [
                "samples",
                "generate",
                "--product",
                product,
                "--count",
                "24",
                "--seed",
                "5",
                "--out",
                str(tmp_path / name),
                "--workers",
                "2",
                "--quiet",
                "--json",
            ]
        )
        assert code == 0
        summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 24 and summary["images_per_s"] > 0
    a = read_manifest(tmp_path / "a", verify=True)
    b = read_manifest(tmp_path / "b", verify=True)
    assert [e.sha256 for e in a] == [e.sha256 for e in b]
    assert len({e.sha256 for e in a}) == 24, "every image differs"
    spec = IMAGE_SPECS[Product(product)]
    for e in a:
        img = cv2.imread(str(tmp_path / "a" / e.file), cv2.IMREAD_UNCHANGED)
        assert img.shape == spec.shape and img.dtype == np.uint8
        mask = cv2.imread(str(tmp_path / "a" / str(e.mask)), cv2.IMREAD_GRAYSCALE)
        assert (mask.max() == 0) == (e.label == "ok"), e
        if product == "blister":
            assert e.pockets is not None and len(e.pockets) == 10


def test_different_seed_differs_and_defect_rate_is_respected(tmp_path: Path) -> None:
    main(
        [
            "samples",
            "generate",
            "--product",
            "vial",
            "--count",
            "40",
            "--seed",
            "1",
            "--out",
            str(tmp_path / "a"),
            "--workers",
            "1",
            "--quiet",
            "--defect-rate",
            "0",
            "--no-masks",
        ]
    )
    main(
        [
            "samples",
            "generate",
            "--product",
            "vial",
            "--count",
            "40",
            "--seed",
            "2",
            "--out",
            str(tmp_path / "b"),
            "--workers",
            "1",
            "--quiet",
            "--defect-rate",
            "1",
            "--no-masks",
        ]
    )
    a, b = read_manifest(tmp_path / "a"), read_manifest(tmp_path / "b")
    assert {e.label for e in a} == {"ok"}
    assert "ok" not in {e.label for e in b} and len({e.label for e in b}) >= 4
    assert not {e.sha256 for e in a} & {e.sha256 for e in b}
    assert all(e.mask is None for e in a)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--product", "syringe", "--count", "3", "--seed", "1"], "invalid choice"),
        (["--product", "vial", "--count", "0", "--seed", "1"], "--count: must be a whole number from 1"),
        (["--product", "vial", "--count", "3", "--seed=-4"], "--seed: must be a whole number from 0 to 4294967295"),
        (["--product", "vial", "--count", "3", "--seed", "1", "--defect-rate", "1.5"], "--defect-rate: must be"),
        (["--product", "vial", "--count", "3", "--seed", "1", "--nuisance", "9"], "--nuisance: must be a number"),
        (["--product", "vial", "--count", "three", "--seed", "1"], "got 'three'"),
    ],
)
def test_bad_arguments_exit_non_zero_with_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    proc = _cli("samples", "generate", *args, "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_existing_set_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "set"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    proc = _cli("samples", "generate", "--product", "tablet", "--count", "2", "--seed", "1", "--out", str(out))
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert (out / "keep.txt").read_text() == "precious"


def test_reference_set_covers_every_class_with_contact_sheets(tmp_path: Path) -> None:
    proc = _cli("samples", "reference", "--out", str(tmp_path), "--per-class", "1")
    assert proc.returncode == 0, proc.stderr
    for product in Product:
        entries = read_manifest(tmp_path / product.value, verify=True)
        assert [e.label for e in entries] == list(labels(product))
        sheet = cv2.imread(str(tmp_path / f"{product.value}_contact_sheet.png"))
        assert sheet is not None and sheet.shape[0] > 200 * len(labels(product))


def test_committed_sample_images_are_intact() -> None:
    for product in Product:
        entries = read_manifest(ROOT / "sample_images" / product.value, verify=True)
        assert {e.label for e in entries} == set(labels(product)), "every class is in the committed set"
        assert (ROOT / "sample_images" / f"{product.value}_contact_sheet.png").is_file()
