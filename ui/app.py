"""App factory and the ``inspector-hmi`` command.

``create_app(..., exec_app=False)`` builds the QApplication (or reuses one), the
controller and the main window, and returns the window without entering the event loop,
so tests and the screenshot script can drive it. Demo mode (the default) opens the recipe
with the simulated camera and starts a batch: no hardware needed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication

from inspector.config.recipe import find_project_root
from inspector.synth import MAX_NUISANCE
from ui.controller import StationController, StationOptions, list_recipes
from ui.main_window import MainWindow
from ui.theme import BASE_POINT_SIZE

log = logging.getLogger(__name__)

# The QApplication made here must outlive create_app(): when its last Python reference goes,
# PyQt destroys it, and every QObject with it.
_APP: list[QApplication] = []


def _application() -> QApplication:
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
    demo: bool = True,
    exec_app: bool = True,
    camera: str | None = None,
    items: int | None = None,
    line_rate: float | None = None,
    plc_url: str | None = None,
    db: Path | str | None = None,
    seed: int = 0,
    defect_rate: float = 0.05,
    nuisance: float = 1.0,
    operator: str = "",
    size: tuple[int, int] | None = None,
    show: bool = True,
    display_fps: int = 30,
) -> MainWindow:
    """Build the HMI for recipe ``product``; with ``exec_app`` run the event loop until the window closes.

    ``line_rate`` is in items per minute (the recipe's unit); ``None`` uses the recipe's rate.
    In demo mode the sim camera feeds the station and a batch starts as soon as the model
    is loaded; otherwise the recipe's camera is used and the operator starts batches.
    """
    app = _application()
    base = Path(root) if root is not None else find_project_root()
    options = StationOptions(
        root=base,
        camera=camera or ("sim" if demo else "genicam"),
        items=items,
        line_rate=line_rate,
        seed=seed,
        defect_rate=defect_rate,
        nuisance=nuisance,
        db=Path(db) if db is not None else None,
        plc_url=plc_url,
        demo=demo,
    )
    controller = StationController(options)
    window = MainWindow(controller, display_fps=display_fps)
    controller.setParent(window)  # the window owns the controller, its pool and its timers
    if operator:
        window.header.operator.setText(operator)
    if size is not None:
        window.resize(*size)
    else:
        window.resize(1600, 960)
    if show:
        window.show()
    controller.open(product, start_batch=demo, operator=operator or None)
    if exec_app:
        _close_on_signals(window)
        app.exec()
        controller.shutdown()
    return window


def _close_on_signals(window: MainWindow) -> None:
    """Ctrl-C / SIGTERM close the window, which ends the batch and closes the records cleanly."""

    def close(_signum: int, _frame: object) -> None:
        window.close()

    signal.signal(signal.SIGINT, close)
    signal.signal(signal.SIGTERM, close)
    # Python runs signal handlers only between bytecodes; a idle Qt event loop runs none, so tick.
    ticker = QTimer(window)
    ticker.timeout.connect(lambda: None)
    ticker.start(250)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="inspector-hmi", description="Inspector operator HMI (PyQt6).")
    p.add_argument("--product", default="vial", help="recipe to open: vial, tablet, blister or a recipe name")
    p.add_argument("--items", type=int, default=None, help="demo batch size (default: runs until stopped)")
    p.add_argument("--line-rate", type=float, default=None, help="items per minute (default: the recipe's)")
    p.add_argument("--plc", default=None, metavar="URL", help="connect the PLC link at URL (inspector.plc)")
    p.add_argument("--no-demo", action="store_true", help="use the recipe's camera and start batches by hand")
    p.add_argument("--camera", choices=["sim", "files", "genicam"], default=None)
    p.add_argument("--root", type=Path, default=None, help="project root with recipes/ and models/")
    p.add_argument("--db", type=Path, default=None, help="record database (default: <root>/var/inspector.sqlite)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--defect-rate", type=float, default=0.05)
    p.add_argument(
        "--nuisance",
        type=float,
        default=1.0,
        help="sim camera nuisance scale, 0-3.0 (the models are validated to 2.5; above it the input drift alarm)",
    )
    p.add_argument("--operator", default="", help="pre-fill the (unauthenticated) station operator name")
    p.add_argument("--display-fps", type=int, default=30, help="live view refresh cap, 1-30 (inspection never skips)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = args.root or find_project_root()
    recipes = list_recipes(root)
    if args.product not in recipes and not Path(args.product).suffix:
        print(
            f"inspector-hmi: no recipe {args.product!r} in {root / 'recipes'} (found: {', '.join(recipes) or 'none'});"
            " set INSPECTOR_HOME or --root to a project with recipes/ and models/",
            file=sys.stderr,
        )
        return 2
    if args.items is not None and args.items <= 0:
        print("inspector-hmi: --items must be positive", file=sys.stderr)
        return 2
    if not 0.0 <= args.nuisance <= MAX_NUISANCE:
        print(f"inspector-hmi: --nuisance must be in 0..{MAX_NUISANCE}, got {args.nuisance}", file=sys.stderr)
        return 2
    create_app(
        args.product,
        root=root,
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
        operator=args.operator,
        display_fps=args.display_fps,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
