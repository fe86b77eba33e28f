"""App factory and the ``inspector-hmi`` command.

``create_app(..., exec_app=False)`` builds the QApplication (or reuses one), the
controller and the main window, and returns the window without entering the event loop,
so tests and the screenshot script can drive it. The HMI opens the station a station file
describes (``--station``; default ``station_configs/demo.yaml``: simulated camera and line
simulator, no hardware) with the product's recipe; flags override single fields. Demo mode
(the default) starts a batch at once; ``--no-demo`` uses the recipe's camera and no line
simulator, and the operator starts batches.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from inspector.config.errors import ConfigError
from inspector.config.recipe import find_project_root
from inspector.config.station import StationConfig, apply_flags, load_station_config
from inspector.station.client import DEMO_OPERATOR
from inspector.synth import MAX_NUISANCE
from ui.platform_check import platform_problem

# Qt is imported inside the functions that use it, never at module level: main() first checks
# that Qt's platform can load here, so a machine without its system libraries gets one line
# naming the packages, not an ImportError or Qt's abort.
if TYPE_CHECKING:
    from PyQt6.QtWidgets import QApplication

    from ui.main_window import MainWindow

log = logging.getLogger(__name__)

# The QApplication made here must outlive create_app(): when its last Python reference goes,
# PyQt destroys it, and every QObject with it.
_APP: list[QApplication] = []


def _application() -> QApplication:
    from PyQt6.QtWidgets import QApplication

    from ui.theme import BASE_POINT_SIZE

    app = QApplication.instance()
    if isinstance(app, QApplication):
        return app
    app = QApplication(sys.argv[:1])
    _APP.append(app)
    app.setApplicationName("Inspector")
    app.setOrganizationName("Inspector")
    f = app.font()
    f.setPointSize(BASE_POINT_SIZE)
    app.setFont(f)
    return app


def create_app(
    product: str = "vial",
    *,
    root: Path | str | None = None,
    station: StationConfig | str | None = None,
    demo: bool = True,
    exec_app: bool = True,
    camera: str | None = None,
    items: int | None = None,
    line_rate: float | None = None,
    plc_url: str | None = None,
    db: Path | str | None = None,
    seed: int | None = None,
    defect_rate: float | None = None,
    nuisance: float | None = None,
    shift: float | None = None,
    turn: float | None = None,
    mode: str | None = None,
    site: str | None = None,
    login: tuple[str, str] | None = None,
    auto_login: bool = True,
    size: tuple[int, int] | None = None,
    show: bool = True,
    display_fps: int = 30,
    quit_after: float | None = None,
    isolated: bool = False,
    run_dir: Path | None = None,
) -> MainWindow:
    """Build the HMI for recipe ``product``; with ``exec_app`` run the event loop until the window closes.

    ``line_rate`` is in items per minute (the recipe's unit); ``None`` uses the recipe's rate.
    ``station`` is a station file (name, path or loaded config; default: the demo station).
    In demo mode the station file's camera feeds it and a batch starts as soon as the model
    is loaded; otherwise the recipe's GenICam camera is used, no line simulator is started, and
    the operator starts batches. ``quit_after`` closes the window after that many seconds in the
    event loop (a smoke test of the real display). Raises ConfigError for a bad station file or flag.
    ``isolated``: the station runs in its own process (attached to when it already runs, see
    :mod:`inspector.station.remote`; ``run_dir`` is where it publishes its address), so this
    window's event loop cannot stall inspection; otherwise it runs in this process.
    """
    from PyQt6.QtCore import QTimer

    from ui.controller import StationController, StationOptions
    from ui.main_window import MainWindow

    app = _application()
    base = Path(root) if root is not None else find_project_root()
    options = StationOptions(
        root=base,
        station=station_config(
            base,
            station,
            demo=demo,
            camera=camera,
            items=items,
            line_rate=line_rate,
            plc_url=plc_url,
            db=db,
            seed=seed,
            defect_rate=defect_rate,
            nuisance=nuisance,
            shift=shift,
            turn=turn,
            mode=mode,
            site=site,
        ),
        demo=demo,
        # A demo station logs its demo operator in (documented demo account, demo database only).
        auto_login=login or (DEMO_OPERATOR if demo and auto_login else None),
    )
    if isolated:
        from inspector.station.remote import open_remote

        options.open_client = functools.partial(open_remote, run_dir=run_dir)
    controller = StationController(options)
    window = MainWindow(controller, display_fps=display_fps)
    controller.setParent(window)  # the window owns the controller, its pool and its timers
    if size is not None:
        window.resize(*size)
    else:
        window.resize(1600, 960)
    if show:
        window.show()
    controller.open(product, start_batch=demo)
    if exec_app:
        _close_on_signals(window)
        if quit_after is not None:
            QTimer.singleShot(round(quit_after * 1000), window.close)
        app.exec()
        controller.shutdown()
    return window


def station_config(
    root: Path,
    station: StationConfig | str | None,
    *,
    demo: bool,
    camera: str | None = None,
    items: int | None = None,
    line_rate: float | None = None,
    plc_url: str | None = None,
    db: Path | str | None = None,
    seed: int | None = None,
    defect_rate: float | None = None,
    nuisance: float | None = None,
    shift: float | None = None,
    turn: float | None = None,
    mode: str | None = None,
    site: str | None = None,
) -> StationConfig:
    """The station file with the HMI's flags over it; ``demo=False`` means the recipe's camera and no line sim."""
    config = station if isinstance(station, StationConfig) else load_station_config(station, root)
    if not demo:
        camera = camera or "genicam"
        if plc_url is None and config.plc is not None and config.plc.is_line_sim:
            plc_url = "none"
    return apply_flags(
        config,
        camera=camera,
        items=items,
        line_rate=line_rate,
        plc=plc_url,
        db=None if db is None else str(db),
        seed=seed,
        defect_rate=defect_rate,
        nuisance=nuisance,
        shift=shift,
        turn=turn,
        mode=mode,
        site=site,
    )


def _close_on_signals(window: MainWindow) -> None:
    """Ctrl-C / SIGTERM close the window, which ends the batch and closes the records cleanly."""
    from PyQt6.QtCore import QTimer

    def close(_signum: int, _frame: object) -> None:
        window.close()

    signal.signal(signal.SIGINT, close)
    signal.signal(signal.SIGTERM, close)
    # Python runs signal handlers only between bytecodes; a idle Qt event loop runs none, so tick.
    ticker = QTimer(window)
    ticker.timeout.connect(lambda: None)
    ticker.start(250)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> argparse.ArgumentParser:
    """The HMI's options: the command-line conventions of ``inspector`` (range-checked numbers, one-line errors)."""
    from inspector.cli.common import LINE_RATE_MAX, SEED_MAX, HelpFormatter, Parser, add_sim_line_options, bounded

    p = Parser(
        prog="inspector-hmi",
        description="Inspector operator HMI (PyQt6). Exit status 2 for bad options (one line on stderr).",
        epilog="example:\n  inspector-hmi --product vial",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--product", default="vial", help="recipe to open: vial, tablet, blister or a recipe name")
    p.add_argument("--station", default=None, help="station file (station_configs/NAME.yaml or a path); default: demo")
    p.add_argument(
        "--items",
        type=bounded(int, low=1, high=100_000_000),
        default=None,
        help="demo batch size; default: runs until stopped",
    )
    p.add_argument(
        "--line-rate",
        type=bounded(float, above=0, high=LINE_RATE_MAX),
        default=None,
        help="items per minute; default: the recipe's",
    )
    p.add_argument(
        "--plc",
        default=None,
        metavar="URL",
        help="line PLC: none, line-sim, a URL or a plc_configs file (default: the station's)",
    )
    p.add_argument("--no-demo", action="store_true", help="use the recipe's camera and start batches by hand")
    p.add_argument(
        "--camera", choices=["sim", "files", "genicam"], default=None, help="camera kind; default: the station's"
    )
    p.add_argument("--mode", choices=["demo", "production"], default=None, help="default: the station file's")
    p.add_argument("--root", type=Path, default=None, help="project root with recipes/ and models/")
    p.add_argument("--db", type=Path, default=None, help="record database (default: <root>/var/inspector.sqlite)")
    p.add_argument(
        "--site",
        default=None,
        help="forward the records to this site database (postgresql://USER@HOST:PORT/DB); default: the station's",
    )
    p.add_argument(
        "--seed", type=bounded(int, low=0, high=SEED_MAX), default=None, help="sim: item seed; default: the station's"
    )
    p.add_argument(
        "--defect-rate",
        type=bounded(float, low=0, high=1),
        default=None,
        help="sim: share of defective items; default: the station's",
    )
    p.add_argument(
        "--nuisance",
        type=bounded(float, low=0, high=MAX_NUISANCE),
        default=None,
        help="sim camera nuisance scale, 0-3.0 (the models are validated to 2.5; above it the input drift alarm)",
    )
    add_sim_line_options(p)
    p.add_argument(
        "--no-auto-login", action="store_true", help="demo: do not log the demo operator in (log in on screen)"
    )
    p.add_argument(
        "--display-fps",
        type=bounded(int, low=1, high=30),
        default=30,
        help="live view refresh cap (inspection never skips)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the station inside the HMI's process (default: its own process, which the HMI attaches to)",
    )
    p.add_argument(
        "--quit-after",
        type=bounded(float, above=0, high=86_400),
        default=None,
        metavar="SECONDS",
        help="close the window after this many seconds (a demo ends its batch and station cleanly);"
        " default: run until closed",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # a bad option (one line already printed) or --help
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    problem = platform_problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    from ui.controller import list_recipes

    root = args.root or find_project_root()
    recipes = list_recipes(root)
    if args.product not in recipes and not Path(args.product).suffix:
        print(
            f"inspector-hmi: no recipe {args.product!r} in {root / 'recipes'} (found: {', '.join(recipes) or 'none'});"
            " set INSPECTOR_HOME or --root to a project with recipes/ and models/",
            file=sys.stderr,
        )
        return 2
    try:
        station_config(
            root,
            args.station,
            demo=not args.no_demo,
            camera=args.camera,
            items=args.items,
            line_rate=args.line_rate,
            plc_url=args.plc,
            db=args.db,
            seed=args.seed,
            defect_rate=args.defect_rate,
            nuisance=args.nuisance,
            shift=args.shift,
            turn=args.turn,
            mode=args.mode,
            site=args.site,
        )
    except ConfigError as exc:
        print(f"inspector-hmi: {exc}", file=sys.stderr)
        return 2
    create_app(
        args.product,
        root=root,
        station=args.station,
        demo=not args.no_demo,
        exec_app=True,
        camera=args.camera,
        items=args.items,
        line_rate=args.line_rate,
        plc_url=args.plc,
        db=args.db,
        seed=args.seed,
        defect_rate=args.defect_rate,
        nuisance=args.nuisance,
        shift=args.shift,
        turn=args.turn,
        mode=args.mode,
        site=args.site,
        auto_login=not args.no_auto_login,
        display_fps=args.display_fps,
        quit_after=args.quit_after,
        isolated=not args.in_process,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
