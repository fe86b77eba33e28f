"""``inspector samples``: render labelled product images, contact sheets, the committed reference set."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from inspector.cli.common import (
    SEED_MAX,
    CliError,
    Subparsers,
    add_command,
    add_json_option,
    bounded,
    emit_json,
    image_progress,
    say,
)
from inspector.synth import MAX_NUISANCE
from inspector.taxonomy import Product

if TYPE_CHECKING:
    from inspector.synth.line import LinePresentation

COUNT_MAX = 10_000_000
PER_CLASS_MAX = 50
WORKERS_MAX = 256


LINE_FLAGS = (
    ("shift", 64.0, "pixels, each of dx and dy"),
    ("turn", 45.0, "degrees about the frame's centre"),
    ("gain", 0.5, "relative brightness change"),
    ("gamma", 0.5, "relative change of the response exponent"),
    ("vignette", 0.8, "darkening of the corners"),
    ("defocus", 5.0, "Gaussian blur sigma in pixels"),
)


def add_line_presentation(parser: argparse.ArgumentParser, note: str = "") -> None:
    """``--shift --turn --gain --gamma --vignette --defocus``: a line's presentation on top of each image."""
    group = parser.add_argument_group(
        "line presentation",
        "drawn uniformly up to these limits on top of each image, as a real line presents items"
        + (f" ({note})" if note else ""),
    )
    for name, high, unit in LINE_FLAGS:
        group.add_argument(
            f"--{name}", type=bounded(float, low=0, high=high), default=0.0, help=f"largest {unit} (default 0)"
        )


def add_look_option(parser: argparse.ArgumentParser) -> None:
    """``--look NAME``: another line's product, background and light (``inspector samples looks``)."""
    parser.add_argument(
        "--look",
        default=None,
        metavar="NAME",
        help="render another line's look of the product (list: inspector samples looks); default: the renderer's own",
    )


def cmd_samples_looks(args: argparse.Namespace) -> int:
    from inspector.synth import looks

    rows = []
    products = [Product(args.product)] if args.product else list(Product)
    for prod in products:
        for name in looks.names(prod):
            look = looks.LOOKS[prod][name]
            rows.append({"product": prod.value, "look": name, "role": look.role, "summary": look.summary})
    say(*(f"{r['product']:8s} {r['look']:18s} {r['role']:9s} {r['summary']}" for r in rows))
    emit_json(args, rows)
    return 0


def line_presentation(args: argparse.Namespace) -> LinePresentation | None:
    """The presentation the flags of :func:`add_line_presentation` ask for; None when they ask for none."""
    from inspector.synth.line import LinePresentation

    line = LinePresentation(
        shift_px=args.shift,
        turn_deg=args.turn,
        gain=args.gain,
        gamma=args.gamma,
        vignette=args.vignette,
        defocus=args.defocus,
    )
    return line if line.active else None


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
            line=line_presentation(args),
            foreign_tablets=args.foreign,
            look=args.look,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    elapsed = time.perf_counter() - start
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.label] = counts.get(e.label, 0) + 1
    summary = {
        "product": args.product,
        "look": args.look or "nominal",
        "images": len(entries),
        "seconds": round(elapsed, 3),
        "images_per_s": round(len(entries) / elapsed, 1),
        "labels": counts,
        "out": str(args.out),
    }
    say(
        f"{len(entries)} {args.product} images in {elapsed:.1f} s ({summary['images_per_s']} img/s) -> {args.out}",
        "  " + ", ".join(f"{k} {v}" for k, v in counts.items()),
    )
    emit_json(args, summary)
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
    say(f"contact sheet {sheet.shape[1]}x{sheet.shape[0]} -> {args.out}")
    emit_json(args, {"sheet": str(args.out), "width": sheet.shape[1], "height": sheet.shape[0]})
    return 0


def cmd_samples_reference(args: argparse.Namespace) -> int:
    from inspector.synth.reference import build_reference_sets

    try:
        result = build_reference_sets(Path(args.out), per_class=args.per_class, seed=args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    say(f"reference sets ({args.per_class} per class, seed {args.seed}) -> {args.out}")
    emit_json(args, result)
    return 0


def register(sub: Subparsers) -> None:
    samples = add_command(
        sub,
        "samples",
        help="render labelled product images",
        example="inspector samples generate --product blister --count 1000 --seed 7 --out /tmp/blisters",
    )
    ssub = samples.add_subparsers(dest="samples_command", required=True, metavar="ACTION")

    g = add_command(
        ssub,
        "generate",
        help="render a labelled image set (PNGs + manifest.jsonl)",
        example="inspector samples generate --product vial --count 5000 --seed 910001 --out /tmp/eval_vial --no-masks",
    )
    g.add_argument("--product", required=True, choices=[p.value for p in Product], help="product to render")
    g.add_argument("--count", required=True, type=bounded(int, low=1, high=COUNT_MAX), help="number of images")
    g.add_argument(
        "--seed", required=True, type=bounded(int, low=0, high=SEED_MAX), help="base seed; same seed, same bytes"
    )
    g.add_argument("--out", required=True, type=Path, help="new or empty folder")
    g.add_argument("--defect-rate", type=bounded(float, low=0, high=1), default=0.5, help="share of defective items")
    g.add_argument(
        "--nuisance", type=bounded(float, low=0, high=MAX_NUISANCE), default=1.0, help="scale of nuisance variation"
    )
    g.add_argument(
        "--workers", type=bounded(int, low=1, high=WORKERS_MAX), default=None, help="processes (default: all cores)"
    )
    g.add_argument("--no-masks", action="store_true", help="do not write ground-truth masks")
    g.add_argument(
        "--presentations",
        type=bounded(int, low=1, high=1000),
        default=None,
        metavar="K",
        help="render each of the --count items K times, only its presentation changing (qualification)",
    )
    add_line_presentation(g, "needs --no-masks")
    g.add_argument(
        "--foreign",
        action="store_true",
        help="tablet, blister: every item a random foreign tablet (any colour, size, shape; margins in the"
        " manifest); for evaluating the identity check, never for training",
    )
    add_look_option(g)
    g.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_json_option(g, "the summary (images, seconds, labels)")
    g.set_defaults(func=cmd_samples_generate)

    lk = add_command(
        ssub,
        "looks",
        help="list the renderer's looks: other lines' product, background and light (tuning or held out)",
        example="inspector samples looks --product tablet",
    )
    lk.add_argument("--product", choices=[p.value for p in Product], default=None, help="one product (default: all)")
    add_json_option(lk, "the looks (a list)")
    lk.set_defaults(func=cmd_samples_looks)

    s = add_command(
        ssub,
        "sheet",
        help="contact sheet of a labelled set: every class side by side",
        example="inspector samples sheet --images /tmp/blisters --out /tmp/blisters.png",
    )
    s.add_argument("--images", required=True, type=Path, help="folder with manifest.jsonl")
    s.add_argument("--out", required=True, type=Path, help="PNG to write")
    s.add_argument(
        "--per-class", type=bounded(int, low=1, high=PER_CLASS_MAX), default=3, help="examples of each class"
    )
    add_json_option(s, "the sheet's path and size")
    s.set_defaults(func=cmd_samples_sheet)

    r = add_command(
        ssub,
        "reference",
        help="build the small committed set of every class (sample_images/)",
        example="inspector samples reference --out sample_images",
    )
    r.add_argument("--out", type=Path, default=Path("sample_images"), help="folder for the three product sets")
    r.add_argument(
        "--per-class", type=bounded(int, low=1, high=PER_CLASS_MAX), default=3, help="examples of each class"
    )
    r.add_argument("--seed", type=bounded(int, low=0, high=SEED_MAX), default=20261123, help="base seed")
    add_json_option(r, "what was written")
    r.set_defaults(func=cmd_samples_reference)
