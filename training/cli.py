"""``inspector-train`` / ``python -m training``: prepare, train, export, evaluate.

- ``prepare``: render training sets over a range of nuisance scales (manifest folders);
- ``train``: manifest folders -> ``checkpoint.pt`` with thresholds (from validation only);
- ``export``: checkpoint -> verified package ``models/<product>/<version>/``;
- ``evaluate``: the runtime's ``inspector evaluate`` (same code, for convenience here);
- ``report``: ``evaluation.md`` of a package from evaluate results, with an independence check;
- ``compare``: does a retrained checkpoint reproduce a package bit for bit (re-performance)?
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from inspector.cli import evaluate as evaluate_command
from inspector.taxonomy import Product
from training.thresholds import ANOMALY_FRR


def _command_line(argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return "python -m training " + " ".join(shlex.quote(a) for a in args)


def cmd_prepare(args: argparse.Namespace) -> int:
    from inspector.synth.generate import generate

    out = Path(args.out)
    made = []
    for i, nuisance in enumerate(args.nuisance):
        seed = args.seed + i
        folder = out / f"{args.product}_seed{seed}_n{nuisance:.1f}"
        start = time.perf_counter()
        entries = generate(
            args.product,
            args.count,
            seed,
            folder,
            defect_rate=args.defect_rate,
            nuisance=nuisance,
            masks=False,
            workers=args.workers,
        )
        made.append(
            {
                "folder": str(folder),
                "images": len(entries),
                "seed": seed,
                "nuisance": nuisance,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(json.dumps(made[-1]), flush=True)
    return 0


def _repeat(values: Sequence[str] | None) -> dict[str, int] | None:
    """``["foil_damage=3"]`` -> ``{"foil_damage": 3}``; a malformed value is a clear error."""
    if values is None:
        return None
    out = {}
    for v in values:
        name, sep, n = v.partition("=")
        if not sep or not name or not n.isdigit():
            raise ValueError(f"--repeat takes CLASS=N (N a whole number), got {v!r}")
        out[name] = int(n)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from training.train import train

    path = train(
        args.product,
        args.data,
        args.out,
        seed=args.seed,
        withheld=args.withhold,
        epochs=args.epochs,
        batch_size=args.batch_size,
        width_mult=args.width_mult,
        ae_steps=args.ae_steps,
        threshold_nuisance_max=args.threshold_nuisance_max,
        anomaly_frr=args.anomaly_frr,
        average_last=args.average_last,
        repeat=_repeat(args.repeat),
        **_reconstruction_scoring(args),
        prep_workers=args.prep_workers,
        command=args.command_line,
        log=lambda s: print(s, flush=True),
    )
    print(json.dumps({"checkpoint": str(path)}))
    return 0


def cmd_thresholds(args: argparse.Namespace) -> int:
    from training.train import reselect_thresholds

    path = reselect_thresholds(
        args.checkpoint,
        args.out,
        nuisance_max=args.threshold_nuisance_max,
        anomaly_frr=args.anomaly_frr,
        **_reconstruction_scoring(args),
        command=args.command_line,
    )
    print(json.dumps({"checkpoint": str(path)}))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from training.export import export

    folder = export(args.checkpoint, args.models_dir, version=args.version, command=args.command_line)
    print(json.dumps({"package": str(folder)}))
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from training.export import write_torch_weights
    from training.train import load_checkpoint

    ckpt, net = load_checkpoint(args.checkpoint)
    path = write_torch_weights(ckpt, net, args.package)
    print(json.dumps({"torch_weights": str(path)}))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from training.report import write_report

    path = write_report(args.package, args.results)
    print(json.dumps({"report": str(path)}))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Exit 0 when the checkpoint reproduces the package, 1 when it differs, 2 when they cannot be compared."""
    from inspector.inference.package import ModelIntegrityError
    from training.compare import compare

    try:
        result = compare(args.checkpoint, args.model)
    except ModelIntegrityError as exc:
        raise ValueError(str(exc)) from None
    text = json.dumps(result, indent=2)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if result["identical"] else 1


RECONSTRUCTION_SCORES = ("contrast", "absolute")
RECONSTRUCTION_CHANNELS = ("max", "mean")
# Error map windows before the max: every position (stride 1) or side by side (stride = window).
RECONSTRUCTION_WINDOWS = {"overlapping": 1, "tiled": 0}


def _reconstruction_scoring(args: argparse.Namespace) -> dict[str, bool | int | float | None]:
    """The anomaly scoring options as ``train`` / ``reselect_thresholds`` keywords (None: keep)."""
    score, channels, windows = args.reconstruction_score, args.reconstruction_channels, args.reconstruction_windows
    return {
        "ae_contrast": None if score is None else score == "contrast",
        "ae_channel_max": None if channels is None else channels == "max",
        "ae_pool_stride": None if windows is None else RECONSTRUCTION_WINDOWS[windows],
        "norm_quantile": args.part_scale_quantile,
    }


def _add_reconstruction_options(p: argparse.ArgumentParser, when_omitted: str) -> None:
    p.add_argument(
        "--reconstruction-score",
        choices=RECONSTRUCTION_SCORES,
        default=None,
        help=f"anomaly reconstruction part: contrast = error over its mean per unit, absolute = error ({when_omitted})",
    )
    p.add_argument(
        "--reconstruction-channels",
        choices=RECONSTRUCTION_CHANNELS,
        default=None,
        help=f"reconstruction error of colour units: max over channels or their mean ({when_omitted})",
    )
    p.add_argument(
        "--reconstruction-windows",
        choices=list(RECONSTRUCTION_WINDOWS),
        default=None,
        help=f"error map windows before the max: overlapping (every position) or tiled ({when_omitted})",
    )
    p.add_argument(
        "--part-scale-quantile",
        type=float,
        default=None,
        metavar="Q",
        help=f"ok-train quantile each anomaly part is divided by before the max, 0.5..1 ({when_omitted})",
    )


def _add_threshold_range(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold-nuisance-max",
        type=float,
        default=None,
        help="choose thresholds on validation items up to this nuisance scale (the validated operating range;"
        " items without a scale always count); default: all validation items",
    )
    p.add_argument(
        "--anomaly-frr",
        type=float,
        default=None,
        metavar="F",
        help="share of good validation items the anomaly check alone may reject, above 0 and at most 0.05"
        f" (the anomaly threshold is their 1 - F quantile); default {ANOMALY_FRR}",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inspector-train", description="Train and export Inspector models (CPU, torch)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pr = sub.add_parser("prepare", help="render training sets over a range of nuisance scales")
    pr.add_argument("--product", required=True, choices=[x.value for x in Product])
    pr.add_argument("--out", required=True, type=Path, help="parent folder; one sub-folder per nuisance scale")
    pr.add_argument("--count", required=True, type=int, help="images per nuisance scale")
    pr.add_argument("--seed", required=True, type=int, help="base seed; set i uses seed + i")
    pr.add_argument("--nuisance", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    pr.add_argument("--defect-rate", type=float, default=0.5)
    pr.add_argument("--workers", type=int, default=None)
    pr.set_defaults(func=cmd_prepare)

    t = sub.add_parser("train", help="train from manifest folders -> checkpoint with thresholds")
    t.add_argument("--product", required=True, choices=[x.value for x in Product])
    t.add_argument("--data", required=True, nargs="+", type=Path, help="one or more labelled set folders")
    t.add_argument("--out", required=True, type=Path, help="run folder for checkpoint.pt")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--withhold", nargs="*", default=None, help="defect classes kept from the classifier")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--width-mult", type=float, default=None)
    t.add_argument("--ae-steps", type=int, default=None, help="autoencoder-only steps (default: per product)")
    t.add_argument(
        "--average-last",
        type=float,
        default=None,
        metavar="SHARE",
        help="average the classifier's weights over this share of its last steps, 0..1 (default: per product)",
    )
    t.add_argument(
        "--repeat",
        nargs="+",
        default=None,
        metavar="CLASS=N",
        help="show each training unit of CLASS N times per classifier epoch (default: per product)",
    )
    t.add_argument(
        "--prep-workers",
        type=int,
        choices=(0, 1),
        default=0,
        help="1: prepare classifier batches in a worker process beside training (faster on 2 cores; "
        "other weights than 0 for the same seed, as every shipped package was trained)",
    )
    _add_threshold_range(t)
    _add_reconstruction_options(t, "default: the product's plan")
    t.set_defaults(func=cmd_train)

    th = sub.add_parser("thresholds", help="re-choose a checkpoint's thresholds on its validation split")
    th.add_argument("--checkpoint", required=True, type=Path)
    th.add_argument("--out", required=True, type=Path, help="new checkpoint file")
    _add_threshold_range(th)
    _add_reconstruction_options(
        th, "switches a trained checkpoint: weights unchanged, part scales refitted on ok train units"
    )
    th.set_defaults(func=cmd_thresholds)

    w = sub.add_parser("weights", help="add torch_weights.pt (for the torch eager bench) to an exported package")
    w.add_argument("--checkpoint", required=True, type=Path)
    w.add_argument("--package", required=True, type=Path, help="models/<product>/<version>")
    w.set_defaults(func=cmd_weights)

    e = sub.add_parser("export", help="checkpoint -> verified model package (parity + determinism checks)")
    e.add_argument("--checkpoint", required=True, type=Path)
    e.add_argument("--models-dir", type=Path, default=Path("models"))
    e.add_argument("--version", default="1.0.0")
    e.set_defaults(func=cmd_export)

    r = sub.add_parser("report", help="write a package's evaluation.md from evaluate --json results")
    r.add_argument("--package", required=True, type=Path, help="model package folder")
    r.add_argument("--results", required=True, nargs="+", type=Path, help="evaluate JSON files, primary first")
    r.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="does a retrained checkpoint reproduce a model package bit for bit?")
    c.add_argument("--checkpoint", required=True, type=Path, help="checkpoint of the rerun (train, then thresholds)")
    c.add_argument("--model", required=True, type=Path, help="models/<product>/<version>")
    c.add_argument("--json", type=Path, default=None, help="also write the comparison here")
    c.set_defaults(func=cmd_compare)

    evaluate_command.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = _command_line(argv)
    try:
        code: int = args.func(args)
    except (ValueError, FileExistsError) as exc:
        print(f"inspector-train: error: {exc}", file=sys.stderr)
        return 2
    return code
