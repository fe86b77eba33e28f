"""``inspector samples``: render labelled product images, contact sheets, the committed reference set."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from inspector.cli.common import CliError, Subparsers, image_progress


def cmd_samples_generate(args: argparse.Namespace) -> int:
    from inspector.synth.generate import generate

    start = time.perf_counter()
    try:
        entries = generate(
            args.product,
            args.count,
            args.seed,
            args.out,
            defect_rate=args.defect_rate,
            nuisance=args.nuisance,
            masks=not args.no_masks,
            workers=args.workers,
            progress=None if args.quiet else image_progress(args.product),
            presentations=args.presentations,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    elapsed = time.perf_counter() - start
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.label] = counts.get(e.label, 0) + 1
    summary = {
        "product": args.product,
        "images": len(entries),
        "seconds": round(elapsed, 3),
        "images_per_s": round(len(entries) / elapsed, 1),
        "labels": counts,
        "out": str(args.out),
    }
    print(json.dumps(summary))
    return 0


def cmd_samples_sheet(args: argparse.Namespace) -> int:
    import cv2

    from inspector.manifest import ManifestError
    from inspector.synth.sheet import contact_sheet

    try:
        sheet = contact_sheet(args.images, per_class=args.per_class)
    except (ManifestError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if not cv2.imwrite(str(args.out), sheet):
        raise CliError(f"cannot write {args.out}")
    print(json.dumps({"sheet": str(args.out), "width": sheet.shape[1], "height": sheet.shape[0]}))
    return 0


def cmd_samples_reference(args: argparse.Namespace) -> int:
    from inspector.synth.reference import build_reference_sets

    try:
        result = build_reference_sets(Path(args.out), per_class=args.per_class, seed=args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(result))
    return 0


def register(sub: Subparsers) -> None:
    samples = sub.add_parser("samples", help="render labelled product images")
    ssub = samples.add_subparsers(dest="samples_command", required=True, metavar="ACTION")

    g = ssub.add_parser("generate", help="render a labelled image set (PNGs + manifest.jsonl)")
    g.add_argument("--product", required=True, choices=["vial", "tablet", "blister"])
    g.add_argument("--count", required=True, type=int, help="number of images")
    g.add_argument("--seed", required=True, type=int, help="base seed (0..2^32-1); same seed, same bytes")
    g.add_argument("--out", required=True, type=Path, help="new or empty folder")
    g.add_argument("--defect-rate", type=float, default=0.5, help="share of defective items (default 0.5)")
    g.add_argument("--nuisance", type=float, default=1.0, help="scale of nuisance variation, 0..3 (default 1)")
    g.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    g.add_argument("--no-masks", action="store_true", help="do not write ground-truth masks")
    g.add_argument(
        "--presentations",
        type=int,
        default=None,
        metavar="K",
        help="render each of the --count items K times, only its presentation changing (qualification)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress line")
    g.set_defaults(func=cmd_samples_generate)

    s = ssub.add_parser("sheet", help="contact sheet of a labelled set: every class side by side")
    s.add_argument("--images", required=True, type=Path, help="folder with manifest.jsonl")
    s.add_argument("--out", required=True, type=Path, help="PNG to write")
    s.add_argument("--per-class", type=int, default=3)
    s.set_defaults(func=cmd_samples_sheet)

    r = ssub.add_parser("reference", help="build the small committed set of every class (sample_images/)")
    r.add_argument("--out", type=Path, default=Path("sample_images"))
    r.add_argument("--per-class", type=int, default=3)
    r.add_argument("--seed", type=int, default=20261123)
    r.set_defaults(func=cmd_samples_reference)
