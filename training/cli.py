"""``inspector-train``: prepare, train, thresholds, weights, export, report, compare, evaluate.

- ``prepare``: render training sets over a range of nuisance scales (manifest folders);
- ``train``: manifest folders -> ``checkpoint.pt`` with thresholds (from validation only), with
  ``results.csv`` and ``results.png`` beside it and a progress bar on the terminal;
- ``export``: checkpoint -> verified package ``models/<product>/<version>/``; refused when the
  checkpoint missed its acceptance criteria, unless ``--allow-failed REASON``;
- ``evaluate``: the runtime's ``inspector evaluate`` (same code, for convenience here);
- ``report``: ``evaluation.md`` of a package from evaluate results, with an independence check;
- ``compare``: does a retrained checkpoint reproduce a package bit for bit (re-performance)?

The output convention and exit statuses are the ``inspector`` command's
(:mod:`inspector.cli.common`). Every command but ``prepare``, ``report`` and ``evaluate`` needs
torch, which the training extra installs; without it they say so in one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inspector.cli import evaluate as evaluate_command
from inspector.cli.common import (
    EXIT_FAILED,
    EXIT_REFUSED,
    SEED_MAX,
    HelpFormatter,
    Parser,
    Progress,
    Subparsers,
    add_command,
    add_json_option,
    bounded,
    emit_json,
    say,
)
from inspector.cli.samples import add_line_presentation, add_look_option
from inspector.inference.package import ModelIntegrityError
from inspector.synth import MAX_NUISANCE
from inspector.taxonomy import Product
from training.thresholds import ANOMALY_FRR, ANOMALY_FRR_MAX

PROG = "inspector-train"
INSTALL_HINT = "install the training extra: uv sync --extra training (pip: pip install 'inspector[training]')"


def _command_line(argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return f"{PROG} " + " ".join(shlex.quote(a) for a in args)


def cmd_prepare(args: argparse.Namespace) -> int:
    from inspector.cli.samples import line_presentation
    from inspector.synth.generate import generate

    out = Path(args.out)
    line = line_presentation(args)
    # A set with a line's presentation says so in its name (and each image in its manifest entry),
    # as does a set of another line's look.
    suffix = "" if line is None else f"_s{line.shift_px:g}t{line.turn_deg:g}"
    look = "" if args.look in (None, "nominal") else f"_{args.look}"
    made = []
    for i, nuisance in enumerate(args.nuisance):
        seed = args.seed + i
        folder = out / f"{args.product}{look}_seed{seed}_n{nuisance:.1f}{suffix}"
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
            line=line,
            look=args.look,
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
        say(f"{folder}: {len(entries)} images, seed {seed}, nuisance {nuisance:g}, {made[-1]['seconds']} s")
    emit_json(args, made)
    return 0


def class_count(text: str) -> tuple[str, int]:
    """``foil_damage=3`` -> ``("foil_damage", 3)`` (an argparse type: a malformed value is a one-line error)."""
    name, sep, n = text.partition("=")
    if not sep or not name or not n.isdigit():
        raise argparse.ArgumentTypeError(f"takes CLASS=N (N a whole number), got {text!r}")
    return name, int(n)


class TrainingReport:
    """What ``train`` shows on stderr: a progress bar per phase (plain lines off a terminal) and the epochs."""

    def __init__(self) -> None:
        self.bar: Progress | None = None
        self.phase = ""
        self.epochs: int | None = None

    def progress(self, phase: str, step: int, steps: int, loss: float) -> None:
        if phase != self.phase or self.bar is None:
            self.close()
            self.phase = phase
            self.bar = Progress(phase, steps, "steps", every_s=30.0)
        extra = f"loss {loss:.4g}"
        if phase == "classifier" and self.epochs:
            per_epoch = max(1, steps // self.epochs)
            extra = f"epoch {min(self.epochs, (step - 1) // per_epoch + 1)}/{self.epochs} | {extra}"
        self.bar.update(step, extra)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def log(self, message: str) -> None:
        """A line from training: an epoch (JSON) in words, anything else as it is."""
        try:
            row = json.loads(message)
        except ValueError:
            row = None
        if isinstance(row, dict) and "epoch" in row:
            text = (
                f"epoch {row['epoch']}{f'/{self.epochs}' if self.epochs else ''}: loss {row['loss']},"
                f" train acc {row['train_acc']}, val acc {row['val_acc']}, {row['seconds']} s"
            )
            if "val_loss" in row:
                text += f"; balanced val loss {row['val_loss']} ({row['event']})"
        elif isinstance(row, dict) and "ae_step" in row:
            text = f"autoencoder step {row['ae_step']}: loss {row['loss']}, {row['seconds']} s"
        elif isinstance(row, dict) and "averaged_steps" in row:
            text = f"weights averaged over the last {row['averaged_steps']} steps: val acc {row['val_acc']}"
        else:
            text = message
        if self.bar is not None and self.bar.tty:
            self.bar.stream.write("\r" + " " * 79 + "\r")  # the bar is redrawn on the next step
        say(text)


def cmd_train(args: argparse.Namespace) -> int:
    from training.train import PLANS, train

    report = TrainingReport()
    # Epochs shown as "n/N": the fixed count, or the most the convergence rule may run.
    report.epochs = args.epochs or args.max_epochs or PLANS[Product(args.product)].convergence.max_epochs
    try:
        path = train(
            args.product,
            args.data,
            args.out,
            seed=args.seed,
            withheld=args.withhold,
            epochs=args.epochs,
            max_epochs=args.max_epochs,
            batch_size=args.batch_size,
            width_mult=args.width_mult,
            ae_steps=args.ae_steps,
            threshold_nuisance_max=args.threshold_nuisance_max,
            anomaly_frr=args.anomaly_frr,
            average_last=args.average_last,
            repeat=None if args.repeat is None else dict(args.repeat),
            **_reconstruction_scoring(args),
            prep_workers=args.prep_workers,
            recipe=args.recipe,
            command=args.command_line,
            log=report.log,
            progress=report.progress,
        )
    finally:
        report.close()
    say(f"checkpoint {path}; results.csv and results.png beside it")
    verdict = _say_verdict(path)
    emit_json(args, {"checkpoint": str(path), "results_csv": str(path.parent / "results.csv"), **verdict})
    return 0


def _say_verdict(path: Path) -> dict[str, Any]:
    """The checkpoint's per-class table on validation, the classes that miss and what to collect."""
    import torch

    from training.verdict import format_verdict, of_checkpoint

    verdict = of_checkpoint(torch.load(path, map_location="cpu", weights_only=False))
    say(format_verdict(verdict))
    return {"criteria_met_on_val": verdict.met, "missed_classes": verdict.missed_classes,
            "suggestions": verdict.suggestions}  # fmt: skip


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
    say(f"checkpoint {path}")
    emit_json(args, {"checkpoint": str(path), **_say_verdict(path)})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from training.export import export

    folder = export(
        args.checkpoint,
        args.models_dir,
        version=args.version,
        command=args.command_line,
        allow_failed=args.allow_failed,
    )
    failed = " (exported although it FAILED its acceptance criteria: draft, and its record says why)"
    say(f"package {folder}{failed if args.allow_failed else ''}")
    emit_json(args, {"package": str(folder)})
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from training.export import write_torch_weights
    from training.train import load_checkpoint

    ckpt, net = load_checkpoint(args.checkpoint)
    path = write_torch_weights(ckpt, net, args.package)
    say(f"torch weights {path}")
    emit_json(args, {"torch_weights": str(path)})
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from training.report import write_report

    path = write_report(args.package, args.results)
    say(f"report {path}")
    emit_json(args, {"report": str(path)})
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Exit 0 when the checkpoint reproduces the package, 1 when it differs, 2 when they cannot be compared."""
    from inspector.inference.package import ModelIntegrityError
    from training.compare import compare

    try:
        result = compare(args.checkpoint, args.model)
    except ModelIntegrityError as exc:
        raise ValueError(str(exc)) from None
    failed = [k for k, passed in result.get("checks", {}).items() if passed is False]
    if result["identical"]:
        say(f"{args.checkpoint} reproduces {args.model}: every check passed")
    else:
        say(f"{args.checkpoint} does NOT reproduce {args.model}" + (f": {', '.join(failed)}" if failed else ""))
    emit_json(args, result)
    return 0 if result["identical"] else EXIT_FAILED


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
        type=bounded(float, low=0.5, high=1.0),
        default=None,
        metavar="Q",
        help=f"ok-train quantile each anomaly part is divided by before the max, 0.5..1 ({when_omitted})",
    )


def _add_threshold_range(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold-nuisance-max",
        type=bounded(float, low=0, high=MAX_NUISANCE),
        default=None,
        help="choose thresholds on validation items up to this nuisance scale (the validated operating range;"
        " items without a scale always count); default: all validation items",
    )
    p.add_argument(
        "--anomaly-frr",
        type=bounded(float, above=0, high=ANOMALY_FRR_MAX),
        default=None,
        metavar="F",
        help=f"share of good validation items the anomaly check alone may reject, above 0 and at most"
        f" {ANOMALY_FRR_MAX} (the anomaly threshold is their 1 - F quantile); default {ANOMALY_FRR}",
    )


def _checkpoint(p: argparse.ArgumentParser, help: str = "training checkpoint (checkpoint.pt)") -> None:
    p.add_argument("--checkpoint", required=True, type=Path, help=help)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="Train and export Inspector models (CPU, torch; the training extra). Exit status: 0 done and"
        " passed, 1 done and a criterion failed, 2 refused. Human text on stderr, JSON on stdout only with --json.",
        epilog="example:\n  inspector-train train --product vial --data /tmp/tv/vial_seed200* --out /tmp/tv/run",
        formatter_class=HelpFormatter,
    )
    sub: Subparsers = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    products = [x.value for x in Product]

    pr = add_command(
        sub,
        "prepare",
        help="render training sets over a range of nuisance scales",
        example="inspector-train prepare --product vial --out /tmp/tv --count 3400 --seed 2000 --nuisance 0.5 1.0",
    )
    pr.add_argument("--product", required=True, choices=products, help="product to render")
    pr.add_argument("--out", required=True, type=Path, help="parent folder; one sub-folder per nuisance scale")
    pr.add_argument(
        "--count", required=True, type=bounded(int, low=1, high=10_000_000), help="images per nuisance scale"
    )
    pr.add_argument(
        "--seed", required=True, type=bounded(int, low=0, high=SEED_MAX), help="base seed; set i uses seed + i"
    )
    pr.add_argument(
        "--nuisance",
        type=bounded(float, low=0, high=MAX_NUISANCE),
        nargs="+",
        default=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
        help="nuisance scales, one set each",
    )
    pr.add_argument("--defect-rate", type=bounded(float, low=0, high=1), default=0.5, help="share of defective items")
    pr.add_argument("--workers", type=bounded(int, low=1, high=256), default=None, help="processes; default: all cores")
    add_line_presentation(pr, "train on how a line presents items; the station's registration takes it out again")
    add_look_option(pr)
    add_json_option(pr, "the sets made (a list)")
    pr.set_defaults(func=cmd_prepare, needs_torch=False)

    t = add_command(
        sub,
        "train",
        help="train from manifest folders -> checkpoint with thresholds, results.csv and results.png",
        example="inspector-train train --product vial --data /tmp/tv/vial_seed200* --out /tmp/tv/run --seed 0",
    )
    t.add_argument("--product", required=True, choices=products, help="product of the sets")
    t.add_argument("--data", required=True, nargs="+", type=Path, help="one or more labelled set folders")
    t.add_argument("--out", required=True, type=Path, help="run folder for checkpoint.pt, results.csv, results.png")
    t.add_argument("--seed", type=bounded(int, low=0, high=SEED_MAX), default=0, help="training seed")
    t.add_argument(
        "--withhold", nargs="*", default=None, help="defect classes kept from the classifier; default: per product"
    )
    t.add_argument(
        "--epochs",
        type=bounded(int, low=1, high=1000),
        default=None,
        help="a fixed number of classifier epochs on one one-cycle schedule (how the shipped packages were "
        "trained); default: until validation converges",
    )
    t.add_argument(
        "--max-epochs",
        type=bounded(int, low=1, high=1000),
        default=None,
        help="the most epochs the convergence rule may run; default: per product",
    )
    t.add_argument(
        "--batch-size", type=bounded(int, low=2, high=4096), default=None, help="units per step; default: per product"
    )
    t.add_argument(
        "--width-mult",
        type=bounded(float, above=0, high=4),
        default=None,
        help="MobileNetV3 width multiplier; default: per product",
    )
    t.add_argument(
        "--ae-steps",
        type=bounded(int, low=1, high=1_000_000),
        default=None,
        help="autoencoder-only steps; default: per product",
    )
    t.add_argument(
        "--average-last",
        type=bounded(float, low=0, below=1),
        default=None,
        metavar="SHARE",
        help="average the classifier's weights over this share of its last steps, 0..1; default: per product",
    )
    t.add_argument(
        "--repeat",
        nargs="+",
        type=class_count,
        default=None,
        metavar="CLASS=N",
        help="show each training unit of CLASS N times per classifier epoch; default: per product",
    )
    t.add_argument(
        "--prep-workers",
        type=bounded(int, low=0, high=1),
        default=0,
        help="1: prepare classifier batches in a worker process beside training (faster on 2 cores; "
        "other weights than 0 for the same seed, as every shipped package was trained)",
    )
    t.add_argument(
        "--recipe",
        default=None,
        metavar="NAME_OR_FILE",
        help="the station recipe whose registration cuts the units (your line's, its reference measured with "
        "inspector registration-reference on your good items); default: the product's shipped recipe",
    )
    _add_threshold_range(t)
    _add_reconstruction_options(t, "default: the product's plan")
    add_json_option(t, "the checkpoint's path and its verdict on validation")
    t.set_defaults(func=cmd_train)

    th = add_command(
        sub,
        "thresholds",
        help="re-choose a checkpoint's thresholds on its validation split",
        example="inspector-train thresholds --checkpoint /tmp/tv/run/checkpoint.pt --out /tmp/tv/run/th.pt",
    )
    _checkpoint(th)
    th.add_argument("--out", required=True, type=Path, help="new checkpoint file")
    _add_threshold_range(th)
    _add_reconstruction_options(
        th, "switches a trained checkpoint: weights unchanged, part scales refitted on ok train units"
    )
    add_json_option(th, "the new checkpoint's path and its verdict on validation")
    th.set_defaults(func=cmd_thresholds)

    w = add_command(
        sub,
        "weights",
        help="add torch_weights.pt (for the torch eager bench) to an exported package",
        example="inspector-train weights --checkpoint /tmp/tv/run/checkpoint.pt --package models/vial/1.6.1",
    )
    _checkpoint(w)
    w.add_argument("--package", required=True, type=Path, help="models/<product>/<version>")
    add_json_option(w, "the weights file's path")
    w.set_defaults(func=cmd_weights)

    e = add_command(
        sub,
        "export",
        help="checkpoint -> verified model package (parity + determinism checks)",
        description="Checkpoint -> verified model package (parity + determinism checks). A checkpoint that missed"
        " its acceptance criteria on validation is refused unless --allow-failed gives the reason; the record then"
        " states what failed and why, and the package stays draft.",
        example="inspector-train export --checkpoint /tmp/tv/run/checkpoint.pt --version 1.6.1",
    )
    _checkpoint(e)
    e.add_argument("--models-dir", type=Path, default=Path("models"), help="folder of the model packages")
    e.add_argument("--version", default="1.0.0", help="package version, MAJOR.MINOR.PATCH")
    e.add_argument(
        "--allow-failed",
        default=None,
        metavar="REASON",
        help="export a checkpoint that missed its acceptance criteria, for this reason (recorded; stays draft)",
    )
    add_json_option(e, "the package's path")
    e.set_defaults(func=cmd_export)

    r = add_command(
        sub,
        "report",
        help="write a package's evaluation.md from evaluate --json results",
        example="inspector-train report --package models/vial/1.6.0 --results /tmp/vial.json /tmp/vial_n2.5.json",
    )
    r.add_argument("--package", required=True, type=Path, help="model package folder")
    r.add_argument("--results", required=True, nargs="+", type=Path, help="evaluate JSON files, primary first")
    add_json_option(r, "the report's path")
    r.set_defaults(func=cmd_report, needs_torch=False)

    c = add_command(
        sub,
        "compare",
        help="does a retrained checkpoint reproduce a model package bit for bit?",
        description="Does a retrained checkpoint reproduce a model package bit for bit? Exit 0 when it does,"
        " 1 when it differs, 2 when the two cannot be compared.",
        example="inspector-train compare --checkpoint /tmp/tv/run/checkpoint.pt --model models/vial/1.6.0",
    )
    _checkpoint(c, "checkpoint of the rerun (train, then thresholds)")
    c.add_argument("--model", required=True, type=Path, help="models/<product>/<version>")
    add_json_option(c, "the comparison")
    c.set_defaults(func=cmd_compare)

    evaluate_command.register(sub, tool=PROG)
    sub.choices["evaluate"].set_defaults(needs_torch=False)
    return p


def torch_missing(command: str) -> str | None:
    """The one line to print when ``command`` needs torch and it is not installed; ``None`` otherwise."""
    if importlib.util.find_spec("torch") is not None and importlib.util.find_spec("torchvision") is not None:
        return None
    return f"{PROG} {command} needs torch and torchvision, which are not installed: {INSTALL_HINT}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a bad argument (its one line is printed) or --help
        return exc.code if isinstance(exc.code, int) else 2
    args.command_line = _command_line(argv)
    if getattr(args, "needs_torch", True) and (missing := torch_missing(args.command)) is not None:
        print(f"{PROG}: error: {missing}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        code: int = args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError, ModelIntegrityError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return code
