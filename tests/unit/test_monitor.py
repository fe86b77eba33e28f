"""Input drift monitor: frame statistics, rolling limits, reference sets and the recipe block."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from inspector.cli import main
from inspector.config.errors import ConfigError
from inspector.config.monitor import InputLimits
from inspector.config.recipe import load_recipe
from inspector.pipeline.monitor import InputMonitor, build_reference, frame_stats, window_means
from inspector.synth import render
from inspector.synth.generate import generate
from inspector.taxonomy import Product

ROOT = Path(__file__).resolve().parents[2]


def _noisy(level: float, sigma: float, seed: int, shape: tuple[int, ...] = (96, 80)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(level + rng.normal(0.0, sigma, shape), 0, 255).round().astype(np.uint8)


def _limits(window: int = 10) -> InputLimits:
    # Sharpness wide open: these frames are flat grey plus noise, with no edges to lose.
    return InputLimits(window=window, brightness=(90.0, 110.0), noise=(1.0, 4.0), sharpness=(1.0, 20.0))


def test_frame_stats_measure_brightness_noise_and_sharpness() -> None:
    b, n, _ = frame_stats(_noisy(100, 3.0, 0))
    assert b == pytest.approx(100, abs=0.5)
    assert n == pytest.approx(3.0, rel=0.1)  # Immerkaer's estimate of the added sigma
    assert frame_stats(np.full((40, 40), 77, np.uint8)) == (77.0, 0.0, 0.0)
    edges = np.zeros((64, 64), np.uint8)
    edges[:, 32:] = 200
    sharp = frame_stats(edges)[2]
    assert sharp > 0 and frame_stats(cv2.GaussianBlur(edges, (0, 0), 2.0))[2] < 0.8 * sharp
    colour = cv2.merge([_noisy(100, 3.0, 1)] * 3)
    assert frame_stats(colour)[1] == pytest.approx(3.0, rel=0.1)
    single = _noisy(100, 3.0, 2, (96, 80, 1))
    assert frame_stats(single) == frame_stats(single[..., 0])
    with pytest.raises(ValueError, match="too small"):
        frame_stats(np.zeros((2, 50), np.uint8))
    with pytest.raises(ValueError, match="uint16"):
        frame_stats(np.zeros((40, 40), np.uint16))


def test_rendered_noise_rises_with_the_nuisance_scale() -> None:
    """The renderer's sensor noise grows with nuisance; the statistic follows it."""
    noise = {
        nuisance: np.mean([frame_stats(render(Product.VIAL, "ok", seed, nuisance).image)[1] for seed in range(12)])
        for nuisance in (1.0, 3.0)
    }
    assert noise[3.0] > 2.0 * noise[1.0]


def test_monitor_alarms_once_on_leaving_and_once_on_coming_back() -> None:
    mon = InputMonitor(_limits(window=10))
    changes = [mon.add(_noisy(100, 2.0, s)) for s in range(30)]
    assert changes == [None] * 30 and not mon.drifting
    assert mon.means() is not None and mon.means()["noise"] == pytest.approx(2.0, rel=0.15)
    noisy = [mon.add(_noisy(100, 6.0, 100 + s)) for s in range(30)]
    flips = [c for c in noisy if c is not None]
    assert len(flips) == 1 and flips[0].drifting and flips[0].outside == ("noise",)
    assert "noise" in flips[0].describe(mon.limits) and "outside the validated range" in flips[0].describe(mon.limits)
    back = [mon.add(_noisy(100, 2.0, 200 + s)) for s in range(30)]
    flips = [c for c in back if c is not None]
    assert len(flips) == 1 and not flips[0].drifting and not mon.drifting
    # A brightness shift (lamp ageing) is drift too, whatever the noise.
    dark = [mon.add(_noisy(60, 2.0, 300 + s)) for s in range(30)]
    assert [c.outside for c in dark if c is not None] == [("brightness",)]


def test_monitor_needs_a_full_window_before_judging() -> None:
    mon = InputMonitor(_limits(window=20))
    assert all(mon.add(_noisy(100, 9.0, s)) is None for s in range(19))
    assert mon.means() is None and mon.last_means is None
    change = mon.add(_noisy(100, 9.0, 19))
    assert change is not None and change.drifting
    assert mon.last_means == mon.means() and mon.frames == 20


def test_limits_are_validated() -> None:
    with pytest.raises(ValidationError, match="low < high"):
        InputLimits(window=50, brightness=(120.0, 100.0), noise=(1.0, 2.0), sharpness=(1.0, 2.0))
    with pytest.raises(ValidationError, match="window"):
        InputLimits(window=3, brightness=(1.0, 2.0), noise=(1.0, 2.0), sharpness=(1.0, 2.0))
    with pytest.raises(ValidationError, match="low < high"):
        InputLimits(window=50, brightness=(1.0, 2.0), noise=(float("nan"), 2.0), sharpness=(1.0, 2.0))
    with pytest.raises(ValidationError, match="sharpness"):
        InputLimits.model_validate({"window": 50, "brightness": [1, 2], "noise": [1, 2]})
    with pytest.raises(ValidationError, match="extra"):
        InputLimits.model_validate(
            {"window": 50, "brightness": [1, 2], "noise": [1, 2], "sharpness": [1, 2], "gain": [0, 1]}
        )


def test_window_means_are_every_rolling_mean() -> None:
    stats = np.arange(18, dtype=np.float64).reshape(6, 3)
    w = window_means(stats, 3)
    assert w.shape == (4, 3)
    assert np.allclose(w[0], stats[:3].mean(0)) and np.allclose(w[-1], stats[-3:].mean(0))
    with pytest.raises(ValueError, match="at least 10 frames"):
        window_means(stats, 10)


@pytest.fixture(scope="module")
def nominal_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "tablet_n1.0"
    generate("tablet", 120, 5, out, nuisance=1.0, masks=False, workers=1)
    return out


def _frames(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))]


def test_reference_limits_hold_the_reference_and_flag_wider_nuisance(nominal_set: Path, tmp_path: Path) -> None:
    limits, info = build_reference([nominal_set], window=10)
    assert info["folders"][0]["frames"] == 120 and info["folders"][0]["nuisance"] == [1.0]
    same = tmp_path / "tablet_n1.0"  # the same condition, other items
    generate("tablet", 60, 6, same, nuisance=1.0, masks=False, workers=1)
    mon = InputMonitor(limits)
    assert [mon.add(f) for f in _frames(same)] == [None] * 60 and not mon.drifting
    wide = tmp_path / "tablet_n3.0"
    generate("tablet", 30, 7, wide, nuisance=3.0, masks=False, workers=1)
    mon = InputMonitor(limits)
    flips = [c for c in (mon.add(f) for f in _frames(wide)) if c is not None]
    assert mon.drifting and flips[0].drifting and "noise" in flips[0].outside


def _defocus(frame: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """The lens loses focus: the scene blurs, the sensor noise after it stays (re-added)."""
    noise = frame_stats(frame)[1]
    blurred = cv2.GaussianBlur(frame.astype(np.float32), (0, 0), sigma)
    noisy = blurred + np.random.default_rng(seed).normal(0.0, noise, frame.shape)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def test_reference_limits_flag_a_defocused_lens(nominal_set: Path, tmp_path: Path) -> None:
    """A window of 10 frames gives wide limits: a strong defocus (sigma 2.5 px) shows it here."""
    limits, _ = build_reference([nominal_set], window=10)
    same = tmp_path / "tablet_n1.0"
    generate("tablet", 30, 8, same, nuisance=1.0, masks=False, workers=1)
    mon = InputMonitor(limits)
    flips = [c for c in (mon.add(_defocus(f, 2.5, i)) for i, f in enumerate(_frames(same))) if c is not None]
    assert mon.drifting and "sharpness" in flips[0].outside
    assert mon.means() is not None and mon.means()["sharpness"] < limits.sharpness[0]


def test_reference_refuses_bad_input(nominal_set: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 500 frames"):
        build_reference([nominal_set], window=500)
    with pytest.raises(ValueError, match="z must be"):
        build_reference([nominal_set], window=10, z=0.0)
    with pytest.raises(ValueError, match="no manifest"):
        build_reference([tmp_path], window=10)
    broken = tmp_path / "broken"
    generate("tablet", 12, 7, broken, masks=False, workers=1)
    victim = sorted(broken.glob("*.png"))[3]
    victim.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=victim.name):
        build_reference([broken], window=10)


def test_input_reference_command(nominal_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ref.json"
    assert main(["input-reference", "--images", str(nominal_set), "--window", "10", "--json", str(out)]) == 0
    said = capsys.readouterr()
    assert said.out == "" and "input_monitor" in said.err  # JSON on stdout only when asked
    assert main(["input-reference", "--images", str(nominal_set), "--window", "10", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    block = InputLimits.model_validate(printed["input_monitor"])
    assert block.window == 10 and block.noise[0] < block.noise[1]
    assert main(["input-reference", "--images", str(tmp_path / "missing"), "--window", "10"]) == 2
    assert "no manifest" in capsys.readouterr().err


def test_recipe_block_is_validated_with_a_clear_error(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "recipes" / "vial.yaml").read_text())
    data["input_monitor"] = {"window": 200, "brightness": [190, 180], "noise": [0.5, 5.0], "sharpness": [30, 50]}
    path = tmp_path / "vial.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="input_monitor"):
        load_recipe(str(path), ROOT)


def test_shipped_recipes_monitor_their_input() -> None:
    for product in Product:
        block = load_recipe(product.value, ROOT).recipe.input_monitor
        assert block is not None, product
        assert block.window >= 100 and "n2.5" in block.reference
