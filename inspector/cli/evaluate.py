"""``inspector evaluate``: judge a deployed model package on a labelled set, through the decision path."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from inspector.cli.common import Subparsers
from inspector.evaluation import evaluate, format_markdown, format_report


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``inspector evaluate``; raises ValueError for bad input."""
    if not Path(args.model).is_dir():
        raise ValueError(f"--model {args.model} is not a folder")
    if not Path(args.images).is_dir():
        raise ValueError(f"--images {args.images} is not a folder")
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    result = evaluate(args.model, args.images, accept_minor=args.accept_minor, limit=args.limit, threads=args.threads)
    print(format_report(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(format_markdown(result), encoding="utf-8")
    return 0


def register(sub: Subparsers) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "evaluate", help="evaluate a model package on a labelled set through the station's decision path"
    )
    p.add_argument("--model", required=True, type=Path, help="model package folder, e.g. models/vial/1.0.0")
    p.add_argument("--images", required=True, type=Path, help="labelled set folder (manifest.jsonl)")
    p.add_argument("--json", type=Path, default=None, help="write the full report as JSON here")
    p.add_argument("--markdown", type=Path, default=None, help="also write a short Markdown report here")
    p.add_argument("--accept-minor", nargs="*", default=[], metavar="CODE", help="minor defects the recipe accepts")
    p.add_argument("--limit", type=int, default=None, help="only the first N items")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (station default 1)")
    p.set_defaults(func=cmd_evaluate, value_errors_are_user_errors=True)
