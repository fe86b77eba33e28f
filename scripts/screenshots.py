"""Render the HMI's main screen for each product into docs/screenshots/<product>.png.

Runs the real HMI in demo mode (sim camera, running batch, rejects visible) and grabs the
window once it has rejects with heat maps. Meant for a display server, e.g.:

    xvfb-run -a -s "-screen 0 1920x1080x24" uv run --extra training python scripts/screenshots.py

Uses the project's recipes and models when all three exist (or --root); otherwise, and with
--scratch, a throwaway project with the HMI test models (tests/ui/support.py), whose id
("test-<product>-refdiff") shows on the screen. Also writes fault.png (camera pulled,
alarm open), review.png (the reject review tab), release.png and audit.png (QA logged in), and
qualification.png: an engineer runs a suite from the qualification tab (``--suite``, default the
shipped tablet suite, 500 items x 10 presentations), then QA signs its report reviewed.

``--registration`` also renders registration.png: a blister line that moves and turns its cards,
each card drawn where registration found it (pockets placed, anchor and pose in words).

``--sizes 1366x768 1600x900 1920x1080`` also renders the running vial line as an operator panel
of each size, docs/screenshots/panel-<W>x<H>.png (the screen must be at least that large):

    xvfb-run -a -s "-screen 0 1920x1080x24" uv run python scripts/screenshots.py \
        --products --suite '' --sizes 1366x768 1600x900 1920x1080
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PyQt6.QtCore import QSize  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from inspector.config.recipe import find_project_root  # noqa: E402
from inspector.station.client import InProcessClient  # noqa: E402
from inspector.taxonomy import Product  # noqa: E402
from ui.app import create_app  # noqa: E402
from ui.controller import Phase  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402

SIZE = (1920, 1080)
# Modest rates: grabbing the window holds the GIL for a moment, and the screenshot should show
# a healthy line, not the gap that a grab at 100 items/s would cause.
LINE_RATE = {Product.VIAL: 300.0, Product.TABLET: 900.0, Product.BLISTER: 200.0}


def pump(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def wait_for(app: QApplication, cond: object, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if callable(cond) and cond():
            return True
        time.sleep(0.01)
    return False


def project_root(args: argparse.Namespace) -> Path:
    if args.root is not None:
        return Path(args.root)
    real = find_project_root()
    complete = all((real / "recipes" / f"{p.value}.yaml").is_file() for p in Product)
    if complete and not args.scratch:
        return real
    from tests.ui.support import make_project

    scratch = Path(tempfile.mkdtemp(prefix="inspector-screens-"))
    print(f"using a scratch project with test models: {scratch}", file=sys.stderr)
    return make_project(scratch, budget_ms=150)


def running_window(
    product: Product, root: Path, db: Path, size: tuple[int, int] = SIZE, line: tuple[float, float] | None = None
) -> MainWindow:
    w = create_app(
        product.value,
        root=root,
        demo=True,
        exec_app=False,
        db=db,
        size=size,
        line_rate=LINE_RATE[product],
        defect_rate=0.2,
        seed=11,
        shift=line[0] if line else None,
        turn=line[1] if line else None,
    )
    w.move(0, 0)
    return w


def shoot(
    product: Product,
    root: Path,
    out: Path,
    db: Path,
    *,
    extras: bool,
    size: tuple[int, int] = SIZE,
    name: str | None = None,
    line: tuple[float, float] | None = None,
) -> None:
    w = running_window(product, root, db, size, line)  # makes the QApplication on first use
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    c = w.controller
    if not wait_for(app, lambda: c.phase == Phase.RUNNING, 60):
        raise SystemExit(f"{product.value}: the station did not start: {c.last_error}")
    has_heat = c.client is not None and c.client.info.has_heatmap
    rejects = c.rejects
    wait_for(app, lambda: rejects is not None and len(rejects) >= 8, 60)
    pump(app, 0.5)
    if has_heat:  # grab the moment the held reject has its heat map (rejects keep replacing it)
        wait_for(app, lambda: w.last_reject.entry is not None and w.last_reject.entry.heatmap is not None, 20)
    if w.size() != QSize(*size):
        raise SystemExit(f"{product.value}: asked for {size[0]}x{size[1]}, the window is {w.width()}x{w.height()}")
    path = out / f"{name or product.value}.png"
    w.grab().save(str(path))
    print(f"wrote {path}")
    if extras:
        first = next(iter(rejects or []), None)
        if first is not None:
            w.open_review(first)
            w.review.label.setCurrentText(first.decision.label or w.review.label.currentText())
            pump(app, 1.0)
            w.grab().save(str(out / "review.png"))
            print(f"wrote {out / 'review.png'}")
            w.tabs.setCurrentIndex(0)
        assert isinstance(c.client, InProcessClient)
        c.client.session.camera.kill()  # type: ignore[attr-defined]
        wait_for(app, lambda: w.banner.isVisible(), 10)
        pump(app, 1.0)
        w.grab().save(str(out / "fault.png"))
        print(f"wrote {out / 'fault.png'}")
        c.client.session.camera.revive()  # type: ignore[attr-defined]
        # QA at the station: the release screen of the open model and recipe (an engineer has
        # registered the model in this throwaway database), and the audit trail.
        c.client.login("engineer", "engineer-demo")
        c.client.sign_release("model", "authored", "engineer", "engineer-demo", "registered for the screenshot")
        c.login("qa", "qa-demo-pass")
        wait_for(app, lambda: c.actor is not None and c.actor.role == "qa", 20)
        w.tabs.setCurrentWidget(w.release)
        w.release.refresh()
        pump(app, 0.5)
        w.grab().save(str(out / "release.png"))
        print(f"wrote {out / 'release.png'}")
        w.tabs.setCurrentWidget(w.audit)
        w.audit.refresh()
        w.audit.run_verify()
        pump(app, 0.5)
        w.grab().save(str(out / "audit.png"))
        print(f"wrote {out / 'audit.png'}")
    w.close()
    app.processEvents()


def shoot_qualification(root: Path, out: Path, db: Path, suite: str) -> None:
    """The qualification tab: a run in progress, then its result signed reviewed by QA."""
    product = suite.split("-")[0].split(".")[0]
    w = create_app(product, root=root, demo=False, camera="sim", exec_app=False, db=db, size=SIZE, auto_login=False)
    w.move(0, 0)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    c, tab = w.controller, w.qualification
    if not wait_for(app, lambda: c.phase == Phase.READY, 60):
        raise SystemExit(f"qualification: the station did not open: {c.last_error}")
    c.login("engineer", "engineer-demo")
    wait_for(app, lambda: c.actor is not None, 20)
    w.tabs.setCurrentWidget(tab)
    tab.suite.setCurrentText(suite)
    outcome: list[object] = []
    tab.run_finished.connect(outcome.append)
    tab.run(password="engineer-demo")
    if wait_for(app, lambda: tab.bar.maximum() > 0 and tab.bar.value() > tab.bar.maximum() // 2, 900):
        w.grab().save(str(out / "qualification-running.png"))
        print(f"wrote {out / 'qualification-running.png'}")
    if not wait_for(app, lambda: bool(outcome), 900) or outcome[0] is None:
        raise SystemExit(f"qualification: the run failed: {tab.status.text()}")
    wait_for(app, lambda: c.phase == Phase.READY and bool(tab.runs) and not tab.command.running, 120)
    c.login("qa", "qa-demo-pass")
    wait_for(app, lambda: c.actor is not None and c.actor.role == "qa", 20)
    tab.sign("reviewed", password="qa-demo-pass", reason="report reviewed for the screenshot")
    wait_for(app, lambda: "signed" in tab.status.text() and not tab.command.running, 60)
    wait_for(app, lambda: bool(tab.runs) and tab.runs[0]["state"] == "reviewed" and not tab.command.running, 60)
    pump(app, 0.5)
    w.grab().save(str(out / "qualification.png"))
    print(f"wrote {out / 'qualification.png'}")
    w.close()
    app.processEvents()


def panel_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is WIDTHxHEIGHT, e.g. 1366x768, got {text!r}") from None
    return width, height


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=None, help="project root with recipes/ and models/")
    p.add_argument("--scratch", action="store_true", help="use test models even if real ones exist")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    p.add_argument("--products", nargs="*", default=[p.value for p in Product])
    p.add_argument("--suite", default="tablet.yaml", help="suite the qualification screenshot runs ('' for none)")
    p.add_argument(
        "--sizes",
        nargs="*",
        type=panel_size,
        default=[],
        metavar="WxH",
        help="also render the vial line as panel-WxH.png at each size, e.g. 1366x768 1600x900 1920x1080",
    )
    p.add_argument(
        "--registration",
        action="store_true",
        help="also render registration.png: a blister line that shifts cards by up to 8 px and turns them by 5 deg",
    )
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    root = project_root(args)
    with tempfile.TemporaryDirectory(prefix="inspector-screens-db-") as tmp:
        for name in args.products:
            product = Product(name)
            shoot(product, root, args.out, Path(tmp) / f"{name}.sqlite", extras=product is Product.VIAL)
        for width, height in args.sizes:
            panel = f"panel-{width}x{height}"
            db = Path(tmp) / f"{panel}.sqlite"
            shoot(Product.VIAL, root, args.out, db, extras=False, size=(width, height), name=panel)
        if args.registration:
            db = Path(tmp) / "registration.sqlite"
            shoot(Product.BLISTER, root, args.out, db, extras=False, name="registration", line=(8.0, 5.0))
        if args.suite:
            shoot_qualification(root, args.out, Path(tmp) / "qualification.sqlite", args.suite)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
