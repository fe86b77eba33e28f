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
        )
    except ConfigError as exc:
        raise CliError(f"station refuses to start: {exc}") from None
    return config, root
