"""What every command shares: the one-line user error, progress lines, and the station file with flags."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from inspector.config.station import StationConfig

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CliError(Exception):
    """A user error: printed as one clear line, exit status 2."""


def image_progress(label: str) -> Callable[[int, int, float], None]:
    def show(done: int, total: int, elapsed: float) -> None:
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        end = "\n" if done == total else ""
        print(
            f"\r{label}: {done}/{total} images, {rate:.0f} img/s, ETA {eta:.0f} s   ",
            end=end,
            file=sys.stderr,
            flush=True,
        )

    return show


def station_errors() -> tuple[type[BaseException], ...]:
    """What opening a station raises for bad input or a refused part: one line, exit 2."""
    from inspector.config.errors import ConfigError
    from inspector.inference.package import ModelIntegrityError
    from inspector.pipeline.station import StationError
    from inspector.plc.base import PlcError
    from inspector.records import RecordError

    return (ConfigError, ModelIntegrityError, StationError, PlcError, RecordError, ValueError, FileNotFoundError)


def add_station_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--station", default=None, help="station file (station_configs/NAME.yaml or a path); default: the demo"
    )
    p.add_argument("--recipe", default=None, help="recipe name (recipes/NAME.yaml) or path; default: the station's")


def station_config(args: argparse.Namespace) -> tuple[StationConfig, Path]:
    """The station file named by ``--station`` (default: the demo), with the command's flags over it."""
    from inspector.config.errors import ConfigError
    from inspector.config.recipe import find_project_root
    from inspector.config.station import apply_flags, load_station_config

    root = find_project_root()
    flags = vars(args)
    try:
        config = load_station_config(args.station, root)
        config = apply_flags(
            config,
            recipe=args.recipe,
            camera=flags.get("camera"),
            images=flags.get("images"),
            items=flags.get("items"),
            line_rate=flags.get("line_rate"),
            seed=flags.get("seed"),
            defect_rate=flags.get("defect_rate"),
            nuisance=flags.get("nuisance"),
            plc=flags.get("plc"),
            db=flags.get("db"),
            threads=flags.get("threads"),
            mode=flags.get("mode"),
        )
    except ConfigError as exc:
        raise CliError(f"station refuses to start: {exc}") from None
    return config, root


# -- the station database and the person acting ----------------------------------------------------


def add_database_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db", default=None, help="station record database (default: the station file's, var/inspector.sqlite)"
    )
    p.add_argument("--station", default=None, help="station file whose database is meant (default: the demo)")


def database(args: argparse.Namespace) -> Path:
    """``--db``, else the database named by the station file (``--station``, default the demo's)."""
    from inspector.config.errors import ConfigError
    from inspector.config.recipe import find_project_root
    from inspector.config.station import load_station_config

    root = find_project_root()
    if args.db:
        path = Path(args.db)
        return path if path.is_absolute() else Path.cwd() / path
    try:
        config = load_station_config(args.station, root)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if config.records is None:
        raise CliError(f"station {config.station_id} keeps no records; name a database with --db")
    path = Path(config.records.database)
    return path if path.is_absolute() else root / path


def add_credentials(p: argparse.ArgumentParser, *, who: str = "the user acting") -> None:
    p.add_argument("--as", dest="as_user", metavar="USER", default=None, help=f"{who}; the password is asked for")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read passwords from standard input, one per line (scripts); never give one as an argument",
    )


def read_password(args: argparse.Namespace, prompt: str, *, confirm: bool = False) -> str:
    """A password from standard input (``--password-stdin``) or the terminal, never from an argument."""
    import getpass

    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError(f"{prompt.rstrip(': ')}: standard input ended before the password")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for a password on: use --password-stdin")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != first:
        raise CliError("the two passwords differ")
    return first


def gxp_errors() -> tuple[type[BaseException], ...]:
    """What the records layer raises for refused input or actions: one line, exit 2."""
    from inspector.records import RecordError

    return (RecordError, ValueError)
