"""What every command shares: the parser, range-checked numbers, JSON output, progress, the station file.

The output convention every command follows (``tests/unit/test_cli_conventions.py`` holds it):

- **stdout is for machines, and only when asked.** ``--json`` (or ``--json -``) prints the
  command's result as one JSON document on stdout; ``--json FILE`` writes it to FILE and
  leaves stdout empty. Without ``--json`` nothing goes to stdout, so ``| jq`` always works.
  Use :func:`add_json_option` and :func:`emit_json`.
- **stderr is for people.** Reports, tables, summaries and progress go to stderr (:func:`say`);
  progress redraws one line on a terminal and prints a plain line now and then otherwise
  (:class:`Progress`).
- **Exit status.** 0: done and passed. 1: done, and a criterion the command checks failed
  (its help says which). 2: refused: bad input or a refused part, as one line
  ``PROG: error: ...`` on stderr (:class:`CliError`, or :class:`Parser` for the arguments),
  never a traceback.
- **Arguments.** Build each command with :func:`add_command` (help, defaults shown, an
  example at the end of its help). Every option has help text; every numeric option takes a
  :func:`bounded` type, so the parser refuses an out-of-range or malformed value in one line
  before anything runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeAlias

if TYPE_CHECKING:
    import numpy as np

    from inspector.config.station import StationConfig
    from inspector.manifest import ManifestEntry

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: Exit statuses (the README's table).
EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2

SEED_MAX = 2**32 - 1
LINE_RATE_MAX = 100_000.0  # items per minute, as the station file allows
THREADS_MAX = 64


class CliError(Exception):
    """A user error: printed as one clear line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported as one line (usage stays in ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_REFUSED, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default unless its help already says it (or there is none to show).

    Descriptions are wrapped; the example at the end (the epilog) keeps its lines.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("example:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            action.default in (None, False, argparse.SUPPRESS, [], ())
            or action.required
            or "default" in text
            or not action.option_strings
        ):
            return text
        shown = " ".join(str(v) for v in action.default) if isinstance(action.default, list) else "%(default)s"
        return f"{text} (default: {shown})"


def add_command(
    sub: Subparsers, name: str, *, help: str, example: str | list[str], description: str | None = None
) -> argparse.ArgumentParser:
    """A sub-command whose help shows defaults and ends with an example (``example`` without the program name)."""
    lines = [example] if isinstance(example, str) else example
    p = sub.add_parser(
        name,
        help=help,
        description=description or help[:1].upper() + help[1:],
        epilog="example:\n" + "\n".join(f"  {line}" for line in lines),
        formatter_class=HelpFormatter,
    )
    return p


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


class Bounded:
    """An argparse ``type``: a whole number or a finite float within limits, else a one-line error.

    ``low``/``high`` are inclusive limits; ``above``/``below`` exclusive ones (``None``: no limit).
    """

    def __init__(
        self,
        kind: type[int] | type[float],
        *,
        low: float | None = None,
        high: float | None = None,
        above: float | None = None,
        below: float | None = None,
    ) -> None:
        if (low is not None and above is not None) or (high is not None and below is not None):
            raise ValueError("give one lower and one upper limit at most")
        self.kind = kind
        self.low, self.high, self.above, self.below = low, high, above, below
        self.__name__ = kind.__name__  # argparse names the type by it

    def describe(self) -> str:
        """``a whole number from 1 to 64``, ``a number above 0 and at most 3``, ..."""
        what = "a whole number" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            return f"{what} from {_num(self.low)} to {_num(self.high)}"
        parts = []
        if self.low is not None:
            parts.append(f"at least {_num(self.low)}")
        if self.above is not None:
            parts.append(f"above {_num(self.above)}")
        if self.high is not None:
            parts.append(f"at most {_num(self.high)}")
        if self.below is not None:
            parts.append(f"below {_num(self.below)}")
        return what + (" " + " and ".join(parts) if parts else "")

    def __call__(self, text: str) -> int | float:
        value: int | float
        try:
            value = int(text) if self.kind is int else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}") from None
        ok = math.isfinite(value)
        ok = ok and (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
        ok = ok and (self.above is None or value > self.above) and (self.below is None or value < self.below)
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}")
        return value

    def __repr__(self) -> str:
        return f"Bounded({self.describe()})"


def bounded(
    kind: type[int] | type[float],
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    below: float | None = None,
) -> Bounded:
    """A range-checked argparse type, e.g. ``type=bounded(int, low=1)`` or ``bounded(float, above=0, high=3)``."""
    return Bounded(kind, low=low, high=high, above=above, below=below)


def add_json_option(p: argparse.ArgumentParser, what: str = "the result") -> None:
    """``--json``: the command's machine output on stdout, or ``--json FILE`` to a file (see the module doc)."""
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help=f"{what} as JSON: on stdout (--json or --json -), or written to FILE; without it stdout stays empty",
    )


def json_path(args: argparse.Namespace) -> Path | None:
    """The file ``--json FILE`` names (``None`` for stdout or no JSON)."""
    target = getattr(args, "json", None)
    return None if target in (None, "-") else Path(target)


def emit_json(args: argparse.Namespace, data: Any) -> None:
    """Write ``data`` where ``--json`` says: stdout, a file, or nowhere."""
    target = getattr(args, "json", None)
    if target is None:
        return
    text = json.dumps(data, indent=2)
    if target == "-":
        print(text, flush=True)
        return
    path = Path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write --json {path}: {exc.strerror or exc}") from None


def say(*lines: str) -> None:
    """Human text: one or more lines on stderr."""
    for line in lines:
        print(line, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Progress of a known amount of work on stderr: a bar with rate and ETA on a terminal, plain lines otherwise.

    Off a terminal (a log file, CI) it prints the first update, then at most one line every
    ``every_s`` seconds, and the last one; on a terminal it redraws one line.
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        unit: str = "items",
        *,
        stream: IO[str] | None = None,
        every_s: float = 10.0,
        width: int = 24,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s, self.width = every_s, width
        self.start = time.monotonic()
        self._last_print = -math.inf
        self._drawn = False
        self.done = 0

    def line(self, done: int, extra: str = "") -> str:
        elapsed = time.monotonic() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [self.label + ":"]
        if self.total:
            share = min(1.0, done / self.total)
            if self.tty:
                filled = int(share * self.width)
                parts.append("[" + "#" * filled + "-" * (self.width - filled) + "]")
            parts.append(f"{100 * share:3.0f}% {done}/{self.total} {self.unit}")
        else:
            parts.append(f"{done} {self.unit}")
        measured = elapsed >= 1.0  # a rate over the first moments says nothing
        if measured:
            parts.append(f"{rate:.1f}/s" if rate < 10 else f"{rate:.0f}/s")
        if self.total and done < self.total and rate > 0 and measured:
            parts.append(f"ETA {_duration((self.total - done) / rate)}")
        elif self.total and done >= self.total:
            parts.append(f"in {_duration(elapsed)}")
        if extra:
            parts.append("| " + extra)
        return " ".join(parts)

    def update(self, done: int, extra: str = "", *, force: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        last = self.total is not None and done >= self.total
        if self.tty:
            if force or last or now - self._last_print >= 0.1:
                self.stream.write("\r" + self.line(done, extra).ljust(79) + ("\n" if last else ""))
                self.stream.flush()
                self._last_print = now
                self._drawn = not last
            return
        if force or last or now - self._last_print >= self.every_s:
            self.stream.write(self.line(done, extra) + "\n")
            self.stream.flush()
            self._last_print = now

    def close(self) -> None:
        """Ends a redrawn line that did not reach its total (stopped early)."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def good_images(folders: Sequence[str | Path], limit: int) -> Iterator[tuple[ManifestEntry, np.ndarray]]:
    """The good (``ok``) items of labelled sets with their images, at most ``limit``: a reference is
    measured on good product. ValueError for a set that cannot be read or an image that is refused."""
    from inspector.camera.imagefile import ImageRefused, read_image_file
    from inspector.manifest import ManifestError, read_manifest
    from inspector.taxonomy import OK

    n = 0
    for folder in folders:
        root = Path(folder)
        try:
            entries = read_manifest(root)
        except ManifestError as exc:
            raise ValueError(str(exc)) from None
        for e in entries:
            if e.label != OK:
                continue
            if n >= limit:
                return
            try:
                image = read_image_file(root / e.file, sha256=e.sha256)
            except ImageRefused as exc:
                raise ValueError(f"{root / e.file}: {exc}") from None
            n += 1
            yield e, image


def image_progress(label: str) -> Callable[[int, int, float], None]:
    """A ``(done, total, elapsed)`` callback (the renderer's) drawing a :class:`Progress`."""
    bars: dict[int, Progress] = {}

    def show(done: int, total: int, elapsed: float) -> None:
        bar = bars.setdefault(total, Progress(label, total, "images"))
        bar.update(done)

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


def add_sim_line_options(parser: argparse.ArgumentParser) -> None:
    """``--shift`` and ``--turn``: the simulated line moves and turns its items (registration finds them)."""
    parser.add_argument(
        "--shift",
        type=bounded(float, low=0, high=64),
        default=None,
        help="sim: the line shifts each item by up to this many pixels (dx and dy); default: the station's (0)",
    )
    parser.add_argument(
        "--turn",
        type=bounded(float, low=0, high=45),
        default=None,
        help="sim: the line turns each item by up to this many degrees; default: the station's (0)",
    )


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
            shift=flags.get("shift"),
            turn=flags.get("turn"),
            plc=flags.get("plc"),
            db=flags.get("db"),
            threads=flags.get("threads"),
            mode=flags.get("mode"),
            site=flags.get("site"),
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
