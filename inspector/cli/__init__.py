"""The ``inspector`` command line: one entry point, one module per command group.

argparse, not typer: every command here reports bad input as one line with exit status 2
(tests hold that), the station's runtime keeps its dependency list short (each dependency is
assessed for a validated system), and the standard library's parser is stable across
Python versions. Domain modules hold no CLI code; each group module has ``register(sub)``.
Every command follows the output and exit-status convention in :mod:`inspector.cli.common`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from inspector import __version__
from inspector.cli import (
    audit,
    cameras,
    evaluate,
    identity,
    monitor,
    plc,
    qualify,
    records,
    registration,
    releases,
    samples,
    site,
    station,
    taxonomy,
    users,
)
from inspector.cli.common import CliError, HelpFormatter, Parser

GROUPS = (
    samples,
    station,
    monitor,
    registration,
    identity,
    cameras,
    plc,
    evaluate,
    taxonomy,
    users,
    audit,
    records,
    releases,
    qualify,
    site,
)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="inspector",
        description="Inline machine-vision inspection station. Exit status: 0 done and passed, 1 done and a"
        " criterion failed, 2 refused (bad input). Human text goes to stderr, JSON to stdout only with --json.",
        epilog="example:\n  inspector run --recipe vial --items 600",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"inspector {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a bad argument (its one line is printed) or --help / --version
        return exc.code if isinstance(exc.code, int) else 2
    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"inspector: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # Commands that report bad input as ValueError opt in; elsewhere it is a bug: show the traceback.
        if not getattr(args, "value_errors_are_user_errors", False):
            raise
        print(f"inspector: error: {exc}", file=sys.stderr)
        return 2
    return code


__all__ = ["CliError", "build_parser", "main"]
