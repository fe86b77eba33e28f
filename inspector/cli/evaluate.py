"""``inspector evaluate``: judge a deployed model package on a labelled set, through the decision path.

Writes the text report to stderr, the full report as JSON where ``--json`` says, a Markdown
report with ``--markdown``, and the pictures (:mod:`inspector.plots`) beside the JSON file (or
the Markdown file, or into ``--plots DIR``). Exit 1 when the record's acceptance criteria fail.
"""

from __future__ import annotations

import argparse
import importlib
import os
import threading
import time
from pathlib import Path

from inspector.cli.common import (
    EXIT_FAILED,
    THREADS_MAX,
    Progress,
    Subparsers,
    add_command,
    add_json_option,
    bounded,
    emit_json,
    json_path,
    say,
)
from inspector.config.recipe import Recipe, load_recipe
from inspector.evaluation import format_markdown, format_report, run_evaluation
from inspector.inference.package import ModelIntegrityError, read_record


def picture_target(args: argparse.Namespace) -> tuple[Path, str] | None:
    """(folder, file stem) of the pictures, or None: beside ``--json FILE``, else ``--markdown FILE``."""
    if args.no_plots:
        return None
    beside = json_path(args) or args.markdown
    if args.plots is not None:
        return args.plots, beside.stem if beside is not None else "evaluation"
    if beside is None:
        return None
    return beside.parent, beside.stem


def _load_plots() -> None:
    importlib.import_module("inspector.plots").warm_up()


def deployed_recipe(model: Path, recipe: str | None) -> Recipe:
    """The recipe the station runs this model with: ``recipe``, else the model product's shipped recipe."""
    try:
        product = read_record(model).product  # the package itself is verified when the evaluation loads it
    except ModelIntegrityError as exc:
        raise ValueError(f"cannot use model package {model}: {exc}") from None
    loaded = load_recipe(recipe or product.value)
    if loaded.recipe.product is not product:
        raise ValueError(f"--recipe {recipe}: a {loaded.recipe.product.value} recipe, the model is for {product.value}")
    return loaded.recipe


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``inspector evaluate``; raises ValueError for bad input."""
    if not Path(args.model).is_dir():
        raise ValueError(f"--model {args.model} is not a folder")
    if not Path(args.images).is_dir():
        raise ValueError(f"--images {args.images} is not a folder")
    bar = None if args.quiet else Progress(f"evaluate {Path(args.model).name} on {Path(args.images).name}", None)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done)

    target = picture_target(args)
    # matplotlib takes about a second to import and set up: done on the other core while the model runs.
    loader = None
    if target is not None:
        loader = threading.Thread(target=_load_plots, name="load-plots")
        loader.start()
    # The deployed path: the recipe's registration and the minor defects it accepts, unless told otherwise.
    recipe = deployed_recipe(args.model, args.recipe)
    registration = None if args.no_registration else recipe.registration
    identity = None if args.no_identity else recipe.identity
    accept_minor = recipe.accept_minor if args.accept_minor is None else args.accept_minor
    try:
        ev = run_evaluation(
            args.model, args.images, accept_minor=accept_minor, limit=args.limit, threads=args.threads,
            progress=progress, registration=registration, identity=identity,
        )  # fmt: skip
    finally:
        if loader is not None:
            loader.join()
    if bar is not None:
        bar.close()
    result = ev.result
    result["recipe"] = {
        "recipe_id": recipe.recipe_id,
        "version": recipe.version,
        "registration": registration is not None,
        "identity": identity is not None,
        "accept_minor": list(accept_minor),
    }
    pictures: dict[str, Path] = {}
    if target is not None:
        from inspector.plots import write_evaluation_pictures

        t0 = time.perf_counter()
        pictures = write_evaluation_pictures(ev, target[0], target[1])
        seconds = time.perf_counter() - t0
        if not args.quiet:
            say(f"pictures ({seconds:.1f} s): " + ", ".join(str(p) for p in pictures.values()))
        result["pictures"] = {k: str(p) for k, p in pictures.items()}
    if not args.quiet:
        say(format_report(result))
    emit_json(args, result)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        links = {k: Path(os.path.relpath(p, args.markdown.parent)).as_posix() for k, p in pictures.items()}
        args.markdown.write_text(format_markdown(result, pictures=links), encoding="utf-8")
    acceptance = result.get("acceptance")
    return EXIT_FAILED if acceptance is not None and not acceptance["passed"] else 0


def register(sub: Subparsers, tool: str = "inspector") -> None:
    """``evaluate`` (also registered by ``inspector-train``, which passes its own name for the example)."""
    p = add_command(
        sub,
        "evaluate",
        help="evaluate a model package on a labelled set through the station's decision path",
        description="Evaluate a model package on a labelled set through the station's decision path: report,"
        " JSON, Markdown and pictures (confusion matrix, score histograms with the thresholds, ROC/PR of the"
        " anomaly score, a montage of the misjudged items; per pocket for blisters). Exit 1 when the record's"
        " acceptance criteria fail.",
        example=f"{tool} evaluate --model models/vial/1.6.0 --images /tmp/eval_vial --json /tmp/vial.json",
    )
    p.add_argument("--model", required=True, type=Path, help="model package folder, e.g. models/vial/1.6.0")
    p.add_argument("--images", required=True, type=Path, help="labelled set folder (manifest.jsonl)")
    add_json_option(p, "the full report")
    p.add_argument("--markdown", type=Path, default=None, help="also write a short Markdown report (pictures linked)")
    p.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder for the pictures (STEM.KIND.png); default: beside --json FILE, else beside --markdown FILE",
    )
    p.add_argument("--no-plots", action="store_true", help="write no pictures")
    p.add_argument(
        "--recipe",
        default=None,
        help="recipe whose registration locates and guards the items, as the station does"
        " (default: the shipped recipe of the model's product)",
    )
    p.add_argument(
        "--no-registration",
        action="store_true",
        help="cut the units at the fixed places instead (to compare; not the deployed path)",
    )
    p.add_argument(
        "--no-identity",
        action="store_true",
        help="leave out the recipe's deterministic identity check (to see the model alone; not the deployed path)",
    )
    p.add_argument(
        "--accept-minor",
        nargs="*",
        default=None,
        metavar="CODE",
        help="minor defects accepted (default: the recipe's accept_minor; give none to reject every defect)",
    )
    p.add_argument(
        "--limit", type=bounded(int, low=1), default=None, help="only the first N items; default: all of them"
    )
    p.add_argument(
        "--threads",
        type=bounded(int, low=1, high=THREADS_MAX),
        default=1,
        help="ONNX Runtime intra-op threads (the station uses 1)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress and no report on stderr")
    p.set_defaults(func=cmd_evaluate, value_errors_are_user_errors=True)
