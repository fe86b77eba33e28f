"""Training end to end on a tiny rendered set: train, export (parity, determinism), evaluate.

A few optimiser steps only: this proves the plumbing and the checks, not model quality.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import NEEDS_TRAINING_EXTRA

pytestmark = [pytest.mark.torch, pytest.mark.slow]
torch = pytest.importorskip("torch", reason=NEEDS_TRAINING_EXTRA)
pytest.importorskip("torchvision", reason=NEEDS_TRAINING_EXTRA)
onnx = pytest.importorskip("onnx", reason=NEEDS_TRAINING_EXTRA)

from inspector.evaluation import evaluate  # noqa: E402
from inspector.inference.package import load_package  # noqa: E402
from inspector.station.bench import torch_eager  # noqa: E402
from inspector.synth.generate import generate  # noqa: E402
from inspector.taxonomy import Product  # noqa: E402
from training.cli import main as train_main  # noqa: E402
from training.data import (  # noqa: E402
    NuisanceAugment,
    SplitLeakError,
    SyntheticAnomaly,
    _channel_max,
    _channel_mean,
    check_disjoint,
    split_hash,
    split_of,
)
from training.export import ExportCheckError, check_determinism, check_parity, to_onnx  # noqa: E402
from training.nets import AutoEncoder, InspectorNet, NetConfig, uint8_to_float  # noqa: E402
from training.prefetch import Batch, BatchRecipe, batches  # noqa: E402
from training.train import (  # noqa: E402
    PLANS,
    WeightAverage,
    cpu_model,
    fit_anomaly,
    in_operating_range,
    load_checkpoint,
    repeat_units,
    reselect_thresholds,
    train,
)


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    # 30 % defects keeps enough ok items in validation (>= 50) to set thresholds.
    generate("vial", 420, 11, root / "train", defect_rate=0.3, nuisance=1.0, masks=False, workers=2)
    generate("vial", 24, 99, root / "fresh", defect_rate=0.5, nuisance=1.0, masks=False, workers=1)
    return {"train": root / "train", "fresh": root / "fresh"}


@pytest.fixture(scope="module")
def checkpoint(tiny_sets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    return train(
        "vial", [tiny_sets["train"]], out, epochs=1, batch_size=32, width_mult=0.5, ae_steps=4, log=lambda s: None
    )


def test_splits_are_hash_based_and_a_leak_fails_loudly() -> None:
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(200)]
    assert [split_of(s) for s in shas] == [split_of(s) for s in shas]
    assert {split_of(s) for s in shas} == {"train", "val", "test"}
    by_split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for s in shas:
        by_split[split_of(s)].append(s)
    proof = check_disjoint(by_split)
    assert proof["disjoint"] and proof["hashes"]["train"] == split_hash(list(reversed(by_split["train"])))
    leaked = {**by_split, "test": [*by_split["test"], by_split["train"][0]]}
    with pytest.raises(SplitLeakError, match="overlap"):
        check_disjoint(leaked)


def test_augmentations_keep_shape_and_range() -> None:
    torch.manual_seed(0)
    x = torch.rand(10, 1, 64, 48)
    y = NuisanceAugment(max_shift_px=3, max_rot_deg=2, p_affine=1.0, p_blur=1.0)(x)
    assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.equal(x, y)
    assert (
        "RandomAffine (shift 3 px, rotation 2 deg) p=1,"
        in NuisanceAugment(max_shift_px=3, max_rot_deg=2, p_affine=1.0, p_blur=0.0).describe()
    )
    units = np.full((4, 64, 48, 3), 120, np.uint8)
    units[:, 20:40, 10:30] = 40
    fake, masks = SyntheticAnomaly()(units, np.random.default_rng(1))
    assert fake.shape == units.shape and masks.shape == (4, 64, 48)
    changed = np.abs(fake.astype(int) - units.astype(int)).max(axis=3) >= 12
    assert np.array_equal(changed, masks > 0)


@pytest.mark.parametrize("channels", [1, 3])
def test_channel_reductions_equal_numpy_bit_for_bit(channels: int) -> None:
    # The synthetic changes use these in place of numpy's reductions; training results depend
    # on them being exact, including every sum whose third is a repeating binary fraction.
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (97, 61, channels), dtype=np.uint8)
    img[0, :channels] = 255
    img[1, :channels] = 0
    assert np.array_equal(_channel_mean(img), img.mean(axis=2).astype(np.float32))
    assert _channel_mean(img).dtype == np.float32
    assert np.array_equal(_channel_max(img), img.max(axis=2))
    every_sum = np.arange(256 * 3, dtype=np.int64)
    triples = np.stack(
        [np.minimum(every_sum, 255), np.clip(every_sum - 255, 0, 255), np.clip(every_sum - 510, 0, 255)], 1
    )
    grid = triples.astype(np.uint8)[None]
    assert np.array_equal(_channel_mean(grid), grid.mean(axis=2).astype(np.float32))


def test_uint8_to_float_scales_a_copy_bit_for_bit() -> None:
    batch = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (3, 10, 7, 3), dtype=np.uint8))
    x = uint8_to_float(batch)
    assert torch.equal(x, batch.permute(0, 3, 1, 2).to(torch.float32) * (1.0 / 255.0))
    assert x.is_contiguous(memory_format=torch.channels_last)
    already = batch.permute(0, 3, 1, 2).float().permute(0, 2, 3, 1).contiguous()
    before = already.clone()
    uint8_to_float(already)
    assert torch.equal(already, before)  # a float input is copied, never scaled in place


def test_checkpoint_holds_thresholds_splits_and_provenance(checkpoint: Path) -> None:
    ckpt, _ = load_checkpoint(checkpoint)
    assert ckpt["classes"][0] == "ok" and "crimp_defect" not in ckpt["classes"]
    assert ckpt["withheld_classes"] == ["crimp_defect"]
    assert 0.0 <= ckpt["thresholds"]["confidence"] <= 1.0
    assert ckpt["splits"]["disjoint"] is True and set(ckpt["splits"]["hashes"]) == {"train", "val", "test"}
    t = ckpt["training"]
    assert t["from_scratch"] is True and t["pretrained_weights"] is None and t["seed"] == 0
    assert t["train_seconds"] > 0 and t["code_version"].startswith("inspector-")
    # Retraining bit for bit needs the same kind of CPU: the record names it and torch's kernel set.
    assert t["cpu"] == cpu_model() and t["cpu"]  # "unknown" where the platform does not say
    assert t["cpu_capability"] == str(torch.backends.cpu.get_cpu_capability())
    # The record states the augmentation the classifier was trained with, as applied, not as once written.
    plan = PLANS[Product.VIAL]
    applied = NuisanceAugment(max_shift_px=plan.max_shift_px, max_rot_deg=plan.max_rot_deg)
    assert t["augmentations"] == applied.describe()
    assert "GaussianBlur(5, 0.2-1) p=0.15" in t["augmentations"]
    assert ckpt["acceptance_criteria"]["critical_escapes_max"] == 0


def test_thresholds_can_be_chosen_on_the_validated_operating_range(checkpoint: Path, tmp_path: Path) -> None:
    # Four items: rendered at nuisance 0.5, 2.5 and 3.0, and one real image (no scale); two units each.
    data = SimpleNamespace(item_nuisance=[0.5, 2.5, None, 3.0], unit_item=np.repeat(np.arange(4), 2))
    idx = np.arange(8)
    assert in_operating_range(data, idx, None).tolist() == idx.tolist()  # type: ignore[arg-type]
    assert in_operating_range(data, idx, 2.0).tolist() == [0, 1, 4, 5]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no validation units"):
        in_operating_range(data, np.array([2, 3, 6, 7]), 2.0)  # type: ignore[arg-type]
    # The tiny set is rendered at nuisance 1.0: a range up to 1.0 holds all of it, so the choice is
    # the training run's own, and the range is recorded with it; a range below it holds nothing.
    ckpt, _ = load_checkpoint(checkpoint)
    out = reselect_thresholds(checkpoint, tmp_path / "r.pt", nuisance_max=1.0)
    again = torch.load(out, weights_only=False)
    assert again["thresholds"]["nuisance_max"] == 1.0
    assert again["thresholds"]["confidence"] == ckpt["thresholds"]["confidence"]
    assert again["thresholds"]["anomaly"] == ckpt["thresholds"]["anomaly"]
    assert again["training"]["thresholds_reselected"] is True
    with pytest.raises(ValueError, match=r"nuisance <= 0\.5"):
        reselect_thresholds(checkpoint, tmp_path / "none.pt", nuisance_max=0.5)


def test_contrast_score_cancels_an_error_raised_everywhere() -> None:
    torch.manual_seed(0)
    net = InspectorNet(NetConfig(64, 48, 1, 3, ae_contrast=True))
    err = torch.rand(2, 8, 6) * 0.02 + 0.01
    err[1] = err[0] * 3.0  # the same unit, three times the error everywhere (noise, blur, light)
    err[:, 4, 3] += torch.tensor([0.2, 0.6])  # and the same local defect on top of each
    m = net.rec_score_map(err)
    assert torch.allclose(m.mean(dim=(1, 2)), torch.ones(2), atol=0.05)  # about 1 where nothing stands out
    assert abs(float(m[0].amax()) - float(m[1].amax())) / float(m[0].amax()) < 0.05  # eps: a few %
    absolute = InspectorNet(NetConfig(64, 48, 1, 3))
    assert torch.equal(absolute.rec_score_map(err), err)


def test_contrast_floor_stops_a_blurred_unit_inflating_its_error() -> None:
    err = torch.full((2, 8, 6), 0.02)
    err[0] *= 0.25  # restored far better than usual everywhere (a blurred frame)
    err[:, 4, 3] += 0.1  # the same leftover error on both
    plain = InspectorNet(NetConfig(64, 48, 1, 3, ae_contrast=True)).rec_score_map(err)
    floored = InspectorNet(NetConfig(64, 48, 1, 3, ae_contrast=True, ae_contrast_floor=0.02)).rec_score_map(err)
    assert float(plain[0].amax()) > 2 * float(plain[1].amax())  # unfloored: the blurred unit looks worse
    assert float(floored[0].amax()) < float(floored[1].amax())  # floored: no longer
    assert torch.allclose(floored[1], plain[1])  # a unit at or above the floor scores as before


def test_fit_sets_the_contrast_floor_at_the_ok_median() -> None:
    torch.manual_seed(0)
    net = InspectorNet(NetConfig(64, 48, 1, 3, ae_down=1, ae_contrast=True)).eval()
    net.autoencoder = _NoReconstruction()  # the error map is the image itself
    levels = np.arange(1, 102, dtype=np.uint8)  # unit k is a flat image at grey level k
    units = np.broadcast_to(levels[:, None, None, None], (101, 64, 48, 1)).copy()
    info = fit_anomaly(net, units, contrast_floor_quantile=0.5)
    assert net.cfg.ae_contrast_floor == pytest.approx(51 / 255, rel=1e-4)  # the median unit's mean
    assert info["contrast_floor"] == net.cfg.ae_contrast_floor
    fit_anomaly(net, units[:10])  # no quantile: the floor stays
    assert net.cfg.ae_contrast_floor == pytest.approx(51 / 255, rel=1e-4)


def test_channel_max_keeps_a_change_of_colour_whole() -> None:
    torch.manual_seed(0)
    cfg = NetConfig(64, 48, 3, 3, ae_down=1, ae_pool=1)
    by_mean, by_max = InspectorNet(cfg), InspectorNet(NetConfig(**{**cfg.to_dict(), "ae_channel_max": True}))
    by_max.autoencoder.load_state_dict(by_mean.autoencoder.state_dict())
    by_mean.eval()
    by_max.eval()
    x = torch.full((1, 3, 64, 48), 0.8)
    spot = x.clone()
    spot[0, 0, 20:30, 20:30] = 0.3  # a yellow spot on a white tablet: the blue channel drops, the others not
    with torch.no_grad():
        gain_mean = float((by_mean.ae_error_map(spot) - by_mean.ae_error_map(x)).amax())
        gain_max = float((by_max.ae_error_map(spot) - by_max.ae_error_map(x)).amax())
    assert gain_max > 2.0 * gain_mean > 0


class _NoReconstruction(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def test_overlapping_windows_keep_a_small_defect_whole() -> None:
    tiled = InspectorNet(NetConfig(64, 48, 1, 3, ae_down=1, ae_pool=2, ae_pool_stride=0)).eval()
    overlapping = InspectorNet(NetConfig(64, 48, 1, 3, ae_down=1, ae_pool=2, ae_pool_stride=1)).eval()
    for net in (tiled, overlapping):
        net.autoencoder = _NoReconstruction()  # the error map is the image itself
    x = torch.zeros(1, 1, 64, 48)
    x[0, 0, 21:23, 31:33] = 1.0  # a 2x2 defect across the corner of four tiles
    with torch.no_grad():
        assert float(tiled.ae_error_map(x).amax()) == pytest.approx(0.25)  # split four ways
        assert float(overlapping.ae_error_map(x).amax()) == pytest.approx(1.0)  # one window holds it all
    assert tiled.map_size == (32, 24) and overlapping.map_size == (63, 47)


def test_autoencoder_depth_is_a_setting_and_four_stages_load_old_checkpoints() -> None:
    # Four stages: the module names every package before the setting was built with.
    four = AutoEncoder(3, 16, 8)
    assert list(four.state_dict()) == [
        f"{part}.{i}.{p}"
        for part, idx in (("encoder", (0, 2, 4, 6, 8)), ("decoder", (0, 3, 6, 9, 12)))
        for i in idx
        for p in ("weight", "bias")
    ]
    three = AutoEncoder(3, 16, 8, stages=3)
    x = torch.rand(2, 3, 54, 50)
    with torch.no_grad():
        assert three.encoder(x).shape == (2, 8, 7, 7)  # 1/8 of the side, not 1/16
        assert four.encoder(x).shape == (2, 8, 4, 4)
        assert three(x).shape == x.shape and four(x).shape == x.shape
    with pytest.raises(ValueError, match="stages"):
        AutoEncoder(3, 16, 8, stages=5)
    net = InspectorNet(NetConfig(108, 100, 3, 5, ae_down=2, ae_stages=3))
    assert isinstance(net.autoencoder, AutoEncoder) and len(net.autoencoder.encoder) == 7


def test_part_scales_are_fitted_at_the_asked_quantile() -> None:
    net = InspectorNet(NetConfig(64, 48, 1, 3)).eval()
    units = np.random.default_rng(0).integers(0, 256, (200, 64, 48, 1), dtype=np.uint8)
    near = fit_anomaly(net, units, norm_quantile=0.5)
    far = fit_anomaly(net, units, norm_quantile=1.0)
    assert near["norm_quantile"] == 0.5 and far["norm_quantile"] == 1.0
    assert all(a < b for a, b in zip(near["norms"], far["norms"], strict=True))
    # The network carries the last fit: no ok unit scores above 1 on any part at the maximum.
    assert torch.allclose(net.ad_norm, torch.tensor(far["norms"], dtype=torch.float32))
    with torch.no_grad():
        _, anomaly, _ = net.outputs_float(torch.from_numpy(units).permute(0, 3, 1, 2).float() / 255.0)
    assert float(anomaly.max()) <= 1.0 + 1e-5


def test_reconstruction_score_switch_keeps_weights_and_refits_scales(checkpoint: Path, tmp_path: Path) -> None:
    ckpt, _ = load_checkpoint(checkpoint)
    # New vial training runs score contrast over overlapping windows.
    assert ckpt["net_config"]["ae_contrast"] is True and ckpt["net_config"]["ae_pool_stride"] == 1
    out = tmp_path / "absolute.pt"
    args = ["thresholds", "--checkpoint", str(checkpoint), "--out", str(out), "--reconstruction-score", "absolute"]
    assert train_main([*args, "--reconstruction-windows", "tiled"]) == 0
    again, net = load_checkpoint(out)
    assert again["net_config"]["ae_contrast"] is False and net.cfg.ae_contrast is False
    assert again["net_config"]["ae_pool_stride"] == 0 and net.map_size == (48, 32)
    assert again["training"]["reconstruction_rescored"]["weights_unchanged"] is True
    assert again["metrics"]["anomaly"]["parts"][0] == "reconstruction absolute error, one channel"
    assert "reconstruction absolute error" in again["training"]["architecture"]
    weights = [k for k in ckpt["state_dict"] if not k.startswith("ad_")]
    assert all(torch.equal(ckpt["state_dict"][k], again["state_dict"][k]) for k in weights)
    # Same Gaussian (same ok units; float rounding differs with the memory layout), a new scale
    # for the reconstruction part only.
    assert torch.allclose(ckpt["state_dict"]["ad_global_mean"], again["state_dict"]["ad_global_mean"], atol=1e-5)
    old_norm, new_norm = ckpt["state_dict"]["ad_norm"], again["state_dict"]["ad_norm"]
    assert not torch.isclose(old_norm[0], new_norm[0], rtol=0.05)
    assert torch.allclose(old_norm[1:], new_norm[1:], rtol=1e-3)
    assert len(again["threshold_history"]) == 1


def test_part_scale_quantile_switch_refits_every_scale(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "q.pt"
    args = ["thresholds", "--checkpoint", str(checkpoint), "--out", str(out)]
    assert train_main([*args, "--part-scale-quantile", "1.0"]) == 0
    ckpt, _ = load_checkpoint(checkpoint)
    again, _ = load_checkpoint(out)
    assert ckpt["metrics"]["anomaly"]["norm_quantile"] == 0.999  # the vial plan
    assert again["metrics"]["anomaly"]["norm_quantile"] == 1.0
    assert again["training"]["reconstruction_rescored"]["norm_quantile"] == 1.0
    assert again["net_config"] == ckpt["net_config"]  # scoring itself unchanged
    old_norm, new_norm = ckpt["state_dict"]["ad_norm"], again["state_dict"]["ad_norm"]
    assert bool((new_norm >= old_norm).all()) and bool((new_norm > old_norm).any())
    weights = [k for k in ckpt["state_dict"] if not k.startswith("ad_")]
    assert all(torch.equal(ckpt["state_dict"][k], again["state_dict"][k]) for k in weights)
    assert train_main([*args[:-1], str(tmp_path / "bad.pt"), "--part-scale-quantile", "0.2"]) == 2
    assert "--part-scale-quantile: must be a number from 0.5 to 1, got '0.2'" in capsys.readouterr().err
    assert not (tmp_path / "bad.pt").exists()


def test_anomaly_false_reject_share_sets_the_threshold_and_is_kept(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, _ = load_checkpoint(checkpoint)
    assert ckpt["thresholds"]["rule"]["anomaly_frr"] == 0.002  # the plan's default
    out = tmp_path / "f.pt"
    args = ["thresholds", "--checkpoint", str(checkpoint), "--out", str(out)]
    assert train_main([*args, "--anomaly-frr", "0.05"]) == 0
    again, _ = load_checkpoint(out)
    assert again["thresholds"]["rule"]["anomaly_frr"] == 0.05
    # A larger share lets the anomaly check reject more good items: its threshold can only fall.
    assert again["thresholds"]["anomaly"] <= ckpt["thresholds"]["anomaly"]
    assert again["state_dict"]["ad_norm"].tolist() == ckpt["state_dict"]["ad_norm"].tolist()
    # Re-chosen again without the option: the checkpoint's own share is kept.
    kept = tmp_path / "k.pt"
    capsys.readouterr()
    assert train_main(["thresholds", "--checkpoint", str(out), "--out", str(kept), "--json"]) == 0
    said = capsys.readouterr()  # not only a path: the per-class table, and what failed
    verdict = json.loads(said.out)
    assert "per class on validation:" in said.err and "right reason" in said.err
    assert ("NOT met on validation" in said.err) == (not verdict["criteria_met_on_val"])
    assert ("suggestion: collect more" in said.err) == bool(verdict["missed_classes"])
    assert load_checkpoint(kept)[0]["thresholds"]["rule"]["anomaly_frr"] == 0.05
    assert load_checkpoint(kept)[0]["thresholds"]["anomaly"] == again["thresholds"]["anomaly"]
    for bad in ("0", "0.2"):
        assert train_main([*args[:-1], str(tmp_path / "bad.pt"), "--anomaly-frr", bad]) == 2
        assert "--anomaly-frr: must be a number above 0 and at most 0.05" in capsys.readouterr().err
    assert not (tmp_path / "bad.pt").exists()


def test_weight_average_is_the_mean_of_the_added_states() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    states = []
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.normal_()
        net.train()(torch.randn(4, 1, 8, 8))  # moves the BatchNorm statistics and counter
        states.append({k: v.clone() for k, v in net.state_dict().items()})
        if len(states) == 1:
            avg = WeightAverage()
            with pytest.raises(ValueError, match="no weights were averaged"):
                avg.load_into(net)
        avg.add(net)
    avg.load_into(net)
    for k, v in net.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(v, torch.stack([s[k] for s in states]).mean(0), atol=1e-6), k
        else:  # the batch counter keeps its last value
            assert torch.equal(v, states[-1][k])


def test_weights_averaged_over_the_last_steps_are_recorded(
    tiny_sets: dict[str, Path], checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--product", "vial", "--data", str(tiny_sets["train"]), "--epochs", "2", "--batch-size", "32"]
    args += ["--ae-steps", "4", "--out", str(tmp_path / "avg"), "--average-last", "0.5"]
    assert train_main(args) == 0
    said = capsys.readouterr()
    assert said.out == "" and "weights averaged over the last" in said.err
    # Off a terminal: plain progress lines and each epoch in words, on stderr.
    assert "classifier:" in said.err and "steps" in said.err and "epoch 2/2: loss" in said.err
    assert "autoencoder step 4: loss" in said.err
    ckpt, _ = load_checkpoint(tmp_path / "avg" / "checkpoint.pt")
    steps = ckpt["training"]["steps"]
    assert ckpt["training"]["averaged_steps"] == round(steps * 0.5) > 1
    assert f"weights averaged over the last {round(steps * 0.5)} of {steps} steps" in ckpt["training"]["optimizer"]
    assert load_checkpoint(checkpoint)[0]["training"]["averaged_steps"] == 0  # the plan's default: none
    assert train_main([*args[:-1], "1"]) == 2
    assert "--average-last: must be a number at least 0 and below 1" in capsys.readouterr().err


def test_repeat_shows_a_class_units_n_times_and_refuses_bad_values(
    tiny_sets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = {"ok": 0, "crack": 1, "particle": 2}
    y = np.array([0, 1, 2, 1, 2, 2])
    units = np.array([1, 2, 3, 4])  # training units: crack 1, 3; particle 2, 4
    out = repeat_units(units, y, index, [("crack", 3)])
    assert sorted(out.tolist()) == [1, 1, 1, 2, 3, 3, 3, 4]
    assert repeat_units(units, y, index, []).tolist() == units.tolist()
    for bad, words in ((("ok", 2), "not a defect"), (("scratch", 2), "not a defect"), (("crack", 0), "1..20")):
        with pytest.raises(ValueError, match=words):
            repeat_units(units, y, index, [bad])
    args = ["train", "--product", "vial", "--data", str(tiny_sets["train"]), "--out", str(tmp_path), "--repeat"]
    assert train_main([*args, "crack3"]) == 2
    assert "argument --repeat: takes CLASS=N" in capsys.readouterr().err
    assert train_main([*args, "no_such_class=3"]) == 2
    assert "cannot repeat 'no_such_class'" in capsys.readouterr().err


def _batch_recipe() -> BatchRecipe:
    return BatchRecipe(NuisanceAugment(max_shift_px=4.0, max_rot_deg=5.0), SyntheticAnomaly(), 0.5, (16, 16))


def test_batches_from_the_worker_are_reproducible_and_exact() -> None:
    rng = np.random.default_rng(3)
    units = rng.integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    y = np.array([0, 0, 1, 2] * 10)
    jobs = [np.arange(k, k + 8) for k in range(0, 40, 8)]

    def run() -> list[Batch]:
        # The worker's draws come from its own seeds, not this process's generators.
        torch.manual_seed(int(rng.integers(1 << 30)))
        return list(batches(units, y, jobs, _batch_recipe(), 5, workers=1))

    made = run()
    assert len(made) == len(jobs) and all(b.x.shape == (8, 3, 64, 64) for b in made)
    again = run()
    for a, b in zip(made, again, strict=True):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.seg_target, b.seg_target)
        assert a.fake.tolist() == b.fake.tolist()
    # Changed units are ok units, and their change shows in the map targets.
    assert all(set(y[jobs[k]][b.fake].tolist()) <= {0} for k, b in enumerate(made))
    assert any(len(b.fake) for b in made) and all((b.seg_target.sum() > 0) == bool(len(b.fake)) for b in made)
    # Pixels travel as uint8 and stay exact: every value is a whole number of 1/255 steps.
    assert all(torch.equal(b.x, uint8_to_float((b.x * 255).round().to(torch.uint8).permute(0, 2, 3, 1))) for b in made)
    with pytest.raises(ValueError, match="prep workers must be 0 or 1"):
        next(batches(units, y, jobs, _batch_recipe(), 5, workers=2))


def test_training_with_a_prep_worker_is_reproducible_and_recorded(
    tiny_sets: dict[str, Path], checkpoint: Path, tmp_path: Path
) -> None:
    kw = {"epochs": 1, "batch_size": 32, "width_mult": 0.5, "ae_steps": 4, "log": lambda s: None}
    a_path = train("vial", [tiny_sets["train"]], tmp_path / "a", prep_workers=1, **kw)
    b_path = train("vial", [tiny_sets["train"]], tmp_path / "b", prep_workers=1, **kw)
    a, b = (torch.load(p, weights_only=False) for p in (a_path, b_path))
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["thresholds"] == b["thresholds"]
    assert a["training"]["prep_workers"] == 1
    assert load_checkpoint(checkpoint)[0]["training"]["prep_workers"] == 0
    assert torch.get_num_threads() == 2  # restored for the rest of the process


def _smoke_export(checkpoint: Path) -> list[str]:
    """A few optimiser steps may miss the acceptance criteria: such a smoke checkpoint is exported saying so."""
    met = load_checkpoint(checkpoint)[0]["thresholds"]["criteria_met_on_val"]
    return [] if met else ["--allow-failed", "smoke test: a few optimiser steps, not a model"]


@pytest.fixture(scope="module")
def package(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("models")
    args = ["export", "--checkpoint", str(checkpoint), "--models-dir", str(models), "--version", "0.1.0"]
    assert train_main([*args, *_smoke_export(checkpoint)]) == 0
    return models / "vial" / "0.1.0"


def _with_criteria(checkpoint: Path, met: bool, path: Path) -> Path:
    """The smoke checkpoint as one that met (or missed) every criterion on validation."""
    ckpt = torch.load(checkpoint, weights_only=False)
    ckpt["thresholds"] = {**ckpt["thresholds"], "criteria_met_on_val": met}
    if met:  # every class as validation would show it for a model that learned them all
        val = ckpt["metrics"]["val"]
        val.update(per_class_recall=dict.fromkeys(val["per_class_recall"], 1.0), false_reject_rate=0.0,
                   critical_escapes=0)  # fmt: skip
    torch.save(ckpt, path)
    return path


def test_export_refuses_a_checkpoint_that_missed_its_criteria_unless_told_why(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = _with_criteria(checkpoint, False, tmp_path / "failed.pt")
    models = tmp_path / "models"
    args = ["export", "--checkpoint", str(failed), "--models-dir", str(models), "--version", "0.2.0"]
    capsys.readouterr()
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert "acceptance criteria not met on validation: false reject rate" in err and "--allow-failed" in err
    assert len(err.strip().splitlines()) == 1 and not models.exists(), "nothing written"
    assert train_main([*args, "--allow-failed", "  "]) == 2, "a reason must say something"
    assert train_main([*args, "--allow-failed", "engineering comparison only", "--json"]) == 0
    said = capsys.readouterr()
    assert json.loads(said.out)["package"] == str(models / "vial" / "0.2.0") and "FAILED" in said.err
    rec = load_package(models / "vial" / "0.2.0").record
    assert rec.status == "draft" and rec.criteria_failed is not None
    assert rec.criteria_failed.reason == "engineering comparison only"
    assert rec.criteria_failed.failed.startswith("acceptance criteria not met on validation")
    assert any("FAILED" in line for line in rec.intended_use["limits"])
    # Its status cannot leave draft, and the mark cannot be dropped from the record alone.
    from pydantic import ValidationError

    from inspector.inference.package import ModelIntegrityError, ModelRecord

    data = rec.model_dump(mode="json")
    with pytest.raises(ValidationError, match="stays draft"):
        ModelRecord.model_validate({**data, "status": "approved"})
    record_file = models / "vial" / "0.2.0" / "record.json"
    record_file.write_text(json.dumps({**data, "criteria_failed": None}), encoding="utf-8")
    with pytest.raises(ModelIntegrityError, match="criteria_failed"):
        load_package(models / "vial" / "0.2.0")
    # A checkpoint that met its criteria exports with no mark.
    passed = _with_criteria(checkpoint, True, tmp_path / "passed.pt")
    assert train_main(["export", "--checkpoint", str(passed), "--models-dir", str(models), "--version", "0.3.0"]) == 0
    assert load_package(models / "vial" / "0.3.0").record.criteria_failed is None


def test_training_writes_results_csv_and_a_curve(checkpoint: Path) -> None:
    from tests.unit.test_plots import assert_picture
    from training.results import read_results

    rows = read_results(checkpoint.parent / "results.csv")
    assert [r["phase"] for r in rows] == ["classifier", "autoencoder"]  # 1 epoch, 4 autoencoder steps
    ckpt, _ = load_checkpoint(checkpoint)
    epoch = ckpt["metrics"]["history"][0]
    assert rows[0]["epoch"] == 1 and rows[0]["loss"] == epoch["loss"] and rows[0]["val_acc"] == epoch["val_acc"]
    assert rows[1]["step"] == 4 and rows[1]["loss"] > 0
    assert_picture(checkpoint.parent / "results.png", min_width=800, min_height=300)


def test_training_is_reproducible(tiny_sets: dict[str, Path], checkpoint: Path, package: Path, tmp_path: Path) -> None:
    again = train(
        "vial", [tiny_sets["train"]], tmp_path, epochs=1, batch_size=32, width_mult=0.5, ae_steps=4, log=lambda s: None
    )
    a = torch.load(checkpoint, weights_only=False)["state_dict"]
    b = torch.load(again, weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The rerun reproduces the exported package itself: weights, thresholds, splits and ONNX graph.
    out = tmp_path / "compare.json"
    assert train_main(["compare", "--checkpoint", str(again), "--model", str(package), "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["identical"] is True and all(result["checks"].values()), result["checks"]
    assert result["weights"] == {"tensors": len(a), "differing": 0, "differing_names": [], "max_abs_diff": 0.0}
    assert result["model"]["sha256"] == load_package(package).record.sha256


def test_compare_names_what_a_retrain_changed(
    checkpoint: Path, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = torch.load(checkpoint, weights_only=False)
    name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and v.ndim == 4)
    ckpt["state_dict"][name] = ckpt["state_dict"][name] + 0.001
    ckpt["thresholds"] = {**ckpt["thresholds"], "anomaly": ckpt["thresholds"]["anomaly"] + 0.01}
    changed = tmp_path / "changed.pt"
    torch.save(ckpt, changed)
    capsys.readouterr()
    assert train_main(["compare", "--checkpoint", str(changed), "--model", str(package), "--json"]) == 1
    said = capsys.readouterr()
    result = json.loads(said.out)
    assert "does NOT reproduce" in said.err and "weights" in said.err
    assert result["identical"] is False
    assert result["checks"] == {
        "classes": True,
        "net_config": True,
        "weights": False,
        "thresholds": False,
        "split_hashes": True,
        "training_sets": True,
        "onnx_graph": False,
    }
    assert result["weights"]["differing"] == 1 and result["weights"]["differing_names"] == [name]
    assert result["weights"]["max_abs_diff"] == pytest.approx(0.001, rel=1e-3)
    thresholds = result["thresholds"]
    assert thresholds["checkpoint"]["anomaly"] == pytest.approx(thresholds["package"]["anomaly"] + 0.01)


def test_compare_refuses_what_it_cannot_compare(
    checkpoint: Path, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in package.iterdir():
        if f.name != "torch_weights.pt":
            (bare / f.name).write_bytes(f.read_bytes())
    capsys.readouterr()
    assert train_main(["compare", "--checkpoint", str(checkpoint), "--model", str(bare)]) == 2
    assert "ships no torch weights" in capsys.readouterr().err
    assert train_main(["compare", "--checkpoint", str(tmp_path / "none.pt"), "--model", str(package)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert train_main(["compare", "--checkpoint", str(garbage), "--model", str(package)]) == 2
    assert "not a readable training checkpoint" in capsys.readouterr().err
    (bare / "model.onnx").write_bytes(b"tampered")
    assert train_main(["compare", "--checkpoint", str(checkpoint), "--model", str(bare)]) == 2
    assert "does not match its record" in capsys.readouterr().err


@pytest.mark.parametrize("shape", [(64, 48, 1), (108, 100, 3)])
def test_folded_stem_is_the_trained_stem(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    h, w, c = shape
    net = InspectorNet(NetConfig(h, w, c, 4)).eval()
    x = torch.rand(3, c, h, w)
    with torch.no_grad():
        trained = net.stem(x)
        net.fold_stem = True
        folded = net.stem(x)
        net.fold_stem = False
    assert folded.shape == trained.shape
    assert torch.allclose(folded, trained, atol=1e-5)
    # The graph exports the folded stem, with no space-to-depth left in it, and matches the module.
    data = to_onnx(net)
    assert net.fold_stem is False  # the module itself is not changed by the export
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert "DepthToSpace" not in ops and "SpaceToDepth" not in ops
    assert len([n for n in onnx.load_from_string(data).graph.node if n.op_type == "Transpose"]) == 1  # NHWC -> NCHW
    units = np.random.default_rng(1).integers(0, 255, (4, h, w, c), dtype=np.uint8)
    assert check_parity(net, data, units)["passed"]


def test_export_package_and_evaluate(checkpoint: Path, tiny_sets: dict[str, Path], tmp_path: Path) -> None:
    models = tmp_path / "models"
    export = ["export", "--checkpoint", str(checkpoint), "--models-dir", str(models), "--version", "0.0.1"]
    assert train_main([*export, *_smoke_export(checkpoint)]) == 0
    folder = models / "vial" / "0.0.1"
    package = load_package(folder)  # hash + metadata verified
    rec = package.record
    assert rec.status == "draft" and rec.unit == "item" and rec.input.height == 384 and rec.input.channels == 1
    assert rec.metrics["parity"]["passed"] and rec.metrics["parity"]["argmax_identical"]
    assert rec.metrics["parity"]["max_abs_diff_scores"] <= 1e-4
    assert rec.metrics["determinism"]["bit_identical"]
    assert rec.split_hashes == load_checkpoint(checkpoint)[0]["splits"]["hashes"]
    assert rec.training["withheld_classes"] == ["crimp_defect"] and rec.training["from_scratch"] is True
    assert rec.acceptance_criteria["false_reject_rate_max"] == 0.005
    assert len(package.onnx_bytes) < 8_000_000
    # Versions are immutable: a second export to the same version is refused.
    assert train_main([*export, *_smoke_export(checkpoint)]) == 2
    # The torch weights sit next to their own graph and the eager bench runs them.
    weights = torch.load(folder / "torch_weights.pt", map_location="cpu", weights_only=True)
    assert weights["onnx_sha256"] == rec.sha256 and weights["classes"] == rec.classes
    eager = torch_eager(folder, "vial", frames=5, seed=1)
    assert eager["torch_ms_p50"] is not None and eager["torch_ms_p50"] > 0, eager
    assert eager["torch_parity_argmax_identical"] is True
    result = evaluate(folder, tiny_sets["fresh"])
    assert result["n"] == 24 and result["model"]["sha256"] == rec.sha256
    assert sum(map(sum, result["confusion_matrix"]["counts"])) == 24
    assert result["infer_ms_p50"] > 0 and "acceptance" in result
    results = tmp_path / "fresh.json"
    results.write_text(json.dumps(result), encoding="utf-8")  # the report is plain JSON
    assert train_main(["report", "--package", str(folder), "--results", str(results)]) == 0
    # The package's report says where it was trained: a retrain bit for bit needs that kind of CPU.
    report = (folder / "evaluation.md").read_text()
    assert f"{rec.training['cpu']}, {rec.training['cpu_capability']}" in report
    # Per class, on validation and on the test set, with what to collect where a class misses.
    assert report.count("| class | kind | n | recall | right reason | needs | verdict | taken for |") == 2
    assert ("What to collect:" in report) == ("**missed**" in report)


def test_three_stage_autoencoder_with_floored_contrast_exports_with_parity() -> None:
    # The blister plan's anomaly side: three stages, contrast floored, overlapping windows.
    torch.manual_seed(0)
    cfg = NetConfig(108, 100, 3, 5, ae_down=2, ae_stages=3, ae_contrast=True, ae_contrast_floor=0.02, ae_pool_stride=1)
    net = InspectorNet(cfg).eval()
    units = np.random.default_rng(1).integers(0, 255, (4, 108, 100, 3), dtype=np.uint8)
    units[0] = 128  # a flat unit: its mean error sits below the floor
    data = to_onnx(net)
    assert check_parity(net, data, units)["passed"]
    assert check_determinism(data, units)["bit_identical"]
    # The floor is in the graph: one more clamp than the same network without it.
    unfloored = InspectorNet(replace(cfg, ae_contrast_floor=0.0)).eval()
    unfloored.load_state_dict(net.state_dict())

    def clamps(model: bytes) -> int:
        return sum(n.op_type in ("Max", "Clip") for n in onnx.load_from_string(model).graph.node)

    assert clamps(data) == clamps(to_onnx(unfloored)) + 1


def test_parity_and_determinism_checks_catch_a_wrong_graph() -> None:
    torch.manual_seed(0)
    net = InspectorNet(NetConfig(108, 100, 3, 4, width_mult=0.5, unshuffle=1)).eval()
    units = np.random.default_rng(0).integers(0, 255, (6, 108, 100, 3), dtype=np.uint8)
    data = to_onnx(net)
    assert check_parity(net, data, units)["passed"]
    assert check_determinism(data, units)["bit_identical"]
    with torch.no_grad():
        net.classifier[-1].bias.add_(torch.linspace(-50, 50, 4))  # the torch model no longer matches the graph
    with pytest.raises(ExportCheckError, match="parity"):
        check_parity(net, data, units)
